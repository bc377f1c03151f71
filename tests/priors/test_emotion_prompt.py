"""EmotionPromptPrior on the tiny open_clip config: text path, normalisation, freezing, files."""

from __future__ import annotations

import re
from pathlib import Path

import open_clip
import pytest
import torch

from decouple.data.registry import CANONICAL_EMOTIONS, MEAD_SPFEM, RAVDESS
from decouple.losses import EmotionAugmentedNCE
from decouple.priors import EMOTION_DESCRIPTIONS, TINY_CLIP_CONFIG, EmotionPromptPrior

NAMES = ("neutral", "happy", "angry", "sad")
PHRASE = "a close up photo of a person face"  # 8 BPE tokens: replaces the 8 context tokens


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    open_clip.add_model_config(TINY_CLIP_CONFIG)
    return open_clip.create_model("decouple-tiny-clip", pretrained=None)


def _prior(model: torch.nn.Module, **kw: object) -> EmotionPromptPrior:
    return EmotionPromptPrior(model, NAMES, **kw)  # type: ignore[arg-type]


def test_context_replaced_by_a_phrase_equals_open_clip_encode_text(
    tiny_model: torch.nn.Module,
) -> None:
    """float64: the prompt path is CLIP's text path, positional embedding and mask included."""
    model = tiny_model.double()
    try:
        tok = open_clip.get_tokenizer("decouple-tiny-clip")
        assert len(tok.encode(PHRASE)) == 8
        ref = model.encode_text(tok([f"{PHRASE} {d}" for d in
                                     (EMOTION_DESCRIPTIONS[n] for n in NAMES)]))
        # (1) ctx_init, (2) the learnable context overwritten by the phrase's token embeddings
        a = _prior(model, ctx_init=PHRASE)
        b = _prior(model)
        with torch.no_grad():
            b.ctx.copy_(model.token_embedding(tok([PHRASE])[0, 1:9])[None].expand(4, -1, -1))
        for prior in (a, b):
            torch.testing.assert_close(prior.prior(), torch.nn.functional.normalize(ref, dim=-1),
                                       rtol=0, atol=1e-12)
        # free text goes through the same path
        texts = ["a face with a broad smile", "tears"]
        torch.testing.assert_close(a.encode_text(texts, normalize=False),
                                   model.encode_text(tok(texts)), rtol=0, atol=1e-12)
        # the positional embedding matters: without it the features differ (the CDRL bug)
        x = a.prompt_embeddings()
        no_pos = a.clip.ln_final(a.clip.transformer(x, attn_mask=a.clip.attn_mask))
        no_pos = no_pos[torch.arange(4), a.token_ids.argmax(-1)] @ a.clip.text_projection
        assert (torch.nn.functional.normalize(no_pos, dim=-1) - a.prior()).abs().max() > 1e-2
    finally:
        model.float()


def test_rows_follow_the_given_names(tiny_model: torch.nn.Module) -> None:
    a = EmotionPromptPrior(tiny_model, ["happy", "Anger", "sadness"], ctx_init=PHRASE)
    b = EmotionPromptPrior(tiny_model, ["sad", "happy", "angry"], ctx_init=PHRASE)
    assert a.emotion_names == ("happy", "angry", "sad")
    pa, pb = a.prior(), b.prior()
    torch.testing.assert_close(pa[[2, 0, 1]], pb)
    assert a.descriptions[1] == EMOTION_DESCRIPTIONS["angry"]


def test_descriptions_cover_the_registry_and_fit_vit_b_32() -> None:
    tok = open_clip.tokenizer.SimpleTokenizer()
    assert sorted(EMOTION_DESCRIPTIONS) == sorted(CANONICAL_EMOTIONS)
    for name in set(MEAD_SPFEM.names) | set(RAVDESS.names) | {"contempt"}:
        assert 1 + 8 + len(tok.encode(EMOTION_DESCRIPTIONS[name])) + 1 <= 40
    # the table in the module docstring is the dict (docs cannot drift from the code)
    import decouple.priors.descriptions as mod

    doc = " ".join(mod.__doc__.split())
    for name, text in EMOTION_DESCRIPTIONS.items():
        assert re.search(rf"- {name}: {re.escape(text)} \(", doc), name


def test_a_description_that_does_not_fit_fails_clearly(tiny_model: torch.nn.Module) -> None:
    long = "a face " * 30
    with pytest.raises(ValueError, match=r"description of 'happy' takes \d+ tokens.*context length "
                                         r"is 48"):
        EmotionPromptPrior(tiny_model, ["happy"], descriptions={"happy": long})
    with pytest.raises(ValueError, match="exactly n_ctx=8"):
        EmotionPromptPrior(tiny_model, ["happy"], ctx_init="too short")
    with pytest.raises(ValueError, match="more than the context length 48"):
        _prior(tiny_model).encode_text([long])
    with pytest.raises(ValueError, match="repeats"):
        EmotionPromptPrior(tiny_model, ["happy", "happiness"])


