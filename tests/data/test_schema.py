"""The sample schema: ClipMeta validation, key rules, members of a sample, no pickles."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from decouple.data.schema import (
    MAX_KEY_LENGTH,
    SCHEMA_VERSION,
    Clip,
    ClipMeta,
    SchemaError,
    SchemaVersionError,
    ShardError,
    check_key,
    decode_array,
    encode_array,
    make_key,
    member_problems,
)

WHERE = "train-000007.tar:M003-angry-3-001"


def meta_dict(**overrides) -> dict:
    d = {
        "dataset": "mead",
        "speaker": "M003",
        "emotion": "angry",
        "emotion_id": 1,
        "intensity": 3,
        "sentence": "001",
        "group": "M003-001",
        "fps": 25.0,
        "sample_rate": 16000,
        "num_frames": 50,
        "num_samples": 32000,
        "source": "M003/video/front/angry/level_3/001.mp4",
        "reference": "M003-neutral-1-001",
    }
    d.update(overrides)
    return d


def test_schema_version_is_two() -> None:
    assert SCHEMA_VERSION == 2


def test_extras_round_trip_and_errors() -> None:
    meta = ClipMeta(**meta_dict())
    params = {"seed": 7, "speaker": {"skin": [0.5, 0.25, 0.125]}, "text": "h\u00e9llo"}
    clip = Clip("k1", meta, b"v", b"a", {"x": np.zeros((2, 2), np.float32)}, {"params": params})
    members = clip.to_members()
    assert list(members) == ["json", "mp4", "flac", "x.npy", "params.json"]
    assert json.loads(members["params.json"]) == params
    back = Clip.from_members("k1", members, "t.tar:k1")
    assert back.extras == {"params": params} and back.arrays["x"].shape == (2, 2)
    with pytest.raises(SchemaError, match="not JSON-serialisable"):
        Clip("k1", meta, b"v", b"a", extras={"p": {"v": float("nan")}}).to_members()
    with pytest.raises(SchemaError, match="expected a JSON object"):
        Clip("k1", meta, b"v", b"a", extras={"p": [1, 2]}).to_members()  # type: ignore[dict-item]
    with pytest.raises(SchemaError, match="extra name"):
        Clip("k1", meta, b"v", b"a", extras={"a.b": {}}).to_members()
    with pytest.raises(SchemaError, match="share this name"):
        Clip("k1", meta, b"v", b"a", {"p": np.zeros(2)}, {"p": {}}).to_members()
    bad = dict(members, **{"params.json": b"[1]"})
    match = r"t\.tar:k1: field 'params\.json': expected a JSON object"
    with pytest.raises(SchemaError, match=match):
        Clip.from_members("k1", bad, "t.tar:k1")
    bad = dict(members, **{"params.json": b"\xff{"})
    with pytest.raises(SchemaError, match="not valid UTF-8 JSON"):
        Clip.from_members("k1", bad, "t.tar:k1")
    assert member_problems("k1", dict(members, **{"a b.json": b"{}"}))[0][1].startswith(
        "extra name 'a b'")


def test_meta_round_trip() -> None:
    meta = ClipMeta(**meta_dict())
    d = meta.to_json()
    assert d == meta_dict()
    assert list(d) == list(meta_dict())  # field order is the documented one
    assert ClipMeta.from_json(json.loads(json.dumps(d)), WHERE) == meta
    data = meta.to_bytes()
    assert json.loads(data.decode("utf-8")) == meta_dict()
    assert ClipMeta.from_bytes(data, WHERE) == meta


def test_meta_accepts_integer_fps_and_stores_a_float() -> None:
    meta = ClipMeta.from_json(meta_dict(fps=30), WHERE)
    assert meta.fps == 30.0 and isinstance(meta.fps, float)
    assert json.loads(meta.to_bytes())["fps"] == 30.0


def test_meta_without_group() -> None:
    meta = ClipMeta.from_json(meta_dict(group="", reference=""), WHERE)
    assert meta.group == "" and meta.reference == ""


def test_meta_keeps_unicode_text() -> None:
    meta = ClipMeta.from_json(meta_dict(source="Schauspieler/Ärger.mp4"), WHERE)
    assert ClipMeta.from_bytes(meta.to_bytes(), WHERE).source == "Schauspieler/Ärger.mp4"


@pytest.mark.parametrize("field", list(meta_dict()))
def test_missing_field_is_named(field: str) -> None:
    d = meta_dict()
    del d[field]
    with pytest.raises(SchemaError) as info:
        ClipMeta.from_json(d, WHERE)
    assert info.value.where == WHERE and info.value.field == field
    assert str(info.value).startswith(f"{WHERE}: field '{field}': missing")


def test_unknown_field_is_named() -> None:
    with pytest.raises(SchemaError) as info:
        ClipMeta.from_json(meta_dict(speaker_name="x"), WHERE)
    assert info.value.field == "speaker_name"
    assert "unknown field" in str(info.value) and WHERE in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("dataset", 3, "expected str"),
        ("dataset", "", "non-empty"),
        ("speaker", None, "expected str"),
        ("emotion", "", "non-empty"),
        ("emotion_id", True, "expected int"),
        ("emotion_id", 1.0, "expected int"),
        ("emotion_id", "1", "expected int"),
        ("emotion_id", -1, ">= 0"),
        ("intensity", -2, ">= 0"),
        ("sentence", "", "non-empty"),
        ("group", "M003.001", "[A-Za-z0-9_-]"),
        ("group", 5, "expected str"),
        ("fps", 0, "positive number"),
        ("fps", -25.0, "positive number"),
        ("fps", math.nan, "positive number"),
        ("fps", math.inf, "positive number"),
        ("fps", "25", "expected float"),
        ("fps", False, "expected float"),
        ("sample_rate", 0, "positive integer"),
        ("sample_rate", 16000.0, "expected int"),
        ("num_frames", 0, ">= 1"),
        ("num_samples", 0, ">= 1"),
        ("num_frames", 50.0, "expected int"),
        ("source", None, "expected str"),
        ("reference", "a/b", "sample key"),
    ],
)
def test_bad_value_is_named(field: str, value: object, expected: str) -> None:
    with pytest.raises(SchemaError) as info:
        ClipMeta.from_json(meta_dict(**{field: value}), WHERE)
    assert info.value.field == field
    assert str(info.value).startswith(f"{WHERE}: field '{field}': ")
    assert expected in str(info.value)
    # the same rule holds when the dataclass is built directly
    with pytest.raises(SchemaError, match=f"field '{field}'"):
        ClipMeta(**meta_dict(**{field: value}))


@pytest.mark.parametrize(("group", "reference"), [("", "M003-neutral-1-001"), ("M003-001", "")])
def test_group_and_reference_go_together(group: str, reference: str) -> None:
    with pytest.raises(SchemaError, match="field 'reference': must be '' exactly when group"):
        ClipMeta.from_json(meta_dict(group=group, reference=reference), WHERE)


@pytest.mark.parametrize("value", [[1, 2], "text", None, 3])
def test_meta_must_be_an_object(value: object) -> None:
    with pytest.raises(SchemaError, match="must be a JSON object"):
        ClipMeta.from_json(value, WHERE)


@pytest.mark.parametrize("data", [b'{"dataset": "mead",', b"\xff\xfe{}", b"", b"NaN"])
def test_corrupt_json_bytes(data: bytes) -> None:
    with pytest.raises(SchemaError) as info:
        ClipMeta.from_bytes(data, WHERE)
    assert info.value.where == WHERE
    assert ("not valid JSON" in str(info.value)) or ("JSON object" in str(info.value))


def test_to_bytes_refuses_nothing_it_wrote() -> None:
    meta = ClipMeta(**meta_dict())
    meta.fps = math.nan  # mutated after validation: serialising must not write NaN
    with pytest.raises(ValueError):
        meta.to_bytes()


# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key", ["a", "M003-angry-3-001", "clip_01", "A-b_C-9", "x" * MAX_KEY_LENGTH]
)
def test_valid_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "a.b", "a/b", "a b", "ä", "x" * (MAX_KEY_LENGTH + 1), None, 3, "a\nb", "__key__."]
)
def test_invalid_keys(key: object) -> None:
    with pytest.raises(SchemaError) as info:
        check_key(key, "train-000000.tar")
    assert info.value.field == "key" and info.value.where == "train-000000.tar"
    assert "[A-Za-z0-9_-]" in str(info.value)


def test_make_key() -> None:
    assert make_key("mead", "M003", "angry", "level_3", "001") == "mead-M003-angry-level_3-001"
    assert make_key("cremad", "1001_DFA.flv", 2) == "cremad-1001_DFA_flv-2"
    assert make_key("a b", "c/d") == "a_b-c_d"
    with pytest.raises(SchemaError):
        make_key("x" * (MAX_KEY_LENGTH + 1))


# ----------------------------------------------------------------------------- members


def make_clip(**arrays: np.ndarray) -> Clip:
    meta = ClipMeta(**meta_dict(num_frames=4))
    return Clip("M003-angry-3-001", meta, b"\x00mp4", b"fLaC..", dict(arrays))


def test_members_round_trip() -> None:
    landmarks = np.random.default_rng(0).normal(size=(4, 68, 2)).astype(np.float32)
    align = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=np.int32)
    clip = make_clip(landmarks=landmarks, align=align)
    members = clip.to_members()
    assert list(members) == ["json", "mp4", "flac", "align.npy", "landmarks.npy"]
    assert members["mp4"] == b"\x00mp4" and members["flac"] == b"fLaC.."
    # .npy members are plain numpy files
    assert np.array_equal(np.load(io.BytesIO(members["landmarks.npy"])), landmarks)
    back = Clip.from_members(clip.key, {**members, "__shard__": "x.tar"}, WHERE)
    assert back.meta == clip.meta and back.video == clip.video and back.audio == clip.audio
    assert sorted(back.arrays) == ["align", "landmarks"]
    assert back.arrays["landmarks"].dtype == np.float32
    assert np.array_equal(back.arrays["landmarks"], landmarks)
    assert back.arrays["align"].dtype == np.int32 and np.array_equal(back.arrays["align"], align)


@pytest.mark.parametrize("missing", ["json", "mp4", "flac"])
def test_missing_member(missing: str) -> None:
    members = make_clip().to_members()
    del members[missing]
    with pytest.raises(SchemaError) as info:
        Clip.from_members("M003-angry-3-001", members, WHERE)
    assert info.value.field == missing and "missing member" in str(info.value)
    assert str(info.value).startswith(WHERE)


def test_unknown_member() -> None:
    members = {**make_clip().to_members(), "txt": b"hello"}
    with pytest.raises(SchemaError, match=r"unknown member M003-angry-3-001\.txt"):
        Clip.from_members("M003-angry-3-001", members, WHERE)


def test_empty_media_member() -> None:
    members = {**make_clip().to_members(), "mp4": b""}
    with pytest.raises(SchemaError, match=r"field 'mp4': member M003-angry-3-001\.mp4 is empty"):
        Clip.from_members("M003-angry-3-001", members, WHERE)
    with pytest.raises(SchemaError, match="field 'flac': expected non-empty encoded bytes"):
        Clip("k", ClipMeta(**meta_dict()), b"v", b"").to_members()


def test_invalid_key_and_array_name_are_refused_when_writing() -> None:
    with pytest.raises(SchemaError, match="field 'key'"):
        Clip("bad.key", ClipMeta(**meta_dict()), b"v", b"a").to_members()
    with pytest.raises(SchemaError, match="field 'array name'"):
        make_clip(**{"land.marks": np.zeros(4)}).to_members()


def test_member_problems_lists_them_all() -> None:
    members = {"__key__": "k", "__shard__": "x.tar", "json": b"", "mp4": b"v", "txt": b"t",
               "bad.name.npy": b"", "ok.npy": b"not checked here"}
    assert member_problems("k", members) == [
        ("flac", "missing member k.flac"),
        ("json", "member k.json is empty"),
        ("txt", "unknown member k.txt (expected json, mp4, flac, NAME.npy or NAME.json)"),
        ("bad.name.npy", "array name 'bad.name' of k.bad.name.npy: expected 1 to 200 characters "
                         "of [A-Za-z0-9_-]"),
    ]
    assert member_problems("k", make_clip().to_members()) == []
    with pytest.raises(SchemaError, match=r"field 'bad\.name\.npy': array name"):
        Clip.from_members("k", {**make_clip().to_members(), "bad.name.npy": b""}, WHERE)


def test_object_arrays_are_refused() -> None:
    with pytest.raises(SchemaError, match="without pickle"):
        make_clip(bad=np.array([{"a": 1}, None], dtype=object)).to_members()
    with pytest.raises(SchemaError, match="without pickle"):
        encode_array(np.array([[1], "x"], dtype=object))


def test_pickled_npy_is_never_loaded() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    members = {**make_clip().to_members(), "landmarks.npy": buf.getvalue()}
    with pytest.raises(SchemaError) as info:
        Clip.from_members("M003-angry-3-001", members, WHERE)
    assert info.value.field == "landmarks.npy" and "without pickle" in str(info.value)


def test_corrupt_npy() -> None:
    good = encode_array(np.arange(10, dtype=np.int32))
    assert decode_array(good).tolist() == list(range(10))
    with pytest.raises(SchemaError, match=r"field 'align\.npy': not a valid \.npy"):
        decode_array(good[:-7], WHERE, "align.npy")
    with pytest.raises(SchemaError, match=r"not a valid \.npy"):
        decode_array(b"\x93NUMPY garbage", WHERE, "x.npy")


# ----------------------------------------------------------------------------- errors


def test_error_types_and_messages() -> None:
    err = SchemaVersionError("/data/train-index.json", 1, 2)
    assert not isinstance(err, SchemaError)  # a reader must not skip it like a bad sample
    assert (err.found, err.supported, err.path) == (1, 2, "/data/train-index.json")
    assert "schema_version 1 is not supported (this code reads version 2)" in str(err)
    shard_err = ShardError("/data/train-000001.tar", "truncated", key="c9")
    assert isinstance(shard_err, OSError)
    assert str(shard_err) == "/data/train-000001.tar: truncated (after sample 'c9')"
    assert shard_err.detail == "truncated (after sample 'c9')"
    schema_err = SchemaError(WHERE, "fps", "bad")
    assert isinstance(schema_err, ValueError) and schema_err.detail == "field 'fps': bad"
