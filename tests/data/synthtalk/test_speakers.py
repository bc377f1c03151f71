"""SynthTalk speakers: sampling from a seed, JSON round trip, voice variants, fixed split."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from decouple.data.synthtalk.speakers import (
    AGE_WORDS,
    FACE_SHAPE_WORDS,
    HAIR_COLOURS,
    HAIR_STYLES,
    VOICE_VARIANTS,
    SpeakerParams,
    sample_speakers,
    split_speakers,
)


def test_same_seed_same_speakers_and_speaker_i_independent_of_n() -> None:
    a = sample_speakers(6, seed=11)
    assert a == sample_speakers(6, seed=11)
    assert sample_speakers(3, seed=11) == a[:3]
    b = sample_speakers(6, seed=12)
    assert all(x != y for x, y in zip(a, b, strict=True))
    assert len({(s.face_width, s.eye_spacing) for s in a}) == 6  # identities differ


def test_fields_in_documented_ranges_and_caption_words() -> None:
    speakers = sample_speakers(200, seed=0)
    for s in speakers:
        assert 0.25 <= s.face_width <= 0.30 and 0.28 <= s.face_height <= 0.32
        assert 0.62 <= s.jaw_width <= 0.92
        assert 0.105 <= s.eye_spacing <= 0.125 and 0.045 <= s.eye_size <= 0.056
        assert 0.013 <= s.brow_thickness <= 0.026
        assert 35.0 <= s.voice_pitch <= 65.0
        assert s.hair_colour in HAIR_COLOURS and s.voice_variant in VOICE_VARIANTS
        assert s.age_word in AGE_WORDS and s.face_shape_word in FACE_SHAPE_WORDS
        assert s.hair_style_name == HAIR_STYLES[s.hair_style]
        if s.hair_colour in ("grey", "white"):
            assert s.age_word == "older"
        text = s.describe()
        assert s.age_word in text and s.hair_colour in text and s.face_shape_word in text
    # every category shows up in a corpus of 200
    assert {s.hair_style for s in speakers} == set(range(len(HAIR_STYLES)))
    assert {s.age_word for s in speakers} == set(AGE_WORDS)
    assert {s.face_shape_word for s in speakers} == set(FACE_SHAPE_WORDS)
    assert {s.voice_gender for s in speakers} == {"male", "female"}
    assert len({s.voice_variant for s in speakers}) == len(VOICE_VARIANTS)


def test_json_round_trip_is_exact() -> None:
    for s in sample_speakers(20, seed=5):
        text = json.dumps(s.to_json())
        back = SpeakerParams.from_json(json.loads(text))
        assert back == s
        assert SpeakerParams.from_json(text) == s
        for f in dataclasses.fields(s):  # bit-exact floats, not just close
            assert repr(getattr(back, f.name)) == repr(getattr(s, f.name))


def test_json_errors_name_the_field() -> None:
    d = sample_speakers(1, seed=0)[0].to_json()
    with pytest.raises(ValueError, match="missing fields \\['eye_size'\\]"):
        SpeakerParams.from_json({k: v for k, v in d.items() if k != "eye_size"})
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        SpeakerParams.from_json({**d, "colour": 1})
    with pytest.raises(ValueError, match="skin"):
        SpeakerParams.from_json({**d, "skin": [0.5, 0.5]})
    with pytest.raises(ValueError, match="skin"):
        SpeakerParams.from_json({**d, "skin": [0.5, 0.5, 1.5]})
    with pytest.raises(ValueError, match="voice_variant"):
        SpeakerParams.from_json({**d, "voice_variant": "Demonic"})
    with pytest.raises(ValueError, match="hair_style"):
        SpeakerParams.from_json({**d, "hair_style": 9})
    with pytest.raises(ValueError, match="face_width"):
        SpeakerParams.from_json({**d, "face_width": float("nan")})


def test_voice_variants_exist_in_espeak_data() -> None:
    espeakng_loader = pytest.importorskip("espeakng_loader")
    folder = os.path.join(espeakng_loader.get_data_path(), "voices", "!v")
    from decouple.data.synthtalk.speech import available_variants

    present = set(os.listdir(folder))
    assert set(available_variants()) == present  # the one listing of the variants
    assert set(VOICE_VARIANTS) <= present
    for name, gender in VOICE_VARIANTS.items():  # the declared gender matches the variant file
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as fh:
            assert f"gender {gender}" in fh.read()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 12, 37, 100])
def test_split_is_fixed_disjoint_and_covers(n: int) -> None:
    train, test = split_speakers(n)
    assert sorted(train + test) == list(range(n))
    assert not set(train) & set(test)
    assert split_speakers(n) == (train, test)
    if n >= 2:
        assert len(test) >= 1 and len(train) >= 1
    if n >= 10:
        assert abs(len(test) / n - 0.2) < 0.05
    if n >= 5:
        assert test == [i for i in range(n) if i % 5 == 4]  # growing n keeps earlier splits


def test_bad_counts_and_seeds() -> None:
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="number of speakers"):
            sample_speakers(n, seed=0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="number of speakers"):
            split_speakers(n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        sample_speakers(2, seed=-1)
