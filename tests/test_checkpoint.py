"""decouple.checkpoint: safe reading, atomic writing, key checks naming what does not fit.

Known answers: tensors and metadata written in both formats read back bit for bit; files made
directly with `torch.save` / `safetensors` (not by our writer) read as documented; a pickled
object is refused without being built; errors name the file and the exact keys.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from decouple.checkpoint import (
    CheckpointError,
    check_state,
    load_state_file,
    load_weights,
    read_weights,
    save_weights,
    write_weights,
)

SUFFIXES = [".pt", ".safetensors"]


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"a.weight": torch.randn(3, 4, generator=g, dtype=torch.float64),
            "a.bias": torch.arange(3, dtype=torch.int64),
            "b": torch.tensor([True, False]), "half": torch.randn(5, generator=g).half()}


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_with_metadata(tmp_path: Path, suffix: str) -> None:
    state = _state()
    meta = {"format": "x/1", "names": ["happy", "sad"], "n": 4, "tau": 0.07, "ok": True,
            "nested": {"k": None}}
    path = write_weights(tmp_path / f"w{suffix}", state, meta)
    assert path == tmp_path / f"w{suffix}"
    got, got_meta = read_weights(path)
    assert got_meta == meta
    assert sorted(got) == sorted(state)
    for k, v in state.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
    # JSON semantics in both formats: a tuple reads back as a list
    write_weights(path, state, {"shape": (2, 3)})
    assert read_weights(path)[1] == {"shape": [2, 3]}
    # without metadata: {} back, and a torch file is a plain state dict
    write_weights(path, state)
    assert read_weights(path)[1] == {}
    if suffix == ".pt":
        assert set(torch.load(path, weights_only=True)) == set(state)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_module_round_trip(tmp_path: Path, suffix: str) -> None:
    net = _net().eval()
    with torch.no_grad():
        net[1].running_mean.uniform_()
    path = save_weights(net, tmp_path / f"net{suffix}", meta={"epoch": 7})
    other = load_weights(_net().eval(), path)
    x = torch.rand(2, 3, 3, 3)
    assert torch.equal(net(x), other(x))
    assert read_weights(path)[1] == {"epoch": 7}
    assert sorted(load_state_file(path)) == sorted(net.state_dict())


def test_tied_weights_save_as_safetensors(tmp_path: Path) -> None:
    """Two entries sharing one storage (tied weights): safetensors refuses those as they are."""
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    net[1].weight = net[0].weight
    path = save_weights(net, tmp_path / "tied.safetensors")
    state = load_state_file(path)
    assert torch.equal(state["0.weight"], net[0].weight) and torch.equal(state["1.weight"],
                                                                          net[0].weight)


def test_files_made_by_others(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = _state()
    save_file(state, str(tmp_path / "plain.safetensors"))  # no metadata at all
    got, meta = read_weights(tmp_path / "plain.safetensors")
    assert meta == {} and all(torch.equal(got[k], v) for k, v in state.items())
    # a training checkpoint with other entries next to state_dict: the weights are taken
    torch.save({"state_dict": state, "epoch": 3, "meta": {"run": "r1"}}, tmp_path / "ckpt.pt")
    got, meta = read_weights(tmp_path / "ckpt.pt")
    assert sorted(got) == sorted(state) and meta == {"run": "r1"}


# ------------------------------------------------------------------ what the reader does


def test_wrapper_unwrapped_and_module_prefix_stripped(tmp_path: Path) -> None:
    w = torch.ones(2)
    torch.save({"state_dict": {"module.x.w": w, "module.b": w * 2}, "meta": {"k": 1}},
               tmp_path / "ddp.pt")
    state, meta = read_weights(tmp_path / "ddp.pt")
    assert sorted(state) == ["b", "x.w"] and meta == {"k": 1}
    assert torch.equal(state["b"], w * 2)
    # only when EVERY key has the prefix (else it is a real submodule called "module")
    torch.save({"module.w": w, "other": w}, tmp_path / "mixed.pt")
    assert sorted(load_state_file(tmp_path / "mixed.pt")) == ["module.w", "other"]
    # the same for a state dict handed to load_weights directly
    lin = nn.Linear(2, 1)
    src = {"state_dict": {f"module.{k}": v + 1 for k, v in lin.state_dict().items()}}
    out = load_weights(nn.Linear(2, 1), src)
    assert torch.equal(out.weight, lin.weight + 1)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)  # a whole pickled module, not a state dict
    with pytest.raises(CheckpointError, match=r"module\.pt.*weights_only=True.*pickled"):
        read_weights(path)

    marker = tmp_path / "ran"

    class Boom:  # unpickling it would run code (here: create a file)
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"w": Boom()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_state_file(evil)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        load_weights(nn.Linear(2, 2), evil)
    assert not marker.exists()
    with open(evil, "rb") as f:  # the reference: plain unpickling does run it
        pickle.load(f)
    assert marker.exists()


def test_read_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt.*a prompt file"):
        read_weights(tmp_path / "nothing.pt", what="a prompt file")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: expected a state dict .*got list"):
        read_weights(tmp_path / "list.pt")
    torch.save({"w": torch.zeros(1), "step": 3}, tmp_path / "int.pt")
    with pytest.raises(CheckpointError, match=r"int\.pt: entries 'step' \(int\) are not tensors"):
        read_weights(tmp_path / "int.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": [1]}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match=r"meta\.pt: field 'meta' is a list"):
        read_weights(tmp_path / "meta.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable safetensors"):
        read_weights(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "m.safetensors"), metadata={"decouple": "{"})
    with pytest.raises(CheckpointError, match=r"m\.safetensors: metadata field 'decouple'"):
        read_weights(tmp_path / "m.safetensors")


# ------------------------------------------------------------------ key checks


def test_missing_unexpected_and_shape_errors_name_the_keys(tmp_path: Path) -> None:
    net = _net()
    state = dict(net.state_dict())
    missing = {k: v for k, v in state.items() if k != "3.bias"}
    with pytest.raises(CheckpointError) as err:
        load_weights(_net(), missing)
    assert str(err.value) == "state dict does not fit Sequential: missing keys (1): 3.bias"

    path = tmp_path / "extra.pt"
    torch.save(dict(state, **{"head.weight": torch.zeros(1)}), path)
    with pytest.raises(CheckpointError) as err:
        load_weights(_net(), path)
    assert str(err.value) == f"{path} does not fit Sequential: unexpected keys (1): head.weight"

    wrong = dict(state, **{"3.weight": torch.zeros(2, 5)})
    with pytest.raises(CheckpointError) as err:
        load_weights(_net(), wrong)
    assert str(err.value) == ("state dict does not fit Sequential: shape mismatches (1): "
                              "3.weight: file (2, 5) vs model (2, 4)")
    # all three at once, in one message, in that order
    both = {k: v for k, v in wrong.items() if k != "0.bias"} | {"z": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 0\.bias; unexpected keys "
                       r"\(1\): z; shape mismatches \(1\): 3\.weight"):
        load_weights(_net(), both)


def test_many_keys_are_grouped_by_module_in_natural_order() -> None:
    expected = {f"layer{i}.{j}.w{k}": torch.zeros(1) for i in (1, 2, 10) for j in (0, 1)
                for k in range(4)}  # fmt: skip
    got = {k: v for k, v in expected.items() if not k.startswith("layer2.")}
    with pytest.raises(CheckpointError) as err:
        check_state(expected, got, source="f.pt", target="Net")
    assert str(err.value) == ("f.pt does not fit Net: missing keys (8): layer2.0.* (4 keys), "
                              "layer2.1.* (4 keys)")
    # up to 3 keys of a module are listed
    with pytest.raises(CheckpointError) as err:
        check_state(expected, {k: v for k, v in expected.items() if k[-1] != "0"}, source="f.pt")
    assert str(err.value) == ("f.pt does not fit the model: missing keys (6): layer1.0.w0, "
                              "layer1.1.w0, layer2.0.w0, layer2.1.w0, layer10.0.w0, layer10.1.w0")
    with pytest.raises(CheckpointError) as err:
        check_state({}, {f"b{i}": torch.zeros(1) for i in (10, 2, 1)}, source="f.pt")
    # top-level keys are listed one by one, 1 < 2 < 10
    assert str(err.value) == "f.pt does not fit the model: unexpected keys (3): b1, b2, b10"


def test_ignored_prefixes_and_optional_suffixes() -> None:
    net = _net()
    state = dict(net.state_dict())
    # old checkpoints lack num_batches_tracked: allowed by default, and the rest is loaded
    old = {k: v + 0 for k, v in state.items() if not k.endswith("num_batches_tracked")}
    old["1.running_var"] = torch.full((4,), 2.0)
    assert torch.equal(load_weights(_net(), old)[1].running_var, torch.full((4,), 2.0))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 1\.num_batches_tracked"):
        load_weights(_net(), old, optional_suffixes=())
    # keys of parts the module does not build are dropped only when declared
    extra = dict(state, **{"layer4.0.w": torch.zeros(1), "layer4.1.w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(2\): layer4\.0\.w, layer4\.1"):
        load_weights(_net(), extra)
    load_weights(_net(), extra, ignore_prefixes=("layer4.",))


def test_check_state_hint_and_passing_case() -> None:
    check_state({"a": torch.zeros(2)}, {"a": torch.ones(2)}, source="f.pt")  # names + shapes
    with pytest.raises(CheckpointError, match=r"^f\.pt does not fit M: .* \(use arch b\)$"):
        check_state({"a": torch.zeros(2)}, {"a": torch.zeros(3)}, source="f.pt", target="M",
                    hint=" (use arch b)")
    assert issubclass(CheckpointError, ValueError)


# ------------------------------------------------------------------ atomic writing


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_atomic_write_leaves_no_temporary_file(tmp_path: Path, suffix: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_weights(tmp_path / "sub" / f"w{suffix}", {"a": torch.ones(3)}, {"v": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == [f"w{suffix}"]
    before = path.read_bytes()

    # a failure at the rename: the old file is intact and the temporary file is removed
    def fail(src: object, dst: object) -> None:
        raise OSError("disk full (test)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_weights(path, {"a": torch.zeros(3)}, {"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [f"w{suffix}"]
    assert read_weights(path)[1] == {"v": 1}


def test_write_errors_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"x\.pt: meta is not JSON-serialisable"):
        write_weights(tmp_path / "x.pt", {"a": torch.ones(1)}, {"f": object()})
    with pytest.raises(CheckpointError, match=r"entries 'n' \(int\) are not tensors"):
        write_weights(tmp_path / "x.pt", {"a": torch.ones(1), "n": 3})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []
