"""Generate the SynthTalk corpus into shards, and re-render any clip from its shard metadata.

[generate][decouple.data.synthtalk.corpus.generate] writes, for every speaker of a
[SynthTalkConfig][decouple.data.synthtalk.corpus.SynthTalkConfig], every sentence in every
emotion and level as one **parallel group** (group id `SPEAKER-SENTENCE`, e.g. `S003-002`; its
reference, written first, is the neutral level-1 clip) into the splits `train` and `test` of the
shard format (`decouple.data.shards.ShardWriter`), the speakers divided by
[split_speakers][decouple.data.synthtalk.speakers.split_speakers]. Per clip:

1. speech: espeak-ng ([speak][decouple.data.synthtalk.speech.speak]) with the speaker's voice
   variant and pitch and the prosody of the emotion and level;
2. the per-frame tracks of its phoneme timeline
   ([frame_tracks][decouple.data.synthtalk.visemes.frame_tracks]: mouth, content position,
   phoneme and viseme ids), the expression of the emotion and level for this speaker
   ([expression][decouple.data.synthtalk.expressions.expression]) and the nuisance tracks
   (blinks, head motion, lighting;
   [nuisance_tracks][decouple.data.synthtalk.nuisance.nuisance_tracks]) from a per-clip seed;
3. rendering ([render_frames][decouple.data.synthtalk.render.render_frames]), H.264 video and
   FLAC audio (`decouple.data.io.encode_video`, `encode_audio`);
4. the per-frame arrays ([FRAME_ARRAYS][decouple.data.synthtalk.corpus.FRAME_ARRAYS]), the
   `synthtalk` extra (every parameter re-rendering needs; layout version
   [EXTRA_VERSION][decouple.data.synthtalk.corpus.EXTRA_VERSION]) and `align.npy`, the DTW
   path from the reference's frames, computed from the audio with
   `decouple.data.align.align_audio`, as for the real corpora. **Training uses these paths,
   never `content_pos`**: `content_pos` is the ground truth the paths are scored against.

Groups are made in worker processes (one torch thread each) and written in a fixed order, and
every random choice comes from a seed of the clip, so the output does not depend on the number
of workers. The run writes `synthtalk-summary.json` next to the shards (clips, frames,
seconds, frames per second, the DTW error per split); a complete output with the same
configuration is left as it is.

[render][decouple.data.synthtalk.corpus.render] re-renders a clip from its `synthtalk` extra
alone, optionally with another emotion and intensity (a **counterfactual**: the same speaker,
speech timing, mouth track and nuisance) or other nuisance seeds (the ground truth's own noise
floor); [load_clip][decouple.data.synthtalk.corpus.load_clip] reads a clip back by key.

Examples:
    >>> import tempfile
    >>> cfg = SynthTalkConfig(speakers=2, sentences=1, conditions=(("neutral", 1), ("happy", 3)),
    ...                       workers=1)
    >>> summary = generate(tempfile.mkdtemp(), cfg, progress=False)
    >>> summary["clips"], summary["splits"]["train"]["groups"], summary["splits"]["test"]["clips"]
    (4, 1, 2)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from decouple.data.registry import MEAD, canonical_emotion
from decouple.data.synthtalk.expressions import check_emotion_level
from decouple.data.synthtalk.render import RENDER_SIZES

__all__ = [
    "DATASET",
    "EXTRA",
    "EXTRA_VERSION",
    "FPS_CHOICES",
    "FRAME_ARRAYS",
    "SPLITS",
    "SUMMARY_FILE",
    "Rerendered",
    "SynthTalkConfig",
    "clip_key",
    "generate",
    "iter_clips",
    "load_clip",
    "render",
]

DATASET = "synthtalk"
"""The `dataset` field of every SynthTalk clip."""
EXTRA = "synthtalk"
"""Name of the per-clip JSON extra (`KEY.synthtalk.json`)."""
EXTRA_VERSION = 1
"""Version of the `synthtalk` extra's layout (its `version` field)."""
SPLITS: tuple[str, ...] = ("train", "test")
"""The splits written: train speakers and held-out test speakers."""
FPS_CHOICES: tuple[int, ...] = (25, 30)
"""Supported frame rates."""
SUMMARY_FILE = "synthtalk-summary.json"
"""The summary written next to the shards when a run is complete."""
_CONFIG_FILE = "synthtalk-config.json"  # written first: marks the directory as a SynthTalk run
_SUMMARY_FORMAT = "synthtalk-summary"

FRAME_ARRAYS: Mapping[str, str] = {
    "landmarks": "(t, 68, 2) float32: dlib 68-point landmarks, pixel coordinates (x, y)",
    "content_pos": "(t,) float32: position on the sentence's phoneme timeline (ground truth)",
    "phoneme_id": "(t,) int16: phoneme id (`visemes.PHONEMES`) at frame time i / fps",
    "viseme_id": "(t,) int16: viseme id (`visemes.VISEMES`) at frame time i / fps",
    "mouth": "(t, 4) float32: mouth parameters `visemes.MOUTH_PARAMS`",
    "expression": "(t, 12) float32: expression parameters `expressions.EXPRESSION_PARAMS`",
    "blink": "(t,) float32: eye closure, 1 = shut",
    "head_pose": "(t, 3) float32: head motion (dx, dy, roll)",
    "gain": "(t,) float32: lighting gain",
}
"""The per-frame arrays stored with every clip (`KEY.NAME.npy`, first axis t = frames)."""


