"""SynthTalk expressions: MEAD's eight emotions as action vectors, levels, per-speaker variation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from decouple.data.registry import MEAD
from decouple.data.synthtalk.expressions import (
    EMOTION_TABLE,
    EXPRESSION_PARAMS,
    INTENSITY_SCALE,
    expression,
)
from decouple.data.synthtalk.speakers import sample_speakers

P = {name: i for i, name in enumerate(EXPRESSION_PARAMS)}


def levels(emotion: str) -> list[int]:
    return [1] if emotion == "neutral" else [1, 2, 3]


def test_table_covers_mead_and_has_the_interface_actions_first() -> None:
    assert tuple(EMOTION_TABLE) == MEAD.names
    assert EXPRESSION_PARAMS[:10] == (
        "brow_raise", "brow_lower", "brow_inner_raise", "lid_open", "cheek_raise",
        "lip_corner_pull", "lip_corner_depress", "nose_wrinkle", "lip_press", "jaw",
    )
    assert not EMOTION_TABLE["neutral"].any()
    with pytest.raises(ValueError):
        EMOTION_TABLE["happy"][0] = 1.0  # read-only


@pytest.mark.parametrize(
    ("emotion", "positive", "negative"),
    [
        ("angry", ["brow_lower", "lip_press"], ["lid_open"]),
        ("happy", ["lip_corner_pull", "cheek_raise"], []),
        ("sad", ["brow_inner_raise", "lip_corner_depress"], []),
        ("surprised", ["brow_raise", "lid_open", "jaw"], []),
        ("fear", ["brow_raise", "brow_inner_raise", "lid_open", "lip_stretch"], []),
        ("disgusted", ["nose_wrinkle", "brow_lower", "lip_corner_depress"], []),
        ("contempt", ["lip_corner_pull", "lip_corner_asym"], []),
    ],
)
def test_each_emotion_uses_its_actions(
    emotion: str, positive: list[str], negative: list[str]
) -> None:
    v = expression(emotion, 3)
    for name in positive:
        assert v[P[name]] >= 0.5, name
    for name in negative:
        assert v[P[name]] <= -0.3, name
    if emotion != "contempt":
        assert v[P["lip_corner_asym"]] == 0.0  # only contempt is one-sided
    assert v[P["lip_corner_pull"]] * v[P["lip_corner_depress"]] == 0.0  # never both


def test_emotions_are_distinct_vectors() -> None:
    for a, b in itertools.combinations(MEAD.names, 2):
        va, vb = expression(a, levels(a)[-1]), expression(b, levels(b)[-1])
        assert np.abs(va - vb).sum() > 1.0, (a, b)


def test_intensity_scales_the_table_and_levels_stay_ordered() -> None:
    speakers = sample_speakers(10, seed=2)
    asym = P["lip_corner_asym"]
    for emotion in MEAD.names:
        for level in levels(emotion):
            plain = expression(emotion, level)
            want = EMOTION_TABLE[emotion] * np.float32(INTENSITY_SCALE[level])
            want[asym] = EMOTION_TABLE[emotion][asym]
            np.testing.assert_allclose(plain, want, rtol=0, atol=1e-7)
        for sp in speakers:
            norms = [np.abs(np.delete(expression(emotion, lv, sp), asym)).sum()
                     for lv in levels(emotion)]
            assert norms == sorted(norms)
            if emotion != "neutral":
                assert norms[0] < norms[1] < norms[2]


def test_per_speaker_variation_is_small_deterministic_and_differs() -> None:
    speakers = sample_speakers(30, seed=4)
    for emotion in MEAD.names:
        level = levels(emotion)[-1]
        table = expression(emotion, level)
        got = np.stack([expression(emotion, level, sp) for sp in speakers])
        nz = table != 0
        ratio = got[:, nz] / table[nz]
        assert ((ratio >= 0.8 - 1e-6) & (ratio <= 1.2 + 1e-6)).all()
        assert (got[:, ~nz] == 0).all()  # zeros stay zeros: neutral stays neutral
        if nz.any():
            assert ratio.std() > 0.02  # speakers really vary
            assert len({row.tobytes() for row in got}) == len(speakers)
        np.testing.assert_array_equal(got[0], expression(emotion, level, speakers[0]))
        assert got.dtype == np.float32 and got.shape == (30, len(EXPRESSION_PARAMS))


def test_bad_emotions_and_levels() -> None:
    with pytest.raises(KeyError, match=r"unknown emotion 'joyful'.*neutral, angry"):
        expression("joyful", 1)
    with pytest.raises(KeyError, match="calm"):
        expression("calm", 1)  # canonical, but not one of MEAD's eight
    with pytest.raises(ValueError, match="neutral has level 1 only, got 2"):
        expression("neutral", 2)
    for level in (0, 4, -1):
        with pytest.raises(ValueError, match="expected 1, 2 or 3"):
            expression("happy", level)
    for level in (2.0, True, "3"):
        with pytest.raises(ValueError, match="expected an int"):
            expression("happy", level)  # type: ignore[arg-type]
