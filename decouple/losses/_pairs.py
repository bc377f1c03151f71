"""Pair rules: which (anchor, key) pairs are positives and which are negatives.

A rule produces the pairs of a *block* of anchor rows at a time, so that the chunked path
never materialises dense N x M masks (it builds them per block from the label vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

ALL = "all"
SAME_NUISANCE = "same_nuisance"
# An index pair costs 16 bytes against 1 byte per entry of a boolean mask: list same-target
# pairs only while they fill less than 1/16 of the block.
SPARSE_PAIR_BYTES = 16


@dataclass
class Block:
    """Which pairs of a block of anchor rows (k x M) are positives or non-candidates.

    `pos` lists the positives as (rows, cols) indices; the non-candidates (neither positive
    nor negative) come either as a dense boolean mask `excluded` or as an index list
    `excluded_idx` (or neither: every other pair is a negative). `has_neg` (k,) tells whether
    a row has any negative.
    """

    pos: tuple[Tensor, Tensor]
    excluded: Tensor | None
    excluded_idx: tuple[Tensor, Tensor] | None
    has_neg: Tensor


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
    _sorted_keys: tuple[Tensor, Tensor] | None = field(default=None, repr=False, compare=False)

    def block(self, start: int, stop: int) -> Block:
        """Positives and non-candidates of anchor rows [start, stop) against all keys.

        Same-target pairs are few in a typical batch, so with labels and `negatives="all"`
        they are listed as indices straight from the label vectors (no k x M pass); the dense
        form is used for explicit masks, for `negatives="same_nuisance"` (whose
        non-candidates are dense) and when same-target pairs are dense.
        """
        if self.pos_mask is not None:
            assert self.neg_mask is not None
            pos, neg = self.pos_mask[start:stop], self.neg_mask[start:stop]
            if self.self_offset is not None:
                pos, neg = pos.clone(), neg.clone()
                self._drop_self(start, stop, pos, neg)
            return Block(pos.nonzero(as_tuple=True), ~(pos | neg), None, neg.any(1))
        assert self.t_anchor is not None and self.t_key is not None
        has_neg = self._has_negative()[start:stop]
        if self.negatives != SAME_NUISANCE:
            pairs = self._same_target_pairs(start, stop)
            if pairs is not None:
                return self._sparse_block(start, pairs, has_neg)
        same_t = self.t_anchor[start:stop, None] == self.t_key[None, :]
        if self.n_anchor is None:
            excluded = torch.zeros_like(same_t)
            if self.self_offset is not None:
                self._drop_self(start, stop, same_t, excluded, value=True)
            return Block(same_t.nonzero(as_tuple=True), excluded, None, has_neg)
        assert self.n_key is not None
        # With nuisance labels the self pair (same target, same nuisance) is never a
        # candidate, so no explicit exclusion is needed.
        same_n = self.n_anchor[start:stop, None] == self.n_key[None, :]
        pos = (same_t > same_n).nonzero(as_tuple=True)  # same target, other nuisance
        if self.negatives == SAME_NUISANCE:
            # candidates: (same t, other n) or (other t, same n), i.e. same_t != same_n
            return Block(pos, same_t == same_n, None, has_neg)
        return Block(pos, same_t & same_n, None, has_neg)

    def _same_target_pairs(self, start: int, stop: int) -> tuple[Tensor, Tensor] | None:
        """(rows, cols) of all same-target pairs of the block; None when they are dense."""
        assert self.t_anchor is not None and self.t_key is not None
        if self._sorted_keys is None:
            self._sorted_keys = torch.sort(self.t_key)
        t_sorted, order = self._sorted_keys
        t = self.t_anchor[start:stop]
        lo = torch.searchsorted(t_sorted, t, right=False)
        cnt = torch.searchsorted(t_sorted, t, right=True) - lo
        total = int(cnt.sum())
        if total * SPARSE_PAIR_BYTES > (stop - start) * self.n_keys:
            return None
        rows = torch.repeat_interleave(torch.arange(stop - start, device=t.device), cnt)
        first = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt)
        return rows, order[first + torch.arange(total, device=t.device)]

    def _sparse_block(self, start: int, pairs: tuple[Tensor, Tensor], has_neg: Tensor) -> Block:
        """Split same-target pairs into positives and non-candidates ("all" negatives)."""
        rows, cols = pairs
        if self.n_anchor is not None:
            assert self.n_key is not None
            excluded = self.n_anchor[start + rows] == self.n_key[cols]  # self pair included
        elif self.self_offset is not None:
            excluded = cols == rows + (start + self.self_offset)
        else:
            return Block((rows, cols), None, None, has_neg)
        keep = ~excluded
        return Block((rows[keep], cols[keep]), None, (rows[excluded], cols[excluded]), has_neg)

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