# ============================================================================ configuration


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@dataclass(frozen=True)
class SynthTalkConfig:
    """What to generate. The defaults are the demo corpus the recipes train on.

    The default (10 speakers: 8 train, 2 test; 6 sentences; MEAD's eight emotions at levels
    1-3, neutral at level 1 only, 22 renditions per sentence; 64 px, 25 fps) is 1,320 clips,
    generated in about a minute on 2 cores (see the benchmark page).

    Attributes:
        speakers: Number of speakers (`>= 1`); the held-out ones are those of
            [split_speakers][decouple.data.synthtalk.speakers.split_speakers] (every fifth;
            with 2-4 speakers the last one).
        sentences: Sentences per speaker: the first `sentences` of `texts` (every speaker
            says the same sentences, as in MEAD).
        emotions: Emotion names (MEAD's eight by default, `decouple.data.registry.MEAD`;
            aliases such as `"anger"` are accepted and stored canonically).
        levels: Intensity levels 1-3 for the emotions other than neutral (neutral is
            rendered at level 1 only).
        conditions: Explicit `(emotion, level)` pairs instead of `emotions` x `levels`
            (here `("neutral", 2)` is an error).
        texts: The sentence list (None: the 40 sentences of
            [SENTENCES][decouple.data.synthtalk.speech.SENTENCES]); sentence ids are
            `"001"`, `"002"`, ... by position.
        size: Frame size in pixels: 64, 128 or 256.
        fps: Frames per second: 25 or 30.
        seed: Corpus seed (speakers and every per-clip seed derive from it).
        workers: Processes rendering groups (1 = in this process).
        max_samples: Most clips per shard.
        crf: H.264 constant rate factor (18: visually lossless).
        preset: x264 speed preset; `"veryfast"` encodes SynthTalk's flat-shaded frames about
            1.6 times faster than x264's default (`medium`) at the same quality (PSNR 33.9
            against 34.4 dB at 64 px, measured; most of the error is yuv420p's chroma).
        tune: x264 tuning. `"fastdecode,zerolatency"`: no CABAC and no deblocking (cheaper
            decoding), and no B-frames, no lookahead and slice threads instead of frame
            threads. The latter is what makes the output repeatable: with x264's frame
            threads (`encode_video`'s default tuning) two processes encoding at the same time
            on two cores gave different bytes and decoded frames now and then (measured: 2
            variants in 8 encodes of one clip); sliced threads never did, at about 35 % more
            bytes (PSNR 34.2 dB).

    Examples:
        >>> cfg = SynthTalkConfig()
        >>> len(cfg.clip_conditions()), cfg.num_clips
        (22, 1320)
        >>> SynthTalkConfig(emotions=("anger", "neutral"), levels=(3,)).clip_conditions()
        [('neutral', 1), ('angry', 3)]
        >>> SynthTalkConfig(size=100)
        Traceback (most recent call last):
        ...
        ValueError: SynthTalkConfig.size: expected one of (64, 128, 256), got 100
    """

    speakers: int = 10
    sentences: int = 6
    emotions: tuple[str, ...] = MEAD.names
    levels: tuple[int, ...] = (1, 2, 3)
    conditions: tuple[tuple[str, int], ...] | None = None
    texts: tuple[str, ...] | None = None
    size: int = 64
    fps: int = 25
    seed: int = 0
    workers: int = 2
    max_samples: int = 256
    crf: int = 18
    preset: str | None = "veryfast"
    tune: str | None = "fastdecode,zerolatency"

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(
                f"SynthTalkConfig.{name}: expected {expected}, got {getattr(self, name)!r}"
            )

        for name in ("speakers", "sentences", "workers", "max_samples"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "an int >= 1")
        if not _is_int(self.crf) or not 0 <= self.crf <= 51:
            raise bad("crf", "an int in [0, 51]")
        presets = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                   "slower", "veryslow")
        if self.preset is not None and self.preset not in presets:
            raise bad("preset", f"None or one of {presets}")
        if self.tune is not None and (not isinstance(self.tune, str) or not self.tune):
            raise bad("tune", "None or x264 tune names such as 'fastdecode,zerolatency'")
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed", "a non-negative int")
        if not _is_int(self.size) or int(self.size) not in RENDER_SIZES:
            raise bad("size", f"one of {RENDER_SIZES}")
        if isinstance(self.fps, bool) or self.fps not in FPS_CHOICES:
            raise bad("fps", f"one of {FPS_CHOICES}")
        object.__setattr__(self, "fps", int(self.fps))
        object.__setattr__(self, "size", int(self.size))
        # sentences
        if self.texts is not None:
            if isinstance(self.texts, str) or not isinstance(self.texts, Sequence):
                raise bad("texts", "a sequence of sentences")
            texts = tuple(self.texts)
            for i, text in enumerate(texts):
                if not isinstance(text, str) or not any(c.isalnum() for c in text):
                    raise ValueError(
                        f"SynthTalkConfig.texts[{i}]: expected a sentence with at least one "
                        f"letter or digit, got {text!r} (an empty sentence has nothing to say)"
                    )
            object.__setattr__(self, "texts", tuple(t.strip() for t in texts))
        available = len(self._texts())
        if self.sentences > available:
            raise ValueError(
                f"SynthTalkConfig.sentences: {self.sentences} sentences per speaker but only "
                f"{available} texts (pass more texts or fewer sentences)"
            )
        # emotions and levels
        if isinstance(self.emotions, str) or not isinstance(self.emotions, Sequence) \
                or not self.emotions:
            raise bad("emotions", "a non-empty sequence of emotion names")
        object.__setattr__(self, "emotions", tuple(_emotion(e, "emotions") for e in self.emotions))
        if isinstance(self.levels, int | str) or not isinstance(self.levels, Sequence) \
                or not self.levels:
            raise bad("levels", "a non-empty sequence of levels 1-3")
        for level in self.levels:
            if not _is_int(level) or int(level) not in (1, 2, 3):
                raise ValueError(f"SynthTalkConfig.levels: expected levels 1, 2 or 3, got "
                                 f"{level!r}")
        object.__setattr__(self, "levels", tuple(sorted({int(v) for v in self.levels})))
        if self.conditions is not None:
            pairs = []
            for i, item in enumerate(self.conditions):
                try:
                    emotion, level = item
                except (TypeError, ValueError):
                    raise ValueError(f"SynthTalkConfig.conditions[{i}]: expected (emotion, "
                                     f"level), got {item!r}") from None
                emotion = _emotion(emotion, f"conditions[{i}]")
                try:
                    check_emotion_level(emotion, level)
                except ValueError as err:
                    raise ValueError(f"SynthTalkConfig.conditions[{i}]: {err}") from None
                pairs.append((emotion, int(level)))
            if not pairs:
                raise bad("conditions", "at least one (emotion, level) pair")
            if len(set(pairs)) != len(pairs):
                raise bad("conditions", "distinct (emotion, level) pairs")
            object.__setattr__(self, "conditions", tuple(pairs))

    def _texts(self) -> tuple[str, ...]:
        if self.texts is not None:
            return self.texts
        from decouple.data.synthtalk.speech import SENTENCES

        return tuple(s.text for s in SENTENCES)

    def sentence_list(self) -> list[tuple[str, str]]:
        """The `(id, text)` of the sentences every speaker says.

        Returns:
            `sentences` pairs, ids `"001"`, `"002"`, ...

        Examples:
            >>> SynthTalkConfig(sentences=2).sentence_list()[1]
            ('002', 'Please pass me the warm bread.')
        """
        return [(f"{i + 1:03d}", text) for i, text in enumerate(self._texts()[: self.sentences])]

    def clip_conditions(self) -> list[tuple[str, int]]:
        """The `(emotion, level)` of each clip of a group, the reference first.

        The reference is neutral level 1 when it is generated, else the first condition.
        Otherwise in MEAD's emotion order, levels ascending.

        Returns:
            The pairs.

        Examples:
            >>> SynthTalkConfig(emotions=("happy", "neutral"), levels=(1, 3)).clip_conditions()
            [('neutral', 1), ('happy', 1), ('happy', 3)]
        """
        if self.conditions is not None:
            pairs = list(self.conditions)
        else:
            pairs = [(e, lv) for e in self.emotions for lv in
                     ((1,) if e == "neutral" else self.levels)]
            pairs = sorted(set(pairs), key=lambda p: (MEAD.id(p[0]), p[1]))
        if ("neutral", 1) in pairs:
            pairs.remove(("neutral", 1))
            pairs.insert(0, ("neutral", 1))
        return pairs

    @property
    def num_clips(self) -> int:
        """Clips in the corpus: speakers x sentences x conditions."""
        return self.speakers * self.sentences * len(self.clip_conditions())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready settings (stored in the summary; [from_json][decouple.data.synthtalk.corpus.SynthTalkConfig.from_json] reads them).

        Returns:
            `{field: value}` with tuples as lists.

        Examples:
            >>> SynthTalkConfig.from_json(SynthTalkConfig(seed=3).to_json()).seed
            3
        """  # noqa: E501
        d = asdict(self)
        d["emotions"] = list(self.emotions)
        d["levels"] = list(self.levels)
        d["conditions"] = None if self.conditions is None else [list(p) for p in self.conditions]
        d["texts"] = None if self.texts is None else list(self.texts)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SynthTalkConfig:
        """Rebuild from [to_json][decouple.data.synthtalk.corpus.SynthTalkConfig.to_json].

        Args:
            d: The settings.

        Returns:
            The configuration.

        Raises:
            ValueError: Unknown fields or invalid values (named).

        Examples:
            >>> SynthTalkConfig.from_json({"speakers": 3}).speakers
            3
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"SynthTalkConfig: unknown fields {unknown} (known: {sorted(names)})")
        kw: dict[str, Any] = dict(d)
        for name in ("emotions", "levels", "texts"):
            if kw.get(name) is not None:
                kw[name] = tuple(kw[name])
        if kw.get("conditions") is not None:
            kw["conditions"] = tuple(tuple(p) for p in kw["conditions"])
        return cls(**kw)


