"""Atomic file output: every file saddlescape writes (the report's HTML and PNGs, a
trajectory's CSV/NPZ, a spectrum plot) is written to a temporary file in the same folder
and moved over the target with :func:`os.replace`, so a reader, a crash or a SIGKILL sees
the previous file or the new one, never a truncated one; a full disk leaves the previous
file in place. OS errors become one-line :class:`~saddlescape.errors.OutputError`.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_text(path, "first")
>>> with atomic_path(path) as tmp:  # any writer that takes a path (savefig, np.savez)
...     _ = tmp.write_text("second")
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('second', ['note.txt'])
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

__all__ = [
    "StagedWrites",
    "atomic_path",
    "check_writable",
    "remove_stale_temps",
    "write_bytes",
    "write_text",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


def _temp_name(path: Path) -> Path:
    # hidden, unique, with the target's suffix (savefig and np.savez read it), and no
    # longer than the target's own name allows (a 250-character name must still work)
    tag = f".{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix[:16]}"
    return path.with_name("." + path.stem[: max(1, 200 - len(tag))] + tag)


#: The temporary names :func:`_temp_name` makes: ``.STEM.PID-HEX.tmpSUFFIX``.
_TEMP = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.tmp[^/]*$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temps(folder: str | Path) -> int:
    """Remove the temporary files that writers killed mid-write (SIGKILL, a signal, a power
    cut) left in ``folder``: those whose writer process is gone. Returns how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP.match(entry.name)
            if match and entry.is_file() and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _check_target(path: Path, doing: str) -> None:
    try:
        is_dir = path.name in ("", ".", "..") or path.is_dir()
    except OSError as exc:  # a name too long
        raise OutputError.from_os_error(exc, path, doing=doing) from None
    if is_dir:
        raise OutputError.from_os_error(OSError(errno.EISDIR, "Is a directory"), path, doing=doing)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _finish(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, give it the target's permissions and move it over ``path``."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = _NEW_FILE_MODE
    os.chmod(tmp, mode)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, doing: str = "write") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write the whole file to; when the block
    ends without an error it replaces ``path`` at once, otherwise it is removed and
    ``path`` is left as it was. An :class:`OSError` becomes :class:`OutputError`."""
    path = Path(path)
    _check_target(path, doing)
    tmp = _temp_name(path)
    try:
        yield tmp
        _finish(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if isinstance(exc, OutputError):
            raise
        raise OutputError.from_os_error(exc, path, doing=doing) from exc
    except BaseException:
        _discard(tmp)
        raise


def check_writable(path: str | Path, *, doing: str = "write", hint: str = "") -> None:
    """Refuse now, with one-line :class:`OutputError`, a ``path`` that :func:`atomic_path`
    could not write later (a folder, a name too long, a read-only or missing folder): a
    temporary file is created beside it and removed again; ``path`` itself is not touched.
    For checks before long work whose result would otherwise be lost."""
    path = Path(path)
    _check_target(path, doing)
    tmp = _temp_name(path)
    try:
        path.parent.stat()  # a missing folder or a path through a file, named as such
        if len(os.fsencode(path.name)) > _name_max(path.parent):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))
        with open(tmp, "xb"):
            pass
    except OSError as exc:
        raise OutputError.from_os_error(exc, path, doing=doing, hint=hint) from None
    finally:
        _discard(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    write_bytes(path, text.encode(encoding))


class StagedWrites:
    """Several files written all or nothing: :meth:`stage` writes each to a temporary
    file beside its target; leaving the ``with`` block without an error moves them all into
    place, an error (a full disk half-way) removes them and leaves every previous file as it
    was.

    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> with StagedWrites() as files:
    ...     files.stage(out / "a.txt", b"A")
    ...     files.stage(out / "b.txt", b"B")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt', 'b.txt']
    """

    def __init__(self, *, doing: str = "write") -> None:
        self._doing = doing
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path: str | Path, data: bytes) -> None:
        path = Path(path)
        _check_target(path, self._doing)
        tmp = _temp_name(path)
        self._staged.append((tmp, path))
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise OutputError.from_os_error(exc, path, doing=self._doing) from exc

    def commit(self) -> None:
        try:
            for tmp, path in self._staged:
                _finish(tmp, path)
        except OSError as exc:
            raise OutputError.from_os_error(exc, path, doing=self._doing) from exc
        finally:
            self.abort()

    def abort(self) -> None:
        for tmp, _ in self._staged:
            _discard(tmp)
        self._staged.clear()

    def __enter__(self) -> StagedWrites:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
