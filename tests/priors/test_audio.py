"""Audio priors: alignment, MelPrior, Wav2Vec2Prior (tiny random model), PhonemeAudioPrior."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from decouple.data.features import log_mel, samples_for_frames
from decouple.data.io import resample_audio
from decouple.priors import (
    MelPrior,
    PhonemeAudioPrior,
    Wav2Vec2Prior,
    frame_times,
    interpolate_to_frames,
    load_wav2vec2_state_dict,
)

# ------------------------------------------------------------------ alignment helpers


def test_frame_times_are_i_over_fps() -> None:
    assert frame_times(4, 30).tolist() == [0.0, 1 / 30, 2 / 30, 3 / 30]
    assert frame_times(0, 25).numel() == 0


def test_interpolate_to_frames_matches_numpy_interp() -> None:
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 13, 5, generator=g, dtype=torch.float64)
    ftimes = torch.cumsum(0.01 + torch.rand(13, generator=g, dtype=torch.float64), 0)
    query = torch.linspace(float(ftimes[0]) - 1, float(ftimes[-1]) + 1, 57, dtype=torch.float64)
    out = interpolate_to_frames(feats, ftimes, query)
    for b in range(2):
        for d in range(5):
            ref = np.interp(query.numpy(), ftimes.numpy(), feats[b, :, d].numpy())
            np.testing.assert_allclose(out[b, :, d].numpy(), ref, rtol=0, atol=1e-12)
    # exactly at the feature times: the features themselves
    torch.testing.assert_close(interpolate_to_frames(feats, ftimes, ftimes), feats)


def test_interpolate_to_frames_rejects_unsorted_times() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        interpolate_to_frames(torch.zeros(1, 3, 1), torch.tensor([0.0, 0.2, 0.1]), torch.zeros(2))


# ------------------------------------------------------------------ MelPrior


def test_mel_prior_windows_follow_the_frame_to_video_convention() -> None:
    """Naive loop: frame i's window is mel frames round(i * 100 / fps) - c//2 + k, clamped."""
    torch.manual_seed(0)
    wave = torch.randn(12345) * 0.1
    fps, context = 29.97, 5
    prior = MelPrior(context=context, fps=fps)
    t = 40
    win = prior.windows(wave, 16000, t)
    mel = log_mel(wave)
    a = mel.shape[0]
    for i in range(t):
        centre = math.floor(i * 100 / fps + 0.5)
        for k in range(context):
            j = min(max(centre - context // 2 + k, 0), a - 1)
            torch.testing.assert_close(win[i, k], mel[j], rtol=0, atol=0)
    flat = prior(wave, 16000, t)
    assert flat.shape == (t, context * 80) and prior.dim == context * 80
    torch.testing.assert_close(flat[:, 80:160], win[:, 1])  # context-major flattening


def test_mel_prior_places_a_tone_burst_at_its_frames() -> None:
    """A 1 kHz burst during [0.5, 0.7) s lights up exactly the frames whose time is inside."""
    sr, fps = 16000, 25
    t = torch.arange(sr) / sr
    wave = torch.where((t >= 0.5) & (t < 0.7), torch.sin(2 * torch.pi * 1000 * t), 0.0)
    feats = MelPrior(context=1, fps=fps)(wave, sr, 25)  # (25, 80)
    band = int(feats[15].argmax())  # a frame in the middle of the burst
    energy = feats[:, band]
    inside = [i for i in range(25) if 0.5 + 0.02 <= i / fps <= 0.7 - 0.02]
    outside = [i for i in range(25) if i / fps <= 0.5 - 0.04 or i / fps >= 0.7 + 0.04]
    assert min(energy[inside]) > max(energy[outside]) + 5.0


def test_mel_prior_resamples_any_rate() -> None:
    wave = torch.randn(2, 44100) * 0.1
    prior = MelPrior(context=2)
    out = prior(wave, 44100, 30)
    ref = prior(resample_audio(wave, 44100, 16000), 16000, 30)
    torch.testing.assert_close(out, ref)


def test_ragged_batches_use_each_items_own_samples() -> None:
    torch.manual_seed(0)
    wave = torch.randn(2, 16000) * 0.1
    prior = MelPrior(context=3, fps=25)
    out = prior(wave, 16000, [25, 10])
    assert out.shape == (2, 25, prior.dim)
    stop = samples_for_frames(0, 10, 25, 16000).stop
    torch.testing.assert_close(out[1, :10], prior(wave[1, :stop], 16000, 10))
    assert torch.count_nonzero(out[1, 10:]) == 0
    torch.testing.assert_close(out[0], prior(wave[0], 16000, 25))


def test_audio_prior_input_errors() -> None:
    prior = MelPrior(context=1)
    with pytest.raises(ValueError, match="floating tensor"):
        prior(torch.zeros(100, dtype=torch.int16), 16000, 3)
    with pytest.raises(ValueError, match="an int for an unbatched"):
        prior(torch.zeros(1000), 16000, [3])
    with pytest.raises(ValueError, match="sequence of 2 ints"):
        prior(torch.zeros(2, 1000), 16000, [3, 4, 5])
    with pytest.raises(ValueError, match="sample_rate"):
        prior(torch.zeros(1000), 0, 3)
    with pytest.raises(ValueError, match="fps"):
        prior(torch.zeros(1000), 16000, 3, fps=-1)
    assert prior(torch.zeros(2, 1000), 16000, 0).shape == (2, 0, 80)


# ------------------------------------------------------------------ Wav2Vec2Prior


def _reference(model: torch.nn.Module, wave16: torch.Tensor, layer: int) -> torch.Tensor:
    with torch.no_grad():
        if layer == 0:
            return model.feature_extractor(wave16, None)[0]
        return model.extract_features(wave16)[0][layer - 1]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_wav2vec2_layer_features_equal_torchaudio(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module], layer: int
) -> None:
    path, arch, model = tiny_wav2vec2_file
    prior = Wav2Vec2Prior(path, architecture=arch, layer=layer)
    x = torch.randn(2, 8000)
    torch.testing.assert_close(prior.layer_features(x), _reference(model, x, layer),
                               rtol=0, atol=0)
    assert prior.dim == (8 if layer == 0 else 16)


def test_wav2vec2_waveform_normalisation_matches_the_bundle_wrapper(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module],
) -> None:
    """normalize_waveform=True equals torchaudio's bundle model (one item), and is per item."""
    from torchaudio.pipelines._wav2vec2.utils import _extend_model

    path, arch, model = tiny_wav2vec2_file
    prior = Wav2Vec2Prior(path, architecture=arch, layer=2, normalize_waveform=True)
    bundle_model = _extend_model(model, normalize_waveform=True).eval()
    x = torch.randn(2, 8000) * torch.tensor([[0.05], [0.7]])
    with torch.no_grad():
        for i in range(2):
            ref = bundle_model.extract_features(x[i : i + 1])[0][1]
            torch.testing.assert_close(prior.layer_features(x[i : i + 1]), ref,
                                       rtol=1e-5, atol=1e-6)
        # batched: each item normalised over its own samples (not over the whole batch)
        ours = prior.layer_features(x)
        torch.testing.assert_close(ours[1:], bundle_model.extract_features(x[1:])[0][1],
                                   rtol=1e-4, atol=1e-5)
        # torchaudio's wrapper normalises over the whole (b, s) tensor: another result
        whole = bundle_model.extract_features(x)[0][1]
        assert (ours[1] - whole[1]).abs().max() > 1e-2


