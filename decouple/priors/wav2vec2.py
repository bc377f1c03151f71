"""`Wav2Vec2Prior`: a layer of torchaudio's wav2vec 2.0 from a local weights file, per video frame.

The architecture is torchaudio's `Wav2Vec2Model` built by `torchaudio.models.wav2vec2_model`
with the exact configuration of a `torchaudio.pipelines` bundle (XLSR-53 as in CDRL, BASE,
...; [WAV2VEC2_ARCHITECTURES][decouple.priors.wav2vec2.WAV2VEC2_ARCHITECTURES]) or with any
configuration you give. The weights always come from a file you give: nothing is
downloaded. See docs/priors/audio.md for how to make the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

try:
    import torchaudio.pipelines as _pipelines
    from torchaudio.models import Wav2Vec2Model, wav2vec2_model
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"decouple.priors.wav2vec2 needs torchaudio ({_err}): pip install 'decouple[audio]'"
    ) from _err

from decouple.checkpoint import check_state, read_weights
from decouple.data.io import resample_audio
from decouple.priors.base import AudioPrior, frame_times, interpolate_to_frames

__all__ = [
    "WAV2VEC2_ARCHITECTURES",
    "Wav2Vec2Architecture",
    "Wav2Vec2Prior",
    "load_wav2vec2_state_dict",
]

SAMPLE_RATE = 16000
"""The rate every wav2vec 2.0 model here expects (Hz)."""

_URL = "https://download.pytorch.org/torchaudio/models/"


@dataclass(frozen=True)
class Wav2Vec2Architecture:
    """A wav2vec 2.0 configuration: `wav2vec2_model` arguments and its input convention.

    Attributes:
        name: Short name (`xlsr53`, `base`, ...).
        params: Keyword arguments of `torchaudio.models.wav2vec2_model`.
        normalize_waveform: Whether the model was trained on waveforms normalised to zero
            mean and unit variance (the large / XLSR models; torchaudio's bundles do it in
            `get_model()`).
        bundle: The `torchaudio.pipelines` bundle it comes from, if any.
        file: Name of the bundle's published weight file (a state dict of
            `Wav2Vec2Model`) under https://download.pytorch.org/torchaudio/models/.

    Examples:
        >>> a = WAV2VEC2_ARCHITECTURES["xlsr53"]
        >>> a.params["encoder_num_layers"], a.params["encoder_embed_dim"], a.normalize_waveform
        (24, 1024, True)
    """

    name: str
    params: Mapping[str, Any] = field(repr=False)
    normalize_waveform: bool
    bundle: str | None = None
    file: str | None = None

    @property
    def url(self) -> str | None:
        """Where the bundle's weight file is published (download it yourself, elsewhere)."""
        return None if self.file is None else _URL + self.file


def _from_bundle(name: str, bundle: str) -> Wav2Vec2Architecture:
    b = getattr(_pipelines, bundle)
    return Wav2Vec2Architecture(
        name=name,
        params=MappingProxyType(dict(b._params)),
        normalize_waveform=bool(b._normalize_waveform),
        bundle=bundle,
        file=str(b._path),
    )


WAV2VEC2_ARCHITECTURES: Mapping[str, Wav2Vec2Architecture] = MappingProxyType({
    name: _from_bundle(name, bundle)
    for name, bundle in (
        ("xlsr53", "WAV2VEC2_XLSR53"),
        ("xlsr_300m", "WAV2VEC2_XLSR_300M"),
        ("base", "WAV2VEC2_BASE"),
        ("large", "WAV2VEC2_LARGE"),
        ("large_lv60k", "WAV2VEC2_LARGE_LV60K"),
    )
})
"""Named architectures, read from torchaudio's pipeline bundles (their `_params`, no
download): `xlsr53` (CDRL's prior: 24 layers, 1024-d, 53 languages), `xlsr_300m`, `base`
(12 layers, 768-d, LibriSpeech), `large`, `large_lv60k`."""


