"""CCRL and CERL with the real priors: batch keys, labels handed to the losses, the two audio
paths, and training steps that lower the loss on a fixed random batch."""

from __future__ import annotations

import pytest
import torch

from decouple.data.batches import parallel_labels
from decouple.encoders import (
    CCRL,
    CERL,
    ConvBackbone,
    EmotionEncoder,
    VisualContentEncoder,
)
from decouple.losses import EmotionAugmentedNCE, EmotionAwareNCE
from decouple.priors import EmotionPromptPrior, MelPrior, PhonemeAudioPrior

NAMES = ("neutral", "happy", "sad", "angry")


def phoneme_prior(dim: int = 12) -> PhonemeAudioPrior:
    """A small trainable audio prior (random init: its pre-training is the priors' business)."""
    return PhonemeAudioPrior(num_phonemes=8, dim=dim, width=16, dilations=(1,), fps=25.0)

B, E, T, S = 3, 3, 4, 32


def ccrl_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "video": torch.randint(0, 256, (B, E, T, 3, S, S), dtype=torch.uint8, generator=g),
        "emotion": torch.tensor([[0, 1, 2], [0, 2, 3], [1, 2, 3]]),
        "features": torch.randn(B, E, T, 3, 4, generator=g),  # (b, e, t, context, n_mels)
        "audio": 0.1 * torch.randn(B, E, 2560, generator=g),  # 4 frames at 25 fps, 16 kHz
        "sample_rate": torch.tensor([16000, 16000, 16000]),
        "fps": torch.tensor([25.0, 25.0, 25.0]),
    }


def content_encoder(audio_dim: int = 12) -> VisualContentEncoder:
    return VisualContentEncoder(ConvBackbone((8, 16)), audio_dim=audio_dim, dim=16, heads=2)


def train(module: torch.nn.Module, batch: dict, steps: int, lr: float = 3e-3) -> list[float]:
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = module.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_ccrl_passes_the_parallel_labels_to_the_loss() -> None:
    batch = ccrl_batch()
    module = CCRL(content_encoder())
    seen = {}

    def spy(mod: torch.nn.Module, args: tuple) -> None:
        seen["args"] = args

    module.criterion.register_forward_pre_hook(spy)
    out = module(batch)
    z, content, emotion = seen["args"]
    ref_content, ref_emotion = parallel_labels(batch["emotion"], T)
    assert torch.equal(content, ref_content) and torch.equal(emotion, ref_emotion)
    assert z.shape == (B * E * T, 16)
    # the loss is EmotionAwareNCE of the (b e t)-ordered embeddings
    torch.testing.assert_close(out["loss"], EmotionAwareNCE()(z, content, emotion))
    torch.testing.assert_close(z, module.embed(batch))
    # logs: cosines of aligned frames across renditions (pos) / within a rendition (neg)
    g = z.detach().view(B, E, T, -1)
    pos = torch.stack([g[b, i, t] @ g[b, j, t] for b in range(B) for t in range(T)
                       for i in range(E) for j in range(E) if i != j]).mean()  # fmt: skip
    neg = torch.stack([g[b, e, i] @ g[b, e, j] for b in range(B) for e in range(E)
                       for i in range(T) for j in range(T) if i != j]).mean()  # fmt: skip
    torch.testing.assert_close(out["pos_cos"], pos)
    torch.testing.assert_close(out["neg_cos"], neg)


def test_ccrl_query_audio_first_and_own() -> None:
    batch = ccrl_batch()
    changed = dict(batch, features=batch["features"].clone())
    changed["features"][:, 1:] += 1.0  # only renditions 1.. change their audio
    first = CCRL(content_encoder()).eval()
    torch.testing.assert_close(first.embed(batch), first.embed(changed))
    own = CCRL(content_encoder(), query_audio="own").eval()
    own.load_state_dict(first.state_dict())
    z0, z1 = own.embed(batch).view(B, E, T, -1), own.embed(changed).view(B, E, T, -1)
    torch.testing.assert_close(z0[:, 0], z1[:, 0])
    assert not torch.allclose(z0[:, 1:], z1[:, 1:])


def test_ccrl_waveform_path_with_audio_prior() -> None:
    prior = phoneme_prior(dim=12)
    module = CCRL(content_encoder(), prior)
    batch = ccrl_batch()
    seen = {}
    prior.register_forward_pre_hook(lambda m, args: seen.setdefault("args", args))
    loss = module.loss(batch)
    wav, sr, t, fps = seen["args"]
    # query_audio="first": the prior runs on the first rendition of each group only
    assert torch.equal(wav, batch["audio"][:, 0]) and (sr, t, fps) == (16000, T, 25.0)
    loss.backward()
    # the prior's feature path trains with CCRL (its phoneme head is not on that path)
    assert all(p.grad is not None for p in prior.encoder.parameters())
    assert prior.head.weight.grad is None
    assert any(k.startswith("audio_prior.") for k in module.state_dict())
    with pytest.raises(ValueError, match=r"audio_prior\.dim is 12 but .* audio_dim is 7"):
        CCRL(content_encoder(audio_dim=7), prior)


def test_mel_prior_on_waveforms_equals_the_readers_features() -> None:
    # the waveform path with MelPrior and the per-frame-feature path with the same log-mel
    # windows (what the shard reader stores as `features`) give the same embeddings
    prior = MelPrior(context=3, fps=25.0)
    batch = ccrl_batch()
    windows = prior.windows(batch["audio"].reshape(B * E, -1), 16000, T)  # (b e, t, 3, 80)
    batch["features"] = windows.reshape(B, E, T, 3, 80)
    enc = content_encoder(audio_dim=prior.dim).eval()
    z_wave = CCRL(enc, prior).embed(batch)
    z_feat = CCRL(enc, audio_key="features").embed(batch)
    torch.testing.assert_close(z_wave, z_feat)


