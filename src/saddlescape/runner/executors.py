"""Executors: where runs execute. All three speak one small protocol (:class:`Executor`):
``submit(fn, *args)`` returns a :class:`concurrent.futures.Future` (so
:func:`concurrent.futures.as_completed` and ``wait`` work on every executor), ``map`` runs a
function over iterables, ``shutdown()`` releases the workers, ``workers`` says how many runs
may execute at once. The sweep keeps a window of
futures in flight and waits with :func:`concurrent.futures.wait`, so any object with a
``submit`` that returns futures works (the nevergrad convention).

- ``sequential``: runs in this process when submitted. The default; no start-up cost.
- ``process``: a :class:`~concurrent.futures.ProcessPoolExecutor` that survives a dead
  worker (see :class:`ProcessExecutor`). Workers start with the
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

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from ..errors import ConfigError, UnknownNameError, WorkerLostError, check_count

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "SequentialExecutor",
    "as_completed",
    "check_executor",
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


def _tracked(started_dir: str, token: str, fn: Callable[..., Any], /, *args: Any) -> Any:
    """Run ``fn(*args)`` in a pool worker after noting, in ``started_dir/token``, which
    process runs it: when the pool breaks, the parent reads these notes to tell the run
    that was in the dead worker from the runs that were merely lost with the pool."""
    with open(os.path.join(started_dir, token), "w") as fh:
        fh.write(str(os.getpid()))
    return fn(*args)


def _exit_status(pid: int) -> int | None:
    """The wait status of the (zombie) process ``pid`` from ``/proc/PID/stat`` (field 52,
    Linux), without reaping it; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[49])  # field 52 of the whole line; 3 precede the fields here
    except (OSError, IndexError, ValueError):
        return None


def _death(pid: int, exitcode: int | None) -> str:
    """How worker ``pid`` died, as the error of the run it was executing."""
    head = f"the worker process (pid {pid}) running this run died"
    if exitcode is None:
        status = _exit_status(pid)
        if status is not None and os.WIFSIGNALED(status):
            exitcode = -os.WTERMSIG(status)
        elif status is not None and os.WIFEXITED(status):
            exitcode = os.WEXITSTATUS(status)
    if exitcode is None:
        return head
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = (
            " (likely the out-of-memory killer: the run needed more memory than was free)"
            if -exitcode == signal.SIGKILL
            else ""
        )
        return f"{head}: killed by {name}{why}"
    return f"{head}: it exited with status {exitcode}"


@dataclass
class _Task:
    token: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    outer: Future
    generation: int = 0
    tries: int = 0


@dataclass
class _Broken:
    """What was found when a pool broke: the run(s) in dead workers and why."""

    culprits: dict[str, str] = field(default_factory=dict)