def _missing_weights_message(arch: Wav2Vec2Architecture | None, detail: str) -> str:
    name = arch.name if arch is not None else "custom"
    lines = [
        f"Wav2Vec2Prior ({name}): {detail}. The weights must be a local file; nothing is ever "
        "downloaded. The file is a state dict of torchaudio's Wav2Vec2Model "
        "(keys feature_extractor.*, encoder.feature_projection.*, encoder.transformer.*), "
        "saved with torch.save or as .safetensors."
    ]
    if arch is not None and arch.bundle is not None:
        lines.append(
            "Make it once on a machine with internet: "
            f"python -c \"import torch, torchaudio; torch.save(torchaudio.pipelines.{arch.bundle}"
            f".get_model().state_dict(), 'wav2vec2_{name}.pt')\" "
            f"(or download {arch.url}, which is that state dict already), copy the file here "
            f"and pass it: Wav2Vec2Prior('wav2vec2_{name}.pt', architecture='{name}')."
        )
    lines.append(
        "fairseq or Hugging Face checkpoints: convert with "
        "torchaudio.models.wav2vec2.utils.import_fairseq_model / import_huggingface_model and "
        "torch.save(model.state_dict(), path) (see docs/priors/audio.md)."
    )
    return " ".join(lines)


def _resolve_architecture(architecture: str | Mapping[str, Any]) -> tuple[
    Wav2Vec2Architecture | None, dict[str, Any]
]:
    if isinstance(architecture, str):
        if architecture not in WAV2VEC2_ARCHITECTURES:
            raise KeyError(
                f"unknown wav2vec 2.0 architecture {architecture!r}; named ones: "
                f"{', '.join(WAV2VEC2_ARCHITECTURES)} (or pass a dict of wav2vec2_model arguments)"
            )
        arch = WAV2VEC2_ARCHITECTURES[architecture]
        return arch, dict(arch.params)
    if isinstance(architecture, Mapping):
        return None, dict(architecture)
    raise TypeError(
        "architecture must be a name or a dict of torchaudio.models.wav2vec2_model arguments, "
        f"got {type(architecture).__name__}"
    )


