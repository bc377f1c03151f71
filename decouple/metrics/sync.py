"""Lip sync: SyncNet v2, its MFCC input, and the LSE-D / LSE-C scores over audio offsets.

The lip-sync scores of the talking-head literature (Wav2Lip's LSE-D and LSE-C, used by the
NED family and CDRL) come from joonson/syncnet_python: a SyncNet embeds each 5-frame video
window and the matching 0.2 s of MFCC audio, and a clip is scored by how much closer the two
embeddings are at the best audio offset than at the others.

* [sync_score][decouple.metrics.sync.sync_score]: the scores from per-window embeddings. For
  each offset k in -N..N it averages the Euclidean distance between video window i and audio
  window i + k; LSE-D is the smallest mean distance, LSE-C the median over offsets minus
  that minimum, and the best offset is where the minimum is (k > 0: the audio lags).
* [lip_sync][decouple.metrics.sync.lip_sync]: a clip (face crops + waveform) through any
  [SyncModel][decouple.metrics.sync.SyncModel] to a
  [SyncScore][decouple.metrics.sync.SyncScore]; frames at another rate are resampled to
  25 fps and the audio to 16 kHz first.
* [sync_mfcc][decouple.metrics.sync.sync_mfcc]: the MFCCs syncnet_python feeds SyncNet
  (`python_speech_features.mfcc` with its defaults on the 16-bit sample values).
* [SyncNet][decouple.metrics.sync.SyncNet] / [syncnet][decouple.metrics.sync.syncnet]: the
  SyncNet v2 network in syncnet_python's exact key layout, loadable from a local
  `syncnet_v2.model` file (never downloaded), with its own input preprocessing.

The docs page (Metrics / Lip sync) gives the formulas, the expected keys of the weight file
and how the scores compare with syncnet_python's.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from decouple.encoders.spec import ImageSpec
from decouple.metrics._batching import inference, model_device

__all__ = [
    "SYNC_FPS",
    "SYNC_SAMPLE_RATE",
    "SyncModel",
    "SyncNet",
    "SyncScore",
    "lip_sync",
    "sync_mfcc",
    "sync_score",
    "syncnet",
]

SYNC_FPS = 25
"""Video frame rate SyncNet works at: a window is 5 frames (0.2 s), one frame is 4 MFCC steps."""

SYNC_SAMPLE_RATE = 16000
"""Audio sample rate of SyncNet's MFCCs (100 columns per second, 640 samples per frame)."""

_WINDOW = 5  # video frames per window
_MFCC_PER_FRAME = 4  # MFCC columns per video frame at 25 fps (10 ms step, 40 ms frames)
_MFCC_WINDOW = 20  # MFCC columns per window (0.2 s)
_SAMPLES_PER_FRAME = SYNC_SAMPLE_RATE // SYNC_FPS  # 640
_PADDINGS = ("valid", "zeros")

# python_speech_features.mfcc defaults, as syncnet_python calls it (mfcc(audio, 16000)).
_WIN = 400  # round_half_up(0.025 * 16000): 25 ms frames
_HOP = 160  # round_half_up(0.01 * 16000): 10 ms step
_NFFT = 512
_NFILT = 26
_NCEP = 13
_PREEMPH = 0.97
_LIFTER = 22
_INT16_SCALE = 32768.0  # syncnet_python reads 16-bit PCM with scipy.io.wavfile: raw sample values
# the tail past the last frame that the 20th MFCC column of the last window reads (15 ms)
_TAIL = _WIN - _HOP


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _check_max_offset(max_offset: object, where: str) -> int:
    if not _is_int(max_offset) or int(max_offset) < 0:  # type: ignore[call-overload]
        raise ValueError(f"{where}: max_offset must be an int >= 0, got {max_offset!r}")
    return int(max_offset)  # type: ignore[call-overload]


def _check_padding(padding: object, where: str) -> str:
    if padding not in _PADDINGS:
        raise ValueError(f"{where}: padding must be one of {_PADDINGS}, got {padding!r}")
    return str(padding)


def _min_windows(max_offset: int, padding: str) -> int:
    return max_offset + 1 if padding == "valid" else 1


# --------------------------------------------------------------------------------------------
# scores from embeddings


