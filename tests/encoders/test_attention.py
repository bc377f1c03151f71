"""AudioQueriedAttention against a hand-written float64 loop, known-answer cases, one scale."""

from __future__ import annotations

import math

import pytest
import torch

from decouple.encoders import AudioQueriedAttention, sincos_2d


def loop_sincos(h: int, w: int, dim: int) -> torch.Tensor:
    """The documented code, element by element."""
    n = dim // 4
    out = torch.zeros(h * w, dim, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            y, x = (i + 0.5) / h, (j + 0.5) / w
            for k in range(n):
                omega = math.pi * 32.0 ** (k / max(n - 1, 1))
                out[i * w + j, k] = math.sin(omega * y)
                out[i * w + j, n + k] = math.cos(omega * y)
                out[i * w + j, 2 * n + k] = math.sin(omega * x)
                out[i * w + j, 3 * n + k] = math.cos(omega * x)
    return out


def test_sincos_matches_loop() -> None:
    torch.testing.assert_close(sincos_2d(3, 5, 12, dtype=torch.float64), loop_sincos(3, 5, 12))
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d(2, 2, 6)


def reference(block: AudioQueriedAttention, fmap: torch.Tensor, audio: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Single-query multi-head attention written out per sample, head and position."""
    b, _, h, w = fmap.shape
    n, e = block.heads, block.head_dim
    wq, bq = block.to_q.weight, block.to_q.bias
    wk, bk = block.to_k.weight, block.to_k.bias
    wv, bv = block.to_v.weight, block.to_v.bias
    code = loop_sincos(h, w, block.pos_dim) if block.pos_dim else None
    outs, attns = [], []
    for s in range(b):
        q = wq @ audio[s] + bq
        reads, amaps = [], []
        for head in range(n):
            rows = slice(head * e, (head + 1) * e)
            scores, values = [], []
            for i in range(h):
                for j in range(w):
                    x = fmap[s, :, i, j]
                    k = wk[rows] @ x + bk[rows]
                    if code is not None:
                        k = k + block.pos_k.weight[rows] @ code[i * w + j]
                    scores.append(float(q[rows] @ k) / math.sqrt(e))
                    values.append(wv[rows] @ x + bv[rows])
            m = max(scores)
            weights = [math.exp(v - m) for v in scores]
            z = sum(weights)
            weights = [v / z for v in weights]
            reads.append(sum(wt * v for wt, v in zip(weights, values, strict=True)))
            amaps.append(torch.tensor(weights, dtype=torch.float64).view(h, w))
        outs.append(block.to_out.weight @ torch.cat(reads) + block.to_out.bias)
        attns.append(torch.stack(amaps))
    return torch.stack(outs), torch.stack(attns)


@pytest.mark.parametrize(("heads", "head_dim", "pos_dim"), [(1, None, 0), (1, None, 8),
                                                            (2, 3, 8), (4, None, 4)])
def test_matches_float64_loop(heads: int, head_dim: int | None, pos_dim: int) -> None:
    block = AudioQueriedAttention(6, 5, 8, heads=heads, head_dim=head_dim, pos_dim=pos_dim)
    block = block.double()
    fmap = torch.randn(3, 6, 3, 4, dtype=torch.float64)
    audio = torch.randn(3, 5, dtype=torch.float64)
    out, attn = block(fmap, audio, return_attention=True)
    with torch.no_grad():
        ref_out, ref_attn = reference(block, fmap, audio)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(attn, ref_attn, rtol=1e-10, atol=1e-10)
    assert block.scale == (head_dim or 8 // heads) ** -0.5


def _identity_block(c: int, heads: int = 1) -> AudioQueriedAttention:
    block = AudioQueriedAttention(c, c, c, heads=heads, pos_dim=0).double()
    with torch.no_grad():
        for lin in (block.to_q, block.to_k, block.to_v, block.to_out):
            lin.weight.copy_(torch.eye(c))
            lin.bias.zero_()
    return block


def test_query_equal_to_one_key_selects_it() -> None:
    # 16 positions with one-hot features: keys are the standard basis; the query is a large
    # multiple of key (2, 1), so the attention is one-hot there and the output is its value.
    h = w = 4
    c = h * w
    fmap = torch.eye(c, dtype=torch.float64).T.reshape(1, c, h, w)  # position p has e_p
    block = _identity_block(c)
    target = 2 * w + 1
    audio = 200.0 * torch.eye(c, dtype=torch.float64)[target][None]  # score 200 / sqrt(16) = 50
    out, attn = block(fmap, audio, return_attention=True)
    expected = torch.zeros(1, 1, h, w, dtype=torch.float64)
    expected[0, 0, 2, 1] = 1.0
    torch.testing.assert_close(attn, expected, atol=1e-18, rtol=0)  # 15 * exp(-50) ~ 3e-21
    torch.testing.assert_close(out, torch.eye(c, dtype=torch.float64)[target][None])


def test_scale_is_one_over_sqrt_head_dim() -> None:
    # Two positions whose scores differ by s * scale: the weight of the first is
    # sigmoid(s / sqrt(d_head)), d_head = 4.
    c = 4
    block = _identity_block(c)
    fmap = torch.zeros(1, c, 1, 2, dtype=torch.float64)
    fmap[0, 0, 0, 0] = 1.0  # key of position 0 = e_0, position 1 = 0
    audio = torch.tensor([[3.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        _, attn = block(fmap, audio, return_attention=True)
    assert float(attn[0, 0, 0, 0]) == pytest.approx(1 / (1 + math.exp(-3.0 / 2.0)), abs=1e-14)


def test_zero_query_averages_values() -> None:
    block = AudioQueriedAttention(5, 3, 7, heads=1).double()
    with torch.no_grad():
        block.to_q.weight.zero_()
        block.to_q.bias.zero_()
    fmap = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    out = block(fmap, torch.randn(2, 3, dtype=torch.float64))
    mean = fmap.mean(dim=(2, 3))
    expected = block.to_out(block.to_v(mean))
    torch.testing.assert_close(out, expected)


def test_shapes_dtypes_and_errors() -> None:
    block = AudioQueriedAttention(16, 10, 12, heads=3)
    out = block(torch.randn(2, 16, 5, 7), torch.randn(2, 10))
    assert out.shape == (2, 12) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"feature_map must be \(b, 16, h, w\)"):
        block(torch.randn(2, 8, 5, 7), torch.randn(2, 10))
    with pytest.raises(ValueError, match=r"audio must be \(b, 10\)"):
        block(torch.randn(2, 16, 5, 7), torch.randn(2, 11))
    with pytest.raises(ValueError, match="batch sizes differ"):
        block(torch.randn(2, 16, 5, 7), torch.randn(3, 10))
    with pytest.raises(ValueError, match="divisible"):
        AudioQueriedAttention(16, 10, 10, heads=3)


def test_gradients_reach_query_keys_values_and_map() -> None:
    block = AudioQueriedAttention(6, 4, 8, heads=2)
    fmap = torch.randn(2, 6, 3, 3, requires_grad=True)
    audio = torch.randn(2, 4, requires_grad=True)
    block(fmap, audio).pow(2).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert fmap.grad is not None and audio.grad is not None
