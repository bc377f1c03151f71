"""`DecoupledNCE`: InfoNCE whose positives share the target factor but not the nuisance factor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from decouple.losses import _validation as V
from decouple.losses._pairs import ALL, SAME_NUISANCE, PairRule
from decouple.losses.infonce import _Contrast, _ContrastiveLoss

__all__ = ["DecoupledNCE"]


@dataclass(frozen=True)
class _Names:
    """Argument names as the public signature spells them (for error messages)."""

    target: str = "target_labels"
    nuisance: str = "nuisance_labels"
    ref_target: str = "ref_target_labels"
    ref_nuisance: str = "ref_nuisance_labels"


class DecoupledNCE(_ContrastiveLoss):
    r"""InfoNCE that keeps a target factor and removes a nuisance factor.

    With integer target labels t and nuisance labels n (s_ij = cos(x_i, y_j) / tau):

    * positives P_i = { j : t_j == t_i and n_j != n_i }: the same target seen under another
      nuisance, so the nuisance can never explain a positive's similarity;
    * negatives N_i = { j : t_j != t_i } (`negatives="all"`), or
      { j : t_j != t_i and n_j == n_i } (`negatives="same_nuisance"`): other targets under the
      *same* nuisance, so the nuisance can never tell a negative apart either;
    * loss_i = -(1/|P_i|) sum_{p in P_i} [ s_ip - log sum_{a in P_i u N_i} exp(s_ia) ].

    A row counts when it has a positive and a negative. Without nuisance labels every
    anchor and key is its own nuisance group (so P_i = same target, N_i = other targets) and
    `negatives="same_nuisance"` is an error. Keys are `ref_emb` when given (nothing is
    excluded), else the anchors (the pair (i, i) is excluded).

    With `negatives="same_nuisance"` only the same-nuisance similarity blocks and the positive
    pairs are computed (about 1/G of the dense matrix with G nuisance groups), unless
    `chunk_size` asks for the chunked path.

    Args:
        negatives: "all" or "same_nuisance".
        temperature: tau, 0.07 by default.
        learn_temperature: Learn tau (stored as `log_temperature`, clamped to [0.01, 1.0]).
        reduction: "mean" over counted rows, "sum", or "none".
        chunk_size: Anchor rows per block for the memory-lean chunked path.
        gather_distributed: Gather keys (with gradient) and labels from all ranks.

    Examples:
        >>> import torch
        >>> from decouple.losses import DecoupledNCE
        >>> content = torch.arange(4).repeat_interleave(3)  # 4 sentences ...
        >>> emotion = torch.arange(3).repeat(4)  # ... each in 3 emotions
        >>> x = torch.randn(12, 32, requires_grad=True)
        >>> loss = DecoupledNCE(negatives="same_nuisance")(x, content, emotion)
        >>> loss.backward()
    """

    _negatives_modes: ClassVar[dict[str, str]] = {"all": ALL, "same_nuisance": SAME_NUISANCE}
    _names = _Names()

    def __init__(
        self,
        *,
        negatives: str = "all",
        temperature: float = 0.07,
        learn_temperature: bool = False,
        reduction: str = "mean",
        chunk_size: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(
            temperature=temperature,
            learn_temperature=learn_temperature,
            reduction=reduction,
            chunk_size=chunk_size,
            gather_distributed=gather_distributed,
        )
        if negatives not in self._negatives_modes:
            raise ValueError(
                f"negatives must be one of {tuple(self._negatives_modes)}, got {negatives!r}"
            )
        self.negatives = negatives

    def extra_repr(self) -> str:
        return f"negatives={self.negatives!r}, " + super().extra_repr()

    def forward(
        self,
        embeddings: Tensor,
        target_labels: Tensor,
        nuisance_labels: Tensor | None = None,
        *,
        ref_emb: Tensor | None = None,
        ref_target_labels: Tensor | None = None,
        ref_nuisance_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss.

        Args:
            embeddings: Anchors x (N x D).
            target_labels: Integer labels of the factor to keep (N).
            nuisance_labels: Integer labels of the factor to remove (N), or None.
            ref_emb: Keys y (M x D); defaults to the anchors.
            ref_target_labels: Target labels of the keys (M); required with `ref_emb`.
            ref_nuisance_labels: Nuisance labels of the keys (M); given exactly when
                `nuisance_labels` is.

        Returns:
            A scalar for "mean"/"sum", a length-N vector for "none".

        Raises:
            ValueError: On inconsistent shapes or labels, or non-finite embeddings.
            TypeError: On non-integer labels.
        """
        c = self._decoupled(
            embeddings, target_labels, nuisance_labels, ref_emb, ref_target_labels,
            ref_nuisance_labels,
        )
        return self._reduce(c)

    def _decoupled(
        self,
        embeddings: Tensor,
        target: Tensor,
        nuisance: Tensor | None,
        ref_emb: Tensor | None,
        ref_target: Tensor | None,
        ref_nuisance: Tensor | None,
    ) -> _Contrast:
        """Validate labels (errors use the subclass's argument names) and run the core."""
        names = self._names
        V.check_embeddings(embeddings, "embeddings", self.gather_distributed)
        n = embeddings.shape[0]
        dev = embeddings.device
        t = V.check_labels(target, names.target, n, "embeddings").to(dev)
        nu = None if nuisance is None else V.check_labels(nuisance, names.nuisance, n, "embeddings")
        nu = None if nu is None else nu.to(dev)
        if ref_emb is None:
            for value, name in ((ref_target, names.ref_target), (ref_nuisance, names.ref_nuisance)):
                if value is not None:
                    raise ValueError(f"{name} was given without ref_emb")
            t_key, n_key = t, nu
        else:
            V.check_embeddings(ref_emb, "ref_emb", self.gather_distributed)
            V.check_same_dim(embeddings, ref_emb, "embeddings", "ref_emb")
            m = ref_emb.shape[0]
            if ref_target is None:
                raise ValueError(f"{names.ref_target} is required when ref_emb is given")
            t_key = V.check_labels(ref_target, names.ref_target, m, "ref_emb").to(dev)
            if (nu is None) != (ref_nuisance is None):
                given, missing = (
                    (names.nuisance, names.ref_nuisance)
                    if ref_nuisance is None
                    else (names.ref_nuisance, names.nuisance)
                )
                raise ValueError(
                    f"{given} was given but {missing} was not: nuisance labels are needed for "
                    "both anchors and keys, or for neither"
                )
            n_key = (
                None
                if ref_nuisance is None
                else V.check_labels(ref_nuisance, names.ref_nuisance, m, "ref_emb").to(dev)
            )
        mode = self._negatives_modes[self.negatives]
        if mode == SAME_NUISANCE and nu is None:
            raise ValueError(
                f"negatives={self.negatives!r} needs {names.nuisance} (and "
                f"{names.ref_nuisance} with ref_emb)"
            )

        def rule(n_: int, m_: int, offset: int | None, gather) -> PairRule:
            return PairRule(
                n_, m_, t_anchor=t, t_key=gather(t_key), n_anchor=nu,
                n_key=None if n_key is None else gather(n_key), negatives=mode,
                self_offset=offset,
            )

        return self._contrast(embeddings, ref_emb, rule)