@dataclass(frozen=True)
class SyncScore:
    """The lip-sync scores of one clip.

    Attributes:
        offset: Best offset k: video window i matches audio window i + k (k > 0: the audio
            lags the video, k < 0: it leads). syncnet_python prints `-offset` as "AV offset".
        lse_d: The mean distance at the best offset (LSE-D, lower = better sync).
        lse_c: The median over offsets of the mean distance minus its minimum (LSE-C, higher
            = more confident sync).
        distances: (2N + 1,) float64 mean distance per offset, offsets -N..N.

    Examples:
        >>> s = SyncScore(offset=-1, lse_d=1.0, lse_c=2.0,
        ...               distances=torch.tensor([1.0, 3.0, 3.5], dtype=torch.float64))
        >>> list(s.offsets), s.distances[s.offset + 1].item()
        ([-1, 0, 1], 1.0)
    """

    offset: int
    lse_d: float
    lse_c: float
    distances: Tensor = field(compare=False)

    @property
    def offsets(self) -> range:
        """The offsets -N..N that `distances` is indexed by."""
        n = (len(self.distances) - 1) // 2
        return range(-n, n + 1)


def sync_score(
    video_embeddings: Tensor,
    audio_embeddings: Tensor,
    *,
    max_offset: int = 10,
    padding: str = "valid",
) -> SyncScore:
    """LSE-D, LSE-C and the best offset from per-window video and audio embeddings.

    With v_i and a_j the embeddings of video window i and audio window j (w windows each),
    the mean distance at offset k is

        D(k) = mean over the pairs i of ||v_i - a_{i+k}||_2,    k = -N..N,

    computed in float64. LSE-D = min_k D(k), LSE-C = median_k D(k) - min_k D(k), and the
    offset is the k of the minimum (the first, i.e. the most negative, on an exact tie).

    Padding says which pairs i enter D(k):

    * `"valid"` (default): only the pairs that exist, 0 <= i < w and 0 <= i + k < w, i.e.
      w - |k| pairs. Needs w > N (at least one pair at every offset).
    * `"zeros"`: syncnet_python's `calc_pdist`: the audio embeddings are padded with N zero
      vectors at both ends and every offset averages all w video windows, a missing audio
      window counting as the zero vector (distance ||v_i||). Needs w >= 1. Use it to compare
      with published numbers; it biases short clips (see the docs page).

    The distance is the plain Euclidean norm (torch's `pairwise_distance`, which syncnet_python
    calls, adds 1e-6 to the difference: a change below 1e-4 for 1024-d embeddings).

    Args:
        video_embeddings: (w, d) one row per 5-frame video window.
        audio_embeddings: (w, d) one row per audio window, in the same order.
        max_offset: N, the largest offset tried, in windows (= 25 fps frames).
        padding: `"valid"` or `"zeros"`.

    Returns:
        The [SyncScore][decouple.metrics.sync.SyncScore].

    Raises:
        ValueError: If the embeddings are not two (w, d) tensors of the same shape, hold
            non-finite values, or are too few for `max_offset` with this padding; or if
            `max_offset` or `padding` is invalid.

    Examples:
        >>> v = torch.eye(6)
        >>> a = torch.roll(v, 2, dims=0)  # audio window i + 2 holds what video window i shows
        >>> s = sync_score(v, a, max_offset=3)
        >>> s.offset, s.lse_d, round(s.lse_c, 4)
        (2, 0.0, 1.4142)
        >>> sync_score(v, a, max_offset=6)
        Traceback (most recent call last):
        ...
        ValueError: sync_score: 6 windows, but padding='valid' with max_offset=6 needs ...
    """
    where = "sync_score"
    n_max = _check_max_offset(max_offset, where)
    padding = _check_padding(padding, where)
    for name, x in (("video_embeddings", video_embeddings), ("audio_embeddings", audio_embeddings)):
        if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
            got = (f"shape {tuple(x.shape)}, {x.dtype}" if isinstance(x, Tensor)
                   else type(x).__name__)  # fmt: skip
            raise ValueError(f"{where}: {name} must be a floating (w, d) tensor, got {got}")
    if video_embeddings.shape != audio_embeddings.shape:
        raise ValueError(
            f"{where}: video_embeddings {tuple(video_embeddings.shape)} and audio_embeddings "
            f"{tuple(audio_embeddings.shape)} must have the same shape (w windows, d dims)"
        )
    v = video_embeddings.detach().to(torch.float64)
    a = audio_embeddings.detach().to(device=v.device, dtype=torch.float64)
    w = v.shape[0]
    need = _min_windows(n_max, padding)
    if w < need:
        advice = ("every offset needs a window pair; use a smaller max_offset or "
                  "padding='zeros'") if padding == "valid" else "an empty clip"  # fmt: skip
        raise ValueError(
            f"{where}: {w} windows, but padding={padding!r} with max_offset={n_max} needs at "
            f"least {need} ({advice})"
        )
    if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(a).all())):
        raise ValueError(f"{where}: the embeddings hold non-finite values")
    means = []
    for k in range(-n_max, n_max + 1):
        lo, hi = max(0, -k), min(w, w - k)  # video windows i whose audio window i + k exists
        d = (v[lo:hi] - a[lo + k : hi + k]).norm(dim=1) if hi > lo else v.new_zeros(0)
        if padding == "valid":
            means.append(d.mean())
        else:  # the other video windows meet a zero audio embedding
            outside = torch.cat([v[:lo], v[hi:]]).norm(dim=1)
            means.append((d.sum() + outside.sum()) / w)
    distances = torch.stack(means).cpu()
    best = int(torch.argmin(distances))  # first minimum
    low = float(distances[best])
    median = float(distances.sort().values[n_max])  # 2N + 1 values: the middle one
    return SyncScore(offset=best - n_max, lse_d=low, lse_c=median - low, distances=distances)


