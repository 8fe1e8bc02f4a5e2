"""The results store: one SQLite database per output folder (``DIR/runs.sqlite``).

Layout (schema version 1)::

    meta(name PRIMARY KEY, value)          app = "saddlescape", schema = "1"
    runs(key PRIMARY KEY, experiment, config JSON, seed, status "ok"|"failed",
         metrics JSON, error, traceback, started, finished, seconds, versions JSON, git)
    arrays(key PRIMARY KEY -> runs.key, npz BLOB)

Arrays are stored as ``.npz`` bytes in a BLOB of a side table rather than as files next to
the database: the run row and its arrays are written in *one* SQLite transaction, so a crash
(even SIGKILL) cannot leave a row without its arrays or an orphan file, there is nothing to
fsync-and-rename by hand, and a results folder is one file to copy. The side table keeps
``runs`` narrow, so listing and filtering never read array bytes; they load lazily, per run,
on first access of :attr:`RunRecord.arrays`.

Only the sweep's parent process writes (workers return results); every finished run is
committed at once in its own transaction. The database runs in WAL mode, so readers (the
``runs`` command, :func:`load_runs`) can look while a sweep writes. An ``ok`` row is never
overwritten; a ``failed`` row is replaced when its run is retried.

Readers open the database read-only (``Store(dir, readonly=True)``: an SQLite ``mode=ro``
URI), so a results folder on a read-only mount, a folder without write permission or a
full disk can still be listed and reported; where SQLite cannot even create its
shared-memory index there, the file is opened ``immutable``. A stored row that does not
decode (a config that is not a JSON object, metrics ``null``, text in ``seconds``) is
skipped and named in :attr:`Store.skipped`, never a traceback.
"""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, OutputError, RunTooLargeError, StoreError
from ..experiments.base import RunRecord
from .worker import RunResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DB_NAME", "LazyArrays", "Store", "load_runs"]

DB_NAME = "runs.sqlite"
_APP = "saddlescape"
_SCHEMA = "1"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    metrics TEXT NOT NULL,
    error TEXT,
    traceback TEXT,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    seconds REAL NOT NULL,
    versions TEXT NOT NULL,
    git TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, status);
CREATE TABLE IF NOT EXISTS arrays (
    key TEXT PRIMARY KEY REFERENCES runs (key) ON DELETE CASCADE,
    npz BLOB NOT NULL
);
"""

#: The packages whose versions tell which code computed a run (see Store.code_versions).
_CODE_PACKAGES = ("saddlescape", "torch", "numpy")

_COLUMNS = (
    "key, experiment, config, seed, status, metrics, error, traceback, "
    "started, finished, seconds, versions, git"
)


def _encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


class LazyArrays(Mapping[str, np.ndarray]):
    """A run's arrays, read from the store on first access."""

    def __init__(self, store: Store, key: str):
        self._store, self._key = store, key
        self._arrays: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = self._store.arrays(self._key)
        return self._arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        loaded = "loaded" if self._arrays is not None else "not loaded"
        return f"LazyArrays(run={self._key!r}, {loaded})"


