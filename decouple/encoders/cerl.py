"""`CERL`: content-independent emotion representation learning as one trainable module.

An [EmotionEncoder][decouple.encoders.EmotionEncoder] trained with
[EmotionAugmentedNCE][decouple.losses.EmotionAugmentedNCE] against the emotion anchors of a
vision-language prior (`EmotionPromptPrior.prior()`, one normalised row per emotion), over
batches of E emotions x C clips of other content
([EmotionBatches][decouple.data.batches.EmotionBatches]):

    video (n, t, 3, h, w) --frames_per_clip--> frames (n t', 3, h, w)
    EmotionEncoder(frames) -> z (n t', d), L2-normalised
    emotion, content (n,) repeated per frame -> (n t',)
    prior.prior() -> T (K, d)   (learnable prompt context: trained with the encoder)
    EmotionAugmentedNCE(z, emotion, content, prior=T) -> loss
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from decouple.encoders.emotion import EmotionEncoder
from decouple.losses import EmotionAugmentedNCE

__all__ = ["CERL"]


def _need(batch: dict[str, Any], key: str, what: str) -> Any:
    if key not in batch:
        raise KeyError(f"CERL batch has no {key!r} ({what}); batch keys: {sorted(batch)}")
    return batch[key]


class CERL(nn.Module):
    """The CERL module: emotion encoder + emotion prompt prior + EmotionAugmentedNCE.

    Batch keys (an [EmotionBatches][decouple.data.batches.EmotionBatches] batch of n clips):

    * `video`: (n, t, 3, h, w) windows or (n, 3, h, w) single frames, RGB, uint8 or float in
      [0, 1].
    * `emotion`: (n,) int emotion ids, indexing the prior's rows (ids of the split's emotion
      set; build the prior with the same names in the same order).
    * `content`: (n,) int content ids (clips of one id show the same content); optional: if
      absent every clip is its own content.

    All frames of a clip share its labels; two frames of one clip (same content, same
    emotion) are neither positives nor negatives of each other.

    Args:
        encoder: The emotion encoder; its `dim` must equal the prior's D.
        prior: An [EmotionPromptPrior][decouple.priors.EmotionPromptPrior] (`prior() -> (K, D)`
            normalised anchors,
            `emotion_names`), registered as a submodule: its learnable prompt context trains
            with the encoder (its CLIP towers are frozen by the prior itself).
        loss: The criterion; default `EmotionAugmentedNCE()` (tau 0.07, prior weight 1).
        emotion_names: If given, the names of the batch's emotion ids (e.g. from the shard
            index's emotion set); they must equal `prior.emotion_names`.
        frames_per_clip: Use this many evenly spaced frames of each window (None: all).

    Examples:
        >>> import torch
        >>> from decouple.encoders import CERL, EmotionEncoder
        >>> from decouple.priors import EmotionPromptPrior
        >>> prior = EmotionPromptPrior.tiny(["neutral", "happy", "sad"])  # tiny random CLIP
        >>> enc = EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=prior.dim,
        ...                      hidden=64, residual=True)
        >>> module = CERL(enc, prior, frames_per_clip=1)
        >>> batch = {"video": torch.randint(0, 256, (6, 4, 3, 32, 32), dtype=torch.uint8),
        ...          "emotion": torch.tensor([0, 0, 1, 1, 2, 2]), "content": torch.arange(6)}
        >>> module.loss(batch).backward()
        >>> prior.ctx.grad.shape  # the prompt context learns with the encoder
        torch.Size([3, 8, 64])
        >>> sorted(module(batch))
        ['loss', 'prior_acc']
    """

    def __init__(
        self,
        encoder: EmotionEncoder,
        prior: nn.Module,
        *,
        loss: EmotionAugmentedNCE | None = None,
        emotion_names: Sequence[str] | None = None,
        frames_per_clip: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(getattr(prior, "prior", None)):
            raise TypeError(
                f"prior {type(prior).__name__} must have a method prior() -> (K, D) emotion "
                "anchors (EmotionPromptPrior does)"
            )
        if emotion_names is not None:
            names = tuple(getattr(prior, "emotion_names", ()))
            if tuple(emotion_names) != names:
                raise ValueError(
                    f"the batch's emotion names {tuple(emotion_names)} differ from the prior's "
                    f"rows {names}: build the prior with the split's emotion names, in order"
                )
        if frames_per_clip is not None and frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1 or None, got {frames_per_clip}")
        self.encoder = encoder
        self.prior = prior
        self.criterion = loss if loss is not None else EmotionAugmentedNCE()
        self.frames_per_clip = frames_per_clip

    def frames_and_labels(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Flatten the batch to frames with per-frame emotion and content ids.

        Args:
            batch: See the class docstring.

        Returns:
            frames (N, 3, h, w), emotion (N,), content (N,), in (n t') order.

        Raises:
            KeyError: If `video` or `emotion` is missing.
            ValueError: On inconsistent shapes.
        """
        video = _need(batch, "video", "(n, t, 3, h, w) frames")
        emotion = torch.as_tensor(_need(batch, "emotion", "(n,) emotion ids"))
        if video.dim() == 4:
            video = video[:, None]
        if video.dim() != 5:
            raise ValueError(
                f"CERL batch: 'video' must be (n, t, 3, h, w) or (n, 3, h, w), got "
                f"{tuple(batch['video'].shape)}"
            )
        n, t = video.shape[:2]
        content = batch.get("content")
        content = torch.arange(n) if content is None else torch.as_tensor(content)
        if tuple(emotion.shape) != (n,) or tuple(content.shape) != (n,):
            raise ValueError(
                f"CERL batch: 'emotion' and 'content' must be ({n},), got "
                f"{tuple(emotion.shape)} and {tuple(content.shape)}"
            )
        if self.frames_per_clip is not None and self.frames_per_clip < t:
            k = self.frames_per_clip
            idx = ((torch.arange(k) + 0.5) * t / k).long()  # evenly spaced, centred
            video, t = video[:, idx], k
        frames = video.reshape(n * t, *video.shape[2:])
        device = frames.device
        emotion = emotion.to(device).repeat_interleave(t)
        content = content.to(device).repeat_interleave(t)
        return frames, emotion, content

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss and logs of one batch (call the module, e.g. under DDP, or `loss`).

        Args:
            batch: See the class docstring.

        Returns:
            `loss` (scalar, with gradient) and `prior_acc`: the fraction of frames whose
            nearest prior anchor is their own emotion (detached).
        """
        frames, emotion, content = self.frames_and_labels(batch)
        z = self.encoder(frames)
        anchors = self.prior.prior()
        if anchors.dim() != 2 or anchors.shape[1] != z.shape[1]:
            raise ValueError(
                f"CERL: prior() gave shape {tuple(anchors.shape)}, expected (K, {z.shape[1]}) "
                "(the encoder's dim)"
            )
        loss = self.criterion(z, emotion, content, prior=anchors)
        with torch.no_grad():
            nearest = (z.detach() @ F.normalize(anchors.detach(), dim=1).t()).argmax(dim=1)
            acc = (nearest == emotion).float().mean()
        return {"loss": loss, "prior_acc": acc}

    def loss(self, batch: dict[str, Any]) -> Tensor:
        """The training loss of one batch: `self(batch)["loss"]`.

        Args:
            batch: See the class docstring.

        Returns:
            A scalar with gradient.
        """
        return self(batch)["loss"]
