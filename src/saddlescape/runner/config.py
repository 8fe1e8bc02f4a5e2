"""Sweep specifications from the command line (``--set k=v``, ``--grid k=v1,v2``,
``--seeds N``) and from TOML files.

A sweep file::

    experiment = "escape_time"      # required unless given on the command line
    module = "my_experiments"       # optional: imported first, to register experiments
    quick = false                   # optional
    seeds = 5                       # optional: shorthand for [grid] seed = [0, 1, 2, 3, 4]

    [set]                           # fixed config values
    dim = 10

    [grid]                          # axes of the Cartesian product
    optimizer = ["pgd", "noisy_gd"]
    eta = [0.01, 0.1]

Command-line ``--set``/``--grid`` values override the file's per key.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, check_count

#: The most runs one sweep may plan (its grid is expanded and validated in memory).
MAX_RUNS = 100_000
#: A module name as ``import`` takes it: dotted identifiers, nothing relative or empty.
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

__all__ = ["SweepArgs", "load_sweep_file", "parse_grid", "parse_sets", "sweep_args"]

_FILE_KEYS = ("experiment", "module", "quick", "seeds", "set", "grid")
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class SweepArgs:
    """A sweep as :func:`saddlescape.runner.run_sweep` takes it."""

    experiment: str
    overrides: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    quick: bool = False
    modules: tuple[str, ...] = ()
    source: str | None = None  # the TOML file, for error messages


def parse_sets(items: Iterable[str], option: str = "--set") -> dict[str, str]:
    """``["dim=10", "eta=0.1"]`` -> ``{"dim": "10", "eta": "0.1"}`` (values stay strings;
    the experiment's config converts them)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} must look like key=value, got {item!r}")
        if key in out:
            raise ConfigError(f"{option}: key {key!r} given twice")
        out[key] = value.strip()
    return out


def parse_grid(items: Iterable[str], option: str = "--grid") -> dict[str, list[str]]:
    """``["dim=10,100", "seed=0,1"]`` -> ``{"dim": ["10", "100"], "seed": ["0", "1"]}``."""
    out: dict[str, list[str]] = {}
    for key, text in parse_sets(items, option).items():
        values = [v.strip() for v in text.split(",") if v.strip() != ""]
        if not values:
            raise ConfigError(f"{option}: axis {key!r} has no values (use {key}=v1,v2,...)")
        out[key] = values
    return out


def _check_scalar(value: Any, key: str, where: str) -> Any:
    if not isinstance(value, _SCALARS):
        raise ConfigError(
            f"{where}: {key} must be a number, string or boolean, got {type(value).__name__}"
        )
    return value


def load_sweep_file(path: str | Path) -> SweepArgs:
    """Read and check a TOML sweep file (structure only; config keys are checked against
    the experiment by :func:`sweep_args`). Errors name the file and the key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file {str(path)!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; e.g. a file saved as Latin-1
        raise ConfigError(
            f"{path}: not valid TOML: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}); save the file as UTF-8"
        ) from None
    for key in data:
        if key not in _FILE_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (keys: {', '.join(_FILE_KEYS)})")
    experiment = data.get("experiment", "")
    if not isinstance(experiment, str):
        raise ConfigError(f"{path}: experiment must be a string, got {experiment!r}")
    module = data.get("module")
    if module is not None and not isinstance(module, str):
        raise ConfigError(f"{path}: module must be a string, got {module!r}")
    quick = data.get("quick", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"{path}: quick must be true or false, got {quick!r}")
    sets = data.get("set", {})
    if not isinstance(sets, dict):
        raise ConfigError(f"{path}: [set] must be a table of key = value")
    overrides = {k: _check_scalar(v, k, f"{path} [set]") for k, v in sets.items()}
    grid_table = data.get("grid", {})
    if not isinstance(grid_table, dict):
        raise ConfigError(f"{path}: [grid] must be a table of key = [values]")
    grid: dict[str, list[Any]] = {}
    for key, values in grid_table.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path} [grid]: {key} must be a non-empty list, got {values!r}")
        grid[key] = [_check_scalar(v, key, f"{path} [grid]") for v in values]
    if "seeds" in data:
        if "seed" in grid:
            raise ConfigError(f"{path}: give seeds or [grid] seed, not both")
        seeds = data["seeds"]
        if isinstance(seeds, bool) or not isinstance(seeds, int):
            raise ConfigError(f"{path}: seeds must be an integer, got {seeds!r}")
        grid["seed"] = list(
            range(check_count(f"{path}: seeds", seeds, minimum=1, maximum=MAX_RUNS))
        )
    return SweepArgs(
        experiment=experiment,
        overrides=overrides,
        grid=grid,
        quick=quick,
        modules=(module,) if module else (),
        source=str(path),
    )


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register user experiments (dotted module names only: a
    path such as ``../etc`` or an empty name is refused by name)."""
    for name in modules:
        if not isinstance(name, str) or not _MODULE.fullmatch(name):
            raise ConfigError(
                f"--module must be a dotted module name such as my_experiments, got {name!r}"
            )
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"--module: cannot import {name!r}: {exc}") from None
        except Exception as exc:  # the module itself is broken: say so in one line
            raise ConfigError(
                f"--module: importing {name!r} raised {type(exc).__name__}: {exc}"
            ) from exc


