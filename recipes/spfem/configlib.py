"""Dataclass-backed YAML configs for the SPFEM recipe: unknown keys rejected, `key=value` overrides.

A config file is YAML whose first line is a comment with the exact command that runs it. It maps
onto a tree of dataclasses: every key must be a field (a typo fails with the nearest field
names), every value is checked against the field's type annotation, and missing keys keep the
dataclass defaults. Command-line overrides `section.key=value` are parsed as YAML scalars
(`steps=10`, `lr=3e-4`, `stages=[ccrl,cerl]`) and applied to the loaded tree before checking.

This is recipe code (not part of the `decouple` library): scripts import it from their own
folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

__all__ = ["ConfigError", "apply_overrides", "from_dict", "load_config", "save_config", "to_dict"]


class ConfigError(ValueError):
    """A config file or override that does not match the config dataclasses.

    The message names the file (or `command line`), the dotted key and what was expected.
    """


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """`value` checked (and lightly converted: int -> float, list -> tuple) against `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in pairs)
        inner = args[0] if args else Any
        out = [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            _convert(k, kt, f"{where}.{k}"): _convert(v, vt, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads `3e-4` (no dot) as a string: accept what Python reads as a number.
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and mistyped values.

    Args:
        cls: A dataclass type (fields may be nested dataclasses).
        data: The mapping (from YAML).
        where: Prefix of error messages (file name and key path).

    Returns:
        The dataclass instance; keys absent from `data` keep their defaults.

    Raises:
        ConfigError: For an unknown key (with close matches), a missing required key or a
            value of the wrong type.

    Examples:
        >>> @dataclasses.dataclass
        ... class Opt:
        ...     lr: float = 1e-3
        ...     steps: int = 10
        >>> from_dict(Opt, {"steps": 5})
        Opt(lr=0.001, steps=5)
        >>> from_dict(Opt, {"stpes": 5}, "demo.yaml")
        Traceback (most recent call last):
        ...
        configlib.ConfigError: demo.yaml: unknown key 'stpes' (did you mean 'steps'?; ...)
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=2)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?; " if close else ""
            raise ConfigError(f"{where}: unknown key {key!r} ({hint}known: {', '.join(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        sub = f"{where}.{f.name}" if where != "config" else f.name
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def to_dict(obj: Any) -> Any:
    """A config dataclass tree as plain YAML-able data (tuples become lists).

    Args:
        obj: A dataclass instance (or any value inside one).

    Returns:
        Nested dicts, lists and scalars.

    Examples:
        >>> @dataclasses.dataclass
        ... class Opt:
        ...     sizes: tuple[int, ...] = (1, 2)
        >>> to_dict(Opt())
        {'sizes': [1, 2]}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a nested mapping.

    Args:
        data: The mapping loaded from the config file (changed in place and returned).
        overrides: Items such as `"ccrl.steps=10"` or `"stages=[ccrl,cerl]"`.

    Returns:
        `data`.

    Raises:
        ConfigError: For an item without `=` or an empty key.

    Examples:
        >>> apply_overrides({"ccrl": {"steps": 100}}, ["ccrl.steps=10", "seed=1"])
        {'ccrl': {'steps': 10}, 'seed': 1}
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} is not of the form key=value")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"command line: override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"command line: override {item!r}: {err}") from err
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"command line: override {item!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load a YAML config file into dataclass `cls`, with command-line overrides.

    Args:
        cls: The config dataclass.
        path: The YAML file (None: the dataclass defaults).
        overrides: `key=value` items applied after the file.

    Returns:
        The checked config.

    Raises:
        ConfigError: Naming the file and key, for unknown keys, bad values or a file that is
            not a YAML mapping.
        FileNotFoundError: If `path` does not exist.
    """
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level")
        data = loaded
        where = str(path)
    apply_overrides(data, list(overrides or []))
    return from_dict(cls, data, where)


def save_config(config: Any, path: str | Path, command: str) -> Path:
    """Write the merged config as YAML, opening with the command that reproduces the run.

    Args:
        config: The config dataclass.
        path: Output file (written to a temporary name, then renamed).
        command: The command line, written as the first comment line.

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {command}\n" + yaml.safe_dump(to_dict(config), sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
