"""Pair rules: which (anchor, key) pairs are positives and which are negatives.

A rule produces boolean mask *blocks* for a range of anchor rows, so that the chunked path never
materialises the dense N x M masks (it builds them per block from the label vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    _has_neg_cache: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def has_nuisance(self) -> bool:
        return self.n_anchor is not None

    def block(self, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
        """Masks for anchor rows [start, stop): positives and non-candidates, (k x M) each.

        Returns `(pos, excluded, has_neg)`: `pos` marks P_i, `excluded` marks pairs in neither
        P_i nor N_i, and `has_neg` (k,) tells whether N_i is non-empty. This form needs the
        fewest passes over the block (it is built from two label comparisons).
        """
        if self.pos_mask is not None:
            assert self.neg_mask is not None
            pos, neg = self.pos_mask[start:stop], self.neg_mask[start:stop]
            if self.self_offset is not None:
                pos, neg = pos.clone(), neg.clone()
                self._drop_self(start, stop, pos, neg)
            return pos, ~(pos | neg), neg.any(1)
        assert self.t_anchor is not None and self.t_key is not None
        same_t = self.t_anchor[start:stop, None] == self.t_key[None, :]
        has_neg = self._has_negative()[start:stop]
        if self.n_anchor is None:
            excluded = torch.zeros_like(same_t)
            if self.self_offset is not None:
                self._drop_self(start, stop, same_t, excluded, value=True)
            return same_t, excluded, has_neg
        assert self.n_key is not None
        # With nuisance labels the self pair (same target, same nuisance) is never a
        # candidate, so no explicit exclusion is needed.
        same_n = self.n_anchor[start:stop, None] == self.n_key[None, :]
        pos = same_t > same_n  # same target, other nuisance
        if self.negatives == SAME_NUISANCE:
            # candidates: (same t, other n) or (other t, same n), i.e. same_t != same_n
            return pos, same_t == same_n, has_neg
        return pos, same_t & same_n, has_neg

    def _has_negative(self) -> Tensor:
        """(N,) whether N_i is non-empty, from label counts (no pass over N x M)."""
        if self._has_neg_cache is None:
            assert self.t_anchor is not None and self.t_key is not None
            n_keys = self.t_key.shape[0]
            same_t = _count_equal(self.t_anchor, self.t_key)
            if self.negatives == SAME_NUISANCE:
                assert self.n_anchor is not None and self.n_key is not None
                same_n = _count_equal(self.n_anchor, self.n_key)
                pa, pk = _pair_codes(self.t_anchor, self.n_anchor, self.t_key, self.n_key)
                n_neg = same_n - _count_equal(pa, pk)
            else:
                n_neg = n_keys - same_t
            self._has_neg_cache = n_neg > 0
        return self._has_neg_cache

    def _drop_self(
        self, start: int, stop: int, pos: Tensor, other: Tensor, value: bool = False
    ) -> None:
        """Remove the self pair (anchor i = key offset + i) from `pos`; set it to `value` in
        `other`."""
        rows = torch.arange(stop - start, device=pos.device)
        cols = rows + start + int(self.self_offset or 0)
        keep = cols < self.n_keys
        pos[rows[keep], cols[keep]] = False
        other[rows[keep], cols[keep]] = value

    def grouped_applicable(self) -> bool:
        """Whether the grouped path (same-nuisance blocks + positive pairs) computes this rule."""
        return (
            self.pos_mask is None and self.n_anchor is not None and self.negatives == SAME_NUISANCE
        )


def _count_equal(query: Tensor, keys: Tensor) -> Tensor:
    """For every query value, how many keys equal it."""
    sorted_keys = torch.sort(keys).values
    return torch.searchsorted(sorted_keys, query, right=True) - torch.searchsorted(
        sorted_keys, query, right=False
    )


def _pair_codes(t_a: Tensor, n_a: Tensor, t_k: Tensor, n_k: Tensor) -> tuple[Tensor, Tensor]:
    """One int64 code per (target, nuisance) pair, consistent between anchors and keys."""
    _, t_ids = torch.unique(torch.cat([t_a, t_k]), return_inverse=True)
    n_unique, n_ids = torch.unique(torch.cat([n_a, n_k]), return_inverse=True)
    codes = t_ids * n_unique.shape[0] + n_ids
    return codes[: t_a.shape[0]], codes[t_a.shape[0] :]
