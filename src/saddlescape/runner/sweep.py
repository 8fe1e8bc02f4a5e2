"""Sweeps: expand a grid into runs, execute them on an executor, store every finished run.

A sweep is an experiment, base overrides and grid axes. The experiment's ``default_grid``
(``quick_grid`` with ``quick=True``) gives the default axes; an override fixes a key (and
removes its default axis); a given axis replaces the default one. The Cartesian product of
the axes, each point merged with the overrides, is validated into the experiment's config
dataclass *before anything runs*, and each run gets a stable key: a hash of the experiment
name and the canonical JSON of its full config. Rerunning a sweep skips the runs already
stored as ``ok`` and retries the ``failed`` ones (unless ``retry_failed=False``).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunTooLargeError
from ..experiments import Experiment, get
from .config import MAX_RUNS
from .executors import Executor, SequentialExecutor, check_executor, make_executor
from .store import Store
from .worker import RunResult, RunSpec, execute_run

__all__ = ["SweepSummary", "git_revision", "plan_sweep", "run_key", "run_sweep"]

ProgressCallback = Callable[[RunResult, int, int], None]


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did. ``ok``/``failed`` count the runs executed now, ``skipped`` the runs
    already stored (``ok``, or ``failed`` with ``retry_failed=False``). ``keys`` are the run
    keys of the whole sweep, in grid order; ``failures`` pairs each failed key with its
    error."""

    experiment: str
    directory: str
    total: int
    ok: int
    failed: int
    skipped: int
    seconds: float
    keys: tuple[str, ...]
    failures: tuple[tuple[str, str], ...] = ()
    executor: str = "sequential"
    workers: int = 1


