"""Weight files: read them without unpickling, check them against a model, write them atomically.

The one home for state-dict files in `decouple` (the priors' prompt and wav2vec 2.0 files, the
encoders' ArcFace and checkpoint files):

* [read_weights][decouple.checkpoint.read_weights] reads `.safetensors` with safetensors and
  anything else (`.pt`, `.pth`, `.bin`) with `torch.load(..., weights_only=True)`, so a file
  can hold tensors and plain containers but never an object whose unpickling runs code. A
  `{"state_dict": {...}, "meta": {...}}` wrapper is unwrapped, and a `module.` prefix on
  every key (a model saved from `DataParallel` / `DistributedDataParallel`) is removed.
* [write_weights][decouple.checkpoint.write_weights] writes to a temporary name in the same
  directory and renames it (`decouple.data.io.atomic_write_bytes`): a reader never sees a
  half-written file. Metadata (JSON values) goes under the safetensors metadata key
  `decouple`, or into the torch file's `meta` entry; without metadata a torch file is a plain
  state dict, loadable with `model.load_state_dict(torch.load(path, weights_only=True))`.
* [check_state][decouple.checkpoint.check_state] compares a state dict with the expected one
  and raises [CheckpointError][decouple.checkpoint.CheckpointError] naming the file and every
  missing, unexpected or wrongly shaped key (grouped by parent module when there are many).
* [load_weights][decouple.checkpoint.load_weights] and
  [save_weights][decouple.checkpoint.save_weights] do the same for an `nn.Module`.

Examples:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> net = torch.nn.Linear(3, 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_weights(net, Path(d) / "net.safetensors", meta={"epoch": 3})
    ...     state, meta = read_weights(path)
    >>> sorted(state), meta
    (['bias', 'weight'], {'epoch': 3})
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CheckpointError",
    "check_state",
    "load_state_file",
    "load_weights",
    "read_weights",
    "save_weights",
    "write_weights",
]

_META_KEY = "decouple"  # safetensors metadata key holding the JSON metadata
_SHOW = 12  # key groups named per kind in an error message


class CheckpointError(ValueError):
    """A weight file cannot be read safely, or does not fit what it is loaded into.

    Examples:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


# --------------------------------------------------------------------------------------------
# reading