def _emotion(name: object, where: str) -> str:
    try:
        canon = canonical_emotion(name)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        canon = None
    if canon is None or canon not in MEAD.names:
        raise ValueError(
            f"SynthTalkConfig.{where}: unknown emotion {name!r}; SynthTalk has MEAD's eight "
            f"({', '.join(MEAD.names)})"
        )
    return canon


def clip_key(speaker: str, emotion: str, level: int, sentence: str) -> str:
    """The sample key of a SynthTalk clip.

    Args:
        speaker: Speaker name (`S000`, ...).
        emotion: Canonical emotion.
        level: Intensity level.
        sentence: Sentence id.

    Returns:
        `synthtalk-SPEAKER-EMOTION-LEVEL-SENTENCE`.

    Examples:
        >>> clip_key("S003", "happy", 3, "002")
        'synthtalk-S003-happy-3-002'
    """
    from decouple.data.schema import make_key

    return make_key(DATASET, speaker, emotion, level, sentence)


def _clip_seed(corpus_seed: int, speaker_id: int, sentence: str, emotion: str, level: int
               ) -> int:
    """The per-clip seed (nuisance and caption), a function of the clip's identity only."""
    ss = np.random.SeedSequence([corpus_seed, speaker_id, int(sentence), MEAD.id(emotion), level])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


