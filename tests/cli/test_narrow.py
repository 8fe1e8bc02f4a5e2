"""Issue 13, item 12: at 80 columns every table shows every value whole (no "…", no name
broken inside a word), long texts wrap below the tables, and help text wraps evenly."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from saddlescape.cli import _app, main
from saddlescape.experiments import get, names
from saddlescape.problems import names as problem_names
from saddlescape.runner import RunResult, Store

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import TINY_GD_RATE

WIDTH = 80


@pytest.fixture
def narrow(monkeypatch):
    """Consoles (ours and typer's help) 80 columns wide, as in a terminal with COLUMNS=80."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("TERMINAL_WIDTH", str(WIDTH))
    for console in (_app.console, _app.err_console):
        monkeypatch.setattr(console, "_width", WIDTH)


def _run(capsys, *argv: str) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().out


def _check_width(text: str) -> None:
    # a file path is printed whole on its own line (to be copied), whatever its length
    lines = [ln for ln in text.splitlines() if not re.fullmatch(r"(report|results): \S+", ln)]
    too_wide = [ln for ln in lines if cell_len(ln.rstrip()) > WIDTH]
    assert not too_wide, too_wide
    assert "…" not in text.replace("…)", "")  # format_vector's elision of long vectors


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_runs_shows_every_value_whole(narrow, tmp_path, capsys):
    configs = [
        {"dim": dim, "optimizer": opt, "lr": 0.012345, "seed": seed}
        for dim in (1000, 10000)
        for opt in ("perturbed-gd", "noisy-gd")
        for seed in (123456789, 2**62)
    ]
    with Store(tmp_path) as store:
        for i, config in enumerate(configs):
            metrics = {
                "final_f": -0.6666663 - i,
                "escape_iterations": 1234567 + i,
                "grad_norm_at_escape": 1.23456e-07,
                "hvp_count": 98765,
            }
            result = RunResult(
                key=f"{i:016x}", status="ok", metrics=metrics, arrays={}, error=None,
                traceback=None, started="2025-01-01T00:00:00+00:00",
                finished="2025-01-01T00:00:01+00:00", seconds=12.5,
            )  # fmt: skip
            store.write(result, experiment="dimension", config=config)
    rc, text = _run(capsys, "runs", "--out", tmp_path, "--metrics", "4")
    assert rc == 0
    _check_width(text)
    cells = set(text.split())
    assert {"1000", "10000", "123456789", str(2**62), "perturbed-gd", "noisy-gd"} <= cells
    assert {"-0.6667", "-7.667", "1234567", "1.235e-07", "98765", "12.50"} <= cells
    for header in ("dim", "optimizer", "seed", "final_f", "escape_iterations", "hvp_count"):
        assert header in cells
    # a continued table starts with the key again: every run can be told apart
    assert all(text.count(f"{i:016x}"[:8]) >= 1 for i in range(len(configs)))


def test_problems_names_are_never_broken(narrow, capsys):
    rc, text = _run(capsys, "problems")
    assert rc == 0
    _check_width(text)
    words = set(re.findall(r"[\w-]+", text))
    assert set(problem_names()) <= words  # e.g. cubic-regularized-quadratic on one line
    assert "loss=cross-entropy," in text.split()


@pytest.mark.parametrize("argv", [["octopus", "--dim", "4"], ["himmelblau"]], ids=" ".join)
def test_critical_points_fit(narrow, capsys, argv):
    rc, text = _run(capsys, "problems", *argv)
    assert rc == 0
    _check_width(text)
    assert "minimum" in text.split()


@pytest.mark.parametrize("verbose", [False, True])
def test_experiments_shows_every_claim_whole(narrow, capsys, verbose):
    rc, text = _run(capsys, "experiments", *(["--verbose"] if verbose else []))
    assert rc == 0
    _check_width(text)
    for name in names():
        if verbose:  # claims and sources as paragraphs below each name
            assert _flat(get(name).claim) in _flat(text)
            assert _flat(get(name).source) in _flat(text)
        else:  # the claim column wraps between words: every word is there, none cut
            assert all(word in text.split() for word in get(name).claim.split())


@pytest.mark.parametrize("command", ["reproduce", "report", "run", "runs", "optimize"])
def test_help_fits_and_wraps_evenly(narrow, capsys, command):
    rc, text = _run(capsys, command, "--help")
    assert rc == 0
    _check_width(text)
    # the description's paragraphs are reflowed to the width, not cut where the source's
    # own line breaks were: inside a paragraph no line stops far short of the width
    description = text.split("╭")[0]
    paragraphs = [p.splitlines() for p in re.split(r"\n\s*\n", description) if p.strip()]
    for lines in paragraphs[1:]:  # after "Usage: ..."
        for line in lines[:-1]:
            assert cell_len(line.strip()) > WIDTH - 20, lines


def test_reproduce_and_report_verdicts_are_whole(narrow, good_results, tmp_path, capsys):
    out = tmp_path / "res"
    shutil.copytree(good_results, out)
    argv = ["reproduce", "--only", "gd-rate", "--quick", "--out", out, *TINY_GD_RATE]
    rc, text = _run(capsys, *argv, "--executor", "sequential", "--no-progress")
    assert rc == 0
    _check_width(text)
    with Store(out, readonly=True) as store:
        assert store.count() == 1
    summary = _flat(text.split("verdicts:")[1].split("report:")[0])
    assert summary.startswith("✓ gd-rate: ") and "censored by max_iter" in summary
    rc, text = _run(capsys, "report", "--out", out)
    assert rc == 0
    _check_width(text)
    assert _flat(text.split("verdicts:")[1].split("report:")[0]).startswith(summary)
