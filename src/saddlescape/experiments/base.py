"""What an experiment is: a claim, a config dataclass, one run, and an analysis.

An experiment tests one claim of the theory. Its config is a dataclass of scalar fields
(numbers, strings, booleans) that always includes ``seed``. A *sweep* is a grid over
config fields (``dim``, ``optimizer``, ``seed`` ...); every point of the grid is one
*run*, executed by :meth:`Experiment.run`, and stored by the runner. After the sweep,
:meth:`Experiment.analyze` reads all stored runs and decides a :class:`Verdict`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import INT64_MAX, INT64_MIN, ConfigError

Scalar = int | float | str | bool

#: An integer as text: digits only (no ``1_000``, no float notation that would round).
_INTEGER = re.compile(r"[+-]?\d+")
#: Integers above this are not exact as floats: ``1e30`` or ``2.5e17`` are refused.
_EXACT_FLOAT_INT = 2**53


@dataclass(frozen=True)
class RunOutput:
    """What one run returns: JSON-able scalar ``metrics`` and named numpy ``arrays``."""

    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """A stored run as the analysis sees it."""

    config: dict[str, Any]
    metrics: dict[str, Any]
    arrays: Mapping[str, np.ndarray]
    status: str = "ok"
    error: str | None = None
    seconds: float = 0.0
    key: str = ""  # the run key in the results store
    experiment: str = ""


@dataclass(frozen=True)
class Verdict:
    """Does the measurement support the claim? ``numbers`` are what decided it.

    ``deciding`` picks, of ``numbers``, the few that decided the verdict and gives each a
    plain label (key -> label); the report shows those and folds the rest. Empty: the
    report shows the first few numbers under their keys.
    """

    supported: bool
    summary: str
    numbers: dict[str, float] = field(default_factory=dict)
    deciding: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    """An experiment's result: a table (list of rows), figures and the verdict."""

    table: list[dict[str, Any]]
    verdict: Verdict
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure


class Experiment(abc.ABC):
    """Base class of experiments. Subclasses set the class attributes and implement
    :meth:`run` and :meth:`analyze`."""

    name: ClassVar[str]
    claim: ClassVar[str]
    source: ClassVar[str]
    Config: ClassVar[type]  # a dataclass with scalar fields, including ``seed: int``
    quick_overrides: ClassVar[dict[str, Scalar]] = {}
    default_grid: ClassVar[dict[str, list[Scalar]]] = {}
    quick_grid: ClassVar[dict[str, list[Scalar]]] = {}

    # ----------------------------------------------------------------- to implement
    @abc.abstractmethod
    def run(self, config: Any) -> RunOutput:
        """Execute one point of the sweep. Must be deterministic given ``config.seed``."""

    @abc.abstractmethod
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        """Table, figures and verdict from all runs of a sweep."""

    # ----------------------------------------------------------------- provided
    def config(self, quick: bool = False, **overrides: Any) -> Any:
        """The default config (``quick`` applies the quick overrides), with overrides
        validated: an unknown key or a value of the wrong type raises ConfigError."""
        values = dict(self.quick_overrides) if quick else {}
        values.update(overrides)
        return make_config(self.Config, values, where=f"experiment {self.name!r}")

    def grid(self, quick: bool = False) -> dict[str, list[Scalar]]:
        """The default sweep axes."""
        return dict(self.quick_grid if quick else self.default_grid)


def config_fields(config_cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_cls)}


def coerce(value: Any, to: Any, key: str, where: str) -> Scalar:
    """Convert ``value`` (possibly a string from the CLI or TOML) to the type of a field."""
    typ = {"int": int, "float": float, "str": str, "bool": bool}.get(to, to)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if typ is int:
        number = _as_int(value)
        if number is None:
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        if isinstance(number, float):  # integral but inexact in float notation
            if abs(number) <= INT64_MAX:
                raise ConfigError(
                    f"{where}: {key} = {value!r} is not exact in float notation; write its digits"
                )
            number = INT64_MAX + 1  # out of range: the message below
        if not INT64_MIN <= number <= INT64_MAX:
            raise ConfigError(
                f"{where}: {key} must lie in [-2**63, 2**63 - 1] (the results store keeps "
                f"64-bit integers), got {value!r}"
            )
        return number
    if typ is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
    if typ is str:
        return str(value)
    return value


def _as_int(value: Any) -> int | float | None:
    """``value`` as an exact int, or None: integer text is parsed as an integer (never
    through a float, which rounds above 2**53); a float, or float text such as ``1e3``,
    only when it is integral and exact (an integral float above 2**53 is returned as is,
    for the caller to refuse)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if "_" in text:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value) if abs(value) <= _EXACT_FLOAT_INT else value
    return None


def make_config(config_cls: type, values: Mapping[str, Any], where: str) -> Any:
    """Build ``config_cls(**values)`` with keys checked and values coerced to field types.
    Calls the config's ``validate()`` method when it has one."""
    fields = config_fields(config_cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown config key {key!r} (keys: {', '.join(fields)})")
        kwargs[key] = coerce(value, fields[key].type, key, where)
    config = config_cls(**kwargs)
    seed = getattr(config, "seed", 0)
    if isinstance(seed, int) and not isinstance(seed, bool) and seed < 0:
        raise ConfigError(f"{where}: seed must be >= 0, got {seed}")
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return config