def test_wav2vec2_forward_interpolates_to_frame_times(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module],
) -> None:
    """Independent reference: numpy.interp of torchaudio's features at t_i = i / fps."""
    path, arch, model = tiny_wav2vec2_file
    prior = Wav2Vec2Prior(path, architecture=arch, layer=1)
    sr, fps, t = 22050, 29.97, 31
    wave = torch.randn(int(sr * 1.05)) * 0.2
    out = prior(wave, sr, t, fps=fps).double()
    feats = _reference(model, resample_audio(wave, sr, 16000)[None], 1)[0].double()
    ftimes = (np.arange(feats.shape[0]) * 320 + 199.5) / 16000
    ref = np.stack(
        [np.interp(np.arange(t) / fps, ftimes, feats[:, d].numpy()) for d in range(16)], -1
    )
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_wav2vec2_file_formats(
    tmp_path: Path, tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module]
) -> None:
    from safetensors.torch import save_file

    _, arch, model = tiny_wav2vec2_file
    x = torch.randn(1, 4000)
    ref = _reference(model, x, 2)
    sd = model.state_dict()
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    wrapped = tmp_path / "bundle_get_model.pt"  # bundle.get_model().state_dict(): "model." keys
    torch.save({"model." + k: v for k, v in sd.items()}, wrapped)
    for path in (st, wrapped):
        prior = Wav2Vec2Prior(path, architecture=arch, layer=2)
        torch.testing.assert_close(prior.layer_features(x), ref, rtol=0, atol=0)
    assert sorted(load_wav2vec2_state_dict(wrapped)) == sorted(sd)


