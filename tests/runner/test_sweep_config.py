"""Sweep specs from the command line and TOML files; errors name the key and the file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runner_toys import toys_registered  # noqa: F401

from saddlescape.errors import ConfigError
from saddlescape.runner import load_sweep_file, plan_sweep, sweep_args
from saddlescape.runner.config import parse_grid, parse_sets

GOOD = """
experiment = "toy_quadratic"
seeds = 3

[set]
dim = 8
lr = 0.05

[grid]
steps = [5, 10]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_parse_sets_and_grid():
    assert parse_sets(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    assert parse_grid(["a=1,2, 3", "b=x"]) == {"a": ["1", "2", "3"], "b": ["x"]}
    with pytest.raises(ConfigError, match="--set must look like key=value, got 'dim'"):
        parse_sets(["dim"])
    with pytest.raises(ConfigError, match="'a' given twice"):
        parse_sets(["a=1", "a=2"])
    with pytest.raises(ConfigError, match="axis 'a' has no values"):
        parse_grid(["a=,"])


def test_toml_sweep_file(tmp_path):
    args = sweep_args(config_file=_write(tmp_path, GOOD))
    assert args.experiment == "toy_quadratic"
    assert args.overrides == {"dim": 8, "lr": 0.05}
    assert args.grid == {"steps": [5, 10], "seed": [0, 1, 2]}
    specs = plan_sweep(args.experiment, overrides=args.overrides, grid=args.grid)
    assert len(specs) == 6
    assert {(s.config["steps"], s.config["seed"]) for s in specs} == {
        (st, se) for st in (5, 10) for se in range(3)
    }
    assert all(s.config["dim"] == 8 and s.config["lr"] == 0.05 for s in specs)


def test_command_line_overrides_the_file_per_key(tmp_path):
    path = _write(tmp_path, GOOD)
    args = sweep_args(
        "toy_quadratic", sets=["steps=7"], grids=["dim=2,4"], seeds=2, config_file=path
    )
    assert args.overrides == {"lr": 0.05, "steps": "7"}
    assert args.grid == {"seed": [0, 1], "dim": ["2", "4"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('experiment = "toy_quadratic"\nseed = 3\n', "sweep.toml: unknown key 'seed'"),
        (
            'experiment = "toy_quadratic"\n[set]\ndimm = 3\n',
            r"sweep.toml \[set\]: unknown config key 'dimm'",
        ),
        (
            'experiment = "toy_quadratic"\n[grid]\nstep = [1, 2]\n',
            r"sweep.toml \[grid\]: unknown config key 'step'",
        ),
        (
            'experiment = "toy_quadratic"\n[set]\ndim = "big"\n',
            r"sweep.toml \[set\]: dim must be an integer, got 'big'",
        ),
        (
            'experiment = "toy_quadratic"\n[grid]\nlr = [0.1, "fast"]\n',
            r"sweep.toml \[grid\]: lr must be a number, got 'fast'",
        ),
        ('experiment = "toy_quadratic"\n[grid]\nlr = 0.1\n', "lr must be a non-empty list"),
        ('experiment = "toy_quadratic"\n[set]\nlr = [0.1]\n', "lr must be a number, string"),
        ("experiment = 3\n", "experiment must be a string"),
        ('experiment = "toy_quadratic"\nseeds = 2\n[grid]\nseed = [1]\n', "not both"),
        ("experiment = [\n", "not valid TOML"),
        ("[set]\ndim = 3\n", "name an experiment"),
    ],
)
def test_bad_toml_names_the_key_and_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        sweep_args(config_file=_write(tmp_path, text))


def test_file_and_argument_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="is for experiment 'toy_quadratic', not 'other'"):
        sweep_args("other", config_file=_write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no such file"):
        load_sweep_file(tmp_path / "missing.toml")


def test_cli_conflicts():
    with pytest.raises(ConfigError, match="--seeds or --grid seed"):
        sweep_args("toy_quadratic", grids=["seed=1,2"], seeds=3)
    with pytest.raises(ConfigError, match="'dim' is given by both --set and --grid"):
        sweep_args("toy_quadratic", sets=["dim=3"], grids=["dim=1,2"])
    with pytest.raises(ConfigError, match="--seeds must be >= 1"):
        sweep_args("toy_quadratic", seeds=0)
    with pytest.raises(ConfigError, match=r"--set: unknown config key 'dimm' \(keys: dim, "):
        sweep_args("toy_quadratic", sets=["dimm=3"])
    with pytest.raises(ConfigError, match="--module: cannot import 'no_such_mod_xyz'"):
        sweep_args("toy_quadratic", modules=["no_such_mod_xyz"])


def test_a_toml_file_that_is_not_utf8_is_named_not_a_traceback(tmp_path):
    """A sweep file saved as Latin-1 (``# café``) raised UnicodeDecodeError out of tomllib,
    a traceback with exit status 1 from the CLI."""
    path = tmp_path / "sweep.toml"
    path.write_bytes('experiment = "toy_quadratic"\n# café\n'.encode("latin-1"))
    message = r"sweep.toml: not valid TOML: not UTF-8 text \(byte 0xe9 at offset 34\)"
    with pytest.raises(ConfigError, match=message):
        sweep_args(config_file=path)