def run_key(experiment: str, config: Mapping[str, Any]) -> str:
    """Stable key of a run: SHA-256 (first 16 hex digits) of the experiment name and the
    canonical JSON (sorted keys, no spaces) of its full config.

    >>> run_key("demo", {"seed": 0, "dim": 2}) == run_key("demo", {"dim": 2, "seed": 0})
    True
    """
    text = json.dumps([experiment, dict(config)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resolve(experiment: str | Experiment | type[Experiment]) -> Experiment:
    if isinstance(experiment, str):
        return get(experiment)
    if isinstance(experiment, type) and issubclass(experiment, Experiment):
        experiment = experiment()
    if not isinstance(experiment, Experiment):
        raise ConfigError(f"experiment must be a name or an Experiment, got {experiment!r}")
    if "<locals>" in type(experiment).__qualname__:
        try:
            registered = type(get(experiment.name))
        except KeyError:
            registered = None
        if registered is not type(experiment):
            raise ConfigError(
                f"experiment {experiment.name!r}: its class is defined inside a function, so "
                "worker processes cannot import it; define it at module level or register it"
            )
    return experiment


def _module_location(cls: type) -> tuple[str | None, str | None, str | None]:
    """``(module, import root, file)`` of the module defining ``cls``."""
    name = cls.__module__
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if file is None:
        return name, None, None
    path = Path(file).resolve()
    depth = name.count(".") + (1 if path.stem == "__init__" else 0)
    root = path.parents[depth] if name != "__main__" else path.parent
    return name, str(root), str(path)


def plan_sweep(
    experiment: str | Experiment | type[Experiment],
    *,
    overrides: Mapping[str, Any] | None = None,
    grid: Mapping[str, Iterable[Any]] | None = None,
    quick: bool = False,
) -> list[RunSpec]:
    """The runs of a sweep, each a fully resolved and validated config, in grid order
    (the last axis varies fastest). Duplicate points (``"1"`` and ``1.0`` for a float
    field) run once. Raises :class:`ConfigError` naming a bad key or value."""
    exp = _resolve(experiment)
    overrides = dict(overrides or {})
    axes_given = {k: list(v) for k, v in (grid or {}).items()}
    both = set(overrides) & set(axes_given)
    if both:
        raise ConfigError(f"key {sorted(both)[0]!r} is both fixed (set) and swept (grid)")
    axes = {
        k: list(v) for k, v in exp.grid(quick).items() if k not in overrides and k not in axes_given
    }
    axes.update(axes_given)
    for key, values in axes.items():
        if not values:
            raise ConfigError(f"grid axis {key!r} has no values")
    size = math.prod(len(values) for values in axes.values())
    if size > MAX_RUNS:
        shape = " × ".join(f"{len(v)} {k}" for k, v in axes.items())
        raise ConfigError(
            f"the sweep has {size:,} runs ({shape}); at most {MAX_RUNS:,} fit one sweep: "
            "split it into several"
        )

    module, root, file = _module_location(type(exp))
    specs: dict[str, RunSpec] = {}
    for point in itertools.product(*axes.values()):
        values = {**overrides, **dict(zip(axes, point, strict=True))}
        config = dataclasses.asdict(exp.config(quick, **values))
        key = run_key(exp.name, config)
        if key not in specs:
            specs[key] = RunSpec(exp.name, config, key, module, root, file, type(exp).__qualname__)
    return list(specs.values())


def git_revision(path: str | Path | None = None) -> str | None:
    """The git commit of the saddlescape source tree, with ``+dirty`` when its tracked
    package files differ from that commit; None when it is not a git checkout (an installed
    copy in ``site-packages`` never reports the repository that happens to contain it) or
    git is missing."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent.parent
    if "site-packages" in where.parts or "dist-packages" in where.parts:
        return None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    rev = git("rev-parse", "HEAD")
    if not rev:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return rev + "+dirty" if changed else rev


class _RichProgress:
    def __init__(self, experiment: str, total: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(experiment, total=total, ok=0, failed=0)
        self._ok = self._failed = 0

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, result: RunResult, done: int, total: int) -> None:
        self._ok += result.status == "ok"
        self._failed += result.status != "ok"
        self._progress.update(self._task, completed=done, ok=self._ok, failed=self._failed)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _crashed(spec: RunSpec, exc: BaseException) -> RunResult:
    """A failed result for a run whose worker died or could not be reached."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return RunResult(
        key=spec.key,
        status="failed",
        error=f"executor error: {type(exc).__name__}: {exc}",
        traceback=None,
        started=now,
        finished=now,
    )


def _too_large(result: RunResult, exc: RunTooLargeError) -> RunResult:
    """``result`` as a failed run that says why it could not be stored."""
    return dataclasses.replace(
        result,
        status="failed",
        metrics={},
        arrays={},
        error=f"{type(exc).__name__}: {exc}",
        traceback=None,
    )


def run_sweep(
    experiment: str | Experiment | type[Experiment],
    *,
    overrides: Mapping[str, Any] | None = None,
    grid: Mapping[str, Iterable[Any]] | None = None,
    quick: bool = False,
    store: str | Path | Store = "results",
    executor: str | Executor = "sequential",
    workers: int | None = None,
    address: str | None = None,
    progress: bool | ProgressCallback = True,
    retry_failed: bool = True,
) -> SweepSummary:
    """Run a sweep of ``experiment`` and store every run in ``store`` (a folder or a
    :class:`Store`); returns a :class:`SweepSummary`.

    ``experiment`` is a registered name, or an :class:`Experiment` instance or class
    defined at module level (workers import it by module and qualified name).

    ``executor`` is ``"sequential"`` (default), ``"process"`` (``workers`` processes) or
    ``"ray"`` (a local Ray cluster of ``workers`` CPUs, or the cluster at ``address``), or
    any :class:`~saddlescape.runner.executors.Executor` object (left running). ``progress``
    shows a rich progress bar on stderr when True; a callable is called as
    ``progress(result, done, total)`` after each stored run.

    Each run executes in :func:`~saddlescape.runner.worker.execute_run` (one torch thread,
    global RNGs seeded from ``config.seed``): same seeds give bit-identical stored results
    on every executor. A run that raises is stored as ``failed`` with its error and the sweep
    goes on. Finished runs are committed one by one, so an interrupted sweep resumes where
    it stopped when run again.

    >>> from saddlescape.runner import run_sweep  # doctest: +SKIP
    >>> run_sweep("escape_time", grid={"seed": range(5)}, executor="process", workers=4)
    ... # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if isinstance(executor, str):
        check_executor(executor, workers, address)
    specs = plan_sweep(experiment, overrides=overrides, grid=grid, quick=quick)
    name = specs[0].experiment
    owns_store = not isinstance(store, Store)
    db = Store(store) if not isinstance(store, Store) else store
    executor_name = executor if isinstance(executor, str) else type(executor).__name__
    try:
        stored = db.statuses(name)
        todo = [
            s
            for s in specs
            if stored.get(s.key) != "ok" and (retry_failed or stored.get(s.key) != "failed")
        ]
        skipped = len(specs) - len(todo)
        ok = failed = 0
        failures: list[tuple[str, str]] = []
        n_workers = 1
        if not todo:  # every run is stored: this plan is the latest sweep at once
            db.record_sweep(name, (s.key for s in specs))
        if todo:
            git = git_revision()
            by_key = {s.key: s for s in todo}
            owns_executor = isinstance(executor, str)
            pool = (
                make_executor(executor, workers=workers, address=address)
                if isinstance(executor, str)
                else executor
            )
            n_workers = pool.workers
            # the executor is up: from here this sweep is the latest one of the experiment
            db.record_sweep(name, (s.key for s in specs))
            window = 1 if isinstance(pool, SequentialExecutor) else 2 * pool.workers
            if callable(progress):
                reporter, callback = _NoProgress(), progress
            elif progress:
                reporter = _RichProgress(name, len(todo))
                callback = reporter
            else:
                reporter, callback = _NoProgress(), None
            try:
                with reporter:
                    queue = iter(todo)
                    pending: dict[cf.Future, RunSpec] = {}
                    done_count = 0
                    while True:
                        while len(pending) < window:
                            spec = next(queue, None)
                            if spec is None:
                                break
                            try:
                                pending[pool.submit(execute_run, spec)] = spec
                            except Exception as exc:  # a broken pool: record, go on
                                future: cf.Future = cf.Future()
                                future.set_exception(exc)
                                pending[future] = spec
                        if not pending:
                            break
                        finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                        for future in finished:
                            spec = pending.pop(future)
                            try:
                                result = future.result()
                            except Exception as exc:
                                result = _crashed(spec, exc)
                            config = by_key[result.key].config
                            try:
                                written = db.write(result, experiment=name, config=config, git=git)
                            except RunTooLargeError as exc:  # this run only: store why
                                result = _too_large(result, exc)
                                written = db.write(result, experiment=name, config=config, git=git)
                            done_count += 1
                            if not written:
                                skipped += 1
                            elif result.status == "ok":
                                ok += 1
                            else:
                                failed += 1
                                failures.append((result.key, result.error or ""))
                            if callback is not None:
                                callback(result, done_count, len(todo))
            finally:
                if owns_executor:
                    pool.shutdown()
    finally:
        if owns_store:
            db.close()
    return SweepSummary(
        experiment=name,
        directory=str(db.directory),
        total=len(specs),
        ok=ok,
        failed=failed,
        skipped=skipped,
        seconds=time.perf_counter() - t0,
        keys=tuple(s.key for s in specs),
        failures=tuple(failures),
        executor=executor_name,
        workers=n_workers,
    )