# ============================================================================ one clip


def _tracks(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every per-frame ground-truth track of a clip from its extra (no landmarks)."""
    from decouple.data.synthtalk.expressions import expression
    from decouple.data.synthtalk.nuisance import nuisance_tracks
    from decouple.data.synthtalk.speakers import SpeakerParams
    from decouple.data.synthtalk.visemes import frame_tracks

    speaker = SpeakerParams.from_json(params["speaker"])
    t = int(params["num_frames"])
    phonemes = [(str(n), float(a), float(b)) for n, a, b in params["timing"]["phonemes"]]
    tr = frame_tracks(phonemes, float(params["fps"]), t)
    nui = nuisance_tracks(t, float(params["fps"]), int(params["nuisance_seed"]))
    expr = expression(params["emotion"], int(params["level"]), speaker)
    return {
        "content_pos": tr["content_pos"].astype(np.float32),
        "phoneme_id": tr["phoneme_id"].astype(np.int16),
        "viseme_id": tr["viseme_id"].astype(np.int16),
        "mouth": tr["mouth"].astype(np.float32),
        "expression": np.repeat(expr[None].astype(np.float32), t, axis=0),
        "blink": nui["blink"],
        "head_pose": nui["head_pose"],
        "gain": nui["gain"],
    }


def _draw(params: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Frames (t, 3, s, s) uint8 and every per-frame array of a clip from its extra."""
    from decouple.data.synthtalk.render import render_frames
    from decouple.data.synthtalk.speakers import SpeakerParams

    arrays = _tracks(params)
    speaker = SpeakerParams.from_json(params["speaker"])
    nuisance = {k: arrays[k] for k in ("blink", "head_pose", "gain")}
    out = render_frames(speaker, arrays["expression"], arrays["mouth"], nuisance,
                        int(params["size"]), threads=1)
    return out.frames, {"landmarks": out.landmarks.astype(np.float32), **arrays}


def _clip_params(config: SynthTalkConfig, speaker: Any, sentence: tuple[str, str],
                 emotion: str, level: int, speech: Any) -> dict[str, Any]:
    from decouple.data.synthtalk.captions import caption

    seed = _clip_seed(config.seed, speaker.speaker_id, sentence[0], emotion, level)
    return {
        "version": EXTRA_VERSION,
        "corpus_seed": config.seed,
        "speaker": speaker.to_json(),
        "sentence": {"id": sentence[0], "text": sentence[1]},
        "emotion": emotion,
        "level": level,
        "prosody": speech.prosody.to_dict(),
        "timing": speech.timing_json(),
        "nuisance_seed": seed,
        "size": config.size,
        "fps": config.fps,
        "num_frames": speech.num_frames(config.fps),
        "caption": caption(speaker, emotion, level, seed=seed),
    }


class _GroupResult(NamedTuple):
    split: str
    clips: list[Any]  # decouple.data.schema.Clip, reference first
    dtw_errors: list[float]  # one per non-reference clip (phonemes)
    linear_errors: list[float]  # the same for a linear time stretch (no alignment)
    seconds: float  # audio seconds


def _make_group(config_json: dict[str, Any], split: str, speaker_json: dict[str, Any],
                sentence: tuple[str, str]) -> _GroupResult:
    """All clips of one (speaker, sentence): speech, rendering, encoding, DTW to the reference."""
    from decouple.data.align import align_audio
    from decouple.data.io import Audio, encode_audio, encode_video
    from decouple.data.schema import ALIGN, Clip, ClipMeta
    from decouple.data.synthtalk.speakers import SpeakerParams
    from decouple.data.synthtalk.speech import speak

    config = SynthTalkConfig.from_json(config_json)
    speaker = SpeakerParams.from_json(speaker_json)
    conditions = config.clip_conditions()
    group = f"{speaker.name}-{sentence[0]}"
    grouped = len(conditions) > 1
    ref_key = clip_key(speaker.name, *conditions[0], sentence[0])
    made = []
    for emotion, level in conditions:
        speech = speak(sentence[1], emotion, level, variant=speaker.voice_variant,
                       base_pitch=speaker.voice_pitch)
        params = _clip_params(config, speaker, sentence, emotion, level, speech)
        frames, arrays = _draw(params)
        key = clip_key(speaker.name, emotion, level, sentence[0])
        meta = ClipMeta(
            dataset=DATASET, speaker=speaker.name, emotion=emotion, emotion_id=MEAD.id(emotion),
            intensity=level, sentence=sentence[0], group=group if grouped else "",
            fps=float(config.fps), sample_rate=speech.sample_rate,
            num_frames=int(params["num_frames"]), num_samples=speech.num_samples,
            source=f"synthtalk:seed={config.seed}", reference=ref_key if grouped else "",
        )  # fmt: skip
        clip = Clip(key, meta, encode_video(frames, float(config.fps), crf=config.crf,
                                            preset=config.preset, tune=config.tune),
                    encode_audio(speech.waveform, speech.sample_rate), arrays, {EXTRA: params})
        made.append((clip, speech))
    ref_clip, ref_speech = made[0]
    dtw_errors: list[float] = []
    linear_errors: list[float] = []
    for clip, speech in made if grouped else []:
        ta, tb = ref_clip.meta.num_frames, clip.meta.num_frames
        if clip is ref_clip:
            path = np.stack([np.arange(ta)] * 2, axis=1)
        else:
            path = align_audio(Audio(ref_speech.waveform, ref_speech.sample_rate),
                               Audio(speech.waveform, speech.sample_rate), ta, tb,
                               float(config.fps)).numpy()
            a, b = ref_clip.arrays["content_pos"], clip.arrays["content_pos"]
            dtw_errors.append(float(np.abs(a[path[:, 0]] - b[path[:, 1]]).mean()))
            lin = np.round(np.arange(ta) * ((tb - 1) / max(ta - 1, 1))).astype(np.int64)
            linear_errors.append(float(np.abs(a - b[lin]).mean()))
        clip.arrays[ALIGN] = path.astype(np.int32)
    seconds = float(sum(s.duration for _, s in made))
    return _GroupResult(split, [c for c, _ in made], dtw_errors, linear_errors, seconds)


# ============================================================================ the run


def _init_worker() -> None:
    torch.set_num_threads(1)


def _worker_context() -> multiprocessing.context.BaseContext:
    # never fork this process (torch and the codecs hold threads and locks): forkserver with
    # the stack preloaded once, else spawn
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["decouple.data.synthtalk.corpus",
                                    "decouple.data.synthtalk.render",
                                    "decouple.data.synthtalk.speech", "decouple.data.io",
                                    "decouple.data.align"])
        return ctx
    return multiprocessing.get_context("spawn")


