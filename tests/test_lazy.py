"""The lazy re-exports of the packages (decouple._lazy): every name resolves, nothing eagerly."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["decouple.data", "decouple.data.synthtalk", "decouple.encoders", "decouple.metrics"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves_to_its_module(package: str) -> None:
    mod = importlib.import_module(package)
    table = mod._EXPORTS
    assert sorted(mod.__all__) == sorted(table)
    for name, where in table.items():
        path = where if "." in where else f"{package}.{where}"
        assert getattr(mod, name) is getattr(importlib.import_module(path), name), name
        assert name in dir(mod)


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_name_names_the_package(package: str) -> None:
    mod = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        _ = mod.no_such_name


def test_importing_a_package_imports_no_submodule() -> None:
    code = (
        "import sys, decouple.data, decouple.encoders, decouple.metrics\n"
        "heavy = [m for m in ('av', 'cv2', 'webdataset', 'scipy', 'decouple.data.io',"
        " 'decouple.encoders.iresnet', 'decouple.metrics.probes') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
