"""Shared fixtures of the CLI tests: one small results folder (a quick gd-rate sweep and
its report) that tests copy before changing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from saddlescape.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import TINY_GD_RATE


@pytest.fixture(scope="session")
def good_results(tmp_path_factory) -> Path:
    """A results folder with one quick gd-rate sweep (✓) and its report; copy it first."""
    out = tmp_path_factory.mktemp("good") / "res"
    argv = ["reproduce", "--only", "gd-rate", "--quick", "--out", str(out), *TINY_GD_RATE]
    assert main([*argv, "--executor", "sequential", "--no-progress"]) == 0
    assert (out / "index.html").stat().st_size > 10_000
    return out