def _tasks(config: SynthTalkConfig) -> list[tuple[str, dict[str, Any], tuple[str, str]]]:
    from decouple.data.synthtalk.speakers import sample_speakers, split_speakers

    speakers = sample_speakers(config.speakers, config.seed)
    train, test = split_speakers(config.speakers)
    out = []
    for split, ids in zip(SPLITS, (train, test), strict=True):
        for i in ids:
            for sentence in config.sentence_list():
                out.append((split, speakers[i].to_json(), sentence))
    return out


def _results(config: SynthTalkConfig, tasks: Sequence[tuple[str, dict[str, Any], tuple[str, str]]]
             ) -> Iterator[_GroupResult]:
    """Group results in task order (workers finish in any order; the output does not care)."""
    cj = config.to_json()
    if config.workers == 1 or len(tasks) <= 1:
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for task in tasks:
                yield _make_group(cj, *task)
        finally:
            torch.set_num_threads(old)
        return
    window = 3 * config.workers
    with ProcessPoolExecutor(max_workers=config.workers, mp_context=_worker_context(),
                             initializer=_init_worker) as pool:
        todo = deque(tasks)
        queue: deque[Future] = deque()
        try:
            while todo or queue:
                while todo and len(queue) < window:
                    queue.append(pool.submit(_make_group, cj, *todo.popleft()))
                yield queue.popleft().result()
        finally:
            for f in queue:
                f.cancel()


