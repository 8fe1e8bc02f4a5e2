"""Issue 13, bad input: every experiment config is validated before anything runs or is
stored; integers are parsed as integers within 64 bits; counts are bounded and large
allocations estimated first; nonsense is refused by name; ``--version`` and ``--debug``.

Each refusal is one line on stderr, status 2, and leaves a results folder exactly as it
was: same rows, same latest sweeps, so a ✓ report stays ✓."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from saddlescape import __version__
from saddlescape.cli import main
from saddlescape.runner import load_runs

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import TINY_RUN


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _dump(folder: Path) -> list[tuple]:
    """Every stored row and meta value (the latest sweeps) of ``folder``'s store."""
    conn = sqlite3.connect(f"file:{folder / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT key, status, config, metrics FROM runs ORDER BY key")
        meta = conn.execute("SELECT name, value FROM meta ORDER BY name")
        return [*rows.fetchall(), *meta.fetchall()]
    finally:
        conn.close()


# argv after the command; {out} is a copy of a good results folder
REFUSED_BEFORE_ANY_RUN = [
    # 7. every field validated against its registry or range
    (["run", "gd-rate", "--set", "problem=nosuch"], "unknown problem 'nosuch'"),
    (["run", "step-size", "--set", "problem=nosuch"], "unknown problem 'nosuch'"),
    (["run", "stable-manifold", "--set", "problem=nosuch"], "unknown problem 'nosuch'"),
    (["run", "gd-rate", "--set", "problem=monkey-saddle"], "problem 'monkey-saddle'"),
    (["run", "edge-of-stability", "--set", "activation=sigmoid"], "activation must be one of"),
    (["run", "edge-of-stability", "--set", "loss=hinge"], "loss must be one of"),
    (["run", "gd-rate", "--set", "seed=-5"], "seed must be >= 0"),
    (["run", "gd-rate", "--set", "seed=-1"], "seed must be >= 0"),
    (["run", "dimension", "--set", "dim=99999999999999999999999"], "dim must lie in"),
    (["reproduce", "--quick", "--only", "gd-rate", "--set", "gd-rate.problem=nosuch"],
     "unknown problem 'nosuch'"),
    # one bad experiment stops the whole reproduce before gd-rate (good) runs or is stored
    (["reproduce", "--quick", "--only", "gd-rate,step-size", "--set", "step-size.problem=nosuch"],
     "unknown problem 'nosuch'"),
    # 8. integers as integers, in range
    (["run", "gd-rate", "--set", "seed=1e30"], "seed must lie in [-2**63, 2**63 - 1]"),
    (["run", "gd-rate", "--set", "seed=9223372036854775808"], "seed must lie in"),
    (["run", "gd-rate", "--set", "n_init=1_0"], "n_init must be an integer"),
    (["run", "gd-rate", "--set", "max_iter=2.5"], "max_iter must be an integer"),
    # 9. huge counts
    (["run", "gd-rate", "--seeds", "100000000"], "--seeds must be <= 100,000"),
    (["run", "gd-rate", "--seeds", "99999999999999999999"], "--seeds must be <= 100,000"),
    (["run", "gd-rate", "--executor", "process", "--workers", "99999999999999999999"],
     "workers must be <="),
    (["reproduce", "--quick", "--only", "gd-rate", "--workers", "99999999999999999999"],
     "workers must be <="),
    (["run", "gd-rate", "--grid", "n_init=" + ",".join(map(str, range(1, 402))),
      "--grid", "n_eps=" + ",".join(map(str, range(1, 251)))], "split it into several"),
    (["run", "gd-rate", "--module", ""], "--module must be a dotted module name"),
    (["run", "gd-rate", "--module", "../etc"], "--module must be a dotted module name"),
    # 10. nonsense refused by name
    (["run", "gd-rate", "--address", "ray://nowhere:1"], "only the ray executor connects"),
    (["reproduce", "--quick", "--only", "gd-rate", "--executor", "sequential",
      "--address", "ray://nowhere:1"], "only the ray executor connects"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    REFUSED_BEFORE_ANY_RUN,
    ids=[" ".join(a)[:60] for a, _ in REFUSED_BEFORE_ANY_RUN],
)
def test_bad_input_is_refused_before_anything_runs_or_is_stored(
    good_results, tmp_path, capsys, argv, message
):
    out = tmp_path / "res"
    shutil.copytree(good_results, out)
    before = _dump(out)
    t0 = time.perf_counter()
    rc, _, err = _run(capsys, *argv, "--out", out, "--no-progress")
    assert rc == 2 and message in _one_line_error(err)
    assert time.perf_counter() - t0 < 20  # refused up front, not after a run or a grid
    assert _dump(out) == before  # nothing stored, no new "latest" sweep


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "gd-rate", "--out", ""],
        ["reproduce", "--quick", "--out", " "],
        ["report", "--out", ""],
        ["report", "--to", ""],
        ["runs", "--out", ""],
    ],
    ids=" ".join,
)
def test_an_empty_out_is_refused_not_taken_for_the_current_folder(
    tmp_path, monkeypatch, capsys, argv
):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and "must name a folder" in _one_line_error(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--init", "1,,2"], "--init: entry 2 of '1,,2' is empty"),
        (["--init", "1_0,1"], "entry 1 of '1_0,1' is '1_0'"),
        (["--init", "1,2,"], "entry 3 of '1,2,' is empty"),
        (["-o", "adam"], "--optimizer must be one of cubic, gd, "),
        (["--problem-free-option"], "No such option"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_optimize_refuses_nonsense_by_name(capsys, argv, message):
    rc, _, err = _run(capsys, "optimize", "lee-2d", "--steps", "3", *argv)
    assert rc == 2 and message in err
    assert "did you mean" not in err


def test_optimize_estimates_memory_before_allocating(capsys):
    t0 = time.perf_counter()
    rc, _, err = _run(capsys, "optimize", "octopus", "--dim", "100000000")
    line = _one_line_error(err)
    assert rc == 2 and "needs about" in line and "reduce --dim or --steps" in line
    assert time.perf_counter() - t0 < 10


def test_integers_are_stored_exactly(tmp_path, capsys):
    """2**53 + 1 went through float() and was stored as ...992."""
    seed = 2**53 + 1
    out = tmp_path / "res"
    rc, _, err = _run(
        capsys, "run", "gd-rate", *TINY_RUN, "--quick", "--set", f"seed={seed}",
        "--out", out, "--no-progress",
    )  # fmt: skip
    assert rc == 0, err
    (stored,) = load_runs(out)["seed"].tolist()
    assert stored == seed and isinstance(stored, int)


def test_version(capsys):
    rc, text, _ = _run(capsys, "--version")
    assert rc == 0 and text.strip() == f"saddlescape {__version__}"


def test_debug_keeps_the_exit_status_and_shows_the_traceback(tmp_path, capsys):
    rc, _, err = _run(capsys, "--debug", "run", "gd-rate", "--set", "seed=-1", "--out", tmp_path)
    assert rc == 2 and "Traceback" in err and "ConfigError" in err
    assert err.rstrip().splitlines()[-1] == "error: experiment 'gd-rate': seed must be >= 0, got -1"
    (tmp_path / "afile").write_text("")
    rc, _, err = _run(capsys, "--debug", "runs", "--out", tmp_path / "afile" / "sub")
    assert rc == 2 and "Traceback" in err


def test_python_dash_m_runs_the_same_command_line():
    """``python -m saddlescape.cli`` is the console script: same exit statuses."""
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "saddlescape.cli", "--help"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "Usage" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "saddlescape.cli", "no-such-command"], capture_output=True, text=True
    )
    assert bad.returncode == 2
