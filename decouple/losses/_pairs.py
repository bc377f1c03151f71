"""Pair rules: which (anchor, key) pairs are positives and which are negatives.

A rule produces boolean mask *blocks* for a range of anchor rows, so that the chunked path never
materialises the dense N x M masks (it builds them per block from the label vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ALL = "all"
SAME_NUISANCE = "same_nuisance"


@dataclass
class PairRule:
    """Positives and negatives between N anchors and M keys.

    Exactly one of two forms is used:

    * explicit masks: `pos_mask`, `neg_mask` (N x M, disjoint);
    * labels: target labels `t_anchor` (N), `t_key` (M), optional nuisance labels
      `n_anchor`, `n_key`, and the negatives mode. Without nuisance labels every anchor and
      every key is its own nuisance group.

    `self_offset` is set in self mode (keys are the anchors, possibly gathered over ranks):
    anchor i is key `self_offset + i` and that pair is neither positive nor negative.
    """

    n_anchors: int
    n_keys: int
    pos_mask: Tensor | None = None
    neg_mask: Tensor | None = None
    t_anchor: Tensor | None = None
    t_key: Tensor | None = None
    n_anchor: Tensor | None = None
    n_key: Tensor | None = None
    negatives: str = ALL
    self_offset: int | None = None

    @property
    def has_nuisance(self) -> bool:
        return self.n_anchor is not None

    def block(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Masks (stop - start) x M for anchor rows [start, stop)."""
        if self.pos_mask is not None:
            assert self.neg_mask is not None
            pos, neg = self.pos_mask[start:stop], self.neg_mask[start:stop]
            if self.self_offset is not None:
                pos, neg = pos.clone(), neg.clone()
                self._drop_self(pos, neg, start, stop)
            return pos, neg
        assert self.t_anchor is not None and self.t_key is not None
        same_t = self.t_anchor[start:stop, None] == self.t_key[None, :]
        if self.n_anchor is None:
            pos, neg = same_t, ~same_t
            if self.self_offset is not None:
                self._drop_self(pos, neg, start, stop)
            return pos, neg
        assert self.n_key is not None
        # With nuisance labels the self pair (same target, same nuisance) is never a
        # candidate, so no explicit exclusion is needed.
        same_n = self.n_anchor[start:stop, None] == self.n_key[None, :]
        pos = same_t & ~same_n
        neg = ~same_t
        if self.negatives == SAME_NUISANCE:
            neg &= same_n
        return pos, neg

    def _drop_self(self, pos: Tensor, neg: Tensor, start: int, stop: int) -> None:
        rows = torch.arange(stop - start, device=pos.device)
        cols = rows + start + int(self.self_offset or 0)
        keep = cols < self.n_keys
        pos[rows[keep], cols[keep]] = False
        neg[rows[keep], cols[keep]] = False

    def grouped_applicable(self) -> bool:
        """Whether the grouped path (same-nuisance blocks + positive pairs) computes this rule."""
        return (
            self.pos_mask is None and self.n_anchor is not None and self.negatives == SAME_NUISANCE
        )
