"""Reading and writing tensor files for the priors: safetensors or `torch.load(weights_only=True)`.

Private helpers shared by the priors: one reader (never unpickling arbitrary objects), one
writer (temporary name + rename) and one key check whose error names the file, the missing
and unexpected keys and the shape mismatches.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from decouple.data.io import atomic_write_bytes

_SHOW = 8  # keys listed per kind in an error message


def read_tensors(path: str | os.PathLike, what: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata of a `.safetensors` file or a `torch.save`d dict.

    A torch file may hold a plain `{name: tensor}` dict or `{"state_dict": {...}, "meta":
    {...}}` (what [write_tensors][decouple.priors._weights.write_tensors] writes); a
    safetensors file keeps `meta` as JSON under the metadata key `decouple`.

    Args:
        path: The file.
        what: What the file should be, for error messages.

    Returns:
        `(state_dict, meta)`.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.pt"
        >>> _ = write_tensors(p, {"a": torch.ones(2)}, {"n": 1})
        >>> read_tensors(p, "an example")
        ({'a': tensor([1., 1.])}, {'n': 1})
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"{path}: reading .safetensors needs `pip install safetensors`"
            ) from err
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                state = {k: f.get_tensor(k) for k in f.keys()}
                raw = (f.metadata() or {}).get("decouple")
        except Exception as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
        meta = json.loads(raw) if raw else {}
        return state, meta
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: cannot be read as {what} with torch.load(weights_only=True): {err}. "
            "The file must be a plain state dict (a dict of tensors, "
            "torch.save(model.state_dict(), path)) or a .safetensors file; pickled objects are "
            "never loaded."
        ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state, meta = dict(obj["state_dict"]), dict(obj.get("meta", {}))
    elif isinstance(obj, Mapping):
        state, meta = dict(obj), {}
    else:
        raise ValueError(f"{path}: expected a dict of tensors ({what}), got {type(obj).__name__}")
    bad = sorted(k for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise ValueError(f"{path}: entries {bad[:_SHOW]} are not tensors ({what})")
    return state, meta


def write_tensors(
    path: str | os.PathLike, state: Mapping[str, Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write tensors + JSON-able metadata atomically (`.safetensors` by suffix, else torch).

    Args:
        path: Target file.
        state: Tensors by name.
        meta: JSON-serialisable metadata.

    Returns:
        The path written.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.safetensors"
        >>> read_tensors(write_tensors(p, {"a": torch.zeros(1)}, {"k": "v"}), "an example")[1]
        {'k': 'v'}
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        data = save(tensors, metadata={"decouple": json.dumps(dict(meta))})
    else:
        buf = io.BytesIO()
        torch.save({"state_dict": tensors, "meta": dict(meta)}, buf)
        data = buf.getvalue()
    return atomic_write_bytes(path, data)


def check_keys(
    expected: Mapping[str, Tensor], got: Mapping[str, Tensor], where: str, hint: str = ""
) -> None:
    """Raise a ValueError naming missing / unexpected keys and shape mismatches.

    Args:
        expected: The model's state dict.
        got: The loaded one.
        where: The file (or source) for the message.
        hint: Extra advice appended to the message.

    Examples:
        >>> check_keys({"a": torch.zeros(2)}, {"a": torch.zeros(2)}, "f.pt")
        >>> check_keys({"a": torch.zeros(2)}, {"b": torch.zeros(2)}, "f.pt")
        Traceback (most recent call last):
        ...
        ValueError: f.pt: state dict does not match: missing keys ['a']; unexpected keys ['b']
    """
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(got)
        if tuple(got[k].shape) != tuple(expected[k].shape)
    )
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            parts.append(f"{label} {items[:_SHOW]}{more}")
    raise ValueError(f"{where}: state dict does not match: " + "; ".join(parts) + hint)
