"""What crosses a process boundary: a :class:`RunSpec` goes to a worker, a
:class:`RunResult` comes back. :func:`execute_run` is the wrapper every executor runs.

A spec carries the module and qualified name of the experiment's class (and the folder that
module is importable from), so a worker process that has not imported it yet (a fresh
``spawn``/``forkserver`` process, a Ray worker) imports that very class, registered or not.
A class defined inside a function cannot be imported: such experiments are looked up by name
in the registry. Experiments defined in a script's ``__main__`` are imported from
the script's file under another module name (its ``if __name__ == "__main__"`` block does not
run), the way :mod:`multiprocessing` does it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import platform
import random
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["RunResult", "RunSpec", "execute_run", "package_versions"]

_MAIN_ALIAS = "__saddlescape_main__"


@dataclass(frozen=True)
class RunSpec:
    """One point of a sweep: a fully resolved config of a named experiment.

    ``key`` is the stable run key (see :func:`saddlescape.runner.sweep.run_key`).
    ``module``/``qualname`` name the experiment's class, and ``module_root``/``module_file``
    say where a fresh worker imports it from; without them the worker looks the name up in
    the registry.
    """

    experiment: str
    config: dict[str, Any]
    key: str
    module: str | None = None
    module_root: str | None = None
    module_file: str | None = None
    qualname: str | None = None


@dataclass(frozen=True)
class RunResult:
    """What a worker returns for one run. ``status`` is ``"ok"`` or ``"failed"``; a failed
    run has ``error`` (``"Type: message"``) and ``traceback`` and no metrics or arrays."""

    key: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    started: str = ""
    finished: str = ""
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    """Versions of saddlescape, torch, numpy and Python in this process."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        own = version("saddlescape")
    except PackageNotFoundError:  # running from a source tree that is not installed
        own = "unknown"
    return {
        "saddlescape": own,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _load_main_alias(file: str) -> ModuleType:
    module = sys.modules.get(_MAIN_ALIAS)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(_MAIN_ALIAS, file)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot import the script {file!r}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[_MAIN_ALIAS] = module
        loader_spec.loader.exec_module(module)
    return module


def _import_defining_module(spec: RunSpec) -> ModuleType:
    assert spec.module is not None
    if spec.module == "__main__":
        # a multiprocessing worker has re-imported the script as its __main__; a Ray worker
        # has not: import the script's file under another name
        main = sys.modules["__main__"]
        if spec.qualname and _lookup(main, spec.qualname) is not None:
            return main
        if spec.module_file is None:
            raise ImportError("the experiment is defined in an interactive __main__")
        return _load_main_alias(spec.module_file)
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if spec.module_root is None or exc.name is None or not spec.module.startswith(exc.name):
            raise
        sys.path.insert(0, spec.module_root)
        return importlib.import_module(spec.module)


def _lookup(module: ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _experiment(spec: RunSpec) -> Any:
    """The experiment class the spec was planned with: imported from its module by
    qualified name when it has one (registered or not), else from the registry."""
    from ..experiments import get

    if spec.module is not None and spec.qualname and "<locals>" not in spec.qualname:
        cls = _lookup(_import_defining_module(spec), spec.qualname)
        if cls is None:
            raise ImportError(f"{spec.module} has no experiment class {spec.qualname}")
        return cls()
    return get(spec.experiment)


def _json_scalar(value: Any, name: str) -> Any:
    """Return ``value`` as plain JSON-able Python (numpy/torch scalars unwrapped)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_scalar(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_scalar(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__.startswith("torch") and hasattr(value, "numel"):
        if value.numel() == 1:
            return value.item()
    raise TypeError(
        f"metric {name!r} is a {type(value).__name__}, not JSON-able; "
        "return scalars in metrics and put arrays in RunOutput.arrays"
    )


def _check_metrics(metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"RunOutput.metrics must be a dict, got {type(metrics).__name__}")
    clean = {str(k): _json_scalar(v, str(k)) for k, v in metrics.items()}
    json.dumps(clean)  # anything left that json refuses raises here
    return clean


def _check_arrays(arrays: Any) -> dict[str, np.ndarray]:
    if arrays is None:
        return {}
    if not isinstance(arrays, Mapping):
        raise TypeError(f"RunOutput.arrays must be a dict, got {type(arrays).__name__}")
    clean: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store numeric arrays only")
        clean[str(name)] = np.ascontiguousarray(array)
    return clean


@contextlib.contextmanager
def _isolated_torch(seed: int | None) -> Iterator[None]:
    """One torch thread and seeded global RNGs for the duration, restored afterwards, so a
    run gives the same bits whichever executor runs it and whatever ran before it."""
    import torch

    threads = torch.get_num_threads()
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()  # noqa: NPY002  (seeding the legacy global RNG on purpose)
    py_state = random.getstate()
    torch.set_num_threads(1)
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        random.seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(torch_state)
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def execute_run(spec: RunSpec) -> RunResult:
    """Run one point of a sweep and never raise: any exception, and ``SystemExit``,
    becomes a failed result (``KeyboardInterrupt`` still stops the sweep).

    The run executes with ``torch.set_num_threads(1)`` and the global torch, numpy and
    ``random`` generators seeded with ``config["seed"]`` (previous values restored after),
    so the same spec gives bit-identical metrics and arrays on every executor. Metrics are
    checked JSON-able (numpy and 0-d torch scalars are unwrapped); arrays become numpy.
    """
    started = _now()
    t0 = time.perf_counter()
    versions: dict[str, str] = {}
    from ..experiments.base import make_config

    try:
        versions = package_versions()
        experiment = _experiment(spec)
        config = make_config(experiment.Config, spec.config, where=f"run {spec.key}")
        seed = spec.config.get("seed")
        with _isolated_torch(seed if isinstance(seed, int) else None):
            output = experiment.run(config)
        metrics = _check_metrics(getattr(output, "metrics", None))
        arrays = _check_arrays(getattr(output, "arrays", None))
    except (Exception, SystemExit) as exc:  # the sweep goes on; the error is stored with the run
        # SystemExit too: a run (or a library it calls) that calls sys.exit() would
        # otherwise end the whole sweep, with that exit status (0 for sys.exit()) and
        # its remaining runs never run
        seconds = time.perf_counter() - t0
        error = (
            f"SystemExit: the run called sys.exit({exc.code!r})"
            if isinstance(exc, SystemExit)
            else f"{type(exc).__name__}: {exc}"
        )
        return RunResult(
            key=spec.key,
            status="failed",
            error=error,
            traceback=traceback.format_exc(),
            started=started,
            finished=_now(),
            seconds=seconds,
            versions=versions,
        )
    seconds = time.perf_counter() - t0
    return RunResult(
        key=spec.key,
        status="ok",
        metrics=metrics,
        arrays=arrays,
        started=started,
        finished=_now(),
        seconds=seconds if math.isfinite(seconds) else 0.0,
        versions=versions,
    )
