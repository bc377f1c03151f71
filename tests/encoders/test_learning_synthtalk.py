"""Learning on SynthTalk, with fixed seeds: CCRL removes emotion from the content embedding
and adds content; CERL makes emotion readable on held-out speakers.

Both tests train the real modules on real shards (decoded once; the batch builders
`ParallelWindows` / `EmotionBatches` draw every batch) and read the embeddings with
`decouple.metrics.linear_probe` (held-out groups, chance = majority rate).

* CCRL (session set `synthtalk_tiny`: 4 train speakers, 1 held out, 2 sentences, 8 emotions).
  Emotion probe: on the **held-out speaker** only (never seen in training), trained on one
  sentence and tested on the other (both ways, averaged). The cross-speaker emotion probe
  cannot show a decrease here: with 4 training speakers it is already at or below chance for
  the untrained encoder (0.11-0.17, chance 0.166, 10 seeds): a new face moves a random
  embedding more than an expression does. Within the unseen speaker an untrained encoder
  carries emotion (0.36-0.67); CCRL takes most of it away (0.16-0.21). Content probe: the
  viseme of each frame, probe trained on the 4 training speakers, tested on the held-out one.
* CERL needs more speakers than `synthtalk_tiny` has: with its 4 training speakers the
  held-out emotion probe after training ranged over 0.12-0.44 (5 seeds, during development);
  with 16 it is 0.68-0.81 (10 seeds). So this file generates a 20-speaker, 1-sentence set
  (16 train, 4 held out; 160 clips, 7-21 s on 2 loaded cores).

The margins asserted below hold for every run tried (the worst is noted at each assertion;
the numbers are in docs/encoders/content.md and docs/encoders/emotion.md); the tests run seed 0.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from decouple.data import EmotionBatches, ParallelWindows, ShardDataset, read_index
from decouple.encoders import CCRL, CERL, ConvBackbone, EmotionEncoder, VisualContentEncoder
from decouple.metrics import linear_probe
from decouple.priors import EmotionPromptPrior, MelPrior

pytestmark = pytest.mark.slow

SEED = 0
CONTEXT = 4  # mel frames per video frame: the reader's `features` (t, 4, 80)

# CCRL: groups x emotions x aligned frames per step, steps, learning rate
CCRL_B, CCRL_E, CCRL_T, CCRL_STEPS, CCRL_LR = 4, 4, 8, 150, 1e-3
CCRL_QUERY = "first"  # query every rendition with the first one's audio (CCRL's default)
# CERL: emotions x clips per batch, frames per clip window, frames used per clip, steps
CERL_E, CERL_C, CERL_WINDOW, CERL_FRAMES, CERL_STEPS, CERL_LR = 4, 4, 8, 2, 250, 1e-3

# 20 speakers (every fifth held out: 16 train, 4 test), 1 sentence, 8 emotions at level 3
SPEAKERS_SET = {"speakers": 20, "sentences": 1, "levels": (3,), "size": 64, "fps": 25,
                "seed": 0, "workers": 2}


# ----------------------------------------------------------------------------- data


def decoded_groups(root: Any, split: str, features: str | None) -> list[dict[str, Any]]:
    """Every parallel group of a split, decoded once (whole clips, as ShardDataset yields)."""
    ds = ShardDataset(root, split, batch_size=1, unit="group", features=features,
                      context=CONTEXT, shuffle=False)  # fmt: skip
    return list(ds)


def frames_of(groups: list[dict[str, Any]]) -> SimpleNamespace:
    """All frames of all clips with their labels: video (n, 3, h, w), features (n, c, f) (if
    decoded), emotion (n,), speaker and sentence (n lists), viseme (n,)."""
    video, feats, emotion, speaker, sentence, viseme = [], [], [], [], [], []
    for group in groups:
        for clip in group["clips"]:
            t, meta = clip["video"].shape[0], clip["meta"]
            video.append(clip["video"])
            if "features" in clip:
                feats.append(clip["features"])
            emotion += [meta.emotion_id] * t
            speaker += [meta.speaker] * t
            sentence += [meta.sentence] * t
            viseme.append(torch.from_numpy(clip["arrays"]["viseme_id"].astype(np.int64)))
    return SimpleNamespace(
        video=torch.cat(video), features=torch.cat(feats) if feats else None,
        emotion=torch.tensor(emotion), speaker=speaker, sentence=sentence,
        viseme=torch.cat(viseme),
    )  # fmt: skip


def speakers_of(groups: list[dict[str, Any]]) -> list[str]:
    return sorted({c["meta"].speaker for g in groups for c in g["clips"]})


@torch.no_grad()
def embed(encoder: torch.nn.Module, frames: SimpleNamespace, stride: int = 1) -> torch.Tensor:
    """Embeddings of every `stride`-th frame in eval mode (content: with its own clip's audio)."""
    was = encoder.training
    encoder.eval()
    index = torch.arange(0, frames.video.shape[0], stride)
    out = []
    for chunk in index.split(256):
        if frames.features is None:
            out.append(encoder(frames.video[chunk]))
        else:
            out.append(encoder(frames.video[chunk], frames.features[chunk].flatten(1)))
    encoder.train(was)
    return torch.cat(out)


# ----------------------------------------------------------------------------- CCRL


def ccrl_probes(z: torch.Tensor, frames: SimpleNamespace, held_out: list[str]) -> dict[str, Any]:
    """emotion: on the held-out speakers, probe trained on one sentence, tested on the other
    (mean accuracy and chance over the directions); emotion_speakers: the cross-speaker
    emotion probe; content: the viseme, probe trained on the training speakers."""
    held = torch.tensor([s in held_out for s in frames.speaker])
    sentences = [s for s, h in zip(frames.sentence, held.tolist(), strict=True) if h]
    runs = [linear_probe(z[held], frames.emotion[held], sentences, test_groups=[s])
            for s in sorted(set(sentences))]  # fmt: skip
    return {
        "emotion": sum(r.accuracy for r in runs) / len(runs),
        "emotion_chance": sum(r.chance for r in runs) / len(runs),
        "emotion_speakers": linear_probe(z, frames.emotion, frames.speaker,
                                         test_groups=held_out),
        "content": linear_probe(z, frames.viseme, frames.speaker, test_groups=held_out),
    }  # fmt: skip


def train_ccrl(module: CCRL, groups: list[dict[str, Any]], seed: int) -> list[float]:
    """Short CCRL training on aligned parallel windows of the training groups."""
    windows = ParallelWindows(emotions=CCRL_E, window=CCRL_T)
    rng = random.Random(seed)
    opt = torch.optim.Adam(module.parameters(), lr=CCRL_LR)
    losses = []
    for _ in range(CCRL_STEPS):
        # ParallelWindows is the ShardDataset transform; applied here to groups decoded once,
        # with a fresh seed per draw, so every step has new groups, emotions and windows
        items = [windows(dict(g, seed=rng.randrange(2**31))) for g in rng.sample(groups, CCRL_B)]
        batch = default_collate([{k: it[k] for k in ("video", "emotion", "features")}
                                 for it in items])  # fmt: skip
        loss = module.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def ccrl_experiment(root: Any, seed: int) -> dict[str, Any]:
    """Probes of the untrained and the CCRL-trained content encoder, and the losses."""
    train_groups = decoded_groups(root, "train", "mel")
    test_groups = decoded_groups(root, "test", "mel")
    held_out = speakers_of(test_groups)
    frames = frames_of(train_groups + test_groups)
    assert frames.features.shape[1:] == (CONTEXT, 80)

    torch.manual_seed(seed)
    prior = MelPrior(context=CONTEXT)  # the reader's features are its windows, flattened alike
    encoder = VisualContentEncoder(ConvBackbone((16, 32, 64), depth=1), audio_dim=prior.dim,
                                   dim=64, heads=4)  # fmt: skip
    module = CCRL(encoder, query_audio=CCRL_QUERY)  # EmotionAwareNCE(), tau 0.07
    before = ccrl_probes(embed(encoder, frames), frames, held_out)
    losses = train_ccrl(module, train_groups, seed)
    after = ccrl_probes(embed(encoder, frames), frames, held_out)
    report = (f"emotion (held-out speaker, across sentences) {before['emotion']:.3f} -> "
              f"{after['emotion']:.3f} (chance {before['emotion_chance']:.3f}); emotion across "
              f"speakers {before['emotion_speakers'].accuracy:.3f} -> "
              f"{after['emotion_speakers'].accuracy:.3f} (chance "
              f"{after['emotion_speakers'].chance:.3f}); viseme {before['content'].accuracy:.3f}"
              f" -> {after['content'].accuracy:.3f} (chance {after['content'].chance:.3f}); "
              f"loss {np.mean(losses[:5]):.2f} -> {np.mean(losses[-5:]):.2f}")  # fmt: skip
    return {"before": before, "after": after, "losses": losses, "held_out": held_out,
            "train_speakers": speakers_of(train_groups), "report": report}


def test_ccrl_removes_emotion_and_adds_content(synthtalk_tiny: Any) -> None:
    run = ccrl_experiment(synthtalk_tiny.root, SEED)
    assert run["held_out"] == ["S004"] and len(run["train_speakers"]) == 4
    before, after, losses, report = run["before"], run["after"], run["losses"], run["report"]
    chance = before["emotion_chance"]
    # In brackets: the worst of 15 runs (seeds 0-9 on this set, 0-4 on the same set generated
    # with corpus seed 1: other speakers).
    # There is emotion to remove: the untrained encoder carries it [chance + 0.197].
    assert before["emotion"] >= chance + 0.12, report
    # CCRL removes it [drop 0.164] and at least half of what is above chance [0.367 left].
    assert after["emotion"] <= before["emotion"] - 0.1, report
    assert after["emotion"] - chance <= 0.5 * (before["emotion"] - chance), report
    # None is readable across speakers either [chance + 0.020].
    assert after["emotion_speakers"].accuracy <= after["emotion_speakers"].chance + 0.1, report
    # Content rises [rise 0.040; after: chance + 0.108]. The noisiest number: one held-out
    # speaker, and the untrained encoder's viseme probe ranges over 0.08-0.34.
    assert after["content"].accuracy >= before["content"].accuracy + 0.03, report
    assert after["content"].accuracy >= after["content"].chance + 0.07, report
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), report  # [0.617]