# --------------------------------------------------------------------------------------------
# the model interface


@runtime_checkable
class SyncModel(Protocol):
    """What [lip_sync][decouple.metrics.sync.lip_sync] needs from a lip-sync model.

    `embed_video` maps (b, 5, 3, h, w) uint8 RGB face crops (5 consecutive 25 fps frames) to
    (b, d) embeddings; `embed_audio` maps (b, 13, 20) float MFCC windows (20 columns of
    [sync_mfcc][decouple.metrics.sync.sync_mfcc], 0.2 s) to (b, d). Aligned windows should
    be close in Euclidean distance. [SyncNet][decouple.metrics.sync.SyncNet] implements it;
    so can any module or plain object with the two methods.

    Examples:
        >>> class Mean:
        ...     def embed_video(self, windows): return windows.float().mean((2, 3, 4))
        ...     def embed_audio(self, windows): return windows[:, 0, ::4]
        >>> isinstance(Mean(), SyncModel)
        True
    """

    def embed_video(self, windows: Tensor) -> Tensor:
        """(b, 5, 3, h, w) uint8 RGB face crops -> (b, d)."""
        ...

    def embed_audio(self, windows: Tensor) -> Tensor:
        """(b, 13, 20) float MFCC windows -> (b, d)."""
        ...


# --------------------------------------------------------------------------------------------
# SyncNet v2