def load_wav2vec2_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a wav2vec 2.0 state dict from a local file (safetensors or `weights_only` torch).

    A `model.` prefix on every key (what `bundle.get_model().state_dict()` gives for the
    bundles that normalise the waveform, whose model is wrapped) is removed.

    Args:
        path: `.safetensors`, or a `torch.save`d dict of tensors (`.pt`, `.pth`).

    Returns:
        The state dict (keys of `torchaudio.models.Wav2Vec2Model`).

    Raises:
        FileNotFoundError: No such file (the message says how to make one).
        decouple.checkpoint.CheckpointError: The file cannot be read safely or is not a
            dict of tensors.

    Examples:
        >>> import tempfile, pathlib
        >>> from torchaudio.models import wav2vec2_model
        >>> m = wav2vec2_model(**Wav2Vec2Prior.tiny_architecture())
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save({"model." + k: v for k, v in m.state_dict().items()}, p)
        >>> sorted(load_wav2vec2_state_dict(p)) == sorted(m.state_dict())
        True
    """
    state, _ = read_weights(path, what="a wav2vec 2.0 state dict")
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    return state


def _conv_geometry(model: Wav2Vec2Model) -> tuple[int, int]:
    """(receptive field, stride) in samples of the convolutional feature encoder."""
    rf, stride = 1, 1
    for block in model.feature_extractor.conv_layers:
        k, s = block.conv.kernel_size[0], block.conv.stride[0]
        rf += (k - 1) * stride
        stride *= s
    return rf, stride


class Wav2Vec2Prior(AudioPrior):
    """A chosen layer of wav2vec 2.0, interpolated to the video frames, optionally projected.

    Data flow for a waveform (b, s) at any rate:

    1. resample to 16 kHz (`decouple.data.io.resample_audio`);
    2. if the architecture expects it (XLSR-53 and the large models), normalise each item
       to zero mean and unit variance over its own samples (torchaudio's bundle does it
       over the whole batch tensor, which equals this for one item);
    3. the convolutional feature encoder: (b, a, 512) at 50 Hz (stride 320 samples,
       receptive field 400 samples: feature j covers samples `[320 j, 320 j + 400)`, its
       time is the centre, `(320 j + 199.5) / 16000` s);
    4. `layer = 0`: these conv features; `layer = k >= 1`: the output of transformer layer
       k (what `model.extract_features(x, num_layers=k)[0][-1]` gives; CDRL uses k = 20 of
       XLSR-53), (b, a, D);
    5. linear interpolation, per channel, at the video frame times `i / fps`
       ([interpolate_to_frames][decouple.priors.base.interpolate_to_frames]; the first /
       last feature before / after the ends), (b, t, D);
    6. optionally a learned `nn.Linear(D, projection_dim)` (CDRL: 1024 -> 512), (b, t, dim).

    The wav2vec 2.0 model is frozen by default (no gradient, always in eval mode, computed
    under `torch.no_grad`); the projection always learns.

    Args:
        weights: Local file with the state dict of torchaudio's `Wav2Vec2Model` for
            `architecture` (safetensors or `torch.save`; see
            [load_wav2vec2_state_dict][decouple.priors.wav2vec2.load_wav2vec2_state_dict]).
            Required: without it the constructor raises FileNotFoundError saying how to
            make the file.
        architecture: A name in
            [WAV2VEC2_ARCHITECTURES][decouple.priors.wav2vec2.WAV2VEC2_ARCHITECTURES]
            (default `xlsr53`) or a dict of `torchaudio.models.wav2vec2_model` arguments.
        layer: 0 (conv features) or a transformer layer 1..L (default 20).
        projection_dim: Size of the learned output projection (None: no projection).
        freeze: Keep wav2vec 2.0 frozen.
        normalize_waveform: Override the architecture's waveform normalisation (required
            for a dict architecture: default False there).
        fps: Default video frame rate.

    Examples:
        >>> import tempfile, pathlib
        >>> from torchaudio.models import wav2vec2_model
        >>> arch = Wav2Vec2Prior.tiny_architecture()
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.pt"
        >>> torch.save(wav2vec2_model(**arch).state_dict(), path)
        >>> prior = Wav2Vec2Prior(path, architecture=arch, layer=2, projection_dim=8)
        >>> prior(torch.randn(2, 16000), 16000, num_frames=30, fps=30).shape
        torch.Size([2, 30, 8])
        >>> Wav2Vec2Prior(None)
        Traceback (most recent call last):
        ...
        FileNotFoundError: Wav2Vec2Prior (xlsr53): no weights file given. ...
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        architecture: str | Mapping[str, Any] = "xlsr53",
        layer: int = 20,
        projection_dim: int | None = None,
        freeze: bool = True,
        normalize_waveform: bool | None = None,
        fps: float = 30.0,
    ) -> None:
        arch, params = _resolve_architecture(architecture)
        if weights is None:
            raise FileNotFoundError(_missing_weights_message(arch, "no weights file given"))
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(_missing_weights_message(arch, f"no file at {path}"))
        model = wav2vec2_model(**params)
        state = load_wav2vec2_state_dict(path)
        hint = (f" (the file is not a {arch.name} model: pass the matching architecture)"
                if arch is not None else "")
        name = arch.name if arch is not None else "custom"
        check_state(model.state_dict(), state, source=str(path),
                    target=f"Wav2Vec2Model ({name})", hint=hint)
        model.load_state_dict(state)
        if normalize_waveform is None:
            normalize_waveform = arch.normalize_waveform if arch is not None else False
        self._setup(model, layer=layer, projection_dim=projection_dim, freeze=freeze,
                    normalize_waveform=normalize_waveform, fps=fps)
        self.architecture = arch.name if arch is not None else "custom"

    @classmethod
    def from_model(
        cls,
        model: Wav2Vec2Model,
        *,
        layer: int = 20,
        projection_dim: int | None = None,
        freeze: bool = True,
        normalize_waveform: bool = False,
        fps: float = 30.0,
    ) -> Wav2Vec2Prior:
        """Wrap a `Wav2Vec2Model` you already have (its weights are used as they are).

        Args:
            model: A `torchaudio.models.Wav2Vec2Model` (not the bundle's wrapper: pass
                `bundle_model.model` and `normalize_waveform=True` for those).
            layer: 0 or a transformer layer 1..L.
            projection_dim: Size of the learned output projection (None: none).
            freeze: Keep wav2vec 2.0 frozen.
            normalize_waveform: Normalise each waveform to zero mean, unit variance first.
            fps: Default video frame rate.

        Returns:
            The prior.

        Examples:
            >>> from torchaudio.models import wav2vec2_model
            >>> m = wav2vec2_model(**Wav2Vec2Prior.tiny_architecture())
            >>> Wav2Vec2Prior.from_model(m, layer=0).dim  # conv features
            8
        """
        if not isinstance(model, Wav2Vec2Model):
            raise TypeError(
                f"model must be a torchaudio.models.Wav2Vec2Model, got {type(model).__name__} "
                "(for a pipeline bundle's wrapped model pass its .model)"
            )
        self = cls.__new__(cls)
        self._setup(model, layer=layer, projection_dim=projection_dim, freeze=freeze,
                    normalize_waveform=normalize_waveform, fps=fps)
        self.architecture = "custom"
        return self

    def _setup(
        self,
        model: Wav2Vec2Model,
        *,
        layer: int,
        projection_dim: int | None,
        freeze: bool,
        normalize_waveform: bool,
        fps: float,
    ) -> None:
        num_layers = len(model.encoder.transformer.layers)
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= num_layers:
            raise ValueError(
                f"layer must be 0 (conv features) or a transformer layer 1..{num_layers}, "
                f"got {layer!r}"
            )
        if layer == 0:
            width = model.feature_extractor.conv_layers[-1].conv.out_channels
        else:
            width = model.encoder.transformer.layers[0].attention.embed_dim
        if projection_dim is not None and (
            isinstance(projection_dim, bool) or not isinstance(projection_dim, int)
            or projection_dim < 1
        ):
            raise ValueError(
                f"projection_dim must be a positive int or None, got {projection_dim!r}"
            )
        super().__init__(dim=projection_dim or width, fps=fps)
        self.model = model
        self.layer = layer
        self.layer_dim = width
        self.freeze = bool(freeze)
        self.normalize_waveform = bool(normalize_waveform)
        self.receptive_field, self.stride = _conv_geometry(model)
        self.projection = nn.Linear(width, projection_dim) if projection_dim else None
        if self.freeze:
            model.requires_grad_(False)
            model.eval()

    def train(self, mode: bool = True) -> Wav2Vec2Prior:
        """Set training mode; a frozen wav2vec 2.0 stays in eval mode (no dropout).

        Args:
            mode: Training mode for the trainable parts.

        Returns:
            self.

        Examples:
            >>> from torchaudio.models import wav2vec2_model
            >>> m = wav2vec2_model(**Wav2Vec2Prior.tiny_architecture())
            >>> p = Wav2Vec2Prior.from_model(m, layer=1, projection_dim=4).train()
            >>> p.training, p.model.training, p.projection.training
            (True, False, True)
        """
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    @staticmethod
    def tiny_architecture() -> dict[str, Any]:
        """A tiny random-init wav2vec 2.0 configuration (2 layers, 16-d) for tests and examples.

        The convolutional geometry is the real one (stride 320, receptive field 400), so
        timing and interpolation are as for XLSR-53.

        Returns:
            Keyword arguments of `torchaudio.models.wav2vec2_model`.

        Examples:
            >>> Wav2Vec2Prior.tiny_architecture()["encoder_num_layers"]
            2
        """
        conv = [(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2
        return {
            "extractor_mode": "layer_norm", "extractor_conv_layer_config": conv,
            "extractor_conv_bias": True, "encoder_embed_dim": 16,
            "encoder_projection_dropout": 0.0, "encoder_pos_conv_kernel": 8,
            "encoder_pos_conv_groups": 2, "encoder_num_layers": 2, "encoder_num_heads": 2,
            "encoder_attention_dropout": 0.0, "encoder_ff_interm_features": 32,
            "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.0,
            "encoder_layer_norm_first": True, "encoder_layer_drop": 0.0, "aux_num_out": None,
        }

    def feature_times(self, num_features: int) -> Tensor:
        """Times (seconds) of the layer features: the centres of their receptive fields.

        Args:
            num_features: Feature frames a.

        Returns:
            `(j * stride + (receptive_field - 1) / 2) / 16000` for j < a, (a,) float64.

        Examples:
            >>> from torchaudio.models import wav2vec2_model
            >>> m = wav2vec2_model(**Wav2Vec2Prior.tiny_architecture())
            >>> Wav2Vec2Prior.from_model(m, layer=1).feature_times(2)
            tensor([0.0125, 0.0325], dtype=torch.float64)
        """
        j = torch.arange(num_features, dtype=torch.float64)
        return (j * self.stride + (self.receptive_field - 1) / 2) / SAMPLE_RATE

    def layer_features(self, waveform: Tensor) -> Tensor:
        """The chosen layer's 50 Hz features of 16 kHz waveforms (steps 2-4 above).

        Args:
            waveform: Samples (b, s) at 16 kHz, s >= the receptive field (400).

        Returns:
            Features (b, a, layer_dim), `a = 1 + (s - 400) // 320` for the standard geometry.

        Examples:
            >>> from torchaudio.models import wav2vec2_model
            >>> p = Wav2Vec2Prior.from_model(wav2vec2_model(**Wav2Vec2Prior.tiny_architecture()),
            ...                              layer=1)
            >>> p.layer_features(torch.randn(1, 16000)).shape
            torch.Size([1, 49, 16])
        """
        if waveform.ndim != 2 or waveform.shape[-1] < self.receptive_field:
            raise ValueError(
                f"Wav2Vec2Prior needs waveforms (b, s) of at least {self.receptive_field} "
                f"samples at 16 kHz ({self.receptive_field / SAMPLE_RATE * 1000:.1f} ms), got "
                f"shape {tuple(waveform.shape)}"
            )
        x = waveform.to(next(self.model.parameters()).dtype)
        if self.normalize_waveform:
            x = nn.functional.layer_norm(x, x.shape[-1:])
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            feats, _ = self.model.feature_extractor(x, None)
            if self.layer > 0:
                feats = self.model.encoder.extract_features(feats, None, self.layer)[-1]
        return feats

    def _features(self, waveform: Tensor, sample_rate: int, num_frames: int, fps: float) -> Tensor:
        wave = resample_audio(waveform, sample_rate, SAMPLE_RATE)
        feats = self.layer_features(wave)  # (b, a, D)
        out = interpolate_to_frames(feats, self.feature_times(feats.shape[1]),
                                    frame_times(num_frames, fps))
        return self.projection(out) if self.projection is not None else out

    def extra_repr(self) -> str:
        """Architecture, layer and sizes."""
        return (f"architecture={self.architecture!r}, layer={self.layer}, "
                f"layer_dim={self.layer_dim}, dim={self.dim}, freeze={self.freeze}, "
                f"normalize_waveform={self.normalize_waveform}")

