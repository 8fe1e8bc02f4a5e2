"""The HTML report: every experiment's claim, plots, table and verdict on one page.

:func:`write_report` reads the stored runs of each registered experiment, calls its
:meth:`~saddlescape.experiments.Experiment.analyze`, saves each figure as a PNG beside the
page and writes ``index.html``, with the figures also embedded as base64 data URIs so the
page opens from disk or as an e-mail attachment on its own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import platform
import re
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import plotting as plots
from ..errors import OutputError
from ..experiments import RunRecord, Verdict
from ..experiments import get as get_experiment
from ..experiments import names as experiment_names

STORE_FILENAME = "runs.sqlite"

#: Section status values, in the order the summary sorts nothing (registry order is kept).
SUPPORTED, NOT_SUPPORTED, NOT_RUN, FAILED = "supported", "not supported", "not run", "failed"


@dataclass(frozen=True)
class ExperimentSection:
    """What the report shows for one experiment (also what ``reproduce`` prints)."""

    name: str
    claim: str
    source: str
    status: str  # SUPPORTED, NOT_SUPPORTED, NOT_RUN or FAILED (analysis raised)
    verdict: Verdict | None = None
    table: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)  # name -> PNG
    n_ok: int = 0
    n_failed: int = 0
    seconds: float = 0.0  # total run time over the stored runs
    n_other: int = 0  # stored runs of this experiment outside the analyzed (latest) sweep
    errors: list[str] = field(default_factory=list)  # run errors / analysis traceback

    @property
    def mark(self) -> str:
        """✓ supported, ✗ not supported or failed, – not run."""
        return {SUPPORTED: "✓", NOT_SUPPORTED: "✗", FAILED: "✗"}.get(self.status, "–")

    @property
    def summary(self) -> str:
        if self.verdict is not None:
            return self.verdict.summary
        if self.status == NOT_RUN:
            return "no stored runs"
        return self.errors[0].strip().splitlines()[-1] if self.errors else self.status


# --------------------------------------------------------------------------- reading
def open_store(store_or_dir: Any) -> Any:
    """A store object from a store, a results directory or its ``runs.sqlite`` file."""
    if hasattr(store_or_dir, "records"):
        return store_or_dir
    from ..runner.store import Store

    path = Path(store_or_dir)
    if path.name == STORE_FILENAME and path.is_file():
        path = path.parent
    return Store(path, readonly=True)


def store_notes(store: Any) -> list[str]:
    """What a reader of ``store`` should be told: stored rows it skipped (undecodable) and
    unreadable sweep records, one line each."""
    from ..runner.store import describe_skipped

    return [*getattr(store, "notes", []), *describe_skipped(getattr(store, "skipped", {}))]


def unregistered_notes(store: Any) -> list[str]:
    """One line per experiment with stored runs that is not registered in this process:
    the report has no analysis for it and leaves it out, which must not go unsaid (a
    user experiment registered by ``run --module`` is registered again by ``report
    --module``)."""
    if not hasattr(store, "experiments"):
        return []
    known = set(experiment_names())
    return [
        f"{n} stored run(s) of experiment {name!r} are not in the report: no experiment of "
        "that name is registered (import the module that registers it with --module)"
        for name, n in sorted(store.experiments().items())
        if name not in known
    ]


def mixed_code_notes(
    store: Any, experiments: Sequence[str] | None = None, *, all_runs: bool = False
) -> list[str]:
    """One line per experiment whose analyzed runs (its latest sweep, or every stored run
    with ``all_runs``) were computed by more than one version of the code (git revision,
    saddlescape, torch, numpy): a sweep resumed after an update keeps its earlier runs,
    and their numbers would otherwise be pooled with the new ones without a word."""
    if not (hasattr(store, "code_versions") and hasattr(store, "latest_sweep")):
        return []
    notes = []
    for name in experiment_names() if experiments is None else experiments:
        latest = None if all_runs else store.latest_sweep(name)
        versions = store.code_versions(name, keys=latest)
        if len(versions) > 1:
            each = "; ".join(f"{n} run(s) by {label}" for label, n in versions.items())
            notes.append(
                f"{name}: the analyzed runs were computed by {len(versions)} versions of the "
                f"code ({each}); rerun the sweep into a new --out folder to compute them all "
                "with one"
            )
    return notes


def pooled_settings_notes(
    store: Any, experiments: Sequence[str] | None = None, *, all_runs: bool = False
) -> list[str]:
    """One line per experiment whose analyzed runs differ in a config key that is not
    one of its grid axes (default or quick). An analysis tells runs apart by its axes
    only, so such runs are pooled into the same medians and fits: a sweep with
    ``--grid lr=0.25,0.1`` of an experiment whose axes are optimizer, dim and seed judged
    the claim on medians over both learning rates without a word."""
    if not (hasattr(store, "rows") and hasattr(store, "latest_sweep")):  # a stand-in store
        return []
    notes = []
    for name in experiment_names() if experiments is None else experiments:
        exp = get_experiment(name)
        axes = set(exp.grid(False)) | set(exp.grid(True))
        latest = None if all_runs else store.latest_sweep(name)
        values: dict[str, dict[str, None]] = {}
        for row in store.rows(name, "ok", keys=latest):
            for key, value in row["config"].items():
                if key not in axes:
                    values.setdefault(key, {})[repr(value)] = None
        pooled = {k: list(v) for k, v in values.items() if len(v) > 1}
        if pooled:
            each = "; ".join(
                f"{k} = {', '.join(v[:5])}{', …' if len(v) > 5 else ''}" for k, v in pooled.items()
            )
            notes.append(
                f"{name}: the analyzed runs differ in {', '.join(pooled)} ({each}), which its "
                f"analysis does not tell apart (its axes: {', '.join(sorted(axes)) or 'none'}), "
                "so its numbers and verdict pool them; sweep one value at a time (the report "
                "judges the latest sweep) or into separate --out folders"
            )
    return notes


def build_sections(
    store_or_dir: Any, experiments: Sequence[str] | None = None, *, all_runs: bool = False
) -> list[ExperimentSection]:
    """Analyze the stored runs of ``experiments`` (default: all registered ones).

    Each experiment's verdict is drawn from its latest sweep (the runs it planned, as
    recorded by ``run_sweep``), so an earlier sweep with other settings in the same folder
    does not mix into it; ``all_runs=True`` pools every stored run instead. An experiment
    without runs gets status ``"not run"``; one whose analysis raises gets ``"failed"``
    with the traceback, so one broken experiment does not hide the others.
    """
    store = open_store(store_or_dir)
    try:
        names = list(experiment_names()) if experiments is None else list(experiments)
        return [_section(store, name, all_runs) for name in names]
    finally:
        if store is not store_or_dir:
            store.close()


def _section(store: Any, name: str, all_runs: bool = False) -> ExperimentSection:
    exp = get_experiment(name)
    base = {"name": name, "claim": exp.claim, "source": exp.source}
    records: list[RunRecord] = list(store.records(experiment=name))
    latest = None if all_runs or not hasattr(store, "latest_sweep") else store.latest_sweep(name)
    if latest is not None:  # the latest sweep's runs, in its grid order
        order = {key: i for i, key in enumerate(latest)}
        mine = sorted((r for r in records if r.key in order), key=lambda r: order[r.key])
        base["n_other"] = len(records) - len(mine)
        records = mine
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status != "ok"]
    counts = {
        "n_ok": len(ok),
        "n_failed": len(failed),
        "seconds": float(sum(r.seconds or 0.0 for r in records)),
        "errors": [f"{_config_text(r.config)}: {r.error}" for r in failed[:5]],
    }
    if not ok:
        return ExperimentSection(status=NOT_RUN if not failed else FAILED, **base, **counts)
    try:
        with plots.style():
            analysis = exp.analyze(ok)
            figures = {k: plots.png_bytes(fig) for k, fig in analysis.figures.items()}
    except Exception:
        counts["errors"] = [traceback.format_exc(limit=6), *counts["errors"]]
        return ExperimentSection(status=FAILED, **base, **counts)
    verdict = analysis.verdict
    return ExperimentSection(
        status=SUPPORTED if verdict.supported else NOT_SUPPORTED,
        verdict=verdict,
        table=list(analysis.table),
        figures=figures,
        **base,
        **counts,
    )


def _config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


# --------------------------------------------------------------------------- writing
def write_report(
    store_or_dir: Any,
    out_dir: str | Path,
    experiments: Sequence[str] | None = None,
    *,
    all_runs: bool = False,
) -> Path:
    """Write ``out_dir/index.html`` (and one PNG per figure) for the stored runs.

    ``store_or_dir``: a store, a results directory holding ``runs.sqlite``, or that file.
    ``experiments``: names to include (default: every registered experiment; those with
    no stored runs are listed as "not run"). Each experiment is judged on its latest sweep;
    ``all_runs=True`` pools every stored run. Returns the path of ``index.html``.
    """
    store = open_store(store_or_dir)
    try:
        sections = build_sections(store, experiments, all_runs=all_runs)
        notes = store_notes(store) + mixed_code_notes(store, experiments, all_runs=all_runs)
        notes += pooled_settings_notes(store, experiments, all_runs=all_runs)
        if experiments is None:
            notes += unregistered_notes(store)
        revisions = store_revisions(store)
    finally:
        if store is not store_or_dir:
            store.close()
    return render_html(sections, out_dir, notes, revisions=revisions)


def store_revisions(store: Any) -> list[str]:
    """The distinct git revisions the store recorded for its runs (most runs first)."""
    if not hasattr(store, "rows"):
        return []
    counts: dict[str, int] = {}
    for row in store.rows():
        rev = row.get("git")
        if rev:
            counts[str(rev)] = counts.get(str(rev), 0) + 1
    return sorted(counts, key=lambda r: -counts[r])


def render_html(
    sections: Sequence[ExperimentSection],
    out_dir: str | Path,
    notes: Sequence[str] = (),
    *,
    revisions: Sequence[str] = (),
) -> Path:
    """Write the report page for already-built ``sections``; returns ``index.html``.
    ``notes`` (e.g. :func:`store_notes`) are listed under the summary; ``revisions`` (the
    git revisions the store recorded, :func:`store_revisions`) in the environment table.

    All files (the PNGs, then ``index.html``) are written to temporary files first and
    moved into place only when every one was written whole: a crash, SIGKILL or full disk
    leaves the previous report as it was. A folder that cannot be written raises
    :class:`~saddlescape.errors.OutputError` naming it and the cause.
    """
    from ..fileio import StagedWrites, remove_stale_temps

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os_error(exc, out, doing="create the report folder") from None
    remove_stale_temps(out)  # left by an earlier report that was killed mid-write
    with StagedWrites(doing="write the report file") as files:
        body = [_header(sections), _summary(sections), _notes(notes)]
        for s in sections:
            body.append(_experiment_html(s, files, out))
        body.append(_environment(revisions))
        page = _PAGE.format(css=_CSS, body="\n".join(body), date=_now())
        path = out / "index.html"
        files.stage(path, page.encode("utf-8"))
    return path


def _now() -> str:
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def fmt(value: Any) -> str:
    """A table cell: numbers to 4 significant digits, booleans as ✓/✗, None as —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.generic):
            return fmt(value.item())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _badge(s: ExperimentSection) -> str:
    cls = {SUPPORTED: "ok", NOT_SUPPORTED: "bad", FAILED: "bad"}.get(s.status, "none")
    return f'<span class="badge {cls}">{s.mark} {_esc(s.status)}</span>'


def _header(sections: Sequence[ExperimentSection]) -> str:
    n_run = sum(s.status != NOT_RUN for s in sections)
    n_sup = sum(s.status == SUPPORTED for s in sections)
    return (
        "<header><h1>saddlescape — reproduced claims</h1>"
        f'<p class="lead">{n_sup} of {n_run} experiments run support their claim'
        f"{'' if n_run == len(sections) else f' ({len(sections) - n_run} not run)'}. "
        "Each section states the claim and its source, shows the measurements, and gives "
        "the verdict with the numbers that decided it.</p></header>"
    )


def _summary(sections: Sequence[ExperimentSection]) -> str:
    rows = []
    for s in sections:
        runs = f"{s.n_ok}" + (f" (+{s.n_failed} failed)" if s.n_failed else "")
        rows.append(
            f'<tr><td><a href="#{_slug(s.name)}">{_esc(s.name)}</a></td>'
            f"<td>{_badge(s)}</td><td>{_esc(s.summary)}</td>"
            f'<td class="num">{runs}</td><td class="num">{_duration(s.seconds)}</td></tr>'
        )
    return (
        '<section class="card"><h2>Summary</h2><table class="summary"><thead><tr>'
        "<th>experiment</th><th>verdict</th><th>deciding measurement</th>"
        '<th class="num">runs</th><th class="num">run time</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></section>"
    )


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    return f'<section class="card"><h2>Notes on the store</h2><ul>{items}</ul></section>'


#: Tables with more columns than this are set smaller and may break numbers to fit 1280 px.
WIDE_TABLE = 10


def table_html(rows: Sequence[Mapping[str, Any]], max_rows: int = 200) -> str:
    """An HTML table of ``rows`` (dicts; columns = union of keys in first-seen order)."""
    if not rows:
        return '<p class="muted">(no table)</p>'
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = []
    for r in rows[:max_rows]:
        cells = []
        for c in cols:
            v = r.get(c)
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f"<td{' class=num' if num else ''}>{_esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="muted">{len(rows) - max_rows} more rows not shown.</p>'
        if len(rows) > max_rows
        else ""
    )
    # many columns: smaller type, and numbers may break too, so the page never scrolls sideways
    cls = "data wide" if len(cols) > WIDE_TABLE else "data"
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def _experiment_html(s: ExperimentSection, files: Any, out: Path) -> str:
    parts = [
        f'<section class="card" id="{_slug(s.name)}">',
        f"<h2>{_esc(s.name)} {_badge(s)}</h2>",
        f'<p class="claim"><b>Claim.</b> {_esc(s.claim)}</p>',
        f'<p class="source"><b>Source.</b> {_esc(s.source)}</p>',
    ]
    if s.status == NOT_RUN:
        parts.append(
            '<p class="muted">Not run: no runs of this experiment in the store. Run '
            f"<code>saddlescape reproduce --only {_esc(s.name)}</code>.</p></section>"
        )
        return "".join(parts)
    if s.verdict is not None:
        parts.append(verdict_html(s.verdict, s.mark, s.status))
        if s.n_failed:  # the verdict rests on the runs that finished: say which it lacks
            parts.append(
                f'<p class="muted"><b>Judged on {s.n_ok} of {s.n_ok + s.n_failed} runs:</b> '
                f"{s.n_failed} failed and are not in the verdict or the figures (their "
                "errors are listed below); rerun them before relying on it.</p>"
            )
    for fig_name, png in s.figures.items():
        file = f"{_slug(s.name)}-{_slug(fig_name)}.png"
        files.stage(out / file, png)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img src="{uri}" alt="{_esc(s.name)}: {_esc(fig_name)}">'
            f'<figcaption>{_esc(fig_name)} (<a href="{file}">{file}</a>)</figcaption></figure>'
        )
    if s.table:
        parts.append("<h3>Results</h3>" + table_html(s.table))
    mean = s.seconds / max(s.n_ok + s.n_failed, 1)
    parts.append(
        f'<p class="muted">{s.n_ok} runs ok, {s.n_failed} failed; '
        f"run time {_duration(s.seconds)} in total, {_duration(mean)} per run."
        + (
            f" {s.n_other} earlier stored runs with other settings are not included "
            "(<code>saddlescape report --all-runs</code> pools them).</p>"
            if s.n_other
            else "</p>"
        )
    )
    if s.errors:
        errs = "".join(f"<pre>{_esc(e)}</pre>" for e in s.errors)
        title = "analysis error" if s.status == FAILED else "failed runs"
        parts.append(f"<details><summary>{title}</summary>{errs}</details>")
    parts.append("</section>")
    return "".join(parts)


#: Numbers shown in a verdict box when the verdict names no deciding ones.
VERDICT_SHOWN = 6


def verdict_html(v: Verdict, mark: str, status: str) -> str:
    """A verdict box: the summary, the deciding numbers under plain labels, and every
    other number folded in a ``<details>``."""

    def rows(items: Iterable[tuple[str, Any]]) -> str:
        return "".join(
            f"<tr><th>{_esc(k)}</th><td class=num>{_esc(fmt(x))}</td></tr>" for k, x in items
        )

    if v.deciding:
        shown = [(label, v.numbers.get(k)) for k, label in v.deciding.items()]
        rest = [(k, x) for k, x in v.numbers.items() if k not in v.deciding]
    else:
        items = list(v.numbers.items())
        shown, rest = items[:VERDICT_SHOWN], items[VERDICT_SHOWN:]
    cls = "ok" if v.supported else "bad"
    out = (
        f'<div class="verdict {cls}"><p><b>Verdict: {mark} {_esc(status)}.</b> '
        f"{_esc(v.summary)}</p>"
    )
    if shown:
        out += f'<table class="numbers deciding">{rows(shown)}</table>'
    if rest:
        out += (
            f'<details class="more-numbers"><summary>all {len(v.numbers)} numbers</summary>'
            f'<table class="numbers">{rows(v.numbers.items())}</table></details>'
        )
    return out + "</div>"


def package_versions(packages: Iterable[str] = ()) -> dict[str, str]:
    """Versions of Python, saddlescape and the numerical packages the results depend on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("saddlescape", "torch", "numpy", "scipy", "matplotlib", *packages):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _environment(revisions: Sequence[str] = ()) -> str:
    env = package_versions()
    env["git revision (store)"] = ", ".join(revisions) if revisions else "not recorded"
    env["platform"] = platform.platform()
    env["cpus"] = str(os.cpu_count())
    env["command"] = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]) or "python"
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in env.items())
    return (
        '<section class="card env"><h2>Environment</h2>'
        f'<table class="numbers">{rows}</table></section>'
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>saddlescape report</title>
<style>{css}</style>
</head>
<body>
<main>
{body}
<footer>Generated by saddlescape on {date}.</footer>
</main>
</body>
</html>
"""

_CSS = """
:root { --fg:#1d232a; --muted:#66707a; --line:#e3e6ea; --bg:#f6f7f9; --card:#fff;
        --ok:#0b7a4b; --okbg:#e6f5ee; --bad:#b3261e; --badbg:#fdecea; --accent:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto,
             "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 20px 40px; }
header h1 { margin: 0 0 4px; font-size: 26px; letter-spacing: -0.01em; }
.lead { color: var(--muted); margin: 0 0 18px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
        padding: 18px 22px; margin: 0 0 20px; box-shadow: 0 1px 2px rgba(0,0,0,.03); }
h2 { font-size: 19px; margin: 0 0 10px; display: flex; align-items: center; gap: 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { background: #f0f2f4; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
.claim, .source { margin: 4px 0; }
.source { color: var(--muted); font-size: 14px; }
.muted { color: var(--muted); font-size: 13.5px; }
.badge { font-size: 12.5px; font-weight: 600; padding: 2px 9px; border-radius: 999px;
         white-space: nowrap; }
.badge.ok { color: var(--ok); background: var(--okbg); }
.badge.bad { color: var(--bad); background: var(--badbg); }
.badge.none { color: var(--muted); background: #eef0f2; }
.verdict { border-left: 4px solid; border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
.verdict p { margin: 2px 0 6px; }
.verdict.ok { border-color: var(--ok); background: var(--okbg); }
.verdict.bad { border-color: var(--bad); background: var(--badbg); }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { padding: 4px 10px; text-align: left; border-bottom: 1px solid var(--line);
         vertical-align: top; }
thead th { font-weight: 600; border-bottom: 2px solid #cfd4da; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary { width: 100%; }
table.summary td:first-child { white-space: nowrap; }
table.data tbody tr:nth-child(even) { background: #fafbfc; }
table.numbers th { font-weight: 500; color: var(--muted); }
table.numbers td { font-variant-numeric: tabular-nums; }
.verdict table.numbers th, .verdict table.numbers td { border-color: rgba(0,0,0,.06); }
.scroll { max-height: 520px; overflow-y: auto; }
table.data { width: 100%; table-layout: auto; }
table.data th, table.data td { overflow-wrap: anywhere; word-break: break-word; }
table.data thead th { white-space: normal; }
table.data td.num { white-space: nowrap; overflow-wrap: normal; word-break: normal; }
table.data.wide { font-size: 12px; }
table.data.wide th, table.data.wide td { padding: 3px 5px; }
table.data.wide td.num { white-space: normal; overflow-wrap: anywhere; }
table.summary td, table.numbers td { overflow-wrap: anywhere; }
.verdict p { overflow-wrap: anywhere; }
summary { cursor: pointer; color: var(--muted); font-size: 13.5px; }
figure { margin: 14px 0; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; }
details { margin-top: 8px; }
pre { background: #f4f5f7; padding: 8px 10px; border-radius: 6px; overflow-x: auto;
      font-size: 12px; white-space: pre-wrap; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; margin-top: 10px; }
"""
