"""Safe weight files: load a state dict (no pickle), check it against a module, save atomically.

Files are read with `torch.load(..., weights_only=True)` (`.pt`, `.pth`, `.bin`, anything but
`.safetensors`) or with safetensors (`.safetensors`); arbitrary pickled objects are never
executed. [load_weights][decouple.encoders.checkpoint.load_weights] compares the file's keys
with the module's and fails with an error that names the file and every missing, unexpected
or wrongly shaped key, except for keys the caller declares ignorable (for example the layers a
truncated backbone does not build).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["CheckpointError", "load_state_file", "load_weights", "save_weights"]


class CheckpointError(ValueError):
    """A weight file cannot be read or does not fit the module it is loaded into.

    Examples:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


def _unwrap(obj: object, label: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{label}: expected a state dict (name -> tensor), got "
                              f"{type(obj).__name__}")  # fmt: skip
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(
                f"{label}: entry {key!r} is a {type(value).__name__}, expected a tensor; the "
                "file must hold a plain state dict (name -> tensor)"
            )
        out[key] = value
    if out and all(k.startswith("module.") for k in out):  # saved from DataParallel / DDP
        out = {k[len("module."):]: v for k, v in out.items()}
    return out


def load_state_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict from a local file without unpickling arbitrary objects.

    A `{"state_dict": {...}}` wrapper is unwrapped, and a `module.` prefix on every key (a
    model saved from `DataParallel` / `DistributedDataParallel`) is removed.

    Args:
        path: A `.safetensors` file, or a `torch.save` file (read with `weights_only=True`).

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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    label = str(path)
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise CheckpointError(f"{label}: reading .safetensors needs `safetensors` "
                                  f"({err}): pip install safetensors") from err  # fmt: skip
        try:
            return _unwrap(load_file(str(path), device="cpu"), label)
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(f"{label}: not a readable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{label}: cannot be read with torch.load(weights_only=True) ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); the file must hold a plain state "
            "dict of tensors (pickled modules or optimiser objects are refused)"
        ) from err
    return _unwrap(obj, label)


def _natural(key: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _names(keys: Iterable[str], limit: int = 12) -> str:
    """Keys in natural order, grouped by parent module ("layer2.4.bn1.* (5 keys)")."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys, key=_natural):
        groups.setdefault(key.rpartition(".")[0], []).append(key)
    items = [ks[0] if len(ks) == 1 else f"{parent}.* ({len(ks)} keys)"
             for parent, ks in groups.items()]  # fmt: skip
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more groups)" if len(items) > limit else "")


def load_weights(
    module: nn.Module,
    source: str | os.PathLike | Mapping[str, Tensor],
    *,
    ignore_prefixes: Iterable[str] = (),
    optional_suffixes: Iterable[str] = ("num_batches_tracked",),
) -> nn.Module:
    """Load a state dict into `module`, naming every key that does not fit.

    Args:
        module: The module to fill.
        source: A weight file (see `load_state_file`) or a state dict.
        ignore_prefixes: Keys of the file starting with one of these are dropped on purpose
            (e.g. `"layer4."` for a backbone cut after layer 3).
        optional_suffixes: Module keys ending with one of these may be missing from the file
            (BatchNorm's `num_batches_tracked`, absent from old checkpoints).

    Returns:
        `module`, loaded.

    Raises:
        CheckpointError: Naming the source and the missing keys, unexpected keys and shape
            mismatches.

    Examples:
        >>> import torch
        >>> net = torch.nn.Linear(2, 2)
        >>> _ = load_weights(net, {"weight": torch.eye(2), "bias": torch.zeros(2)})
        >>> load_weights(net, {"weight": torch.eye(2)})
        Traceback (most recent call last):
        ...
        decouple.encoders.checkpoint.CheckpointError: state dict does not fit Linear: missing ...
    """
    if isinstance(source, Mapping):
        label, state = "state dict", _unwrap(source, "state dict")
    else:
        label, state = str(source), load_state_file(source)
    ignore = tuple(ignore_prefixes)
    optional = tuple(optional_suffixes)
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    own = module.state_dict()
    missing = [k for k in own if k not in state and not (optional and k.endswith(optional))]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs module {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_names(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:6])}")
        raise CheckpointError(
            f"{label} does not fit {type(module).__name__}: " + "; ".join(parts)
        )
    module.load_state_dict(state, strict=False)
    return module


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save `module.state_dict()` atomically (temporary file + rename).

    Args:
        module: The module whose weights to save.
        path: Destination; `.safetensors` is written with safetensors, anything else with
            `torch.save` (readable with `weights_only=True`).

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
    from decouple.data.io import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save

        data = save(state)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    return atomic_write_bytes(path, data)
