"""Executors: where runs execute. All three speak one small protocol (:class:`Executor`):
``submit(fn, *args)`` returns a :class:`concurrent.futures.Future` (so
:func:`concurrent.futures.as_completed` and ``wait`` work on every executor), ``map`` runs a
function over iterables, ``shutdown()`` releases the workers, ``workers`` says how many runs
may execute at once. The sweep keeps a window of
futures in flight and waits with :func:`concurrent.futures.wait`, so any object with a
``submit`` that returns futures works (the nevergrad convention).

- ``sequential``: runs in this process when submitted. The default; no start-up cost.
- ``process``: a :class:`~concurrent.futures.ProcessPoolExecutor`. Workers start with the
  ``forkserver`` method where the platform has it, else ``spawn``, never plain ``fork``:
  forking a process whose torch (OpenMP) thread pool is running can deadlock the child. The
  fork server is a fresh interpreter that preloads torch and this module once, so each worker
  forks from a process that never ran a parallel region, and starts in milliseconds instead
  of re-importing torch like a ``spawn`` worker.
- ``ray``: Ray tasks with one CPU each, on an existing cluster (``address``) or on a local one
  started with ``num_cpus=workers`` and shut down afterwards. Ray is an optional extra,
  imported only here, only when this executor is asked for.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Protocol, Self, runtime_checkable

from ..errors import ConfigError, UnknownNameError, check_count

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "SequentialExecutor",
    "as_completed",
    "make_executor",
]

EXECUTORS = ("sequential", "process", "ray")
#: Most Ray tasks in flight at once (a cluster's CPUs; more only queue in memory).
MAX_RAY_WORKERS = 10_000


def max_process_workers() -> int:
    """Most worker processes of a process pool: 4 per CPU (each holds a torch runtime;
    runs are CPU-bound, so more only compete for memory)."""
    return max(8, 4 * (os.cpu_count() or 1))


@runtime_checkable
class Executor(Protocol):
    """What the sweep needs from an executor."""

    workers: int

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future: ...

    def shutdown(self) -> None: ...


class _Map:
    """``map`` and the context manager, over ``submit``/``shutdown``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        """Like :func:`map`, executed on this executor; results in input order."""
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=True)]
        return (f.result() for f in futures)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class SequentialExecutor(_Map):
    """Runs each submitted call at once, in this process; returns a finished future."""

    workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller via the future
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


def _worker_init(parent_pid: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    if parent_pid is not None:
        threading.Thread(
            target=_exit_with, args=(parent_pid,), name="saddlescape-orphan-watch", daemon=True
        ).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _exit_with(pid: int, interval: float = 0.5) -> None:
    """Exit this worker once process ``pid`` (the sweep's) is gone. A sweep killed with
    SIGKILL cannot shut its pool down; without this its workers would finish their run, wait
    for work forever and keep the fork server alive (it holds on while they do)."""
    while _alive(pid):
        time.sleep(interval)
    os._exit(1)


def _default_workers(workers: int | None) -> int:
    return workers if workers is not None else (os.cpu_count() or 1)


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class ProcessExecutor(_Map):
    """A pool of ``workers`` processes (``forkserver`` start method, else ``spawn``)."""

    def __init__(self, workers: int | None = None, start_method: str | None = None):
        self.workers = check_count(
            "workers", _default_workers(workers), minimum=1, maximum=max_process_workers()
        )
        method = start_method or _start_method()
        if method == "fork":
            raise ConfigError("start_method 'fork' can deadlock torch; use forkserver or spawn")
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Preloading makes each worker a cheap fork of a torch-importing server; it also
            # sends this process's sys.path to the server.
            context.set_forkserver_preload(["saddlescape.runner.worker"])
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(_Map):
    """Ray tasks (one CPU each). Connects to ``address`` (``"auto"``, ``"ray://host:10001"``,
    ``"host:6379"``) when given, else starts a local cluster with ``num_cpus=workers``. A Ray
    session that is already initialized is used as is and left running."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        if workers is not None:
            workers = check_count("workers", workers, minimum=1, maximum=MAX_RAY_WORKERS)
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "executor 'ray' needs the optional dependency ray: pip install 'saddlescape[ray]'"
            ) from None
        self._ray = ray
        self._owns_cluster = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address:
                _check_reachable(address)
                try:
                    ray.init(address=address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise ConfigError(
                        f"address: cannot connect to the Ray cluster at {address!r}: {first}"
                    ) from None
            else:
                ray.init(num_cpus=_default_workers(workers), **kwargs)
            self._owns_cluster = True
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers if workers is not None else max(cluster_cpus, 1)
        self._remote_cache: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        remote = self._remote_cache.get(fn)
        if remote is None:
            remote = self._remote_cache[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        return remote.remote(*args).future()

    def shutdown(self) -> None:
        if self._owns_cluster and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_cluster = False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming ``address``, when a ``host:port`` (or ``ray://host:port``) address
    does not accept connections: ``ray.init`` would otherwise retry for minutes.
    ``"auto"`` and ``"local"`` are left to Ray."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"address: no Ray cluster answers at {address!r} ({exc.strerror or exc})"
        ) from None


def check_address(name: str, address: str | None) -> None:
    """Refuse a cluster ``address`` for an executor other than ``ray`` (it would be
    silently ignored)."""
    if address is not None and name != "ray":
        raise ConfigError(
            f"--address {address!r}: only the ray executor connects to a cluster, not {name!r}"
        )


def make_executor(
    name: str = "sequential", *, workers: int | None = None, address: str | None = None
) -> SequentialExecutor | ProcessExecutor | RayExecutor:
    """The executor called ``name`` (``sequential``, ``process`` or ``ray``)."""
    check_address(name, address)
    if name == "sequential":
        if workers not in (None, 1):
            raise ConfigError(f"workers: the sequential executor runs one at a time, got {workers}")
        return SequentialExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address)
    raise UnknownNameError("executor", name, EXECUTORS)
