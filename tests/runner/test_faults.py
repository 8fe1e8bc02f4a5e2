"""Faults during a sweep (issue 13): a pool worker killed by a real SIGKILL, as the
out-of-memory killer does, fails only the run it was executing; the sweep starts fresh
workers and finishes every other run."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from runner_toys import toys_registered  # noqa: E402, F401

from saddlescape.runner import Store, run_sweep  # noqa: E402


def _kill_when_noted(path: Path, killed: dict, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    killed["pid"] = int(path.read_text())
    os.kill(killed["pid"], signal.SIGKILL)


@pytest.mark.slow
def test_a_worker_killed_by_sigkill_fails_only_its_own_run(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: dict = {}
    killer = threading.Thread(
        target=_kill_when_noted, args=(pid_dir / "victim", killed), daemon=True
    )
    killer.start()
    summary = run_sweep(
        "toy_victim",
        overrides={"victim": 2, "pid_dir": str(pid_dir), "seconds": 0.2},
        grid={"seed": list(range(8))},
        store=tmp_path / "res",
        executor="process",
        workers=2,
        progress=False,
    )
    killer.join(timeout=5)
    assert "pid" in killed
    assert (summary.ok, summary.failed) == (7, 1), summary.failures
    ((key, error),) = summary.failures
    assert f"pid {killed['pid']}" in error and "killed by SIGKILL" in error
    assert "out-of-memory" in error and "BrokenProcessPool" not in error
    with Store(tmp_path / "res", readonly=True) as store:
        rows = {r["config"]["seed"]: r for r in store.rows("toy_victim")}
    assert rows[2]["status"] == "failed" and rows[2]["key"] == key
    assert all(
        rows[s]["status"] == "ok" and rows[s]["metrics"]["seed"] == s for s in rows if s != 2
    )