def test_wav2vec2_mismatched_state_dict_names_keys(
    tmp_path: Path, tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module]
) -> None:
    _, arch, model = tiny_wav2vec2_file
    sd = dict(model.state_dict())
    sd.pop("encoder.transformer.layers.1.final_layer_norm.weight")
    sd["aux.weight"] = torch.zeros(3, 16)
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(ValueError) as err:
        Wav2Vec2Prior(bad, architecture=arch, layer=1)
    msg = str(err.value)
    assert str(bad) in msg
    assert "missing keys (1): encoder.transformer.layers.1.final_layer_norm.weight" in msg
    assert "unexpected keys (1): aux.weight" in msg
    # the right keys for another architecture: shapes named, and the hint
    good = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), good)
    with pytest.raises(ValueError, match=r"shape mismatches .*pass the matching architecture"):
        Wav2Vec2Prior(good, architecture="base", layer=1)


def test_wav2vec2_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match=r"weights_only=True"):
        Wav2Vec2Prior(path, architecture=Wav2Vec2Prior.tiny_architecture(), layer=1)


def test_wav2vec2_frozen_backbone_and_learned_projection(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module],
) -> None:
    path, arch, _ = tiny_wav2vec2_file
    prior = Wav2Vec2Prior(path, architecture=arch, layer=2, projection_dim=6)
    assert prior.dim == 6
    assert not any(p.requires_grad for p in prior.model.parameters())
    prior.train()
    assert prior.training and not prior.model.training
    before = {k: v.clone() for k, v in prior.model.state_dict().items()}
    w0 = prior.projection.weight.detach().clone()
    opt = torch.optim.SGD([p for p in prior.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        loss = prior(torch.randn(2, 8000), 16000, 12, fps=25).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(prior.projection.weight, w0)
    for k, v in prior.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in prior.model.parameters())


def test_wav2vec2_unfrozen_backbone_learns(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module],
) -> None:
    path, arch, _ = tiny_wav2vec2_file
    prior = Wav2Vec2Prior(path, architecture=arch, layer=1, freeze=False)
    prior(torch.randn(1, 4000), 16000, 5).sum().backward()
    assert prior.model.encoder.transformer.layers[0].attention.k_proj.weight.grad is not None


def test_wav2vec2_argument_errors(
    tiny_wav2vec2_file: tuple[Path, dict[str, Any], torch.nn.Module],
) -> None:
    path, arch, model = tiny_wav2vec2_file
    with pytest.raises(ValueError, match=r"layer must be 0 .* 1\.\.2"):
        Wav2Vec2Prior(path, architecture=arch, layer=3)
    with pytest.raises(KeyError, match="xlsr53"):
        Wav2Vec2Prior(path, architecture="xlsr54")
    prior = Wav2Vec2Prior.from_model(model, layer=1)
    with pytest.raises(ValueError, match="at least 400 samples"):
        prior(torch.randn(300), 16000, 2)
    with pytest.raises(TypeError, match="Wav2Vec2Model"):
        Wav2Vec2Prior.from_model(torch.nn.Linear(1, 1))  # type: ignore[arg-type]


