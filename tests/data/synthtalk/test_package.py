"""The synthtalk package: every lazy re-export resolves to the module's own object."""

from __future__ import annotations

import importlib

import decouple.data.synthtalk as st


def test_every_reexport_resolves() -> None:
    for name in st.__all__:
        module = importlib.import_module(f"decouple.data.synthtalk.{st._EXPORTS[name]}")
        assert getattr(st, name) is getattr(module, name)
    assert set(st.__all__) <= set(dir(st))


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        st.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("expected AttributeError")
