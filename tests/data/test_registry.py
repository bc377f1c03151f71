"""The emotion registry: the corpus sets, their code maps, protocol subsets and validation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from decouple.data import registry
from decouple.data.registry import (
    CANONICAL_EMOTIONS,
    CREMAD,
    CREMAD_CODES,
    MEAD,
    MEAD_FOLDERS,
    MEAD_SPFEM,
    RAVDESS,
    RAVDESS_CODES,
    EmotionSet,
    canonical_emotion,
    get_emotion_set,
    known_emotion_sets,
    register_emotion_set,
)


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test do not leak into the others."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_canonical_names() -> None:
    assert CANONICAL_EMOTIONS == ("neutral", "calm", "happy", "sad", "angry", "fear",
                                  "disgusted", "surprised", "contempt")


def test_corpus_sets_in_the_contract_order() -> None:
    assert MEAD.name == "mead"
    assert MEAD.names == ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad",
                          "surprised")
    assert MEAD_SPFEM.name == "mead7"
    assert MEAD_SPFEM.names == ("neutral", "angry", "disgusted", "fear", "happy", "sad",
                                "surprised")
    assert RAVDESS.name == "ravdess"
    assert RAVDESS.names == ("neutral", "calm", "happy", "sad", "angry", "fear", "disgusted",
                             "surprised")
    assert CREMAD.name == "cremad"
    assert CREMAD.names == ("angry", "disgusted", "fear", "happy", "neutral", "sad")
    assert [len(s) for s in (MEAD, MEAD_SPFEM, RAVDESS, CREMAD)] == [8, 7, 8, 6]


@pytest.mark.parametrize("s", [MEAD, MEAD_SPFEM, RAVDESS, CREMAD], ids=lambda s: s.name)
def test_ids_and_names_round_trip(s: EmotionSet) -> None:
    for i, name in enumerate(s.names):
        assert s.id(name) == i
        assert s.name_of(i) == name
        assert name in s
    assert list(s) == list(s.names)
    assert get_emotion_set(s.name) is s


def test_code_maps() -> None:
    assert dict(RAVDESS_CODES) == {
        "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
        "06": "fear", "07": "disgusted", "08": "surprised",
    }  # fmt: skip
    assert dict(CREMAD_CODES) == {
        "ANG": "angry", "DIS": "disgusted", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
        "SAD": "sad",
    }  # fmt: skip
    assert sorted(MEAD_FOLDERS) == ["angry", "contempt", "disgusted", "fear", "happy",
                                    "neutral", "sad", "surprised"]
    assert all(MEAD_FOLDERS[k] == k for k in MEAD_FOLDERS)
    # RAVDESS's code order is its id order: code 01 + id.
    assert all(RAVDESS.id(name) == int(code) - 1 for code, name in RAVDESS_CODES.items())
    with pytest.raises(TypeError):
        RAVDESS_CODES["09"] = "x"  # read-only


def test_protocol_subset_drops_contempt_only() -> None:
    assert "contempt" not in MEAD_SPFEM
    assert set(MEAD.names) - set(MEAD_SPFEM.names) == {"contempt"}
    # Ids after contempt move down by one; before it they stay.
    assert MEAD_SPFEM.id("angry") == MEAD.id("angry") == 1
    assert MEAD_SPFEM.id("disgusted") == MEAD.id("disgusted") - 1 == 2


def test_subset_keeps_parent_order_and_rejects_foreign_names() -> None:
    a = MEAD.subset(["surprised", "neutral", "fear"], "a")
    assert a.names == ("neutral", "fear", "surprised")
    assert a.subset(["surprised", "neutral"], "b").names == MEAD.subset(
        ["neutral", "surprised"], "b").names
    with pytest.raises(KeyError, match=r"calm.*valid names: neutral, angry, contempt"):
        MEAD.subset(["calm"], "x")
    with pytest.raises(TypeError):
        MEAD.subset("neutral", "x")  # type: ignore[arg-type]


def test_lookup_errors_list_the_valid_names() -> None:
    with pytest.raises(KeyError, match="'calm' is not in the set 'cremad'; valid names: angry, "
                                       "disgusted, fear, happy, neutral, sad"):
        CREMAD.id("calm")
    with pytest.raises(IndexError, match=r"ids 0\.\.5"):
        CREMAD.name_of(6)
    with pytest.raises(IndexError):
        CREMAD.name_of(-1)
    with pytest.raises(TypeError):
        CREMAD.name_of(True)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known sets: cremad, mead, mead7, ravdess"):
        get_emotion_set("iemocap")


def test_json_round_trip_through_text() -> None:
    for s in (MEAD, MEAD_SPFEM, RAVDESS, CREMAD):
        back = EmotionSet.from_json(json.loads(json.dumps(s.to_json())))
        assert back == s and back.names == s.names


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ([1, 2], "expected an object"),
        ({"name": "x"}, "field 'names'"),
        ({"names": ["sad"]}, "field 'name'"),
        ({"name": "x", "names": "sad"}, "field 'names' must be a list"),
        ({"name": "x", "names": ["sad", "Sad"]}, "field 'names'.*not canonical"),
        ({"name": "x", "names": ["sad", "sad"]}, "repeated names"),
        ({"name": "x", "names": []}, "names is empty"),
        ({"name": "x", "names": ["sad"], "ids": [0]}, "unknown fields"),
    ],
)
def test_from_json_validates(d: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        EmotionSet.from_json(d, where="shards/train-index.json")  # type: ignore[arg-type]
    assert "shards/train-index.json" in str(info.value)


def test_sets_are_immutable_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MEAD.name = "x"  # type: ignore[misc]
    assert EmotionSet("l", ["sad", "happy"]).names == ("sad", "happy")  # list -> tuple
    with pytest.raises(ValueError, match="non-empty str"):
        EmotionSet("", ("sad",))
    with pytest.raises(ValueError, match="'fearful'"):
        EmotionSet("x", ("fearful",))


def test_canonical_emotion_aliases() -> None:
    assert canonical_emotion("Fearful") == "fear"
    assert canonical_emotion(" DISGUST ") == "disgusted"
    assert canonical_emotion("surprise") == "surprised"
    assert canonical_emotion("anger") == "angry"
    assert [canonical_emotion(n) for n in CANONICAL_EMOTIONS] == list(CANONICAL_EMOTIONS)
    with pytest.raises(KeyError, match="canonical names: neutral, calm"):
        canonical_emotion("bored")


@pytest.mark.usefixtures("clean_registry")
def test_register_new_set() -> None:
    s = EmotionSet("ravdess6", RAVDESS.names[:6])
    assert register_emotion_set(s) is s
    assert get_emotion_set("ravdess6") is s
    assert "ravdess6" in known_emotion_sets()
    # The same names again: a no-op returning the registered set.
    assert register_emotion_set(EmotionSet("ravdess6", RAVDESS.names[:6])) is s
    # Other names under a taken name: refused, the old meaning stays.
    with pytest.raises(ValueError, match="already registered"):
        register_emotion_set(EmotionSet("ravdess6", RAVDESS.names[:5]))
    with pytest.raises(ValueError, match="already registered"):
        register_emotion_set(EmotionSet("mead", CREMAD.names))
    assert get_emotion_set("mead") is MEAD


def test_registry_isolation_holds() -> None:
    assert "ravdess6" not in known_emotion_sets()
