"""ConvBackbone, VisualContentEncoder, EmotionEncoder: shapes, dtypes, input checks, freezing,
save/load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from decouple.encoders import (
    CheckpointError,
    ConvBackbone,
    EmotionEncoder,
    ImageSpec,
    ImageSpecError,
    IResNet,
    VisualContentEncoder,
    load_weights,
    save_weights,
)
from decouple.priors import EmotionPromptPrior


@pytest.mark.parametrize(("size", "expected"), [(64, (128, 8, 8)), (96, (128, 12, 12)),
                                                (128, (128, 16, 16))])
def test_conv_backbone_shapes(size: int, expected: tuple[int, int, int]) -> None:
    net = ConvBackbone()
    out = net(torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8))
    assert tuple(out.shape) == (2, *expected) == (2, *net.output_shape(size, size))
    assert out.dtype == torch.float32
    assert tuple(ConvBackbone(size=(64, 64))(torch.rand(1, 3, 100, 100)).shape) == (1, 128, 8, 8)


def test_conv_backbone_normalises_to_minus_one_one() -> None:
    net = ConvBackbone(channels=(4,), depth=1)
    seen = {}
    net.body[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    net(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8))
    assert torch.equal(seen["x"], torch.ones(1, 3, 8, 8))


def content_encoder(**kw: object) -> VisualContentEncoder:
    return VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=10, dim=12, heads=3, **kw)


def test_content_encoder_output() -> None:
    enc = content_encoder()
    z, attn = enc(torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8), torch.randn(5, 10),
                  return_attention=True)  # fmt: skip
    assert z.shape == (5, 12) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    assert attn.shape == (5, 3, 8, 8)
    assert enc.spec is enc.backbone.spec


def test_content_encoder_with_truncated_iresnet() -> None:
    enc = VisualContentEncoder(IResNet((1, 1, 1, 1), stop_at="layer3"), audio_dim=8, dim=16)
    z, attn = enc(torch.rand(2, 3, 112, 112), torch.randn(2, 8), return_attention=True)
    assert z.shape == (2, 16) and attn.shape == (2, 4, 14, 14)


def test_content_encoder_audio_projection_is_a_linear_map_before_the_attention() -> None:
    torch.manual_seed(0)
    enc = VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=10, dim=12, heads=3,
                               audio_proj=6).eval()  # fmt: skip
    assert enc.audio_dim == 10 and enc.attention.audio_dim == 6
    assert tuple(enc.audio_projection.weight.shape) == (6, 10)
    # the same encoder without the projection, fed W a + b computed by hand in float64
    plain = VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=6, dim=12, heads=3).eval()
    state = {k: v for k, v in enc.state_dict().items() if not k.startswith("audio_projection.")}
    plain.load_state_dict(state)
    frames, audio = torch.rand(4, 3, 32, 32), torch.randn(4, 10)
    w = enc.audio_projection.weight.double()
    b = enc.audio_projection.bias.double()
    projected = torch.stack([w @ a + b for a in audio.double()]).float()
    torch.testing.assert_close(enc(frames, audio), plain(frames, projected))
    # it is trained with the attention
    enc.train()(frames, audio).sum().backward()
    assert enc.audio_projection.weight.grad is not None
    assert bool(enc.audio_projection.weight.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match=r"audio_feat must be \(b, 10\), got \(4, 6\)"):
        enc(frames, torch.randn(4, 6))
    with pytest.raises(ValueError, match="audio_proj must be >= 0"):
        VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=10, dim=12, audio_proj=-1)


def test_content_encoder_checks_frames() -> None:
    enc = content_encoder()
    with pytest.raises(ImageSpecError, match=r"ConvBackbone: frames.*channels-last"):
        enc(torch.rand(2, 32, 32, 3), torch.randn(2, 10))
    with pytest.raises(ImageSpecError, match="divide by 255"):
        enc(torch.rand(2, 3, 32, 32) * 255, torch.randn(2, 10))
    with pytest.raises(TypeError, match="out_channels"):
        VisualContentEncoder(torch.nn.Identity(), audio_dim=2, dim=4)
    with pytest.raises(TypeError, match="spec"):
        VisualContentEncoder(torch.nn.Conv2d(3, 4, 3), audio_dim=2, dim=4)


def test_frozen_backbone_stays_in_eval_and_passes_input_gradients() -> None:
    enc = content_encoder(freeze_backbone=True).train()
    assert not enc.backbone.training and enc.attention.training
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    frames = torch.rand(2, 3, 32, 32, requires_grad=True)
    enc(frames, torch.randn(2, 10)).sum().backward()
    assert frames.grad is not None and bool(frames.grad.abs().sum() > 0)  # for supervision
    # BatchNorm statistics do not move in training mode
    before = enc.backbone.body[1].running_mean.clone()
    enc(torch.rand(4, 3, 32, 32), torch.randn(4, 10))
    assert torch.equal(before, enc.backbone.body[1].running_mean)


def test_content_encoder_round_trip(tmp_path: Path) -> None:
    enc = content_encoder().eval()
    frames, audio = torch.rand(3, 3, 32, 32), torch.randn(3, 10)
    for name in ("ec.pt", "ec.safetensors"):
        path = save_weights(enc, tmp_path / name)
        other = load_weights(content_encoder(), path).eval()
        assert torch.equal(enc(frames, audio), other(frames, audio))
    with pytest.raises(CheckpointError, match=r"ec\.pt does not fit .*attention\.to_q\.weight"):
        load_weights(VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=11, dim=12, heads=3),
                     tmp_path / "ec.pt")  # fmt: skip


def test_emotion_encoder_with_module_tower() -> None:
    enc = EmotionEncoder(ConvBackbone((8, 16)), tower_dim=16, dim=6, hidden=32)
    z = enc(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    assert z.shape == (4, 6)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    assert enc.spec is enc.tower.spec
    with pytest.raises(ImageSpecError, match="ConvBackbone"):
        enc(torch.rand(4, 1, 32, 32))
    with pytest.raises(ValueError, match="declares its own spec"):
        EmotionEncoder(ConvBackbone((8,)), tower_dim=8, dim=4, spec=ImageSpec(size=(4, 4)))


def test_emotion_encoder_with_prior_image_path() -> None:
    prior = EmotionPromptPrior.tiny(["neutral", "happy", "sad"])
    enc = EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=prior.dim, residual=True)
    u8 = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    z = enc(u8)
    # The residual head starts at zero: the encoder starts as the prior's image feature, and
    # the frames reach the prior as raw [0, 1] RGB (the prior normalises them: once).
    torch.testing.assert_close(z, prior.encode_image(u8), rtol=1e-5, atol=1e-6)
    # Normalising before the prior would be a second normalisation: the prior refuses it.
    clip_norm = ImageSpec(mean=(0.481, 0.458, 0.408), std=(0.269, 0.261, 0.276))
    twice = EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=prior.dim, spec=clip_norm)
    with pytest.raises(ValueError, match="already normalised"):
        twice(u8)
    # the prior's parameters are not part of the encoder
    assert not any(k.startswith("tower") for k in enc.state_dict())
    with pytest.raises(ValueError, match="freeze_tower applies to module towers"):
        EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=4, freeze_tower=True)
    with pytest.raises(ValueError, match=r"tower returned shape \(3, 64\), expected \(b, 8\)"):
        EmotionEncoder(prior.encode_image, tower_dim=8, dim=4)(u8)


def test_emotion_encoder_round_trip(tmp_path: Path) -> None:
    enc = EmotionEncoder(ConvBackbone((8,)), tower_dim=8, dim=4, hidden=8, freeze_tower=True)
    x = torch.rand(2, 3, 16, 16)
    path = save_weights(enc, tmp_path / "ee.pt")
    other = load_weights(EmotionEncoder(ConvBackbone((8,)), tower_dim=8, dim=4, hidden=8), path)
    assert torch.equal(enc.eval()(x), other.eval()(x))
    assert set(torch.load(path, weights_only=True)) == set(enc.state_dict())
