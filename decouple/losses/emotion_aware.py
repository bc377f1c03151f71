"""`EmotionAwareNCE`: the CCRL loss (content kept, emotion removed)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from decouple.losses._pairs import ALL, SAME_NUISANCE
from decouple.losses.decoupled import DecoupledNCE, _Names

__all__ = ["EmotionAwareNCE"]


class EmotionAwareNCE(DecoupledNCE):
    r"""Emotion-aware contrastive loss of CCRL: learn *content* that ignores *emotion*.

    A `DecoupledNCE` with target = content and nuisance = emotion. The positive of a frame is
    a frame with the same content (the same sentence position, found by temporal alignment of
    parallel clips) in another emotion; with the default `negatives="same_emotion"` the
    negatives are frames of other content in the *same* emotion. Emotion can then explain
    neither a positive's similarity nor a negative's difference.

        P_i = { j : c_j == c_i and e_j != e_i }
        N_i = { j : c_j != c_i and e_j == e_i }   ("same_emotion"; "all": c_j != c_i)

    Typical batch: visual content embeddings of parallel clips (the same sentence in several
    emotions, frames aligned) with content id = (sentence, aligned frame). With `ref_emb` from
    another modality (audio features of the same frames), the paired key of the same frame
    (same content, same emotion) is neither positive nor negative; plain audio-visual pairing
    is `InfoNCE` with explicit masks.

    Args:
        negatives: "same_emotion" (default) or "all".
        temperature: tau, 0.07 by default.
        learn_temperature: Learn tau (stored as `log_temperature`, clamped to [0.01, 1.0]).
        reduction: "mean" over counted rows, "sum", or "none".
        chunk_size: Anchor rows per block for the memory-lean chunked path.
        gather_distributed: Gather keys (with gradient) and labels from all ranks.

    Examples:
        >>> import torch
        >>> from decouple.losses import EmotionAwareNCE
        >>> content = torch.arange(16).repeat_interleave(8)  # 16 aligned frames ...
        >>> emotion = torch.arange(8).repeat(16)  # ... each in 8 emotions
        >>> z = torch.randn(128, 64, requires_grad=True)
        >>> loss = EmotionAwareNCE()(z, content, emotion)
        >>> loss.backward()
    """

    _negatives_modes: ClassVar[dict[str, str]] = {"same_emotion": SAME_NUISANCE, "all": ALL}
    _names = _Names("content_labels", "emotion_labels", "ref_content_labels", "ref_emotion_labels")

    def __init__(
        self,
        *,
        negatives: str = "same_emotion",
        temperature: float = 0.07,
        learn_temperature: bool = False,
        reduction: str = "mean",
        chunk_size: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(
            negatives=negatives,
            temperature=temperature,
            learn_temperature=learn_temperature,
            reduction=reduction,
            chunk_size=chunk_size,
            gather_distributed=gather_distributed,
        )

    def forward(  # type: ignore[override]
        self,
        embeddings: Tensor,
        content_labels: Tensor,
        emotion_labels: Tensor,
        *,
        ref_emb: Tensor | None = None,
        ref_content_labels: Tensor | None = None,
        ref_emotion_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss.

        Args:
            embeddings: Content embeddings x (N x D).
            content_labels: Integer content ids (N), e.g. (sentence, aligned frame).
            emotion_labels: Integer emotion ids (N).
            ref_emb: Keys (M x D); defaults to the anchors.
            ref_content_labels: Content ids of the keys (M); required with `ref_emb`.
            ref_emotion_labels: Emotion ids of the keys (M); required with `ref_emb`.

        Returns:
            A scalar for "mean"/"sum", a length-N vector for "none".

        Raises:
            ValueError: On inconsistent shapes or labels, or non-finite embeddings.
            TypeError: On non-integer labels.
        """
        c = self._decoupled(
            embeddings, content_labels, emotion_labels, ref_emb, ref_content_labels,
            ref_emotion_labels,
        )
        return self._reduce(c)
