"""`CCRL`: content-oriented contrastive representation learning as one trainable module.

A [VisualContentEncoder][decouple.encoders.VisualContentEncoder] queried by per-frame audio
features, trained with [EmotionAwareNCE][decouple.losses.EmotionAwareNCE] over parallel
batches ([ParallelWindows][decouple.data.batches.ParallelWindows]): the positives of a frame are the
aligned frames of the same sentence in the other emotions, its negatives the other frames of
the same emotion.

    video (b, e, t, 3, h, w) --(b e t)--> frames (N, 3, h, w)              N = b * e * t
    audio (b, e, t, d_a)     --query_audio="first": rendition 0's, aligned-> (N, d_a)
    VisualContentEncoder(frames, audio) -> z (N, d), L2-normalised
    parallel_labels(emotion (b, e), t) -> content (N,), emotion (N,)
    EmotionAwareNCE(z, content, emotion) -> loss
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from decouple import distributed as dist_utils
from decouple.data.batches import parallel_labels
from decouple.encoders.content import VisualContentEncoder
from decouple.losses import EmotionAwareNCE

__all__ = ["CCRL"]

_QUERY_AUDIO = ("first", "own")


def _need(batch: dict[str, Any], key: str, what: str) -> Any:
    if key not in batch:
        raise KeyError(f"CCRL batch has no {key!r} ({what}); batch keys: {sorted(batch)}")
    return batch[key]


class CCRL(nn.Module):
    """The CCRL module: content encoder + audio prior + EmotionAwareNCE, `loss(batch)`.

    Batch keys (a collated [ParallelWindows][decouple.data.batches.ParallelWindows] batch of b
    groups, e renditions, t aligned frames):

    * `video`: (b, e, t, 3, h, w) RGB frames, uint8 or float in [0, 1].
    * `emotion`: (b, e) int emotion ids of the renditions.
    * audio, one of:
        * with `audio_prior`: `audio` (b, e, s) float waveforms of each rendition's window,
          `sample_rate` (an int, or a (b,) tensor of one value) and optionally `fps` (the
          video frame rate; default: the prior's `fps`); the prior maps them to (b e, t,
          d_a). Only valid when each rendition's window is contiguous in time.
        * without: `batch[audio_key]`, per-frame audio features at the aligned frames,
          (b, e, t, ...) flattened to (b, e, t, d_a): the reader's log-mel windows
          (`features`, (b, e, t, context, n_mels), flattened context-major exactly as
          `MelPrior` flattens its windows) or prior features precomputed into the
          shards as a per-frame array (ParallelWindows carries those at the aligned frames;
          DTW-aligned windows carry no waveform).

    Args:
        encoder: The content encoder (its `audio_dim` must match the audio features).
        audio_prior: An [AudioPrior][decouple.priors.AudioPrior] (`forward(waveform,
            sample_rate, num_frames, fps) -> (b, t, d)`, `.dim`), registered as a submodule:
            its parameters that require grad (e.g. `Wav2Vec2Prior`'s learned projection) train
            with the encoder; freeze a pre-trained prior that must stay fixed with
            [freeze][decouple.encoders.freeze]. None: read `audio_key` instead.
        loss: The criterion; default `EmotionAwareNCE()` (tau 0.07, same-emotion negatives).
        audio_key: Batch key of the per-frame audio features when `audio_prior` is None.
        query_audio: "first" (default): every rendition of a group is queried with the audio
            of the group's first rendition at the aligned frame, as at supervision time
            (source and generated frame share the source audio) and as the released code's
            positive pair; "own": each rendition with its own audio.

    Examples:
        >>> import torch
        >>> from decouple.encoders import CCRL, ConvBackbone, VisualContentEncoder
        >>> enc = VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=12, dim=16, heads=2)
        >>> module = CCRL(enc)
        >>> batch = {"video": torch.randint(0, 256, (2, 3, 4, 3, 32, 32), dtype=torch.uint8),
        ...          "emotion": torch.tensor([[0, 1, 2], [0, 3, 4]]),
        ...          "features": torch.randn(2, 3, 4, 3, 4)}  # (b, e, t, context, n_mels)
        >>> loss = module.loss(batch)
        >>> loss.backward()
        >>> sorted(module(batch))
        ['loss', 'neg_cos', 'pos_cos']
    """

    def __init__(
        self,
        encoder: VisualContentEncoder,
        audio_prior: nn.Module | None = None,
        *,
        loss: EmotionAwareNCE | None = None,
        audio_key: str = "features",
        query_audio: str = "first",
    ) -> None:
        super().__init__()
        if query_audio not in _QUERY_AUDIO:
            raise ValueError(f"query_audio must be one of {_QUERY_AUDIO}, got {query_audio!r}")
        if audio_prior is not None:
            prior_dim = getattr(audio_prior, "dim", None)
            if prior_dim is not None and int(prior_dim) != encoder.audio_dim:
                raise ValueError(
                    f"audio_prior.dim is {prior_dim} but the encoder's audio_dim is "
                    f"{encoder.audio_dim}"
                )
        self.encoder = encoder
        self.audio_prior = audio_prior
        self.criterion = loss if loss is not None else EmotionAwareNCE()
        self.audio_key = audio_key
        self.query_audio = query_audio

    def audio_features(self, batch: dict[str, Any], *, first_only: bool = False) -> Tensor:
        """The per-frame audio features of the batch, (b, e, t, d_a).

        Args:
            batch: See the class docstring.
            first_only: Only the first rendition's features, (b, 1, t, d_a) (an audio prior
                then runs on those waveforms only).

        Returns:
            (b, e, t, d_a), one feature per frame of every rendition.

        Raises:
            KeyError: If the batch lacks the audio keys.
            ValueError: On shapes that do not match the video or the encoder.
        """
        video = _need(batch, "video", "(b, e, t, 3, h, w) frames")
        b, e, t = video.shape[:3]
        if self.audio_prior is not None:
            wav = _need(batch, "audio", "(b, e, s) waveforms, needed by the audio prior")
            sr = _need(batch, "sample_rate", "the waveforms' sample rate")
            if isinstance(sr, Tensor):
                if sr.numel() > 1 and not bool((sr == sr.flatten()[0]).all()):
                    raise ValueError(f"CCRL batch: mixed sample rates {sr.tolist()}")
                sr = int(sr.flatten()[0])
            if wav.dim() != 3 or tuple(wav.shape[:2]) != (b, e):
                raise ValueError(
                    f"CCRL batch: 'audio' must be (b, e, s) = ({b}, {e}, s), got "
                    f"{tuple(wav.shape)}"
                )
            fps = batch.get("fps")
            if isinstance(fps, Tensor):
                fps = float(fps.flatten()[0])
            if first_only:
                wav, e = wav[:, :1], 1
            feats = self.audio_prior(wav.reshape(b * e, -1), int(sr), t, fps)
            feats = feats.reshape(b, e, t, -1)
        else:
            raw = _need(batch, self.audio_key, "(b, e, t, ...) per-frame audio features")
            if raw.dim() < 4 or tuple(raw.shape[:3]) != (b, e, t):
                raise ValueError(
                    f"CCRL batch: {self.audio_key!r} must be (b, e, t, ...) = ({b}, {e}, {t}, "
                    f"...), matching 'video', got {tuple(raw.shape)}"
                )
            feats = raw.reshape(b, e, t, -1).float()
            if first_only:
                feats = feats[:, :1]
        if feats.shape[-1] != self.encoder.audio_dim:
            raise ValueError(
                f"CCRL: audio features have dimension {feats.shape[-1]}, the encoder's "
                f"audio_dim is {self.encoder.audio_dim}"
            )
        return feats

    def embed(self, batch: dict[str, Any]) -> Tensor:
        """Content embeddings of every frame of the batch, in (b e t) order.

        Args:
            batch: See the class docstring.

        Returns:
            (b * e * t, d), L2-normalised.
        """
        video = batch["video"]
        b, e, t = video.shape[:3]
        first = self.query_audio == "first"
        audio = self.audio_features(batch, first_only=first)
        if first:
            audio = audio.expand(b, e, t, audio.shape[-1])
        frames = video.reshape(b * e * t, *video.shape[3:])
        return self.encoder(frames, audio.reshape(b * e * t, -1))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss and logs of one parallel batch (call the module, e.g. under DDP, or `loss`).

        Args:
            batch: See the class docstring.

        Returns:
            `loss` (scalar, with gradient); `pos_cos`: mean cosine between the aligned
            frames of one group in different renditions (positives; higher is better);
            `neg_cos`: mean cosine between different frames of one rendition (other content,
            same emotion; needs t >= 2, else NaN). Logs are detached.
        """
        video = _need(batch, "video", "(b, e, t, 3, h, w) frames")
        if video.dim() != 6:
            raise ValueError(
                f"CCRL batch: 'video' must be (b, e, t, 3, h, w), got {tuple(video.shape)}"
            )
        emotion = _need(batch, "emotion", "(b, e) emotion ids")
        b, e, t = video.shape[:3]
        if tuple(emotion.shape) != (b, e):
            raise ValueError(
                f"CCRL batch: 'emotion' must be (b, e) = ({b}, {e}), got {tuple(emotion.shape)}"
            )
        z = self.embed(batch)
        rank = dist_utils.get_rank() if self.criterion.gather_distributed else 0
        content, emo = parallel_labels(emotion.to(z.device), t, rank)
        loss = self.criterion(z, content, emo)
        with torch.no_grad():
            g = z.detach().reshape(b, e, t, -1)
            pos = ((g.sum(1).pow(2).sum(-1) - e) / (e * (e - 1))).mean()
            if t > 1:
                neg = ((g.sum(2).pow(2).sum(-1) - t) / (t * (t - 1))).mean()
            else:
                neg = torch.tensor(float("nan"), device=z.device)
        return {"loss": loss, "pos_cos": pos, "neg_cos": neg}

    def loss(self, batch: dict[str, Any]) -> Tensor:
        """The training loss of one batch: `self(batch)["loss"]`.

        Args:
            batch: See the class docstring.

        Returns:
            A scalar with gradient.
        """
        return self(batch)["loss"]