class Store:
    """The SQLite results store of an output folder.

    ``Store(dir)`` opens ``dir/runs.sqlite``, creating folder and database when
    ``create=True`` (the default); ``create=False`` raises :class:`StoreError` when there is
    no database. A file that is not a saddlescape database raises :class:`StoreError` and is
    left untouched. ``readonly=True`` (implies ``create=False``) opens it for reading only,
    which also works in a read-only or full folder; :attr:`skipped` names the stored rows
    that could not be decoded and :attr:`notes` anything else a reader should be told.

    >>> import tempfile
    >>> with Store(tempfile.mkdtemp()) as store:
    ...     store.count()
    0
    """

    def __init__(self, directory: str | Path, *, create: bool = True, readonly: bool = False):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.readonly = readonly
        #: ``{run key: why}`` of stored rows that :meth:`rows` skipped (undecodable).
        self.skipped: dict[str, str] = {}
        #: Other things a reader should be told (e.g. unreadable sweep records).
        self.notes: list[str] = []
        try:
            exists = self.path.exists()
        except OSError as exc:  # a name too long, a path through a file
            raise OutputError.from_os_error(exc, self.directory, doing="open") from None
        if not exists:
            if not create or readonly:
                raise StoreError(f"no results in {self.directory} (no {DB_NAME} there)")
            if self.directory.exists() and not self.directory.is_dir():
                raise StoreError(f"{self.directory} exists and is not a folder")
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError.from_os_error(
                    exc, self.directory, doing="create the results folder"
                ) from None
        elif not self.path.is_file():
            raise StoreError(f"{self.path} exists and is not a file")
        self._conn = self._connect()
        try:
            self._check_or_init()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        try:
            if not self.readonly:
                return sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            uri = self.path.resolve().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
            return sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None

    def _reopen_immutable(self) -> None:
        """A read-only open of a WAL database needs its ``-shm`` index, which SQLite cannot
        create in a read-only or full folder: read the file as immutable instead (nothing
        else can be writing there). Writes still in a ``-wal`` file are then not seen."""
        self._conn.close()
        self._conn = self._connect(immutable=True)
        wal = self.path.with_name(DB_NAME + "-wal")
        try:
            pending = wal.stat().st_size
        except OSError:
            pending = 0
        if pending:
            self.notes.append(
                f"{wal} holds {pending:,} bytes of writes that cannot be read from this "
                "folder (it is read-only or full); copy the folder somewhere writable to see them"
            )

    def _unwritable(self) -> str | None:
        """Why this store cannot be opened for writing when its folder or file is read-only
        (a read-only mount, no write permission), else None. SQLite then reports only
        "unable to open database file", which reads as a broken database although the
        results are intact and readable."""
        for path in (self.directory, self.path):
            if path.exists() and not os.access(path, os.W_OK):
                return (
                    f"{self.path} cannot be written: {path} is read-only; choose a writable "
                    "--out folder (the stored runs are intact: `runs` and `report --to` read them)"
                )
        return None

    # ----------------------------------------------------------------- opening
    def _check_or_init(self) -> None:
        try:
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.OperationalError as exc:
            if not self.readonly:
                raise StoreError(self._unwritable() or _unreadable(self.path, exc)) from None
            self._reopen_immutable()
            try:
                tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
            except sqlite3.DatabaseError as exc2:
                raise StoreError(_unreadable(self.path, exc2)) from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(_unreadable(self.path, exc)) from None
        conn = self._conn
        if self.readonly and not tables:
            raise StoreError(
                f"{self.path} is an empty SQLite database, not a saddlescape results store"
            )
        try:
            if not tables:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                # another process may have initialized it between our look and the lock
                if not conn.execute("SELECT name FROM sqlite_master").fetchall():
                    for statement in _DDL.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.executemany(
                        "INSERT INTO meta VALUES (?, ?)", [("app", _APP), ("schema", _SCHEMA)]
                    )
                conn.execute("COMMIT")
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            meta = (
                dict(conn.execute("SELECT name, value FROM meta").fetchall())
                if "meta" in tables
                else {}
            )
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self.path} is corrupt or unreadable: {exc}") from None
        if meta.get("app") != _APP or not {"runs", "arrays"} <= tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a saddlescape results store; "
                "it was left as is: choose another --out folder"
            )
        if meta.get("schema") != _SCHEMA:
            raise StoreError(
                f"{self.path} has results schema {meta.get('schema')!r}; this saddlescape "
                f"reads schema {_SCHEMA!r}"
            )
        conn.execute("PRAGMA busy_timeout=30000")
        if self.readonly:
            return
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            # WAL needs a writable folder; a read-only copy of results still reads
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError:
            pass

    def close(self) -> None:
        """Close the connection (records already returned can no longer load arrays)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.directory)!r})"

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    # ----------------------------------------------------------------- writing
    def write(
        self,
        result: RunResult,
        *,
        experiment: str,
        config: Mapping[str, Any],
        git: str | None = None,
    ) -> bool:
        """Store one finished run in one transaction. Returns False (and changes nothing)
        when an ``ok`` run with this key is already stored; a ``failed`` one is replaced."""
        seed = config.get("seed")
        row = (
            result.key,
            experiment,
            json.dumps(dict(config), sort_keys=True),
            seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            result.status,
            json.dumps(result.metrics),
            result.error,
            result.traceback,
            result.started,
            result.finished,
            float(result.seconds),
            json.dumps(result.versions, sort_keys=True),
            git,
        )
        blob = _encode_arrays(result.arrays) if result.status == "ok" else None
        self._check_writable()
        self._check_fits(result.key, blob, row[5])
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                old = conn.execute("SELECT status FROM runs WHERE key = ?", (result.key,))
                previous = old.fetchone()
                if previous is not None and previous[0] == "ok":
                    conn.execute("ROLLBACK")
                    return False
                if previous is not None:
                    conn.execute("DELETE FROM runs WHERE key = ?", (result.key,))
                conn.execute(f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", row)
                if blob is not None:
                    conn.execute("INSERT INTO arrays (key, npz) VALUES (?, ?)", (result.key, blob))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write run {result.key} to {self.path}: {_why(exc)}") from None
        return True

    def _check_fits(self, key: str, blob: bytes | None, metrics: str) -> None:
        """Raise :class:`RunTooLargeError` when the run's arrays or metrics exceed the
        largest value SQLite stores (1 GB by default). SQLite would refuse it anyway, as a
        StoreError that ends the sweep, and a rerun would stop at the same run every time;
        told apart, the sweep stores the run as failed and goes on."""
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        for what, size in (("arrays", len(blob or b"")), ("metrics", len(metrics.encode()))):
            if size > limit:
                raise RunTooLargeError(
                    f"run {key}: its {what} take {size:,} bytes in the store, more than the "
                    f"{limit:,} bytes one stored value may hold (SQLite's limit); return "
                    f"fewer or smaller {what} (e.g. every k-th step of a trajectory)"
                )

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only")

    def record_sweep(self, experiment: str, keys: Iterable[str]) -> None:
        """Remember ``keys`` (in grid order) as the latest sweep of ``experiment``; what the
        report analyzes by default (see :meth:`latest_sweep`). Written before the sweep's
        first run, so a sweep that is interrupted is still the latest one."""
        value = json.dumps(list(keys))
        self._check_writable()
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                (f"sweep:{experiment}", value),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to {self.path}: {_why(exc)}") from None

    def latest_sweep(self, experiment: str) -> tuple[str, ...] | None:
        """The run keys of the latest sweep of ``experiment`` planned into this store (None
        when none was recorded, e.g. runs written directly with :meth:`write`)."""
        rows = self._query("SELECT value FROM meta WHERE name = ?", (f"sweep:{experiment}",))
        if not rows:
            return None
        try:
            keys = json.loads(rows[0][0])
        except (TypeError, json.JSONDecodeError):
            keys = None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            note = (
                f"{self.path}: the record of the latest sweep of {experiment} is unreadable "
                f"({str(rows[0][0])[:40]!r}); all its stored runs are used"
            )
            if note not in self.notes:
                self.notes.append(note)
            return None
        return tuple(keys)

    # ----------------------------------------------------------------- reading
    def statuses(self, experiment: str | None = None) -> dict[str, str]:
        """``{run key: status}`` of the stored runs (of one experiment)."""
        if experiment is None:
            rows = self._query("SELECT key, status FROM runs")
        else:
            rows = self._query("SELECT key, status FROM runs WHERE experiment = ?", (experiment,))
        return dict(rows)

    def experiments(self) -> dict[str, int]:
        """``{experiment name: number of stored runs}``, whatever the registry of this
        process holds (a report uses it to name stored runs it has no analysis for)."""
        rows = self._query("SELECT experiment, count(*) FROM runs GROUP BY experiment")
        return {str(name): int(n) for name, n in rows}

    def code_versions(self, experiment: str, keys: Iterable[str] | None = None) -> dict[str, int]:
        """``{the code that computed them: number of runs}`` over the stored ``ok`` runs of
        ``experiment`` (those of ``keys`` when given): git revision and the saddlescape,
        torch and numpy versions, as recorded with each run. More than one entry means
        runs of different code are pooled, e.g. a sweep resumed after an update."""
        counts: dict[str, int] = {}
        for row in self.rows(experiment, "ok", keys=keys):
            versions = row["versions"]
            parts = [f"git {row['git']}"] if row["git"] else []
            parts += [f"{n} {versions[n]}" for n in _CODE_PACKAGES if n in versions]
            label = ", ".join(parts) or "not recorded"
            counts[label] = counts.get(label, 0) + 1
        return counts

    def count(self, experiment: str | None = None, status: str | None = None) -> int:
        """Number of stored runs (of one experiment, with one status)."""
        where, params = _where(experiment, status)
        return int(self._query(f"SELECT count(*) FROM runs{where}", params)[0][0])

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        """The arrays of run ``key`` (empty for failed runs)."""
        rows = self._query("SELECT npz FROM arrays WHERE key = ?", (key,))
        try:
            return _decode_arrays(rows[0][0]) if rows else {}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise StoreError(f"{self.path}: arrays of run {key} are unreadable: {exc}") from None

    def rows(
        self,
        experiment: str | None = None,
        status: str | None = None,
        *,
        keys: Iterable[str] | None = None,
        **config_filters: Any,
    ) -> list[dict[str, Any]]:
        """Stored runs as dicts of all columns (config, metrics and versions decoded),
        in the order they finished, or in the order of ``keys`` when given (only those
        runs: ``keys=summary.keys`` selects one sweep's runs in grid order)."""
        if status is not None and status not in ("ok", "failed"):
            raise ConfigError(f"status must be 'ok' or 'failed', got {status!r}")
        where, params = _where(experiment, status)
        raw = self._query(f"SELECT {_COLUMNS} FROM runs{where} ORDER BY finished, key", params)
        names = [c.strip() for c in _COLUMNS.split(",")]
        rows = []
        for values in raw:
            row = dict(zip(names, values, strict=True))
            why = _decode_row(row)
            if why is None:
                rows.append(row)
            else:
                self.skipped[str(row["key"])] = why
        if keys is not None:
            order = {k: i for i, k in enumerate(dict.fromkeys(keys))}
            rows = sorted((r for r in rows if r["key"] in order), key=lambda r: order[r["key"]])
        return _filter(rows, config_filters)

    def records(
        self,
        experiment: str | None = None,
        status: str | None = None,
        *,
        keys: Iterable[str] | None = None,
        **config_filters: Any,
    ) -> list[RunRecord]:
        """Stored runs as :class:`RunRecord` (what :meth:`Experiment.analyze` reads), arrays
        loaded lazily. ``keys`` selects runs by key (in that order, e.g. ``summary.keys``
        of a sweep); ``config_filters`` keep runs whose config has these values (``dim=10``;
        strings from the command line are compared after conversion)."""
        return [
            RunRecord(
                config=row["config"],
                metrics=row["metrics"],
                arrays=LazyArrays(self, row["key"]),
                status=row["status"],
                error=row["error"],
                seconds=row["seconds"],
                key=row["key"],
                experiment=row["experiment"],
            )
            for row in self.rows(experiment, status, keys=keys, **config_filters)
        ]

    def to_pandas(
        self,
        experiment: str | None = None,
        status: str | None = None,
        *,
        keys: Iterable[str] | None = None,
        **config_filters: Any,
    ) -> pd.DataFrame:
        """One row per run: ``key, experiment, status, seconds, error, started, finished``,
        then every config field, then every metric (nested dicts flattened as ``a.b``). A
        metric whose name is already a column is prefixed ``metrics.``. Arrays are not
        included (use :meth:`records` or :meth:`arrays`)."""
        import pandas as pd

        base = ("key", "experiment", "status", "seconds", "error", "started", "finished")
        flat = []
        for row in self.rows(experiment, status, keys=keys, **config_filters):
            entry = {name: row[name] for name in base}
            entry.update(row["config"])
            for name, value in _flatten(row["metrics"]).items():
                entry[f"metrics.{name}" if name in entry else name] = value
            flat.append(entry)
        return pd.DataFrame(flat, columns=None if flat else list(base))


def _decode_row(row: dict[str, Any]) -> str | None:
    """Decode the JSON columns of a stored row in place; None if it is sound, else why
    not (the row is then skipped by readers)."""
    for col in ("config", "metrics", "versions"):
        try:
            value = json.loads(row[col])
        except (TypeError, json.JSONDecodeError):
            return f"{col} is not valid JSON"
        if not isinstance(value, dict):
            kind = "null" if value is None else type(value).__name__
            return f"{col} is {kind}, not an object"
        row[col] = value
    if not isinstance(row["key"], str) or not isinstance(row["experiment"], str):
        return "key or experiment is not text"
    seconds = row["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return f"seconds is {seconds!r}, not a number"
    row["seconds"] = float(seconds) if math.isfinite(seconds) else 0.0
    for col in ("error", "traceback", "started", "finished", "git"):
        if row[col] is not None and not isinstance(row[col], str):
            row[col] = str(row[col])
    return None


def _unreadable(path: Path, exc: sqlite3.Error) -> str:
    return (
        f"{path} is not a readable SQLite database ({exc}); "
        "it was left as is: choose another --out folder"
    )


def _why(exc: sqlite3.Error) -> str:
    """SQLite's reason, with what to do for the common ones."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return f"{text}: the disk holding it is full; free space and run again to resume"
    if code == sqlite3.SQLITE_READONLY or "readonly" in text:
        return f"{text}: the folder or file is read-only; choose a writable --out folder"
    return text


def _where(experiment: str | None, status: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if experiment is not None:
        clauses.append("experiment = ?")
        params.append(experiment)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _matches(value: Any, wanted: Any) -> bool:
    if value == wanted and type(value) is type(wanted):
        return True
    if isinstance(wanted, str) and not isinstance(value, str):
        if isinstance(value, bool):
            return wanted.lower() in (
                ("true", "1", "yes", "on") if value else ("false", "0", "no", "off")
            )
        try:
            return isinstance(value, int | float) and float(wanted) == value
        except ValueError:
            return False
    return value == wanted


def _filter(rows: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    for name, wanted in filters.items():
        if rows and not any(name in row["config"] for row in rows):
            known = sorted({k for row in rows for k in row["config"]})
            raise ConfigError(
                f"filter {name}=...: no run has config key {name!r} (keys: {', '.join(known)})"
            )
        rows = [r for r in rows if name in r["config"] and _matches(r["config"][name], wanted)]
    return rows


def load_runs(
    directory: str | Path,
    experiment: str | None = None,
    status: str | None = None,
    **config_filters: Any,
) -> pd.DataFrame:
    """All runs stored in ``directory`` as a pandas DataFrame, config and metrics flattened
    into columns (see :meth:`Store.to_pandas`).

    >>> df = load_runs("results")  # doctest: +SKIP
    >>> df.groupby("optimizer")["escape_iterations"].median()  # doctest: +SKIP
    """
    with Store(directory, readonly=True) as store:
        frame = store.to_pandas(experiment, status, **config_filters)
        if store.skipped or store.notes:
            import warnings

            for message in store.notes + describe_skipped(store.skipped):
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        return frame


def describe_skipped(skipped: Mapping[str, str]) -> list[str]:
    """One line per stored row a reader skipped: ``skipped stored run KEY: WHY``."""
    return [f"skipped stored run {key}: {why}" for key, why in skipped.items()]
