"""The shipped configs: each opens with its command and loads; mead.yaml / ravdess.yaml build
their real-scale models on the meta device with the weight-file key layouts of the published
files (ArcFace IResNet-50, torchaudio wav2vec 2.0 XLSR-53, open_clip ViT-B-32)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))

from config import Config, check_config  # noqa: E402
from configlib import load_config  # noqa: E402

CONFIGS = sorted((RECIPE / "configs").glob("*.yaml"))


def test_the_four_configs_exist() -> None:
    assert {p.stem for p in CONFIGS} >= {"demo", "benchmark", "mead", "ravdess"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_opens_with_its_command_and_loads(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# accelerate launch ") and "recipes/spfem/train.py" in first
    if path.stem != "demo":  # the demo is the default: no --config needed
        assert f"--config recipes/spfem/configs/{path.name}" in first
    cfg = check_config(load_config(Config, path), str(path))
    assert cfg.stages[0] == "prepare" and cfg.stages[-1] == "spfem"


def test_demo_is_the_default() -> None:
    import train

    assert Path(train.DEFAULT_CONFIG) == RECIPE / "configs" / "demo.yaml"
    cfg = load_config(Config, train.DEFAULT_CONFIG)
    assert cfg.data.corpus == "synthtalk" and cfg.data.synthtalk.size == 64


def insightface_r50_keys() -> list[str]:
    """The keys of insightface's arcface_torch IResNet-50 `backbone.pth`, written out by hand."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight", *(f"bn1.{k}" for k in bn), "prelu.weight"]
    for layer, blocks in enumerate((3, 4, 14, 3), start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            keys += [*(f"{p}.bn1.{k}" for k in bn), f"{p}.conv1.weight",
                     *(f"{p}.bn2.{k}" for k in bn), f"{p}.prelu.weight", f"{p}.conv2.weight",
                     *(f"{p}.bn3.{k}" for k in bn)]  # fmt: skip
            if b == 0:
                keys += [f"{p}.downsample.0.weight", *(f"{p}.downsample.1.{k}" for k in bn)]
    keys += [*(f"bn2.{k}" for k in bn), "fc.weight", "fc.bias", *(f"features.{k}" for k in bn)]
    return keys


@pytest.mark.parametrize("name", ["mead", "ravdess"])
def test_real_scale_models_build_on_meta_with_the_published_key_layouts(name: str) -> None:
    from model import (
        build_audio_prior,
        build_content_encoder,
        build_emotion_encoder,
        build_emotion_prior,
        build_generator,
    )

    from decouple.encoders import iresnet50

    cfg = check_config(load_config(Config, RECIPE / "configs" / f"{name}.yaml"))
    assert cfg.data.corpus == name and cfg.data.convert.size == 256
    assert cfg.runtime.mixed_precision == "bf16"
    assert (cfg.audio_prior.kind, cfg.audio_prior.architecture, cfg.audio_prior.layer) == (
        "wav2vec2", "xlsr53", 20)  # fmt: skip
    assert (cfg.clip.kind, cfg.clip.architecture) == ("pretrained", "ViT-B-32")
    assert cfg.ccrl.backbone == "iresnet50"
    names = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
    with torch.device("meta"):
        audio = build_audio_prior(cfg, 25.0, pretrained=False)
        prior = build_emotion_prior(cfg, names, pretrained=False)
        content = build_content_encoder(cfg, audio.dim, pretrained=False)
        emotion = build_emotion_encoder(cfg, prior)
        gen = build_generator(cfg, prior.dim)
        full_arcface = iresnet50(None, stop_at="embedding")
    # ArcFace: the file the user gives is the full backbone.pth; the encoder uses layer1-3
    published = insightface_r50_keys()
    assert list(full_arcface.state_dict()) == published
    kept = [k for k in published if not k.startswith(content.backbone.ignored_prefixes)]
    assert list(content.backbone.state_dict()) == kept
    assert kept[-1].startswith("layer3.13.") and content.backbone.out_channels == 256
    # wav2vec 2.0 XLSR-53 in torchaudio's Wav2Vec2Model layout: 7 conv layers, 24 x 1024
    w2v = audio.model.state_dict()
    assert audio.dim == 1024
    assert w2v["feature_extractor.conv_layers.0.conv.weight"].shape == (512, 1, 10)
    assert w2v["encoder.feature_projection.projection.weight"].shape == (1024, 512)
    assert w2v["encoder.transformer.layers.23.attention.q_proj.weight"].shape == (1024, 1024)
    assert w2v["encoder.transformer.layers.23.feed_forward.intermediate_dense.weight"].shape == (
        4096, 1024)  # fmt: skip
    assert not any(k.startswith("encoder.transformer.layers.24.") for k in w2v)
    # open_clip ViT-B-32: OpenAI-style CLIP keys
    clip = prior.clip.state_dict()
    assert clip["visual.conv1.weight"].shape == (768, 3, 32, 32)
    assert clip["visual.transformer.resblocks.11.attn.in_proj_weight"].shape == (2304, 768)
    assert clip["token_embedding.weight"].shape == (49408, 512)
    assert clip["positional_embedding"].shape == (77, 512)
    assert clip["text_projection"].shape == (512, 512) and "logit_scale" in clip
    assert prior.dim == 512 and prior.image_size == (224, 224)
    # the rest of the system at that scale
    assert emotion.dim == 512 and gen.code_dim == 512 and gen.stages == cfg.spfem.levels
    assert content.dim == cfg.ccrl.dim and content.audio_dim == 1024
    # CDRL's trained per-frame projection of the wav2vec 2.0 features: 1024 -> 512
    assert tuple(content.audio_projection.weight.shape) == (512, 1024)
    assert content.attention.audio_dim == 512
    assert 256 % 2**gen.stages == 0


def test_missing_weight_files_are_named_without_a_download(tmp_path: Path) -> None:
    from model import build_audio_prior, build_content_encoder, build_emotion_prior

    cfg = load_config(Config, RECIPE / "configs" / "mead.yaml",
                      [f"audio_prior.weights={tmp_path}/w2v.pt",
                       f"clip.weights={tmp_path}/clip.pt",
                       f"ccrl.arcface_weights={tmp_path}/r50.pth"])  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"w2v\.pt"):
        build_audio_prior(cfg, 25.0)
    with pytest.raises(FileNotFoundError, match=r"clip\.pt"):
        build_emotion_prior(cfg, ("neutral", "happy"))
    with pytest.raises(FileNotFoundError, match=r"r50\.pth"):
        build_content_encoder(cfg, 1024)


def test_cross_field_rules() -> None:
    from configlib import ConfigError

    bad = load_config(Config, None, ["data.corpus=mead"])
    with pytest.raises(ConfigError, match=r"audio_prior\.kind: 'phoneme' is trained on SynthTalk"):
        check_config(bad, "x.yaml")
    ok = load_config(Config, None, ["spfem.variant=content_only"])
    w = ok.spfem.effective_weights()
    assert w.content > 0 and w.emotion == 0
    assert load_config(Config, None, ["spfem.variant=baseline"]).spfem.effective_weights() \
        .content == 0  # fmt: skip


@pytest.mark.parametrize("name", ["config", "model", "prepare", "discriminator", "stages"])
def test_recipe_doctests(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
