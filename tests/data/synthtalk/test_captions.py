"""SynthTalk captions: deterministic, built from the speaker description and the emotion phrase."""

from __future__ import annotations

import pytest

from decouple.data.registry import MEAD
from decouple.data.synthtalk.captions import EMOTION_PHRASES, TEMPLATES, caption, emotion_phrase
from decouple.data.synthtalk.speakers import sample_speakers


def test_every_emotion_and_level_has_phrases() -> None:
    assert set(EMOTION_PHRASES) == set(MEAD.names)
    for emotion, levels in EMOTION_PHRASES.items():
        assert set(levels) == ({1} if emotion == "neutral" else {1, 2, 3})
        for options in levels.values():
            assert len(options) >= 2 and len(set(options)) == len(options)
    # a level's phrases are its own: no phrase is shared between levels or emotions
    every = [p for levels in EMOTION_PHRASES.values() for o in levels.values() for p in o]
    assert len(every) == len(set(every))


def test_caption_is_a_template_filled_with_speaker_and_phrase() -> None:
    sp = sample_speakers(3, seed=2)[2]
    filled = {t.format(speaker=sp.describe(), emotion=p)
              for t in TEMPLATES for p in EMOTION_PHRASES["happy"][3]}
    seen = {caption(sp, "happy", 3, seed=s) for s in range(200)}
    assert seen <= filled and len(seen) == len(filled)  # every combination is reachable
    assert caption(sp, "happy", 3, seed=7) == caption(sp, "happy", 3, seed=7)
    assert emotion_phrase("happy", 3) == EMOTION_PHRASES["happy"][3][0]
    assert {emotion_phrase("sad", 2, seed=s) for s in range(50)} == set(EMOTION_PHRASES["sad"][2])


def test_caption_errors() -> None:
    sp = sample_speakers(1, seed=0)[0]
    with pytest.raises(ValueError, match="neutral has level 1 only"):
        caption(sp, "neutral", 3)
    with pytest.raises(KeyError, match="unknown emotion"):
        caption(sp, "bored", 1)
    with pytest.raises(ValueError, match="seed"):
        caption(sp, "happy", 1, seed=-3)
