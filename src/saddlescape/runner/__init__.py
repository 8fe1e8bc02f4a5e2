"""Sweeps over experiments: executors (sequential, process, Ray) and the SQLite store.

>>> from saddlescape.runner import run_sweep, load_runs  # doctest: +SKIP
>>> run_sweep("escape_time", grid={"seed": range(8)}, executor="process", workers=4)
... # doctest: +SKIP
>>> load_runs("results").groupby("optimizer").mean(numeric_only=True)  # doctest: +SKIP
"""

from .config import SweepArgs, load_sweep_file, sweep_args
from .executors import Executor, make_executor
from .store import Store, load_runs
from .sweep import SweepSummary, plan_sweep, run_key, run_sweep
from .worker import RunResult, RunSpec, execute_run

__all__ = [
    "Executor",
    "RunResult",
    "RunSpec",
    "Store",
    "SweepArgs",
    "SweepSummary",
    "execute_run",
    "load_runs",
    "load_sweep_file",
    "make_executor",
    "plan_sweep",
    "run_key",
    "run_sweep",
    "sweep_args",
]