def test_ccrl_batch_errors() -> None:
    module = CCRL(content_encoder())
    batch = ccrl_batch()
    with pytest.raises(KeyError, match="no 'features'"):
        module.loss({k: v for k, v in batch.items() if k != "features"})
    with pytest.raises(ValueError, match=r"'emotion' must be \(b, e\)"):
        module.loss(dict(batch, emotion=torch.zeros(B, dtype=torch.long)))
    with pytest.raises(ValueError, match="audio features have dimension 10"):
        module.loss(dict(batch, features=torch.randn(B, E, T, 10)))
    with pytest.raises(ValueError, match=r"'video' must be \(b, e, t, 3, h, w\)"):
        module.loss(dict(batch, video=batch["video"][:, :, 0]))
    with pytest.raises(KeyError, match="no 'audio'"):
        CCRL(content_encoder(), phoneme_prior()).loss(
            {k: v for k, v in batch.items() if k != "audio"}
        )


def test_ccrl_training_lowers_the_loss() -> None:
    batch = ccrl_batch()
    module = CCRL(content_encoder(), phoneme_prior(dim=12))
    losses = train(module, batch, steps=15)
    assert losses[-1] < 0.8 * losses[0], losses


def cerl_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 8  # 4 emotions x 2 clips, every clip other content
    return {
        "video": torch.randint(0, 256, (n, 3, 3, S, S), dtype=torch.uint8, generator=g),
        "emotion": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
        "content": torch.arange(n),
    }


def cerl_module(**kw: object) -> CERL:
    prior = EmotionPromptPrior.tiny(NAMES)
    enc = EmotionEncoder(ConvBackbone((8, 16)), tower_dim=16, dim=prior.dim, hidden=32)
    return CERL(enc, prior, **kw)


def test_cerl_labels_per_frame_and_loss() -> None:
    module = cerl_module()
    batch = cerl_batch()
    frames, emotion, content = module.frames_and_labels(batch)
    assert frames.shape == (24, 3, S, S)
    assert torch.equal(emotion, batch["emotion"].repeat_interleave(3))
    assert torch.equal(content, batch["content"].repeat_interleave(3))
    out = module(batch)
    z = module.encoder(frames)
    expected = EmotionAugmentedNCE()(z, emotion, content, prior=module.prior.prior())
    torch.testing.assert_close(out["loss"], expected)
    with torch.no_grad():
        nearest = (z @ module.prior.prior().t()).argmax(1)
    assert float(out["prior_acc"]) == pytest.approx(float((nearest == emotion).float().mean()))


def test_cerl_frames_per_clip_and_single_frames() -> None:
    batch = cerl_batch()
    module = cerl_module(frames_per_clip=1)
    frames = module.frames_and_labels(batch)[0]
    assert torch.equal(frames, batch["video"][:, 1])  # the centre frame of 3
    single = {"video": batch["video"][:, 0], "emotion": batch["emotion"]}  # no content ids
    frames, _, content = cerl_module().frames_and_labels(single)
    assert frames.shape == (8, 3, S, S) and torch.equal(content, torch.arange(8))


def test_cerl_trains_encoder_and_prompts() -> None:
    module = cerl_module()
    batch = cerl_batch()
    before = module.prior.ctx.detach().clone()
    clip = {k: v.clone() for k, v in module.prior.clip.state_dict().items()}
    losses = train(module, batch, steps=15)
    assert losses[-1] < 0.8 * losses[0], losses
    assert not torch.equal(before, module.prior.ctx)  # learnable prompt context
    after = module.prior.clip.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in clip.items())  # frozen CLIP towers


def test_cerl_with_the_prior_image_path() -> None:
    prior = EmotionPromptPrior.tiny(NAMES)
    enc = EmotionEncoder(prior.encode_image, tower_dim=prior.dim, dim=prior.dim, hidden=64,
                         residual=True)  # fmt: skip
    module = CERL(enc, prior, emotion_names=NAMES)
    # the prior is registered once (in CERL), not inside the encoder
    assert sum(k.startswith("prior.") for k in module.state_dict()) == len(prior.state_dict())
    assert not any(k.startswith("encoder.tower") for k in module.state_dict())
    losses = train(module, cerl_batch(), steps=20, lr=1e-2)  # measured: 5.54 -> 4.40
    assert losses[-1] < 0.85 * losses[0], losses


def test_cerl_errors() -> None:
    with pytest.raises(ValueError, match=r"emotion names \('happy', 'sad'\) differ"):
        cerl_module(emotion_names=("happy", "sad"))
    cerl_module(emotion_names=NAMES)
    with pytest.raises(TypeError, match=r"prior\(\)"):
        CERL(EmotionEncoder(ConvBackbone((8,)), tower_dim=8, dim=4), torch.nn.Linear(2, 2))
    module = cerl_module()
    with pytest.raises(KeyError, match="no 'emotion'"):
        module.loss({"video": cerl_batch()["video"]})
    with pytest.raises(ValueError, match="emotion_labels must lie in"):
        module.loss(dict(cerl_batch(), emotion=torch.tensor([0, 0, 1, 1, 2, 2, 7, 7])))
    wrong_dim = CERL(EmotionEncoder(ConvBackbone((8,)), tower_dim=8, dim=4),
                     EmotionPromptPrior.tiny(NAMES))  # fmt: skip
    with pytest.raises(ValueError, match=r"expected \(K, 4\)"):
        wrong_dim.loss(cerl_batch())