def _error_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"clips": 0, "mean": None, "median": None, "p95": None, "max": None}
    v = np.asarray(values, dtype=np.float64)
    return {"clips": len(v), "mean": round(float(v.mean()), 4),
            "median": round(float(np.median(v)), 4),
            "p95": round(float(np.percentile(v, 95)), 4), "max": round(float(v.max()), 4)}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete it or pass overwrite=True"
                         ) from None
    return d if isinstance(d, dict) else None


def _write_json(path: Path, obj: Any) -> None:
    from decouple.data.io import atomic_write_bytes

    data = json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False).encode("utf-8")
    atomic_write_bytes(path, data + b"\n")


def _complete(out: Path, config: SynthTalkConfig) -> dict[str, Any] | None:
    """The summary of a complete earlier run with the same settings, else None."""
    from decouple.data.shards import index_path

    summary = _read_json(out / SUMMARY_FILE)
    if summary is None or summary.get("format") != _SUMMARY_FORMAT:
        return None
    if summary.get("config") != config.to_json():
        return None
    for split in SPLITS:
        if split in summary.get("splits", {}) and not index_path(out, split).is_file():
            return None
    return summary


def _existing_outputs(out: Path) -> list[str]:
    from decouple.data.shards import index_path

    names = []
    for split in SPLITS:
        names += sorted(p.name for p in out.glob(f"{split}-*.tar"))
        if index_path(out, split).exists():
            names.append(index_path(out, split).name)
    return names


