"""scripts/report_check.py: the real-browser check of the report (issue 14)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "report_check.py"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("report_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_findings_become_one_line_per_failure(rc):
    found = {
        "view": 1280,
        "scrollWidth": 1500,
        "height": 900,
        "overflow": [
            {
                "element": "div.scroll",
                "kind": "clipped sideways (auto)",
                "content": 553,
                "box": 300,
            },
            {
                "element": "div.scroll",
                "kind": "clipped sideways (auto)",
                "content": 553,
                "box": 300,
            },
            {"element": "div", "kind": "past the page", "left": 8, "right": 1508, "view": 1280},
        ],
        "images": [{"alt": "a", "ok": True}, {"alt": "gone", "ok": False}],
    }
    lines = rc.problems(found)
    assert len(lines) == 4  # the duplicate is reported once
    assert "1500 px wide" in lines[0] and "image not loaded: gone" in lines[-1]
    ok = {"view": 1280, "scrollWidth": 1280, "height": 1, "overflow": [], "images": []}
    assert rc.problems(ok) == []


def test_missing_report_is_status_2(rc, tmp_path):
    assert rc.main([str(tmp_path / "nowhere.html"), "--shots", str(tmp_path / "s")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_chromium_finds_overflow_and_broken_images_and_passes_the_report(rc, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.html").write_text(
        '<!DOCTYPE html><html><head></head><body><div style="width:1500px">wide</div>'
        '<img src="missing.png" alt="gone"></body></html>'
    )
    assert rc.main([str(bad), "--shots", str(tmp_path / "bad-shots")]) == 1
    assert (tmp_path / "bad-shots" / "page-01.png").is_file()

    from saddlescape.experiments import Verdict
    from saddlescape.report.html import ExperimentSection, render_html

    wide = [{f"a rather long column name {i}": 123456.789 * i for i in range(25)}] * 3
    section = ExperimentSection(
        name="wide",
        claim="c",
        source="s",
        status="supported",
        verdict=Verdict(True, "x" * 400, {f"n{i}": float(i) for i in range(40)}),
        table=wide,
    )
    page = render_html([section], tmp_path / "good")
    assert rc.main([str(page), "--shots", str(tmp_path / "good-shots")]) == 0