class SyncNet(nn.Module):
    """SyncNet v2 (joonson/syncnet_python `SyncNetModel.S`) with its exact state-dict keys.

    Two towers of the same shape of output: `netcnnaud` (2-D convolutions over the 13 x 20
    MFCC window) + `netfcaud`, and `netcnnlip` (a 3-D convolution over the 5-frame window,
    then 2-D ones, as Conv3d with temporal kernel 1) + `netfclip`; each ends in a 512 -> 512
    -> BatchNorm -> ReLU -> `embedding_dim` MLP. The layer indices inside the `nn.Sequential`
    blocks (ReLU and pooling included) are those of syncnet_python, so `syncnet_v2.model`
    loads key for key (see [syncnet][decouple.metrics.sync.syncnet]).

    What the towers take (syncnet_python's preprocessing, done by the `embed_*` methods):

    * video: 224 x 224 face crops in **BGR** order (read with OpenCV), float **0..255** (no
      mean, no scaling), as (b, 3, 5, 224, 224);
    * audio: `python_speech_features.mfcc` of the 16-bit sample values at 16 kHz, 13
      coefficients x 20 columns (0.2 s), as (b, 1, 13, 20).

    Args:
        embedding_dim: Output size of both towers (`num_layers_in_fc_layers`, 1024 in v2).

    Attributes:
        spec: The video input convention: RGB uint8 / [0, 1] frames in, BGR 0..255 at
            224 x 224 for the network (other sizes resized, bilinear with antialiasing).

    Examples:
        >>> net = SyncNet().eval()
        >>> video = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)
        >>> mfcc = torch.randn(2, 13, 20)
        >>> tuple(net.embed_video(video).shape), tuple(net.embed_audio(mfcc).shape)
        ((2, 1024), (2, 1024))
    """

    size = 224

    def __init__(self, embedding_dim: int = 1024) -> None:
        super().__init__()
        if not _is_int(embedding_dim) or embedding_dim < 1:
            raise ValueError(
                f"SyncNet: embedding_dim must be a positive int, got {embedding_dim!r}"
            )
        self.embedding_dim = int(embedding_dim)
        self.spec = ImageSpec(
            channels="BGR", std=(1 / 255, 1 / 255, 1 / 255), size=(self.size, self.size),
            name="SyncNet",
        )  # fmt: skip

        def conv2(cin: int, cout: int, k: tuple[int, int], p: tuple[int, int]) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, kernel_size=k, padding=p), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]  # fmt: skip

        def conv3(cin: int, cout: int, k: tuple[int, int, int], s: tuple[int, int, int],
                  p: tuple[int, int, int]) -> list[nn.Module]:  # fmt: skip
            return [nn.Conv3d(cin, cout, kernel_size=k, stride=s, padding=p),
                    nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]  # fmt: skip

        def head() -> nn.Sequential:
            return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                 nn.Linear(512, self.embedding_dim))  # fmt: skip

        # audio: (b, 1, 13, 20) -> (b, 512, 1, 1); indices 0..20 as syncnet_python
        self.netcnnaud = nn.Sequential(
            *conv2(1, 64, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *conv2(64, 192, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),  # 13 x 20 -> 11 x 9
            *conv2(192, 384, (3, 3), (1, 1)),
            *conv2(384, 256, (3, 3), (1, 1)),
            *conv2(256, 256, (3, 3), (1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),  # -> 5 x 4
            *conv2(256, 512, (5, 4), (0, 0)),  # -> 1 x 1
        )
        self.netfcaud = head()
        self.netfclip = head()
        # video: (b, 3, 5, 224, 224) -> (b, 512, 1, 1, 1); indices 0..22 as syncnet_python
        self.netcnnlip = nn.Sequential(
            *conv3(3, 96, (5, 7, 7), (1, 2, 2), (0, 0, 0)),  # -> 1 x 109 x 109
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),  # -> 54
            *conv3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),  # -> 26
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # -> 13
            *conv3(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
            *conv3(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
            *conv3(256, 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),  # -> 6
            *conv3(256, 512, (1, 6, 6), (1, 1, 1), (0, 0, 0)),  # -> 1
        )

    def _param(self) -> Tensor:
        return next(self.parameters())

    def forward_aud(self, x: Tensor) -> Tensor:
        """The audio tower on its raw input.

        Args:
            x: (b, 1, 13, 20) MFCC windows ([sync_mfcc][decouple.metrics.sync.sync_mfcc]).

        Returns:
            (b, embedding_dim).

        Raises:
            ValueError: If `x` is not (b, 1, 13, 20).

        Examples:
            >>> SyncNet().eval().forward_aud(torch.randn(3, 1, 13, 20)).shape
            torch.Size([3, 1024])
        """
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, _NCEP, 20):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"SyncNet.forward_aud: x must be (b, 1, 13, 20) MFCC windows, got {got}"
            )
        mid = self.netcnnaud(x)  # (b, 512, 1, 1)
        return self.netfcaud(mid.flatten(1))

    def forward_lip(self, x: Tensor) -> Tensor:
        """The video tower on its raw input.

        Args:
            x: (b, 3, 5, 224, 224) BGR face crops, float 0..255 (what syncnet_python feeds).

        Returns:
            (b, embedding_dim).

        Raises:
            ValueError: If `x` is not (b, 3, 5, 224, 224).

        Examples:
            >>> SyncNet().eval().forward_lip(torch.rand(1, 3, 5, 224, 224) * 255).shape
            torch.Size([1, 1024])
        """
        want = (3, _WINDOW, self.size, self.size)
        if not isinstance(x, Tensor) or x.ndim != 5 or tuple(x.shape[1:]) != want:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"SyncNet.forward_lip: x must be (b, 3, 5, 224, 224) BGR 0..255 crops, got {got} "
                "(embed_video takes (b, 5, 3, h, w) RGB frames and converts them)"
            )
        mid = self.netcnnlip(x)  # (b, 512, 1, 1, 1)
        return self.netfclip(mid.flatten(1))

    def embed_video(self, windows: Tensor) -> Tensor:
        """Embed 5-frame windows of RGB face crops (the `SyncModel` call).

        Each frame is converted as syncnet_python sees it: RGB -> BGR, resized to 224 x 224
        if needed, values 0..255 as floats; the window becomes (3, 5, 224, 224).

        Args:
            windows: (b, 5, 3, h, w) RGB, uint8 0..255 or float in [0, 1], on any device
                (moved to the model's).

        Returns:
            (b, embedding_dim) on the model's device.

        Raises:
            ValueError: If `windows` is not (b, 5, 3, h, w).
            ImageSpecError: If the frames are not uint8 / float [0, 1] images.

        Examples:
            >>> net = SyncNet().eval()
            >>> net.embed_video(torch.rand(2, 5, 3, 224, 224)).shape
            torch.Size([2, 1024])
        """
        if not isinstance(windows, Tensor) or windows.ndim != 5 or windows.shape[1] != _WINDOW:
            got = tuple(windows.shape) if isinstance(windows, Tensor) else type(windows).__name__
            raise ValueError(
                f"SyncNet.embed_video: windows must be (b, 5, 3, h, w) RGB face crops, got {got}"
            )
        p = self._param()
        b = windows.shape[0]
        frames = windows.to(p.device).reshape(b * _WINDOW, *windows.shape[2:])
        x = self.spec.prepare(frames, "windows", dtype=p.dtype).to(p.dtype)  # (b*5, 3, 224, 224)
        x = x.reshape(b, _WINDOW, 3, self.size, self.size).transpose(1, 2)  # b 3 5 h w
        return self.forward_lip(x.contiguous())

    def embed_audio(self, windows: Tensor) -> Tensor:
        """Embed MFCC windows (the `SyncModel` call).

        Args:
            windows: (b, 13, 20) columns of [sync_mfcc][decouple.metrics.sync.sync_mfcc].

        Returns:
            (b, embedding_dim) on the model's device.

        Raises:
            ValueError: If `windows` is not a floating (b, 13, 20) tensor.

        Examples:
            >>> SyncNet().eval().embed_audio(torch.randn(4, 13, 20)).shape
            torch.Size([4, 1024])
        """
        if (not isinstance(windows, Tensor) or windows.ndim != 3 or not windows.is_floating_point()
                or tuple(windows.shape[1:]) != (_NCEP, _MFCC_WINDOW)):  # fmt: skip
            got = (f"shape {tuple(windows.shape)}, {windows.dtype}" if isinstance(windows, Tensor)
                   else type(windows).__name__)  # fmt: skip
            raise ValueError(
                f"SyncNet.embed_audio: windows must be floating (b, 13, 20) MFCC windows "
                f"(sync_mfcc columns), got {got}"
            )
        p = self._param()
        return self.forward_aud(windows.to(device=p.device, dtype=p.dtype)[:, None])

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Both embeddings: `(embed_video(video), embed_audio(audio))`.

        Args:
            video: (b, 5, 3, h, w) RGB face-crop windows.
            audio: (b, 13, 20) MFCC windows.

        Returns:
            (b, embedding_dim) video and audio embeddings.

        Examples:
            >>> v, a = SyncNet().eval()(torch.rand(1, 5, 3, 96, 96), torch.randn(1, 13, 20))
            >>> v.shape == a.shape
            True
        """
        return self.embed_video(video), self.embed_audio(audio)


def syncnet(weights: str | os.PathLike | None = None) -> SyncNet:
    """SyncNet v2, loaded from a local `syncnet_v2.model` file (or randomly initialised).

    The file is syncnet_python's (`download_model.sh` fetches it as `data/syncnet_v2.model`;
    nothing is downloaded here): a plain state dict of `SyncNetModel.S`, read with
    `torch.load(weights_only=True)` (or as `.safetensors`) by
    [decouple.checkpoint][decouple.checkpoint.load_weights]. Every key is checked: a missing,
    unexpected or wrongly shaped key raises naming it. BatchNorm's `num_batches_tracked`
    may be absent (the file predates it).

    Args:
        weights: Path of the weight file; None for random initialisation (tests, examples).

    Returns:
        The network in eval mode (BatchNorm uses its running statistics).

    Raises:
        FileNotFoundError: If there is no file at `weights`.
        CheckpointError: If the file cannot be read safely or does not fit SyncNet v2.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from decouple.checkpoint import save_weights
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_weights(SyncNet(), Path(d) / "syncnet_v2.model")
        ...     net = syncnet(path)
        >>> net.training, sum(p.numel() for p in net.parameters())
        (False, 13631616)
    """
    net = SyncNet()
    if weights is not None:
        from decouple.checkpoint import load_weights

        load_weights(net, weights)
    return net.eval()


# --------------------------------------------------------------------------------------------
# MFCC


def _hz2mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel2hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=4)
def _filterbank(sample_rate: int) -> np.ndarray:
    """(26, 257) triangles on FFT bins floor((nfft + 1) * f / sr), mel points 0..sr/2."""
    mels = np.linspace(_hz2mel(np.float64(0.0)), _hz2mel(np.float64(sample_rate / 2)), _NFILT + 2)
    edges = np.floor((_NFFT + 1) * _mel2hz(mels) / sample_rate).astype(np.int64)
    bank = np.zeros((_NFILT, _NFFT // 2 + 1))
    for j in range(_NFILT):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        rise = np.arange(lo, mid)
        fall = np.arange(mid, hi)
        bank[j, rise] = (rise - lo) / (mid - lo) if mid > lo else 0.0
        bank[j, fall] = (hi - fall) / (hi - mid) if hi > mid else 0.0
    return bank


def _mono(waveform: object, where: str) -> Tensor:
    if (not isinstance(waveform, Tensor) or not waveform.is_floating_point()
            or waveform.ndim not in (1, 2) or waveform.shape[-1] == 0):  # fmt: skip
        got = (f"shape {tuple(waveform.shape)}, {waveform.dtype}" if isinstance(waveform, Tensor)
               else type(waveform).__name__)  # fmt: skip
        raise ValueError(
            f"{where}: waveform must be a floating tensor (s,) or (c, s) with samples in "
            f"[-1, 1], got {got}"
        )
    if waveform.ndim == 2:  # ffmpeg's -ac 1 (what syncnet_python runs): the channel mean
        waveform = waveform.mean(0)
    return waveform


def sync_mfcc(waveform: Tensor, sample_rate: int = 16000) -> Tensor:
    """The MFCCs syncnet_python feeds SyncNet: 13 x n at 100 columns per second.

    Equal to `python_speech_features.mfcc(32768 * waveform, 16000).T` (its defaults, which
    syncnet_python uses on the 16-bit samples scipy reads from a WAV file), in float64:

    1. pre-emphasis y[0] = x[0], y[t] = x[t] - 0.97 x[t - 1];
    2. frames of 400 samples (25 ms) every 160 (10 ms), **no window** (rectangular), the last
       frame zero-padded: n = 1 + ceil((s - 400) / 160) columns (1 if s <= 400); column j
       starts at sample 160 j;
    3. power spectrum |rfft(frame, 512)|^2 / 512; energy = its sum over the 257 bins;
    4. 26 triangular mel filters (HTK mel, 0..8000 Hz) on the FFT bins
       floor(513 * f / 16000); log of the filter energies (zeros replaced by float eps);
    5. orthonormal DCT-II, first 13; lifter 1 + 11 sin(pi n / 22); coefficient 0 replaced
       by log(energy).

    The 32768 scale gives the values the network was used with (only coefficient 0, the log
    energy, depends on it: + log(32768^2)).

    Args:
        waveform: Samples (s,) or (c, s) (channels averaged, as ffmpeg's `-ac 1`), floating
            point in [-1, 1].
        sample_rate: Its rate; other rates than 16 kHz are resampled to 16 kHz first
            (`decouple.data.io.resample_audio`), as syncnet_python's ffmpeg `-ar 16000`.

    Returns:
        (13, n) float64 on the waveform's device.

    Raises:
        ValueError: On a waveform that is not a non-empty floating (s,) / (c, s) tensor or
            a sample rate that is not a positive int.

    Examples:
        >>> t = torch.arange(16000) / 16000
        >>> m = sync_mfcc(0.1 * torch.sin(2 * torch.pi * 440 * t))
        >>> tuple(m.shape), m.dtype
        ((13, 99), torch.float64)
    """
    where = "sync_mfcc"
    if not _is_int(sample_rate) or sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be a positive int, got {sample_rate!r}")
    x = _mono(waveform, where)
    if int(sample_rate) != SYNC_SAMPLE_RATE:
        from decouple.data.io import resample_audio

        x = resample_audio(x.to(torch.float64), int(sample_rate), SYNC_SAMPLE_RATE)
    x = x.to(torch.float64) * _INT16_SCALE
    y = torch.cat([x[:1], x[1:] - _PREEMPH * x[:-1]])
    s = y.shape[0]
    n = 1 if s <= _WIN else 1 + math.ceil((s - _WIN) / _HOP)
    y = torch.nn.functional.pad(y, (0, (n - 1) * _HOP + _WIN - s))
    frames = y.unfold(0, _WIN, _HOP)  # (n, 400)
    power = torch.fft.rfft(frames, n=_NFFT).abs().square() / _NFFT  # (n, 257)
    tiny = float(np.finfo(np.float64).eps)
    energy = power.sum(1)
    energy = torch.where(energy == 0, tiny, energy)
    bank = torch.from_numpy(_filterbank(SYNC_SAMPLE_RATE)).to(power.device)
    feat = power @ bank.T  # (n, 26)
    feat = torch.where(feat == 0, tiny, feat).log()
    dct = _dct_matrix().to(feat.device)  # (26, 13)
    lift = 1 + (_LIFTER / 2) * torch.sin(
        math.pi * torch.arange(_NCEP, dtype=torch.float64, device=feat.device) / _LIFTER
    )
    ceps = (feat @ dct) * lift
    ceps[:, 0] = energy.log()
    return ceps.T.contiguous()


@functools.lru_cache(maxsize=1)
def _dct_matrix() -> Tensor:
    """(26, 13) orthonormal DCT-II (scipy's `dct(type=2, norm="ortho")`), built in float64.

    torchaudio's `create_dct` (used by decouple.data.features) builds it in float32, which
    would leave errors of about 1e-4 in the coefficients here.
    """
    n = torch.arange(_NFILT, dtype=torch.float64)
    k = torch.arange(_NCEP, dtype=torch.float64)
    basis = torch.cos(math.pi / _NFILT * (n[:, None] + 0.5) * k[None, :])
    scale = torch.full((_NCEP,), math.sqrt(2.0 / _NFILT), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / _NFILT)
    return basis * scale


# --------------------------------------------------------------------------------------------
# a clip through a model


def _embed(
    fn: Callable[[Tensor], Tensor],
    batches: Iterable[Tensor],
    name: str,
    device: torch.device | None,
) -> Tensor:
    out = []
    for batch in batches:
        if device is not None:
            batch = batch.to(device)
        e = fn(batch)
        if not isinstance(e, Tensor) or e.ndim != 2 or e.shape[0] != batch.shape[0]:
            got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise ValueError(
                f"lip_sync: model.{name} must return (b, d) embeddings for a batch of "
                f"{batch.shape[0]} windows, got {got}"
            )
        out.append(e.detach().to(torch.float64).cpu())
    return torch.cat(out)


def _as_uint8(frames: Tensor) -> Tensor:
    if frames.dtype == torch.uint8:
        return frames
    return (frames.to(torch.float32) * 255.0).round().clamp_(0, 255).to(torch.uint8)


def lip_sync(
    model: SyncModel,
    frames: Tensor,
    waveform: Tensor,
    *,
    fps: float,
    sample_rate: int = 16000,
    max_offset: int = 10,
    padding: str = "valid",
    batch_size: int = 64,
) -> SyncScore:
    """LSE-D, LSE-C and the audio offset of a talking-face clip.

    The clip is brought to SyncNet's rates, cut into windows, embedded and scored:

    1. frames at another rate than 25 fps are resampled to 25 fps by nearest timestamp
       (`decouple.data.io.resample_indices`), the audio to 16 kHz
       (`decouple.data.io.resample_audio`; channels averaged);
    2. the clip is trimmed to the frames the audio covers, n = min(t25, floor(s16 / 640))
       (syncnet_python's rule; a warning when the audio is shorter than the video by more
       than one frame). The audio is then cut, or zero-padded, to 640 n + 240 samples: the
       last window's 20th MFCC column reads 15 ms past the last frame;
    3. video window i = frames i..i+4, audio window i = [sync_mfcc][decouple.metrics.sync.sync_mfcc]
       columns 4i..4i+19, for i = 0..n-5 (w = n - 4 windows, one more than syncnet_python,
       which stops at n - 5 because its MFCCs lack that last column);
    4. [sync_score][decouple.metrics.sync.sync_score] over offsets -max_offset..max_offset.

    Float frames are converted to uint8 (round(255 x)) before `model.embed_video`, which
    receives (b, 5, 3, h, w) windows; `model.embed_audio` receives (b, 13, 20) float32
    windows. Both run under `torch.no_grad()` on the model's device (an `nn.Module` in eval
    mode, its mode restored afterwards), `batch_size` windows at a time.

    Args:
        model: A [SyncModel][decouple.metrics.sync.SyncModel], e.g.
            [syncnet][decouple.metrics.sync.syncnet]`("syncnet_v2.model")`.
        frames: (t, 3, h, w) RGB face crops, uint8 or float in [0, 1] (for SyncNet v2: crops
            as syncnet_python's pipeline makes them, the whole face with margin, 224 x 224).
        waveform: (s,) or (c, s) float samples in [-1, 1], starting with the first frame.
        fps: Frame rate of `frames`.
        sample_rate: Sample rate of `waveform`.
        max_offset: N, the largest audio offset tried, in 25 fps frames (Wav2Lip: 15; see
            the docs page for the NED family's 10 at 30 fps).
        padding: `"valid"` (default) or `"zeros"` (syncnet_python's), see
            [sync_score][decouple.metrics.sync.sync_score].
        batch_size: Windows per model call.

    Returns:
        The [SyncScore][decouple.metrics.sync.SyncScore] (offsets in 25 fps frames).

    Raises:
        ValueError: On wrong shapes or arguments, or a clip too short for `max_offset` and
            `padding` (`"valid"` needs max_offset + 5 frames at 25 fps, `"zeros"` 5), with
            the frame counts in the message.
        ImageSpecError: If the frames are not uint8 / float [0, 1] RGB images.
        TypeError: If `model` lacks `embed_video` / `embed_audio`.

    Examples:
        >>> class Energy:  # a toy model: a window's frame brightness vs its audio energy
        ...     def embed_video(self, w): return w.float().mean((2, 3, 4)) / 255
        ...     def embed_audio(self, m): return (m[:, 0, 1::4] > 0).float()  # log energy
        >>> loud = (torch.arange(30) % 7 < 3)  # 30 frames, loud and bright on the same frames
        >>> frames = (loud.to(torch.uint8) * 255)[:, None, None, None].expand(30, 3, 8, 8)
        >>> t = torch.arange(30 * 640) / 16000
        >>> audio = 0.5 * torch.sin(2 * torch.pi * 500 * t) * loud.repeat_interleave(640)
        >>> s = lip_sync(Energy(), frames, audio, fps=25, max_offset=3)
        >>> s.offset, s.lse_d
        (0, 0.0)
        >>> lip_sync(Energy(), frames[:7], audio, fps=25, max_offset=3)
        Traceback (most recent call last):
        ...
        ValueError: lip_sync: the clip has 7 frames at 25 fps ...
    """
    where = "lip_sync"
    if not isinstance(model, SyncModel):
        raise TypeError(
            f"{where}: model must have embed_video and embed_audio methods (a SyncModel, e.g. "
            f"decouple.metrics.sync.syncnet(path)), got {type(model).__name__}"
        )
    n_max = _check_max_offset(max_offset, where)
    padding = _check_padding(padding, where)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    if isinstance(fps, bool) or not isinstance(fps, int | float | np.number) or not (
            math.isfinite(fps) and fps > 0):  # fmt: skip
        raise ValueError(f"{where}: fps must be a positive number, got {fps!r}")
    if not _is_int(sample_rate) or sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be a positive int, got {sample_rate!r}")
    if isinstance(frames, Tensor) and frames.ndim == 4 and frames.shape[0] == 0:
        raise ValueError(f"{where}: frames is empty (t = 0)")
    ImageSpec(name=where).check(frames, "frames")
    audio = _mono(waveform, where)
    t = frames.shape[0]

    from decouple.data.io import resample_audio, resample_indices

    if float(fps) != SYNC_FPS:
        index = resample_indices(np.arange(t) / float(fps), SYNC_FPS, src_fps=float(fps))
        frames = frames[index.to(frames.device)]
    if int(sample_rate) != SYNC_SAMPLE_RATE:
        audio = resample_audio(audio, int(sample_rate), SYNC_SAMPLE_RATE)
    t25 = frames.shape[0]
    n = min(t25, audio.shape[0] // _SAMPLES_PER_FRAME)
    video_s, audio_s = t / float(fps), waveform.shape[-1] / int(sample_rate)
    clip = (f"{t} frames at {float(fps):g} fps" + (f" = {t25} at 25 fps" if t25 != t else "")
            + f", {audio_s:.3f} s of audio")  # fmt: skip
    need = _min_windows(n_max, padding) + _WINDOW - 1
    if n < need:
        raise ValueError(
            f"{where}: the clip has {n} frames at 25 fps with audio ({clip}); "
            f"max_offset={n_max} with padding={padding!r} needs at least {need} (5-frame windows "
            + ("for every offset: max_offset + 5); use a smaller max_offset or padding='zeros'"
               if padding == "valid" else "need 5 frames)")
        )  # fmt: skip
    if audio_s < video_s - 1.0 / float(fps):
        warnings.warn(
            f"{where}: the audio ({audio_s:.3f} s) is shorter than the video ({video_s:.3f} s, "
            f"{clip}): scoring the first {n} of {t25} frames at 25 fps",
            stacklevel=2,
        )
    frames = frames[:n]
    length = n * _SAMPLES_PER_FRAME + _TAIL
    audio = audio[:length]
    audio = torch.nn.functional.pad(audio, (0, length - audio.shape[0]))
    mfcc = sync_mfcc(audio, SYNC_SAMPLE_RATE)  # (13, 4n)
    w = n - _WINDOW + 1
    audio_windows = mfcc.unfold(1, _MFCC_WINDOW, _MFCC_PER_FRAME).transpose(0, 1)  # (w, 13, 20)
    audio_windows = audio_windows[:w].to(torch.float32)

    device = model_device(model)
    starts = range(0, w, int(batch_size))
    step = torch.arange(_WINDOW, device=frames.device)

    def video_batches() -> Iterator[Tensor]:  # (b, 5, 3, h, w) uint8, one batch at a time
        for i in starts:
            first = torch.arange(i, min(w, i + batch_size), device=frames.device)
            yield _as_uint8(frames[first[:, None] + step])

    audio_batches = (audio_windows[i : i + batch_size].contiguous() for i in starts)
    with inference(model):  # eval mode, every submodule's mode restored after
        v = _embed(model.embed_video, video_batches(), "embed_video", device)
        a = _embed(model.embed_audio, audio_batches, "embed_audio", device)
    if v.shape[1] != a.shape[1]:
        raise ValueError(
            f"{where}: model.embed_video gives {v.shape[1]}-d and model.embed_audio "
            f"{a.shape[1]}-d embeddings; they must have the same size"
        )
    return sync_score(v, a, max_offset=n_max, padding=padding)