def generate(out_dir: str | os.PathLike[str], config: SynthTalkConfig | None = None, *,
             overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Generate a SynthTalk corpus into shards (splits `train` and `test`) and summarise it.

    See the module docstring for what each clip holds. Output in `out_dir`:
    `{split}-%06d.tar` and `{split}-index.json` for both splits (a split with no speaker, as
    with a single speaker's test split, is not written), `synthtalk-config.json` (written
    first) and `synthtalk-summary.json` (written last, when everything is complete).

    Re-running: a complete output with the same configuration is left untouched (the summary
    is returned with `"nothing_to_do": True`). An interrupted run of the same configuration
    (config file, no summary) is regenerated. Anything else already in `out_dir` (other
    settings, or shards of another corpus) is an error unless `overwrite=True`.

    Args:
        out_dir: Output directory (created).
        config: What to generate (default: [SynthTalkConfig()][decouple.data.synthtalk.corpus.SynthTalkConfig]).
        overwrite: Replace whatever SynthTalk or split files are in `out_dir`.
        progress: Show a progress bar (tqdm, on stderr).

    Returns:
        The summary (also in `synthtalk-summary.json`): `format`, `version`, `config`,
        `output`, `clips`, `groups`, `frames`, `audio_seconds`, `seconds` (wall time of the
        run), `frames_per_second`, `splits` (per split: `speakers`, `clips`, `groups`,
        `frames`, `audio_seconds`, `shards`, `dtw_error` and `linear_error`: statistics over
        the non-reference clips of the mean absolute `content_pos` difference, in phonemes,
        along the stored DTW path and along a linear time stretch), `nothing_to_do`.

    Raises:
        FileExistsError: `out_dir` holds another run or other shards and `overwrite` is False.
        ValueError: An invalid configuration.
        ImportError: espeak-ng (`decouple[speech]`) or the media stack is missing.

    Examples:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> cfg = SynthTalkConfig(speakers=1, sentences=1, conditions=(("neutral", 1),),
        ...                       workers=1)
        >>> generate(out, cfg, progress=False)["splits"]["train"]["clips"]
        1
        >>> generate(out, cfg, progress=False)["nothing_to_do"]
        True
    """  # noqa: E501
    config = SynthTalkConfig() if config is None else config
    if not isinstance(config, SynthTalkConfig):
        raise TypeError(f"config must be a SynthTalkConfig, got {type(config).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        done = _complete(out, config)
        if done is not None:
            return {**done, "nothing_to_do": True}
        previous = _read_json(out / _CONFIG_FILE)
        existing = _existing_outputs(out) + [n for n in (SUMMARY_FILE,) if (out / n).exists()]
        if existing and previous != config.to_json():
            what = ("a SynthTalk run with other settings" if previous is not None else
                    "files that are not from a SynthTalk run of these settings")
            raise FileExistsError(
                f"{out}: holds {what} ({', '.join(existing[:5])}"
                f"{', ...' if len(existing) > 5 else ''}); pass overwrite=True (--overwrite) "
                "to replace them"
            )
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    _write_json(out / _CONFIG_FILE, config.to_json())

    start = time.perf_counter()
    tasks = _tasks(config)
    splits_used = [s for s in SPLITS if any(t[0] == s for t in tasks)]
    stats: dict[str, dict[str, Any]] = {
        s: {"speakers": len({t[1]["speaker_id"] for t in tasks if t[0] == s}), "clips": 0,
            "groups": 0, "frames": 0, "audio_seconds": 0.0, "dtw": [], "linear": []}
        for s in splits_used
    }
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.num_clips, unit="clip", desc="synthtalk", dynamic_ncols=True)
    from decouple.data.shards import ShardWriter

    writers = {s: ShardWriter(out, s, MEAD, fps=float(config.fps), max_samples=config.max_samples,
                              overwrite=True) for s in splits_used}
    try:
        for result in _results(config, tasks):
            writers[result.split].write_group(result.clips)
            st = stats[result.split]
            st["clips"] += len(result.clips)
            st["groups"] += 1
            st["frames"] += sum(c.meta.num_frames for c in result.clips)
            st["audio_seconds"] += result.seconds
            st["dtw"] += result.dtw_errors
            st["linear"] += result.linear_errors
            if bar is not None:
                bar.update(len(result.clips))
        indexes = {s: w.close() for s, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    for split in SPLITS:  # a split this configuration does not have: remove an old one
        if split not in splits_used:
            for name in _existing_outputs(out):
                if name.startswith(f"{split}-"):
                    (out / name).unlink()
    seconds = time.perf_counter() - start
    splits = {}
    for s in splits_used:
        st = stats[s]
        splits[s] = {
            "speakers": st["speakers"], "clips": st["clips"], "groups": st["groups"],
            "frames": st["frames"], "audio_seconds": round(st["audio_seconds"], 3),
            "shards": len(indexes[s].shards),
            "dtw_error": _error_stats(st["dtw"]), "linear_error": _error_stats(st["linear"]),
        }  # fmt: skip
    frames = sum(v["frames"] for v in splits.values())
    summary = {
        "format": _SUMMARY_FORMAT,
        "version": EXTRA_VERSION,
        "config": config.to_json(),
        "output": str(out),
        "clips": sum(v["clips"] for v in splits.values()),
        "groups": sum(v["groups"] for v in splits.values()),
        "frames": frames,
        "audio_seconds": round(sum(v["audio_seconds"] for v in splits.values()), 3),
        "seconds": round(seconds, 3),
        "frames_per_second": round(frames / max(seconds, 1e-9), 1),
        "splits": splits,
        "nothing_to_do": False,
    }
    _write_json(out / SUMMARY_FILE, summary)
    return summary


# ============================================================================ reading back


def iter_clips(root: str | os.PathLike[str], split: str) -> Iterator[Any]:
    """Every clip of a split, in shard order, parsed (media still encoded).

    Args:
        root: The corpus directory.
        split: `"train"` or `"test"`.

    Yields:
        `decouple.data.schema.Clip` objects (`arrays` hold the per-frame arrays and `align`,
        `extras["synthtalk"]` the clip's parameters).

    Raises:
        FileNotFoundError: No index for the split.

    Examples:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> cfg = SynthTalkConfig(speakers=1, sentences=1, conditions=(("sad", 2),), workers=1)
        >>> _ = generate(out, cfg, progress=False)
        >>> [c.key for c in iter_clips(out, "train")]
        ['synthtalk-S000-sad-2-001']
    """
    from decouple.data.schema import Clip
    from decouple.data.shards import iter_samples, read_index

    index = read_index(root, split)
    for path in index.paths:
        for sample in iter_samples(path):
            key = sample["__key__"]
            yield Clip.from_members(key, sample, f"{path.name}:{key}")


def load_clip(root: str | os.PathLike[str], key: str, *, split: str | None = None) -> Any:
    """Read one clip of a SynthTalk corpus by key.

    Args:
        root: The corpus directory.
        key: The sample key ([clip_key][decouple.data.synthtalk.corpus.clip_key]).
        split: Where to look; None: `train`, then `test`.

    Returns:
        The `decouple.data.schema.Clip`; `clip.extras["synthtalk"]` is what
        [render][decouple.data.synthtalk.corpus.render] takes.

    Raises:
        KeyError: No clip with that key in the split(s) (the message names them).

    Examples:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> cfg = SynthTalkConfig(speakers=1, sentences=1, conditions=(("sad", 2),), workers=1)
        >>> _ = generate(out, cfg, progress=False)
        >>> clip = load_clip(out, "synthtalk-S000-sad-2-001")
        >>> clip.extras["synthtalk"]["emotion"], clip.arrays["mouth"].shape[1]
        ('sad', 4)
    """
    from decouple.data.shards import index_path

    splits = [split] if split is not None else [s for s in SPLITS
                                                if index_path(root, s).is_file()]
    for s in splits:
        for clip in iter_clips(root, s):
            if clip.key == key:
                return clip
    raise KeyError(f"{root}: no clip {key!r} in split(s) {splits}")


# ============================================================================ counterfactuals


@dataclass
class Rerendered:
    """A clip re-rendered by [render][decouple.data.synthtalk.corpus.render].

    Attributes:
        frames: (t, 3, size, size) uint8 RGB.
        landmarks: (t, 68, 2) float32 pixel coordinates.
        arrays: The per-frame ground truth, the arrays of
            [FRAME_ARRAYS][decouple.data.synthtalk.corpus.FRAME_ARRAYS] (including
            `landmarks`).
        params: The `synthtalk` extra of the rendered clip (emotion, level, nuisance seed,
            size and caption updated); rendering it again gives the same frames.
    """

    frames: torch.Tensor
    landmarks: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def _check_params(params: object) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"render: params must be the clip's 'synthtalk' extra (a dict), got "
                        f"{type(params).__name__}")
    need = ("version", "speaker", "emotion", "level", "timing", "nuisance_seed", "size", "fps",
            "num_frames")
    missing = [k for k in need if k not in params]
    if missing:
        raise ValueError(f"render: the 'synthtalk' extra lacks fields {missing} (is it a "
                         "SynthTalk clip's extras['synthtalk']?)")
    if params["version"] != EXTRA_VERSION:
        raise ValueError(f"render: 'synthtalk' extra version {params['version']!r}; this code "
                         f"reads version {EXTRA_VERSION}")
    return dict(params)


def render(params: Mapping[str, Any], *, emotion: str | None = None,
           intensity: int | None = None, nuisance_seed: int | None = None,
           size: int | None = None) -> Rerendered:
    """Re-render a clip from its `synthtalk` extra, optionally as a counterfactual.

    The speaker, the speech timing (phoneme timeline), hence the mouth track, content
    positions and phoneme/viseme ids, are always the clip's. With `emotion` / `intensity` the
    expression is that of the target (for this speaker); the nuisance (blinks, head motion,
    lighting) stays unless `nuisance_seed` is given: rendering the same clip with other
    nuisance seeds gives the ground truth's own noise floor for an evaluation. Without any
    option the clip is reproduced exactly (landmarks and arrays bit for bit; frames as they
    were before encoding). Audio is not re-synthesised: a counterfactual keeps the clip's
    speech timing, and the clip's audio is its soundtrack.

    Args:
        params: `clip.extras["synthtalk"]` of a SynthTalk clip.
        emotion: Target emotion (MEAD's eight); None keeps the clip's.
        intensity: Target level 1-3; None keeps the clip's (1 for a neutral target).
        nuisance_seed: Another nuisance seed; None keeps the clip's.
        size: Another frame size (64, 128, 256); None keeps the clip's. Landmarks scale
            with it.

    Returns:
        The [Rerendered][decouple.data.synthtalk.corpus.Rerendered] clip.

    Raises:
        ValueError: Unknown emotion, an invalid level (e.g. 2 for neutral), a bad seed or
            size, or an extra of another version.

    Examples:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> cfg = SynthTalkConfig(speakers=1, sentences=1, conditions=(("happy", 3),), workers=1)
        >>> _ = generate(out, cfg, progress=False)
        >>> clip = load_clip(out, "synthtalk-S000-happy-3-001")
        >>> same = render(clip.extras["synthtalk"])
        >>> bool((same.landmarks == clip.arrays["landmarks"]).all())
        True
        >>> sad = render(clip.extras["synthtalk"], emotion="sad")
        >>> sad.params["emotion"], sad.params["level"], bool((sad.arrays["mouth"] ==
        ...                                                   clip.arrays["mouth"]).all())
        ('sad', 3, True)
        >>> render(clip.extras["synthtalk"], emotion="neutral", intensity=2)
        Traceback (most recent call last):
        ...
        ValueError: render: SynthTalk intensity: neutral has level 1 only, got 2
    """
    from decouple.data.synthtalk.captions import caption
    from decouple.data.synthtalk.speakers import SpeakerParams

    p = _check_params(params)
    if emotion is not None:
        try:
            target = _emotion(emotion, "emotion")
        except ValueError as err:
            raise ValueError(f"render: {str(err).removeprefix('SynthTalkConfig.')}") from None
    else:
        target = str(p["emotion"])
    if intensity is None:
        level = 1 if target == "neutral" else int(p["level"])
    else:
        level = intensity
    try:
        check_emotion_level(target, level)
    except (KeyError, ValueError) as err:
        raise ValueError(f"render: {err.args[0]}") from None
    changed = (target, int(level)) != (p["emotion"], int(p["level"]))
    p["emotion"], p["level"] = target, int(level)
    if nuisance_seed is not None:
        if not _is_int(nuisance_seed) or nuisance_seed < 0:
            raise ValueError(f"render: nuisance_seed must be a non-negative int, got "
                             f"{nuisance_seed!r}")
        changed = changed or int(nuisance_seed) != int(p["nuisance_seed"])
        p["nuisance_seed"] = int(nuisance_seed)
    if size is not None:
        if not _is_int(size) or int(size) not in RENDER_SIZES:
            raise ValueError(f"render: size must be one of {RENDER_SIZES}, got {size!r}")
        p["size"] = int(size)
    if changed:
        p["caption"] = caption(SpeakerParams.from_json(p["speaker"]), target, int(level),
                               seed=int(p["nuisance_seed"]))
    with torch.no_grad():
        frames, arrays = _draw(p)
    return Rerendered(frames, arrays["landmarks"], arrays, p)