def test_named_architectures_are_the_bundles_configs() -> None:
    import torchaudio.pipelines as P

    from decouple.priors import WAV2VEC2_ARCHITECTURES

    xlsr = WAV2VEC2_ARCHITECTURES["xlsr53"]
    assert dict(xlsr.params) == P.WAV2VEC2_XLSR53._params
    assert xlsr.normalize_waveform and xlsr.url.endswith("wav2vec2_fairseq_large_xlsr53.pth")
    base = WAV2VEC2_ARCHITECTURES["base"]
    assert dict(base.params) == P.WAV2VEC2_BASE._params and not base.normalize_waveform
    # the dims CDRL relies on: layer 20 of 24 exists, 1024-d
    assert xlsr.params["encoder_num_layers"] == 24 and xlsr.params["encoder_embed_dim"] == 1024


# ------------------------------------------------------------------ PhonemeAudioPrior

FREQS = (300.0, 700.0, 1500.0, 3000.0)


def _tone_task(n: int, g: torch.Generator, frames: int = 50, fps: int = 25,
               sr: int = 16000) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms of tone segments (2-6 frames each), the label of a frame = its tone."""
    spf = sr // fps
    waves, labels = [], []
    for _ in range(n):
        lab: list[int] = []
        while len(lab) < frames:
            k = int(torch.randint(len(FREQS), (1,), generator=g))
            lab += [k] * int(torch.randint(2, 7, (1,), generator=g))
        y = torch.tensor(lab[:frames])
        f = torch.tensor(FREQS)[y].repeat_interleave(spf)
        amp = (0.2 + 0.6 * torch.rand(frames, generator=g)).repeat_interleave(spf)
        phase = torch.cumsum(2 * math.pi * f / sr, 0)
        waves.append(amp * torch.sin(phase) + 0.05 * torch.randn(frames * spf, generator=g))
        labels.append(y)
    return torch.stack(waves), torch.stack(labels)


def test_phoneme_prior_learns_frame_labels() -> None:
    g = torch.Generator().manual_seed(0)
    xtr, ytr = _tone_task(64, g)
    xte, yte = _tone_task(16, g)
    prior = PhonemeAudioPrior(len(FREQS), dim=32, width=32, fps=25)

    def accuracy() -> float:
        with torch.no_grad():
            return float((prior.logits(xte, 16000, 50).argmax(-1) == yte).float().mean())

    chance = max(float((yte == k).float().mean()) for k in range(len(FREQS)))
    before = accuracy()
    batches = [{"audio": xtr[i : i + 16], "phonemes": ytr[i : i + 16], "fps": 25}
               for i in range(0, 64, 16)] * 6
    losses = prior.pretrain(batches, lr=3e-3)
    after = accuracy()
    assert len(losses) == 24 and losses[-1] < 0.3 * losses[0]
    assert before < chance + 0.15
    assert after > 0.9 > chance + 0.4, (before, after, chance)
    feats = prior(xte[0], 16000, 50, fps=25)
    assert feats.shape == (50, 32)


def test_phoneme_loss_ignores_unlabelled_frames() -> None:
    prior = PhonemeAudioPrior(3, dim=8, width=8, fps=25)
    audio = torch.randn(2, 6400) * 0.1
    labels = torch.tensor([[0, 1, 2, -100, 1, 0, 2, 2, -100, 0],
                           [2, 2, 1, 1, 0, 0, -100, -100, -100, -100]])
    loss = prior.loss({"audio": audio, "phonemes": labels, "fps": 25, "sample_rate": 16000})
    logits = prior.logits(audio, 16000, 10, fps=25)
    keep = labels != -100
    manual = -torch.log_softmax(logits, -1)[keep].gather(1, labels[keep][:, None]).mean()
    torch.testing.assert_close(loss, manual)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        prior.loss({"audio": audio, "phonemes": labels.clamp(min=0) + 1})
    with pytest.raises(KeyError, match="phonemes"):
        prior.loss({"audio": audio})
