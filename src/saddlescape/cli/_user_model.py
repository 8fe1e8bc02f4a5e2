"""``--model FILE.py:FUNCTION``: a user's own model, loss and data on the command line.

The function (default name ``make``) is called with the ``--model-arg key=value`` pairs as
string keyword arguments and returns what :meth:`HessianOperator.from_model` needs:

- a tuple ``(model, loss_fn, data)``, or
- a dict with ``"model"`` and ``"data"`` and optionally ``"loss_fn"`` (omitted or None: the
  model returns the loss of a batch), ``"params"``, ``"reduction"``, ``"batch_size_fn"``,
  ``"batch_loss"``, ``"method"`` and ``"mode"`` (the default of ``--mode``).

Loading a checkpoint belongs inside the function, e.g. ``make(checkpoint="run3.pt")``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SaddlescapeError

_OPTIONAL = ("loss_fn", "params", "reduction", "batch_size_fn", "batch_loss", "method", "mode")


@dataclass
class UserModel:
    """What ``make()`` returned, checked: the model, its loss and data, and the keyword
    arguments of :meth:`HessianOperator.from_model` it chose (``mode`` among them)."""

    spec: str
    model: Any
    loss_fn: Any
    data: Any
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The file (or module) name without folder and suffix, for default output names."""
        where = self.spec.rsplit(":", 1)[0] if ":" in self.spec else self.spec
        return Path(where).stem or "model"

    def operator(self, mode: str | None) -> Any:
        """The :class:`HessianOperator` at the model's current parameters."""
        from ..curvature import HessianOperator

        options = dict(self.options)
        if mode is not None:
            options["mode"] = mode
        return HessianOperator.from_model(self.model, self.loss_fn, self.data, **options)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Work that calls the user's code (its forward, loss, data): an exception of that
        code becomes one ConfigError line naming it, not a traceback (``--debug`` shows it).
        The library's own errors and running out of memory pass through unchanged."""
        try:
            yield
        except (SaddlescapeError, MemoryError):
            raise
        except (Exception, SystemExit) as exc:
            raise ConfigError(
                f"--model {self.spec}: evaluating the model, its loss or its data raised "
                f"{_describe(exc)} (--debug shows the traceback)"
            ) from exc


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (a message of several lines, like a state_dict
    mismatch, is joined)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _parse_args(pairs: list[str]) -> dict[str, str]:
    kwargs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--model-arg must be key=value with a Python name as key, got {pair!r}"
            )
        if key in kwargs:
            raise ConfigError(f"--model-arg {key!r} is given twice")
        kwargs[key] = value
    return kwargs


def _load_module(where: str) -> Any:
    path = Path(where)
    if where.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--model: no file {where!r}")
        name = f"saddlescape_user_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"--model: cannot load {where!r} as Python")
        module = importlib.util.module_from_spec(spec)
        # The file's folder is importable while it loads, as for `python FILE.py`.
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # SystemExit: a script that exits on import
            raise ConfigError(f"--model: running {where!r} raised {_describe(exc)}") from exc
        finally:
            sys.path.pop(0)
        return module
    if not where or not all(part.isidentifier() for part in where.split(".")):
        raise ConfigError(
            f"--model must be FILE.py[:FUNCTION] or package.module[:FUNCTION], got {where!r}"
        )
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--model: no file or module {where!r} ({exc})") from exc
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"--model: importing {where!r} raised {_describe(exc)}") from exc


def load_user_model(spec: str, model_args: list[str] | None = None) -> UserModel:
    """Import ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``), call the function with
    the ``key=value`` strings of ``model_args`` and check what it returns."""
    if not spec or not spec.strip():
        raise ConfigError("--model must name a file: FILE.py[:FUNCTION]")
    where, sep, func_name = spec.rpartition(":")
    if not sep or "/" in func_name or func_name.endswith(".py"):  # no function named
        where, func_name = spec, "make"
    if not func_name.isidentifier():
        raise ConfigError(f"--model: {func_name!r} is not a function name")
    kwargs = _parse_args(model_args or [])
    module = _load_module(where)
    make = getattr(module, func_name, None)
    if not callable(make):
        raise ConfigError(f"--model: {where!r} has no function {func_name!r}")
    try:
        inspect.signature(make).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"--model: {func_name}() does not take these --model-arg: {exc}"
        ) from None
    try:
        made = make(**kwargs)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"--model: {func_name}() raised {_describe(exc)}") from exc
    return _check(spec, func_name, made)


def _check(spec: str, func_name: str, made: Any) -> UserModel:
    if isinstance(made, tuple) and len(made) == 3:
        model, loss_fn, data = made
        return UserModel(spec, model, loss_fn, data)
    if isinstance(made, dict):
        unknown = sorted(set(made) - {"model", "data", *_OPTIONAL})
        if unknown:
            raise ConfigError(
                f"--model: {func_name}() returned unknown keys {unknown}; allowed: model, data, "
                + ", ".join(_OPTIONAL)
            )
        missing = [k for k in ("model", "data") if k not in made]
        if missing:
            raise ConfigError(f"--model: {func_name}() returned a dict without {missing}")
        options = {k: made[k] for k in _OPTIONAL if k != "loss_fn" and k in made}
        return UserModel(spec, made["model"], made.get("loss_fn"), made["data"], options)
    raise ConfigError(
        f"--model: {func_name}() must return (model, loss_fn, data) or a dict with 'model' and "
        f"'data', got {type(made).__name__}"
    )
