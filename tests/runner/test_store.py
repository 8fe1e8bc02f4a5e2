"""The SQLite store: refusing foreign or corrupt files, never overwriting ok runs, filters,
lazy arrays and the pandas loader."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runner_toys import toys_registered  # noqa: F401

from saddlescape.errors import ConfigError, StoreError
from saddlescape.runner import RunResult, Store, load_runs, run_sweep


def _result(key: str, status: str = "ok", **metrics) -> RunResult:
    return RunResult(
        key=key,
        status=status,
        metrics=metrics,
        arrays={"a": np.arange(3.0)} if status == "ok" else {},
        error=None if status == "ok" else "RuntimeError: x",
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:00:01+00:00",
        seconds=1.0,
    )


def test_garbage_file_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "runs.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        Store(tmp_path)
    assert db.read_bytes() == b"this is not a database" * 100
    with pytest.raises(StoreError):
        run_sweep("toy_quadratic", store=tmp_path, progress=False)


def test_truncated_store_is_refused(tmp_path):
    run_sweep("toy_quadratic", overrides={"dim": 50, "steps": 2}, grid={"seed": range(8)},
              store=tmp_path, progress=False)  # fmt: skip
    db = tmp_path / "runs.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="malformed"):
        with Store(tmp_path) as store:
            store.records()
    assert db.read_bytes() == data[: len(data) // 2]


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "runs.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE runs (x)")
        conn.execute("INSERT INTO runs VALUES (42)")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not a saddlescape results store"):
        Store(tmp_path)
    assert db.read_bytes() == before


def test_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="no results in"):
        Store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(StoreError):
        load_runs(tmp_path / "nothing")


def test_ok_rows_are_never_overwritten_failed_rows_are_replaced(tmp_path):
    with Store(tmp_path) as store:
        assert store.write(_result("k1", loss=1.0), experiment="e", config={"seed": 0})
        assert not store.write(_result("k1", loss=2.0), experiment="e", config={"seed": 0})
        assert not store.write(_result("k1", "failed"), experiment="e", config={"seed": 0})
        assert store.write(_result("k2", "failed"), experiment="e", config={"seed": 1})
        assert store.write(_result("k2", loss=3.0), experiment="e", config={"seed": 1})
        rows = {r["key"]: r for r in store.rows()}
        assert rows["k1"]["metrics"] == {"loss": 1.0} and rows["k2"]["metrics"] == {"loss": 3.0}
        assert store.count(status="failed") == 0
        np.testing.assert_array_equal(store.arrays("k2")["a"], np.arange(3.0))


def test_a_second_connection_sees_each_commit(tmp_path):
    with Store(tmp_path) as writer, Store(tmp_path, create=False) as reader:
        writer.write(_result("k1", loss=1.0), experiment="e", config={"seed": 0})
        assert reader.count() == 1
        with sqlite3.connect(tmp_path / "runs.sqlite") as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_records_filters_lazy_arrays_and_pandas(tmp_path):
    run_sweep(
        "toy_quadratic",
        overrides={"fail_seed": 1, "steps": 5},
        grid={"dim": [2, 3], "seed": [0, 1]},
        store=tmp_path,
        progress=False,
    )
    with Store(tmp_path) as store:
        assert len(store.records()) == 4
        assert len(store.records(status="ok")) == 2
        assert len(store.records(experiment="other")) == 0
        dim3 = store.records(dim=3)
        assert [r.config["dim"] for r in dim3] == [3, 3]
        assert [r.config["dim"] for r in store.records(dim="3", status="ok")] == [3]
        assert len(store.records(lr="0.1")) == 4 and len(store.records(lr=0.2)) == 0
        record = store.records(dim=3, status="ok")[0]
        assert "not loaded" in repr(record.arrays)
        assert record.arrays["x"].shape == (3,)
        assert "not loaded" not in repr(record.arrays)
        sweep = run_sweep("toy_quadratic", grid={"seed": [1, 0]}, overrides={"dim": 3, "steps": 5,
                          "fail_seed": 1}, store=store, progress=False)  # fmt: skip
        assert (sweep.skipped, sweep.failed) == (1, 1)  # the failed run is retried
        chosen = store.records(keys=sweep.keys)
        assert [r.key for r in chosen] == list(sweep.keys)
        assert [r.config["seed"] for r in chosen] == [1, 0]
        assert [r.key for r in store.records(keys=sweep.keys, status="ok")] == [sweep.keys[1]]
        with pytest.raises(ConfigError, match="'dimm'"):
            store.records(dimm=3)
        with pytest.raises(ConfigError, match="status"):
            store.records(status="done")

    df = load_runs(tmp_path)
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    for column in ("key", "experiment", "status", "seconds", "dim", "seed", "lr", "final_loss"):
        assert column in df.columns
    ok = df[df.status == "ok"].sort_values("dim")
    assert list(ok["dim"]) == [2, 3] and ok["final_loss"].notna().all()
    assert df[df.status == "failed"]["final_loss"].isna().all()
    assert len(load_runs(tmp_path, status="ok", dim=2)) == 1