class ProcessExecutor(_Map):
    """A pool of ``workers`` processes (``forkserver`` start method, else ``spawn``).

    A worker that dies (SIGKILL from the out-of-memory killer, a segfault) breaks a
    :class:`~concurrent.futures.ProcessPoolExecutor` for good: every future in it fails with
    ``BrokenProcessPool``. This executor hands out its own futures instead and, when its
    pool breaks, fails only the run that was in the dead worker (with a
    :class:`~saddlescape.errors.WorkerLostError` naming the signal), starts a fresh pool and
    resubmits the other runs there. A run lost with a pool :data:`MAX_TRIES` times without
    being found in a dead worker is failed too, so nothing loops. :attr:`restarts` counts
    the fresh pools.
    """

    #: How often a run may be lost to broken pools (not its own fault) before it fails.
    MAX_TRIES = 3

    def __init__(self, workers: int | None = None, start_method: str | None = None):
        self.workers = check_count(
            "workers", _default_workers(workers), minimum=1, maximum=max_process_workers()
        )
        method = start_method or _start_method()
        if method == "fork":
            raise ConfigError("start_method 'fork' can deadlock torch; use forkserver or spawn")
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Preloading makes each worker a cheap fork of a torch-importing server; it also
            # sends this process's sys.path to the server.
            self._context.set_forkserver_preload(["saddlescape.runner.worker"])
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._broken: dict[int, _Broken] = {}
        self._generation = 0
        self._closed = False
        self.restarts = 0
        self._started = tempfile.mkdtemp(prefix="saddlescape-pool-")
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        task = _Task(uuid.uuid4().hex, fn, args, Future())
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a ProcessExecutor after shutdown")
            self._tasks[task.token] = task
            self._launch(task)
        return task.outer

    def _launch(self, task: _Task) -> None:
        """Submit ``task`` to the current pool (a fresh one if it is broken); lock held."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._started, task.token))
        try:
            inner = self._pool.submit(_tracked, self._started, task.token, task.fn, *task.args)
        except BrokenProcessPool:
            self._replace_pool()
            inner = self._pool.submit(_tracked, self._started, task.token, task.fn, *task.args)
        task.generation = self._generation
        inner.add_done_callback(lambda f, t=task, g=self._generation: self._done(t, g, f))

    def _replace_pool(self) -> None:
        old = self._pool
        self._pool = self._new_pool()
        self._generation += 1
        self.restarts += 1
        old.shutdown(wait=False, cancel_futures=True)

    def _diagnose(self, generation: int) -> _Broken:
        """Called by the first future of a broken pool, before the pool terminates its
        other workers: the runs whose worker is already dead are the culprits."""
        found = _Broken()
        processes = getattr(self._pool, "_processes", None) or {}
        for token, task in self._tasks.items():
            if task.generation != generation:
                continue
            try:
                with open(os.path.join(self._started, token)) as fh:
                    pid = int(fh.read())
            except (OSError, ValueError):
                continue  # not started: it was only queued
            if _alive(pid):
                continue
            proc = processes.get(pid)
            exitcode = proc.exitcode if proc is not None else None
            found.culprits[token] = _death(pid, exitcode)
        return found

    def _done(self, task: _Task, generation: int, inner: Future) -> None:
        if inner.cancelled():
            with self._lock:
                self._tasks.pop(task.token, None)
            task.outer.cancel()
            return
        exc = inner.exception()
        with self._lock:
            if isinstance(exc, BrokenProcessPool) and not self._closed:
                if generation not in self._broken:
                    self._broken[generation] = self._diagnose(generation)
                    if generation == self._generation:
                        self._replace_pool()
                why = self._broken[generation].culprits.get(task.token)
                task.tries += 1
                if why is None and task.tries < self.MAX_TRIES:
                    self._launch(task)  # lost with the pool, not its fault: run it again
                    return
                exc = WorkerLostError(
                    why or f"the process pool broke {task.tries} times while this run was in it"
                )
            self._tasks.pop(task.token, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._started, task.token))
        with contextlib.suppress(InvalidStateError):  # cancelled by shutdown
            if exc is not None:
                task.outer.set_exception(exc)
            else:
                task.outer.set_result(inner.result())

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for task in self._tasks.values():
                task.outer.cancel()
            self._tasks.clear()
        shutil.rmtree(self._started, ignore_errors=True)


#: Ray's switch between a single-machine cluster on the loopback address (its default on
#: Windows and macOS) and a cluster reachable from other machines (its default on Linux).
_RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """Start a local Ray cluster whose every server listens on 127.0.0.1 only.

    ``ray.init(_node_ip_address="127.0.0.1")`` does not do it: Ray replaces a loopback
    node address by the machine's external one, and its GCS, raylet, workers and agents
    then listen on all interfaces. With Ray's cluster switch off (the environment
    variable, read by the processes the cluster starts, and the constant the driver read
    when it imported Ray) the node address *is* 127.0.0.1, and Ray binds its gRPC servers
    and agents to it. Both are restored afterwards: the cluster's processes keep the
    environment they were started with, and the driver then asks the running node for
    its address."""
    from ray._private import ray_constants

    saved_env = os.environ.get(_RAY_CLUSTER_SWITCH)
    saved_constant = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_RAY_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_env is None:
            os.environ.pop(_RAY_CLUSTER_SWITCH, None)
        else:
            os.environ[_RAY_CLUSTER_SWITCH] = saved_env


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
        self._reaper: subprocess.Popen | None = None
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
                with _loopback_only(ray):
                    ray.init(num_cpus=_default_workers(workers), **kwargs)
                self._reaper = _start_reaper()
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
        if self._reaper is not None:  # the cluster is down: its processes are gone
            with contextlib.suppress(OSError):
                self._reaper.stdin.write(b"q")  # type: ignore[union-attr]
                self._reaper.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(timeout=10)
            self._reaper = None


#: Run by :func:`_start_reaper` in its own process: while the driver (its parent) lives,
#: note the processes below it every 0.2 s; once the driver is gone (SIGKILL gives Ray no
#: chance to stop its cluster), kill those that are still there. "q" on its stdin ends it.
_REAPER = r"""
import os, select, signal, sys, time
driver, me = os.getppid(), os.getpid()

def table():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(d)] = (int(fields[1]), fields[19])  # ppid, start time
            except (OSError, IndexError, ValueError):
                pass
    return out

def below(root, procs):
    kids = {}
    for pid, (ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = {}, [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k != me and k not in seen:
                seen[k] = procs[k][1]
                todo.append(k)
    return seen

known = {}
while True:
    if select.select([sys.stdin], [], [], 0.2)[0]:
        if sys.stdin.buffer.read1(1) == b"q":
            sys.exit(0)  # the sweep shut its cluster down itself
        break  # end of input without "q": the driver died
    procs = table()
    if driver not in procs or os.getppid() != driver:
        break
    known.update(below(driver, procs))
for sig in (signal.SIGTERM, signal.SIGKILL):
    procs = table()
    for pid, start in known.items():
        if pid in procs and procs[pid][1] == start:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    time.sleep(1.0)
"""


def _start_reaper() -> subprocess.Popen | None:
    """A small watcher process that kills the local Ray cluster this process started if
    this process dies without shutting it down (Linux: it reads ``/proc``)."""
    if not os.path.isdir("/proc/self"):
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _REAPER],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C for the sweep is not one for the reaper
    )


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


def check_executor(name: str, workers: int | None, address: str | None) -> None:
    """Refuse an unknown executor, a cluster ``address`` it would ignore and a ``workers``
    count out of its range, without starting anything: a sweep checks them before it
    looks at the store, so a rerun whose runs are all stored refuses them too instead of
    accepting them because no executor was needed."""
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    check_address(name, address)
    if name == "sequential":
        if workers not in (None, 1):
            raise ConfigError(f"workers: the sequential executor runs one at a time, got {workers}")
    elif workers is not None:
        maximum = max_process_workers() if name == "process" else MAX_RAY_WORKERS
        check_count("workers", workers, minimum=1, maximum=maximum)


def make_executor(
    name: str = "sequential", *, workers: int | None = None, address: str | None = None
) -> SequentialExecutor | ProcessExecutor | RayExecutor:
    """The executor called ``name`` (``sequential``, ``process`` or ``ray``)."""
    check_executor(name, workers, address)
    if name == "sequential":
        return SequentialExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address)
    raise UnknownNameError("executor", name, EXECUTORS)
