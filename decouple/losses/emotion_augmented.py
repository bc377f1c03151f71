"""`EmotionAugmentedNCE`: the CERL loss (emotion kept, content removed), with an emotion prior."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from decouple import distributed as dist_utils
from decouple.losses import _validation as V
from decouple.losses._pairs import ALL, SAME_NUISANCE
from decouple.losses.decoupled import DecoupledNCE, _Names
from decouple.losses.infonce import _Contrast

__all__ = ["EmotionAugmentedNCE"]


class EmotionAugmentedNCE(DecoupledNCE):
    r"""Emotion-augmented contrastive loss of CERL: learn *emotion* that ignores *content*.

    A `DecoupledNCE` with target = emotion and nuisance = content (default
    `negatives="all"`): positives show the same emotion with other content (another
    sentence, identity or time), so content can never explain their similarity.

    With a `prior` T (K x D, one anchor per emotion, e.g. the text features of the emotion
    prompts of the vision-language emotion prior), each anchor i also gets a symmetric prior
    term, with the loss's own tau:

        s2p_i = -log softmax_c( cos(x_i, T_c) / tau )[e_i]
        p2s_i = -log( exp(u_ii) / ( exp(u_ii) + sum_{j : e_j != e_i} exp(u_ij) ) ),
                u_ij = cos(T_{e_i}, x_j) / tau
        prior_i = (s2p_i + p2s_i) / 2

    s2p asks the image to pick its emotion's anchor among all K; p2s asks each emotion anchor
    to pick the image among images of all *other* emotions in the batch (0 if there are
    none). The total is, for "mean", sum of counted loss_i / max(C, 1) + prior_weight *
    mean_i prior_i over all N anchors; for "sum", the sums; for "none", loss_i +
    prior_weight * prior_i. T is normalised per row and receives gradient (learnable prompts).

    Args:
        negatives: "all" (default) or "same_content".
        prior_weight: lambda, the weight of the prior term.
        temperature: tau, 0.07 by default.
        learn_temperature: Learn tau (stored as `log_temperature`, clamped to [0.01, 1.0]).
        reduction: "mean", "sum", or "none".
        chunk_size: Anchor rows per block for the memory-lean chunked path.
        gather_distributed: Gather keys, anchors (for p2s) and labels from all ranks.

    Examples:
        >>> import torch
        >>> from decouple.losses import EmotionAugmentedNCE
        >>> emotion = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6])
        >>> content = torch.arange(14)  # every image shows other content
        >>> z = torch.randn(14, 32, requires_grad=True)
        >>> prompts = torch.randn(7, 32, requires_grad=True)  # K = 7 emotion anchors
        >>> loss = EmotionAugmentedNCE()(z, emotion, content, prior=prompts)
        >>> loss.backward()
        >>> prompts.grad.shape
        torch.Size([7, 32])
    """

    _negatives_modes: ClassVar[dict[str, str]] = {"all": ALL, "same_content": SAME_NUISANCE}
    _names = _Names("emotion_labels", "content_labels", "ref_emotion_labels", "ref_content_labels")

    def __init__(
        self,
        *,
        negatives: str = "all",
        prior_weight: float = 1.0,
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
        self.prior_weight = float(prior_weight)

    def extra_repr(self) -> str:
        return f"prior_weight={self.prior_weight:g}, " + super().extra_repr()

    def forward(  # type: ignore[override]
        self,
        embeddings: Tensor,
        emotion_labels: Tensor,
        content_labels: Tensor | None = None,
        *,
        prior: Tensor | None = None,
        ref_emb: Tensor | None = None,
        ref_emotion_labels: Tensor | None = None,
        ref_content_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss.

        Args:
            embeddings: Emotion embeddings x (N x D).
            emotion_labels: Integer emotion ids (N); with `prior`, in [0, K).
            content_labels: Integer content ids (N), or None (every anchor its own content).
            prior: Emotion anchors T (K x D), row c for emotion id c, or None.
            ref_emb: Keys (M x D); defaults to the anchors.
            ref_emotion_labels: Emotion ids of the keys (M); required with `ref_emb`.
            ref_content_labels: Content ids of the keys (M); given exactly when
                `content_labels` is.

        Returns:
            A scalar for "mean"/"sum", a length-N vector for "none".

        Raises:
            ValueError: On inconsistent shapes or labels, labels outside [0, K) with a prior,
                or non-finite inputs.
            TypeError: On non-integer labels.
        """
        c = self._decoupled(
            embeddings, emotion_labels, content_labels, ref_emb, ref_emotion_labels,
            ref_content_labels,
        )
        out = self._reduce(c)
        if prior is None:
            return out
        e = emotion_labels.to(embeddings.device).long()
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            prior_rows, n_global = self._prior_rows(c, prior, e, ref_emb is None)
        if self.reduction == "none":
            return out + self.prior_weight * prior_rows
        prior_total = prior_rows.sum() * c.world_size
        if self.reduction == "mean":
            prior_total = prior_total / n_global
        return out + self.prior_weight * prior_total

    def _prior_rows(
        self, c: _Contrast, prior: Tensor, e: Tensor, self_mode: bool
    ) -> tuple[Tensor, int]:
        """prior_i for the local anchors, and the global number of anchors."""
        if not isinstance(prior, Tensor) or prior.dim() != 2:
            shape = tuple(prior.shape) if isinstance(prior, Tensor) else type(prior).__name__
            raise ValueError(f"prior must be a 2-D tensor (K x D), got {shape}")
        if prior.shape[1] != c.anchors.shape[1]:
            raise ValueError(
                f"prior has feature dimension {prior.shape[1]} but embeddings has "
                f"{c.anchors.shape[1]}"
            )
        V.check_finite(prior, "prior")
        k = prior.shape[0]
        if bool(((e < 0) | (e >= k)).any()):
            raise ValueError(
                f"emotion_labels must lie in [0, K) = [0, {k}) to index the prior's rows, got "
                f"values in [{int(e.min())}, {int(e.max())}]"
            )
        x, tau = c.anchors, c.tau
        t = F.normalize(prior.to(device=x.device, dtype=x.dtype), dim=1)
        logits = x @ t.t() / tau  # (N, K): cos(x_i, T_c) / tau
        s2p = F.cross_entropy(logits, e, reduction="none")
        # p2s: anchor T_{e_i} picks x_i among the (global) anchors of other emotions.
        if c.world_size > 1:
            xg = c.keys if self_mode else dist_utils.all_gather_with_grad(x)
            eg = dist_utils.all_gather_no_grad(e)
        else:
            xg, eg = x, e
        classes = torch.arange(k, device=x.device)
        sim = (t @ xg.t() / tau).masked_fill(eg[None, :] == classes[:, None], float("-inf"))
        neg_lse = torch.logsumexp(sim, dim=1)  # (K,), -inf when no other emotion is present
        own = logits.gather(1, e[:, None]).squeeze(1)
        p2s = torch.logaddexp(own, neg_lse[e]) - own
        return (s2p + p2s) / 2, xg.shape[0]
