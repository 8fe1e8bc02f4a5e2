"""The exceptions saddlescape raises.

Every error a user can provoke with bad input is a :class:`SaddlescapeError`, so the CLI
can print it as one clear line. The subclasses also derive from the built-in exception a
Python user would expect (``ValueError`` for bad values, ``KeyError`` for unknown names),
so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SaddlescapeError(Exception):
    """Base class of every error raised on purpose by saddlescape."""


class ConfigError(SaddlescapeError, ValueError):
    """A bad parameter, configuration key or value. The message names it."""


class UnknownNameError(SaddlescapeError, KeyError):
    """A name (problem, optimizer, experiment, executor) that is not registered."""

    def __init__(self, what: str, name: str, choices: Iterable[str]):
        self.what, self.name, self.choices = what, name, sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self.choices)
        super().__init__(f"unknown {what} {name!r}{hint} (known: {known})")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class DivergenceError(SaddlescapeError, FloatingPointError):
    """A loss, gradient or Hessian-vector product became non-finite."""


class CurvatureError(SaddlescapeError, ValueError):
    """A curvature computation was asked something it cannot answer (non-scalar loss,
    parameters without grad, empty data)."""


class StoreError(SaddlescapeError):
    """The results store cannot be opened or written."""


class RunTooLargeError(StoreError):
    """One finished run does not fit one stored value (its arrays or metrics exceed
    SQLite's size limit); the sweep stores the run as failed with this message instead."""


class WorkerLostError(SaddlescapeError, RuntimeError):
    """The worker process executing a run died (killed by a signal, e.g. by the
    out-of-memory killer); the run is recorded as failed with this message and the sweep
    goes on in fresh workers."""


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float or raise :class:`ConfigError` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return v


def check_int(name: str, value: int, *, minimum: int = 0) -> int:
    """Return ``value`` as an int ``>= minimum`` or raise :class:`ConfigError` naming it."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, int):
        try:
            if float(value) != int(value):
                raise ValueError
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


#: SQLite's INTEGER is a signed 64-bit integer: every integer the results store keeps
#: (seeds, dimensions, counts in a config) must lie in this range.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class OutputError(SaddlescapeError, OSError):
    """A file or folder cannot be written (or read): a full disk, a read-only folder, a
    name that is a folder, a path through a file, a name too long. The message names the
    path and the cause in one line."""

    @classmethod
    def from_os_error(
        cls, exc: OSError, path: object = None, *, doing: str = "write", hint: str = ""
    ) -> OutputError:
        """The one-line error for ``exc``, raised while trying to ``doing`` ``path``."""
        import errno
        import os

        target = str(path if path is not None else (exc.filename or "?"))
        reasons = {
            errno.ENOSPC: "no space left on the device: the disk holding "
            f"{os.path.dirname(os.path.abspath(target)) or target!r} is full",
            errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "it is on a read-only file system",
            errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted",
            errno.ENAMETOOLONG: "a file name in the path is too long",
            errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder, not a file",
            errno.ENOENT: "no such file or folder",
        }
        reason = reasons.get(exc.errno or -1, exc.strerror or str(exc))
        message = f"cannot {doing} {target!r}: {reason}"
        error = cls(exc.errno or 0, message + (f"; {hint}" if hint else ""))
        error.filename = target
        return error

    def __str__(self) -> str:  # OSError would print "[Errno 28] ..."
        return str(self.args[1] if len(self.args) > 1 else self.args[0])


def check_count(name: str, value: int, *, minimum: int = 0, maximum: int) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]`` or raise :class:`ConfigError`
    naming ``name``: for counts that size memory or work (seeds, workers, probes, runs).

    >>> check_count("--probes", 8, minimum=1, maximum=10_000)
    8
    """
    value = check_int(name, value, minimum=minimum)
    if value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {value:,}")
    return value


def check_int64(name: str, value: int) -> int:
    """Return ``value`` if it fits SQLite's 64-bit INTEGER, else raise :class:`ConfigError`."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ConfigError(
            f"{name} must lie in [-2**63, 2**63 - 1] (the results store keeps 64-bit "
            f"integers), got {value}"
        )
    return value


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of
    ``/proc/meminfo``, else physical memory), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(what: str, nbytes: float, hint: str) -> None:
    """Refuse, before allocating, work estimated to need ``nbytes`` when that exceeds the
    memory available: one line naming ``what``, the estimate and ``hint`` (how to shrink
    it), instead of an allocation traceback or the OOM killer later."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise ConfigError(
            f"{what} needs about {_bytes(nbytes)} of memory, more than the "
            f"{_bytes(available)} available: {hint}"
        )


def _bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover
