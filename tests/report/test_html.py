"""The HTML report: verdicts, embedded figures, missing experiments, failing analyses."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest

from saddlescape import plotting as plots
from saddlescape.experiments import Analysis, Experiment, RunOutput, RunRecord, Verdict, registry
from saddlescape.report import build_sections, write_report
from saddlescape.report.html import fmt


@dataclass(frozen=True)
class _Config:
    x: float = 1.0
    seed: int = 0


class _Threshold(Experiment):
    """Claim: every run's x is below 2 (so records can support or contradict it)."""

    name = "test-threshold"
    claim = "x stays below 2"
    source = "a test <with markup & ampersands>"
    Config = _Config

    def run(self, config):
        return RunOutput({"x": config.x}, {"trace": np.arange(3.0)})

    def analyze(self, records):
        xs = [r.metrics["x"] for r in records]
        with plots.style():
            fig, ax = plots.figure()
            ax.plot(xs, marker="o")
        ok = max(xs) < 2
        return Analysis(
            table=[{"x": x, "below": x < 2} for x in xs],
            verdict=Verdict(ok, f"max x = {max(xs):.3g}", {"max_x": max(xs)}),
            figures={"x values": fig},
        )


class _Broken(_Threshold):
    name = "test-broken"

    def analyze(self, records):
        raise RuntimeError("analysis exploded")


class _FakeStore:
    def __init__(self, runs):
        self.runs = runs

    def records(self, experiment=None, status=None):
        return [r for r in self.runs.get(experiment, [])]


def _rec(x, status="ok"):
    return RunRecord(
        config={"x": x, "seed": 0},
        metrics={"x": x} if status == "ok" else {},
        arrays={},
        status=status,
        error=None if status == "ok" else "ValueError: bad",
        seconds=0.5,
    )


@pytest.fixture
def fake_registry(monkeypatch):
    for cls in (_Threshold, _Broken):
        monkeypatch.setitem(registry._REGISTRY, cls.name, cls)


class _Checker(HTMLParser):
    """Collects tags; fails on mismatched closing tags of block elements."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack, self.imgs, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def _parse(text):
    checker = _Checker()
    checker.feed(text)
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    return checker


def test_report_shows_verdicts_figures_and_missing(fake_registry, tmp_path):
    store = _FakeStore({"test-threshold": [_rec(0.5), _rec(1.5), _rec(9.0, status="failed")]})
    path = write_report(store, tmp_path, experiments=["test-threshold", "test-broken"])
    assert path == tmp_path / "index.html"
    text = path.read_text(encoding="utf-8")
    checker = _parse(text)
    # verdict and its deciding number; failed runs counted apart
    assert "max x = 1.5" in text and "max_x" in text
    assert "✓ supported" in text
    assert "2 runs ok, 1 failed" in text
    assert "Judged on 2 of 3 runs:</b> 1 failed and are not in the verdict" in text
    # the missing experiment is listed as not run, with the command to run it
    assert "not run" in text and "reproduce --only test-broken" in text
    # markup in claims is escaped
    assert "&lt;with markup &amp; ampersands&gt;" in text
    # one embedded PNG, also saved beside the page
    (img,) = checker.imgs
    assert img["src"].startswith("data:image/png;base64,")
    png = base64.b64decode(img["src"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "test-threshold-x-values.png").read_bytes() == png
    assert "package" in text.lower() or "torch" in text


def test_contradicting_records_give_not_supported(fake_registry):
    (s,) = build_sections(_FakeStore({"test-threshold": [_rec(3.0)]}), ["test-threshold"])
    assert s.status == "not supported" and s.mark == "✗"
    assert s.verdict is not None and s.verdict.numbers == {"max_x": 3.0}


def test_failing_analysis_is_reported_not_raised(fake_registry, tmp_path):
    store = _FakeStore({"test-broken": [_rec(1.0)]})
    (s,) = build_sections(store, ["test-broken"])
    assert s.status == "failed" and "analysis exploded" in s.errors[0]
    text = write_report(store, tmp_path, ["test-broken"]).read_text(encoding="utf-8")
    _parse(text)
    assert "analysis exploded" in text and "✗ failed" in text


def test_report_reads_a_results_folder(fake_registry, tmp_path):
    from saddlescape.errors import StoreError

    with pytest.raises(StoreError, match="no results"):
        write_report(tmp_path / "nowhere", tmp_path / "out")


def test_summary_lists_every_registered_experiment_by_default(fake_registry):
    sections = build_sections(_FakeStore({}))
    assert [s.name for s in sections] == registry.names()
    assert all(s.status == "not run" for s in sections)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (True, "✓"),
        (3, "3"),
        (12345, "12,345"),
        (0.000123456, "0.0001235"),
        (2.0, "2"),
        (float("inf"), "∞"),
        (np.float64(1.5), "1.5"),
        ("a", "a"),
    ],
)
def test_cell_format(value, text):
    assert fmt(value) == text


def test_page_has_no_external_resources(fake_registry, tmp_path):
    text = write_report(_FakeStore({"test-threshold": [_rec(1.0)]}), tmp_path).read_text()
    assert not re.search(r'(src|href)="https?://', text)


def test_verdict_box_shows_deciding_numbers_and_folds_the_rest():
    from saddlescape.report.html import verdict_html

    numbers = {f"raw_metric_{i}": float(i) for i in range(35)}
    v = Verdict(True, "ok", numbers, deciding={"raw_metric_3": "GD growth per dimension"})
    text = verdict_html(v, "✓", "supported")
    _parse(text)
    shown, folded = text.split("<details", 1)
    assert "GD growth per dimension" in shown and "raw_metric" not in shown
    assert "<summary>all 35 numbers</summary>" in folded and "raw_metric_34" in folded
    # without deciding numbers: the first few shown, the rest folded
    text = verdict_html(Verdict(True, "ok", numbers), "✓", "supported")
    shown, folded = text.split("<details", 1)
    assert shown.count("<tr>") == 6 and "raw_metric_34" in folded


def test_tables_wrap_instead_of_scrolling_sideways(fake_registry, tmp_path):
    from saddlescape.report.html import _CSS

    assert "overflow-x: auto; max-height" not in _CSS
    assert re.search(r"table\.data \{[^}]*width: 100%", _CSS)
    assert "overflow-wrap: anywhere" in _CSS


def test_environment_shows_the_git_revision_the_store_records(fake_registry, tmp_path):
    class _GitStore(_FakeStore):
        def rows(self):
            return [{"git": "abc1234"}, {"git": "abc1234"}, {"git": None}]

    text = write_report(_GitStore({"test-threshold": [_rec(1.0)]}), tmp_path).read_text()
    assert "git revision (store)" in text and "abc1234" in text


def test_claims_have_no_literal_caret(tmp_path):
    """Typography: exponents are written out, not as a literal caret."""
    from saddlescape.experiments import get, names

    for name in names():
        exp = get(name)
        assert "^" not in exp.claim and "^" not in exp.source, name


def test_wide_tables_are_set_smaller_and_may_break_numbers():
    from saddlescape.report.html import WIDE_TABLE, table_html

    narrow = table_html([{f"c{i}": 1.5 for i in range(WIDE_TABLE)}])
    wide = table_html([{f"c{i}": 1.5 for i in range(WIDE_TABLE + 1)}])
    assert 'class="data"' in narrow and 'class="data wide"' in wide