def sweep_args(
    experiment: str | None = None,
    *,
    sets: Iterable[str] = (),
    grids: Iterable[str] = (),
    seeds: int | None = None,
    config_file: str | Path | None = None,
    quick: bool = False,
    modules: Sequence[str] = (),
) -> SweepArgs:
    """Combine a sweep file and command-line options into one :class:`SweepArgs`, checking
    every key against the experiment's config (errors name the key and where it came from).
    """
    base = load_sweep_file(config_file) if config_file is not None else SweepArgs("")
    name = experiment or base.experiment
    if not name:
        raise ConfigError("name an experiment (argument EXPERIMENT or experiment = in --config)")
    if experiment and base.experiment and experiment != base.experiment:
        raise ConfigError(
            f"--config {base.source} is for experiment {base.experiment!r}, not {experiment!r}"
        )
    all_modules = (*base.modules, *modules)
    import_modules(all_modules)

    cli_sets = parse_sets(sets)
    cli_grid = parse_grid(grids)
    if seeds is not None:
        if "seed" in cli_grid:
            raise ConfigError("give --seeds or --grid seed=..., not both")
        cli_grid["seed"] = list(range(check_count("--seeds", seeds, minimum=1, maximum=MAX_RUNS)))
    both = set(cli_sets) & set(cli_grid)
    if both:
        raise ConfigError(f"key {sorted(both)[0]!r} is given by both --set and --grid")

    # command-line keys win over the file's, whether the file fixes or sweeps them
    overrides = {k: v for k, v in base.overrides.items() if k not in cli_grid}
    overrides.update(cli_sets)
    grid = {k: v for k, v in base.grid.items() if k not in cli_sets}
    grid.update(cli_grid)

    from ..experiments import get
    from ..experiments.base import coerce, config_fields

    fields = config_fields(get(name).Config)
    known = ", ".join(fields)
    for key, value in overrides.items():
        where = "--set" if key in cli_sets else f"{base.source} [set]"
        if key not in fields:
            raise ConfigError(f"{where}: unknown config key {key!r} (keys: {known})")
        coerce(value, fields[key].type, key, where)
    for key, values in grid.items():
        where = "--grid" if key in cli_grid else f"{base.source} [grid]"
        if key not in fields:
            raise ConfigError(f"{where}: unknown config key {key!r} (keys: {known})")
        for value in values:
            coerce(value, fields[key].type, key, where)
    return SweepArgs(
        experiment=name,
        overrides=overrides,
        grid=grid,
        quick=quick or base.quick,
        modules=all_modules,
        source=base.source,
    )


def describe(values: Mapping[str, Any]) -> str:
    """``{"dim": 10, "seed": 0}`` -> ``"dim=10, seed=0"``."""
    return ", ".join(f"{k}={v}" for k, v in values.items())