def test_image_normalisation_is_applied_exactly_once(tiny_model: torch.nn.Module) -> None:
    prior = _prior(tiny_model)
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(3, 3, 64, 64, generator=g)
    mean = torch.tensor(tiny_model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(tiny_model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    manual = tiny_model.encode_image((frames - mean) / std)
    ours = prior.encode_image(frames, normalize=False)
    torch.testing.assert_close(ours, manual, rtol=0, atol=0)
    unnormalised = tiny_model.encode_image(frames)
    twice = tiny_model.encode_image(((frames - mean) / std - mean) / std)
    assert (ours - unnormalised).abs().max() > 1e-2 and (ours - twice).abs().max() > 1e-2
    # already-normalised input is refused rather than normalised a second time
    with pytest.raises(ValueError, match="already normalised"):
        prior.encode_image((frames - mean) / std)
    # uint8 = float / 255
    u8 = (frames * 255).round().to(torch.uint8)
    torch.testing.assert_close(prior.encode_image(u8), prior.encode_image(u8.float() / 255))
    torch.testing.assert_close(prior.encode_image(frames),
                               torch.nn.functional.normalize(manual, dim=-1))


def test_images_are_resized_like_open_clip(tiny_model: torch.nn.Module) -> None:
    """Shortest side to 64 + centre crop, then normalisation: vs open_clip's own transform."""
    import numpy as np
    from PIL import Image

    prior = _prior(tiny_model)
    g = np.random.default_rng(0)
    # a smooth image, so PIL's bicubic and torch's antialiased bicubic agree closely
    yy, xx = np.mgrid[0:96, 0:128] / 40.0
    img = np.stack([np.sin(xx + c) * np.cos(yy - c) for c in (0.0, 1.0, 2.0)], -1)
    img = ((img * 0.4 + 0.5 + 0.01 * g.standard_normal(img.shape)).clip(0, 1) * 255)
    img = img.astype(np.uint8)
    cfg = tiny_model.visual.preprocess_cfg
    transform = open_clip.image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"],
        resize_mode=cfg["resize_mode"], interpolation=cfg["interpolation"])
    ref = transform(Image.fromarray(img))[None]
    ours = prior.preprocess(torch.from_numpy(img).permute(2, 0, 1)[None])
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    assert (ours - ref).abs().mean() < 0.02  # normalised units (1/std ~ 3.7 per unit of RGB)


def test_towers_frozen_while_the_context_learns(tiny_model: torch.nn.Module) -> None:
    prior = _prior(tiny_model)
    assert [n for n, p in prior.named_parameters() if p.requires_grad] == ["ctx"]
    prior.train()
    assert prior.training and not prior.clip.training
    clip_before = {k: v.clone() for k, v in prior.clip.state_dict().items()}
    ctx_before = prior.ctx.detach().clone()
    g = torch.Generator().manual_seed(2)
    images = torch.rand(16, 3, 64, 64, generator=g)
    emotion = torch.arange(16) % 4
    content = torch.arange(16)
    with torch.no_grad():
        z = prior.encode_image(images)
    # CoOp's objective: each image picks its emotion's prompt (softmax over the K anchors)
    opt = torch.optim.Adam([p for p in prior.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(z @ prior.prior().T / 0.07, emotion)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.2, losses
    # the CERL loss of decouple.losses takes the anchors as its prior and trains the context
    prior.ctx.grad = None
    EmotionAugmentedNCE()(z, emotion, content, prior=prior.prior()).backward()
    assert prior.ctx.grad is not None and prior.ctx.grad.abs().sum() > 0
    assert (prior.ctx - ctx_before).abs().max() > 1e-3
    for k, v in prior.clip.state_dict().items():
        assert torch.equal(v, clip_before[k]), k
    assert all(p.grad is None for p in prior.clip.parameters())
    # gradients still reach input images through the frozen image tower
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    prior.encode_image(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unfrozen_towers_get_gradients(tiny_model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    model = open_clip.create_model("decouple-tiny-clip", pretrained=None)
    prior = EmotionPromptPrior(model, NAMES, freeze_clip=False)
    prior.prior().sum().backward()
    assert model.token_embedding.weight.grad is not None


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_prompt_file_round_trip(tiny_model: torch.nn.Module, tmp_path: Path, suffix: str) -> None:
    a = _prior(tiny_model)
    path = a.save_prompts(tmp_path / f"prompts{suffix}")
    assert path.is_file() and not list(tmp_path.glob(".*"))  # no temporary left behind
    b = _prior(tiny_model)
    assert not torch.equal(a.ctx, b.ctx)
    b.load_prompts(path)
    torch.testing.assert_close(b.prior(), a.prior(), rtol=0, atol=0)
    if suffix == ".pt":
        obj = torch.load(path, weights_only=True)
        assert obj["meta"]["emotion_names"] == list(NAMES)


def test_prompt_file_mismatches_fail_naming_keys(tiny_model: torch.nn.Module,
                                                 tmp_path: Path) -> None:
    prior = _prior(tiny_model)
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {"ctx": prior.ctx.detach(), "token_prefix": torch.zeros(1)},
                "meta": {}}, bad)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): token_prefix"):
        prior.load_prompts(bad)
    torch.save({"context": prior.ctx.detach()}, bad)
    with pytest.raises(ValueError,
                       match=r"missing keys \(1\): ctx; unexpected keys \(1\): context"):
        prior.load_prompts(bad)
    torch.save({"ctx": torch.zeros(3, 8, 64)}, bad)
    with pytest.raises(ValueError, match=r"ctx: file \(3, 8, 64\) vs model \(4, 8, 64\)"):
        prior.load_prompts(bad)
    other = EmotionPromptPrior(tiny_model, ["happy", "neutral", "angry", "sad"])
    saved = other.save_prompts(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="emotion_names"):
        prior.load_prompts(saved)


def test_named_architecture_from_a_local_weights_file(tmp_path: Path,
                                                      tiny_model: torch.nn.Module) -> None:
    weights = tmp_path / "tiny-random.pt"
    torch.save(tiny_model.state_dict(), weights)
    prior = EmotionPromptPrior.from_pretrained("decouple-tiny-clip", weights, NAMES)
    for k, v in prior.clip.state_dict().items():
        assert torch.equal(v, tiny_model.state_dict()[k]), k
    from_config = EmotionPromptPrior.from_config(TINY_CLIP_CONFIG, NAMES, weights=weights)
    grey = torch.full((1, 3, 64, 64), 0.5)
    torch.testing.assert_close(from_config.encode_image(grey), prior.encode_image(grey))
    with pytest.raises(FileNotFoundError, match=r"no file at .*missing\.pt.*pretrained='openai'"):
        EmotionPromptPrior.from_pretrained("ViT-B-32", tmp_path / "missing.pt", NAMES)
    with pytest.raises(FileNotFoundError, match="no weights file given"):
        EmotionPromptPrior.from_pretrained("ViT-B-32", None, NAMES)
    with pytest.raises(KeyError, match="unknown open_clip architecture"):
        EmotionPromptPrior.from_pretrained("ViT-Q-99", weights, NAMES)
    # a state dict of another architecture fails naming the file
    wrong = tmp_path / "wrong.pt"
    sd = dict(tiny_model.state_dict())
    sd.pop("ln_final.weight")
    torch.save(sd, wrong)
    with pytest.raises(ValueError, match=r"(?s)wrong\.pt: cannot load it .*ln_final\.weight"):
        EmotionPromptPrior.from_pretrained("decouple-tiny-clip", wrong, NAMES)


def test_a_pretrained_tag_is_never_downloaded(tmp_path: Path, no_network: list[object],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a file literally named like a tag is read as a file, not looked up as a tag."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):
        EmotionPromptPrior.from_pretrained("ViT-B-32", "openai", NAMES)
    torch.manual_seed(0)
    model = open_clip.create_model("decouple-tiny-clip", pretrained=None)
    torch.save(model.state_dict(), tmp_path / "openai")
    prior = EmotionPromptPrior.from_pretrained("decouple-tiny-clip", "openai", NAMES)
    assert prior.dim == 64 and no_network == []


def test_the_docs_table_is_the_dict() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "priors" / "emotion_prompt.md"
    rows = dict(re.findall(r"^\| (\w+) \| (.+?) \(.*\) \|$", page.read_text(), re.MULTILINE))
    assert {k: rows.get(k) for k in EMOTION_DESCRIPTIONS} == dict(EMOTION_DESCRIPTIONS)


def test_custom_text_clip_uses_its_text_tower(tmp_path: Path) -> None:
    """A CustomTextCLIP (text tower under model.text) goes through the same, exact path."""
    import json

    cfg = json.loads(TINY_CLIP_CONFIG.read_text())
    cfg["custom_text"] = True
    config = tmp_path / "decouple-tiny-custom-text.json"
    config.write_text(json.dumps(cfg))
    prior = EmotionPromptPrior.from_config(config, NAMES, ctx_init=PHRASE)
    assert type(prior.clip).__name__ == "CustomTextCLIP"
    tok = prior.tokenizer
    ref = prior.clip.encode_text(tok([f"{PHRASE} {d}" for d in prior.descriptions]),
                                 normalize=True)
    torch.testing.assert_close(prior.prior(), ref, rtol=0, atol=1e-6)


def test_a_bad_config_fails_naming_the_file_and_fields(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-clip.json"
    bad.write_text('{"embed_dim": 64, "vision_cfg": {}}')
    with pytest.raises(ValueError, match=r"not-a-clip\.json: .*missing fields \['text_cfg'\]"):
        EmotionPromptPrior.from_config(bad, NAMES)
    bad.write_text("{oops")
    with pytest.raises(ValueError, match=r"not-a-clip\.json: not a readable JSON"):
        EmotionPromptPrior.from_config(bad, NAMES)
    with pytest.raises(FileNotFoundError, match="no config file"):
        EmotionPromptPrior.from_config(tmp_path / "nope.json", NAMES)
