"""Lazy re-exports for package `__init__` modules (one implementation for every package).

A package lists the names it re-exports and the module each lives in; the names are imported
on first attribute access (so `import decouple.data` stays cheap and optional dependencies are
only needed by what is used) and cached in the package namespace.

Examples:
    >>> import types
    >>> getattr_, dir_ = lazy_exports("json", {"dumps": "json", "JSONDecoder": "json.decoder"})
    >>> getattr_("JSONDecoder").__name__
    'JSONDecoder'
    >>> "dumps" in dir_()
    True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level `__getattr__` and `__dir__` for a package that re-exports names lazily.

    Args:
        package: The package's `__name__`.
        exports: Name -> module holding it: a submodule name relative to the package
            (`"io"` for `<package>.io`) or, when it contains a dot, an absolute module path.

    Returns:
        `(__getattr__, __dir__)`, to assign in the package's `__init__`.

    Examples:
        >>> getattr_, _ = lazy_exports("json", {"dumps": "json"})
        >>> getattr_("loads")
        Traceback (most recent call last):
        ...
        AttributeError: module 'json' has no attribute 'loads'
    """
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if "." in module or module == package else f"{package}.{module}"
        value = getattr(importlib.import_module(path), name)
        owner = sys.modules.get(package)
        if owner is not None:
            setattr(owner, name, value)
        return value

    def __dir__() -> list[str]:
        owner = sys.modules.get(package)
        names = set(vars(owner)) if owner is not None else set()
        return sorted(names | set(table))

    return __getattr__, __dir__