def read_weights(
    path: str | os.PathLike, *, what: str = "a state dict"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata of a weight file, without unpickling arbitrary objects.

    Args:
        path: A `.safetensors` file, or a `torch.save` file (`.pt`, `.pth`, `.bin`, ...)
            read with `weights_only=True`. It holds `{name: tensor}` or
            `{"state_dict": {name: tensor}, "meta": {...}}` (what
            [write_weights][decouple.checkpoint.write_weights] writes).
        what: What the file should hold, for error messages (e.g. `"a wav2vec 2.0 state
            dict"`).

    Returns:
        `(state_dict, meta)`: tensors on the CPU (a `module.` prefix on every key removed)
        and the metadata (`{}` if the file has none).

    Raises:
        FileNotFoundError: If there is no file at `path`.
        CheckpointError: If the file cannot be read with safetensors or
            `torch.load(weights_only=True)` (a pickled module or optimiser is refused), or
            is not a state dict of tensors, or its metadata is not a JSON object.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save({"state_dict": {"module.w": torch.ones(2)}, "meta": {"n": 1}},
        ...                Path(d) / "m.pt")
        ...     read_weights(Path(d) / "m.pt")
        ({'w': tensor([1., 1.])}, {'n': 1})
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    if path.suffix.lower() == ".safetensors":
        obj, meta = _read_safetensors(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            first = str(err).splitlines()[0] if str(err) else ""
            raise CheckpointError(
                f"{path}: cannot be read as {what} with torch.load(weights_only=True) "
                f"({type(err).__name__}: {first}); the file must hold a plain state dict "
                "(torch.save(model.state_dict(), path)) or be a .safetensors file: pickled "
                "objects (whole modules, optimisers) are never loaded"
            ) from err
        meta = {}
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            meta = obj.get("meta", {})
            if not isinstance(meta, Mapping):
                raise CheckpointError(f"{path}: field 'meta' is a {type(meta).__name__}, "
                                      "expected a dict")  # fmt: skip
            obj = obj["state_dict"]
    return _as_state_dict(obj, str(path), what), dict(meta)


def load_state_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict of a weight file (its metadata dropped): `read_weights(path)[0]`.

    Args:
        path: A `.safetensors` or `torch.save` file (see
            [read_weights][decouple.checkpoint.read_weights]).

    Returns:
        The state dict, on the CPU.

    Raises:
        FileNotFoundError: If the file does not exist.
        CheckpointError: If it cannot be read safely or is not a state dict of tensors.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save({"module.w": torch.ones(2)}, Path(d) / "m.pth")
        ...     sorted(load_state_file(Path(d) / "m.pth"))
        ['w']
    """
    return read_weights(path)[0]


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    try:
        from safetensors import safe_open
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise CheckpointError(
            f"{path}: reading .safetensors needs the safetensors package "
            f"(pip install safetensors): {err}"
        ) from err
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            raw = (f.metadata() or {}).get(_META_KEY)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    if raw is None:
        return state, {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path}: metadata field {_META_KEY!r} is not valid JSON ({err})"
        ) from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata field {_META_KEY!r} is a "
                              f"{type(meta).__name__}, expected a JSON object")  # fmt: skip
    return state, meta


def _as_state_dict(obj: object, label: str, what: str) -> dict[str, Tensor]:
    """Check `obj` is `{str: Tensor}`; remove a `module.` prefix shared by every key."""
    state = _checked(obj, label, what)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _checked(obj: object, label: str, what: str) -> dict[str, Tensor]:
    """`obj` as a dict, if it is `{str: Tensor}`; else a CheckpointError naming the entries."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{label}: expected {what} (a dict name -> tensor), got {type(obj).__name__}"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({type(obj[k]).__name__})" for k in bad[:8])
        more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
        raise CheckpointError(
            f"{label}: entries {shown}{more} are not tensors under str names; expected {what} "
            "(a plain state dict, name -> tensor)"
        )
    return dict(obj)


# --------------------------------------------------------------------------------------------
# writing


def write_weights(
    path: str | os.PathLike,
    state: Mapping[str, Tensor],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write tensors (and JSON metadata) atomically: temporary file in the directory + rename.

    Args:
        path: Destination; `.safetensors` is written with safetensors (metadata as JSON
            under the key `decouple`), anything else with `torch.save` (readable with
            `weights_only=True`: a plain state dict, or `{"state_dict": ..., "meta": ...}`
            when `meta` is given).
        state: Tensors by name (moved to the CPU, made contiguous; tensors sharing memory,
            such as tied weights, are stored as copies).
        meta: JSON-serialisable metadata (None: none). It reads back as JSON gives it
            (tuples become lists).

    Returns:
        The destination path.

    Raises:
        CheckpointError: If an entry is not a tensor or `meta` is not JSON-serialisable
            (nothing is written then).

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_weights(Path(d) / "x.pt", {"a": torch.zeros(1)}, {"k": (1, 2)})
        ...     read_weights(p), sorted(q.name for q in Path(d).iterdir())
        (({'a': tensor([0.])}, {'k': [1, 2]}), ['x.pt'])
    """
    from decouple.data.io import atomic_write_bytes

    path = Path(path)
    tensors = _checked(state, f"{path} (writing)", "a state dict")
    tensors = _unshared({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    meta_json = None
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise CheckpointError(f"{path}: meta must be a dict, got {type(meta).__name__}")
        try:
            meta_json = json.dumps(dict(meta))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: meta is not JSON-serialisable ({err})") from err
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save

        data = save(tensors, metadata=None if meta_json is None else {_META_KEY: meta_json})
    else:
        obj: object = tensors
        if meta_json is not None:
            obj = {"state_dict": tensors, "meta": json.loads(meta_json)}
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
    return atomic_write_bytes(path, data)


def _unshared(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Copies of tensors whose storage another entry uses already (safetensors refuses them)."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr() if value.numel() else None
        if ptr is not None and ptr in seen:
            value = value.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = value
    return out


def save_weights(
    module: nn.Module, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> Path:
    """Save `module.state_dict()` atomically, optionally with metadata.

    The file is written by [write_weights][decouple.checkpoint.write_weights].

    Args:
        module: The module whose weights to save.
        path: Destination; `.safetensors` with safetensors, anything else with `torch.save`.
        meta: Optional JSON-serialisable metadata (read back by
            [read_weights][decouple.checkpoint.read_weights]).

    Returns:
        The destination path.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> net = torch.nn.Linear(3, 2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save_weights(net, Path(d) / "net.pt")
        ...     other = load_weights(torch.nn.Linear(3, 2), p)
        >>> bool(torch.equal(other.weight, net.weight))
        True
    """
    return write_weights(path, module.state_dict(), meta)


# --------------------------------------------------------------------------------------------
# checking and loading


def check_state(
    expected: Mapping[str, Tensor],
    got: Mapping[str, Tensor],
    *,
    source: str,
    target: str = "the model",
    optional_suffixes: Iterable[str] = (),
    hint: str = "",
) -> None:
    """Raise naming the missing, unexpected and wrongly shaped keys of a state dict.

    Args:
        expected: The state dict the model has (only names and shapes are used).
        got: The state dict read from `source`.
        source: Where `got` comes from (the file), first in the message.
        target: What it is loaded into, for the message (e.g. the module's class name).
        optional_suffixes: Expected keys ending with one of these may be missing (BatchNorm's
            `num_batches_tracked`, absent from old checkpoints).
        hint: Advice appended to the message.

    Raises:
        CheckpointError: `"<source> does not fit <target>: missing keys (n): ...; unexpected
            keys (n): ...; shape mismatches (n): key: file (..) vs model (..)"` with the
            keys in natural order, more than 3 keys of one parent module shown as
            `parent.* (k keys)`.

    Examples:
        >>> import torch
        >>> check_state({"a": torch.zeros(2)}, {"a": torch.ones(2)}, source="f.pt")
        >>> check_state({"a": torch.zeros(2)}, {"b": torch.zeros(3)}, source="f.pt")
        Traceback (most recent call last):
        ...
        decouple.checkpoint.CheckpointError: f.pt does not fit the model: missing keys (1): a; ...
    """
    optional = tuple(optional_suffixes)
    missing = [k for k in expected if k not in got and not (optional and k.endswith(optional))]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k}: file {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(expected, key=_natural)
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_names(unexpected)}")
    if shapes:
        more = f"; ... ({len(shapes) - 6} more)" if len(shapes) > 6 else ""
        parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:6])}{more}")
    raise CheckpointError(f"{source} does not fit {target}: " + "; ".join(parts) + hint)


def load_weights(
    module: nn.Module,
    source: str | os.PathLike | Mapping[str, Tensor],
    *,
    ignore_prefixes: Iterable[str] = (),
    optional_suffixes: Iterable[str] = ("num_batches_tracked",),
) -> nn.Module:
    """Load a weight file or state dict into `module`, naming every key that does not fit.

    Args:
        module: The module to fill.
        source: A weight file (see [read_weights][decouple.checkpoint.read_weights]) or a
            state dict (a `{"state_dict": ...}` wrapper and a `module.` prefix are handled
            the same way).
        ignore_prefixes: Keys of the source starting with one of these are dropped on
            purpose (e.g. `"layer4."` for a backbone cut after layer 3).
        optional_suffixes: Module keys ending with one of these may be missing from the
            source.

    Returns:
        `module`, loaded.

    Raises:
        FileNotFoundError: If `source` is a path with no file.
        CheckpointError: Naming the source and the missing keys, unexpected keys and shape
            mismatches (see [check_state][decouple.checkpoint.check_state]).

    Examples:
        >>> import torch
        >>> net = torch.nn.Linear(2, 2)
        >>> _ = load_weights(net, {"weight": torch.eye(2), "bias": torch.zeros(2)})
        >>> load_weights(net, {"weight": torch.eye(2)})
        Traceback (most recent call last):
        ...
        decouple.checkpoint.CheckpointError: state dict does not fit Linear: missing keys (1): bias
    """
    if isinstance(source, Mapping):
        label = "state dict"
        if isinstance(source.get("state_dict"), Mapping):
            source = source["state_dict"]
        state = _as_state_dict(source, label, "a state dict")
    else:
        label, state = str(source), read_weights(source)[0]
    ignore = tuple(ignore_prefixes)
    if ignore:
        state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    check_state(module.state_dict(), state, source=label, target=type(module).__name__,
                optional_suffixes=optional_suffixes)  # fmt: skip
    module.load_state_dict(state, strict=False)
    return module


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _names(keys: Iterable[str], limit: int = _SHOW) -> str:
    """Keys in natural order; more than 3 of one parent module as `layer2.4.bn1.* (5 keys)`."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys, key=_natural):
        groups.setdefault(key.rpartition(".")[0], []).append(key)
    items = []
    for parent, ks in groups.items():
        items += ks if len(ks) <= 3 or not parent else [f"{parent}.* ({len(ks)} keys)"]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more groups)" if len(items) > limit else "")
