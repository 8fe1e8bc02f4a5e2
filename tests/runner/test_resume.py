"""Kill a sweep with SIGKILL mid-way: the store stays consistent and a rerun completes it,
every run exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from runner_toys import toys_registered  # noqa: E402, F401

from saddlescape.runner import Store, plan_sweep, run_sweep  # noqa: E402

N_RUNS = 10
SWEEP = {"overrides": {"dim": 8, "steps": 5, "sleep": 0.3}, "grid": {"seed": list(range(N_RUNS))}}


def _finished(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _check_consistent(directory: Path) -> dict[str, str]:
    """Every row complete, every ok row with its arrays; returns {key: started}."""
    with sqlite3.connect(directory / "runs.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT key, status, metrics, started, finished FROM runs").fetchall()
        blobs = dict(conn.execute("SELECT key, length(npz) FROM arrays").fetchall())
    conn.close()
    assert len({r[0] for r in rows}) == len(rows)
    assert set(blobs) <= {r[0] for r in rows}  # no orphan arrays
    with Store(directory, create=False) as store:
        for key, status, metrics, started, finished in rows:
            assert status == "ok" and metrics and started and finished
            assert blobs[key] > 0
            arrays = store.arrays(key)
            assert arrays["losses"].shape == (5,) and np.isfinite(arrays["x"]).all()
    return {r[0]: r[3] for r in rows}


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import runner_toys
        runner_toys.register_toys()
        from saddlescape.runner import run_sweep
        run_sweep("toy_quadratic", store={str(tmp_path)!r}, progress=False, **{SWEEP!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    db = tmp_path / "runs.sqlite"
    try:
        deadline = time.monotonic() + 90
        while _finished(db) < 3:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    before = _check_consistent(tmp_path)
    assert 3 <= len(before) < N_RUNS

    summary = run_sweep("toy_quadratic", store=tmp_path, progress=False, **SWEEP)
    assert (summary.skipped, summary.ok, summary.failed) == (len(before), N_RUNS - len(before), 0)
    after = _check_consistent(tmp_path)
    expected = {s.key for s in plan_sweep("toy_quadratic", **SWEEP)}
    assert set(after) == expected  # every run exactly once (keys are unique in the table)
    assert all(after[k] == started for k, started in before.items())  # finished runs kept