# ----------------------------------------------------------------------------- CERL


@pytest.fixture(scope="module")
def synthtalk_speakers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SynthTalk set with enough speakers for a cross-speaker emotion probe (SPEAKERS_SET)."""
    pytest.importorskip("espeakng_loader")
    from decouple.data.synthtalk.corpus import SynthTalkConfig, generate

    root = tmp_path_factory.mktemp("synthtalk_speakers")
    generate(root, SynthTalkConfig(**SPEAKERS_SET), progress=False)
    return root


def emotion_stream(items: list[dict[str, Any]], seed: int) -> Any:
    """EmotionBatches over the decoded windows, reshuffled every pass."""
    epoch = 0
    while True:
        order = items[:]
        random.Random(seed * 1000 + epoch).shuffle(order)
        yield from EmotionBatches(order, CERL_E, CERL_C, seed=seed * 1000 + epoch)
        epoch += 1


def cerl_experiment(root: Any, seed: int) -> dict[str, Any]:
    """The held-out-speaker emotion probe of the untrained and the CERL-trained encoder."""
    names = read_index(root, "train").emotion_set.names
    windows = ShardDataset(root, "train", batch_size=1, window=CERL_WINDOW,
                           windows_per_clip="all", features=None, seed=seed)  # fmt: skip
    keep = ("video", "emotion", "group", "speaker", "sentence")
    items = [{k: w[k] for k in keep} for w in windows]  # decoded once
    test_groups = decoded_groups(root, "test", None)
    held_out = speakers_of(test_groups)
    frames = frames_of(decoded_groups(root, "train", None) + test_groups)

    torch.manual_seed(seed)
    prior = EmotionPromptPrior.tiny(names)  # rows in the split's emotion order
    tower = ConvBackbone((16, 32, 64, 128), depth=1)  # 64 px -> 128 x 4 x 4, averaged
    encoder = EmotionEncoder(tower, tower_dim=tower.out_channels, dim=prior.dim, hidden=128)
    module = CERL(encoder, prior, emotion_names=names, frames_per_clip=CERL_FRAMES)
    labels, speakers = frames.emotion[::2], frames.speaker[::2]

    def probe() -> Any:
        return linear_probe(embed(encoder, frames, stride=2), labels, speakers,
                            test_groups=held_out)  # fmt: skip

    before = probe()
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=CERL_LR)
    stream = emotion_stream(items, seed)
    ctx0 = prior.ctx.detach().clone()
    for _ in range(CERL_STEPS):
        out = module(next(stream))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = probe()
    report = (f"emotion on held-out speakers {held_out}: {before.accuracy:.3f} -> "
              f"{after.accuracy:.3f} (chance {after.chance:.3f}, probe train accuracy "
              f"{after.train_accuracy:.3f}); last prior_acc {float(out['prior_acc']):.2f}")
    return {"before": before, "after": after, "held_out": held_out, "report": report,
            "ctx_changed": not torch.equal(prior.ctx.detach(), ctx0)}


def test_cerl_emotion_readable_on_held_out_speakers(synthtalk_speakers: Any) -> None:
    run = cerl_experiment(synthtalk_speakers, SEED)
    before, after, report = run["before"], run["after"], run["report"]
    assert len(run["held_out"]) == 4
    assert run["ctx_changed"]  # the prompts learned with the encoder
    # The worst of 13 runs (seeds 0-9 on this set, 0-2 with corpus seed 1): after = chance +
    # 0.335, after = before + 0.268.
    assert after.accuracy >= after.chance + 0.25, report
    assert after.accuracy >= before.accuracy + 0.2, report
