"""The recipe's config loader: unknown keys rejected, types checked, overrides applied."""

from __future__ import annotations

import dataclasses
import doctest
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "spfem"
sys.path.insert(0, str(RECIPE))

import configlib  # noqa: E402
from configlib import ConfigError, from_dict, load_config, save_config  # noqa: E402


@dataclasses.dataclass
class Stage:
    steps: int = 100
    lr: float = 1e-3
    weights: tuple[float, ...] = (1.0, 0.5)


@dataclasses.dataclass
class Cfg:
    seed: int = 0
    name: str = "demo"
    stages: tuple[str, ...] = ("ccrl", "cerl")
    ccrl: Stage = dataclasses.field(default_factory=Stage)
    weights_file: str | None = None
    amp: bool = False


def test_doctests() -> None:
    result = doctest.testmod(configlib, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_defaults_and_nested(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("# accelerate launch train.py --config c.yaml\nccrl:\n  steps: 5\n  lr: 1\n")
    cfg = load_config(Cfg, f)
    assert cfg.ccrl == Stage(steps=5, lr=1.0)
    assert isinstance(cfg.ccrl.lr, float)
    assert cfg.stages == ("ccrl", "cerl")


def test_unknown_nested_key_names_file_and_path(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("ccrl:\n  stpes: 5\n")
    match = r"c\.yaml\.ccrl: unknown key 'stpes' \(did you mean 'steps'"
    with pytest.raises(ConfigError, match=match):
        load_config(Cfg, f)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=1.5", "seed: expected an integer"),
        ("amp=yes please", "amp: expected true or false"),
        ("ccrl.steps=ten", "ccrl.steps: expected an integer"),
        ("stages=3", "stages: expected a list"),
        ("ccrl=4", "ccrl: expected a mapping"),
        ("nosuch=1", "unknown key 'nosuch'"),
        ("seed", "not of the form key=value"),
    ],
)
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, None, [override])


def test_overrides_apply_and_parse_yaml() -> None:
    cfg = load_config(Cfg, None, ["ccrl.lr=3e-4", "stages=[spfem]", "weights_file=/x/w.pt",
                                  "amp=true", "ccrl.weights=[1, 2]"])
    assert cfg.ccrl.lr == pytest.approx(3e-4)
    assert cfg.stages == ("spfem",)
    assert cfg.weights_file == "/x/w.pt" and cfg.amp is True
    assert cfg.ccrl.weights == (1.0, 2.0)


def test_save_round_trip(tmp_path: Path) -> None:
    cfg = load_config(Cfg, None, ["ccrl.steps=7", "name=x"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml", "accelerate launch train.py name=x")
    text = out.read_text()
    assert text.startswith("# accelerate launch train.py name=x\n")
    assert load_config(Cfg, out) == cfg
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_missing_required_key() -> None:
    @dataclasses.dataclass
    class Req:
        root: str

    with pytest.raises(ConfigError, match="missing required key 'root'"):
        from_dict(Req, {})
