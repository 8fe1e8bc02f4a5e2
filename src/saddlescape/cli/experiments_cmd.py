"""``saddlescape experiments`` (list the claims), ``saddlescape reproduce`` (run every
experiment's sweep and write the report: the project's main job) and ``saddlescape report``
(write the HTML report of a results folder)."""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from ..errors import ConfigError, OutputError
from ._app import Column, app, console, fitted_tables, output_folder, print_tables
from .runs_cmd import warn

_EXECUTORS = ("sequential", "process", "ray")


@app.command("experiments")
def experiments_command(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the sources too."),
) -> None:
    """List the registered experiments: the claim each one tests, and its source."""
    from ..experiments import get, names

    rows = []
    for name in names():
        exp = get(name)
        rows.append([name, f"{_grid_size(exp, True)}/{_grid_size(exp, False)}", exp])
    if not verbose:
        columns = [Column("name", style="bold"), Column("runs", justify="right")]
        columns.append(Column("claim", wrap=True))
        cells = [[n, runs, escape(exp.claim)] for n, runs, exp in rows]
        print_tables("[bold]experiments[/]", fitted_tables(columns, cells))
        console.print("[dim]runs: quick/full sweep sizes; --verbose adds the sources[/]")
        return
    # the long texts go below each name, wrapped at the terminal's width
    console.print("[bold]experiments[/] (runs: quick/full sweep sizes)")
    for name, runs, exp in rows:
        console.print()
        console.print(f"[bold]{escape(name)}[/]  runs {runs}", highlight=False)
        console.print(escape(exp.claim), highlight=False)
        console.print(f"[dim]source: {escape(exp.source)}[/]", highlight=False)


def _grid_size(exp: Any, quick: bool) -> int:
    n = 1
    for values in exp.grid(quick).values():
        n *= len(values)
    return n


def _parse_only(only: str | None) -> list[str]:
    from ..experiments import get, names

    if only is None:
        return names()
    chosen = [n.strip() for n in only.split(",") if n.strip()]
    if not chosen:
        raise ConfigError("--only must name at least one experiment")
    for name in chosen:
        get(name)  # UnknownNameError with suggestions
    return list(dict.fromkeys(chosen))


def split_sets(items: Sequence[str], experiments: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per-experiment overrides from ``--set`` items.

    ``NAME.key=value`` applies to experiment NAME only; ``key=value`` to every selected
    experiment whose config has ``key`` (at least one must). Unknown keys raise ConfigError.
    """
    from ..experiments import get
    from ..experiments.base import config_fields
    from ..runner.config import parse_sets

    fields = {name: config_fields(get(name).Config) for name in experiments}
    out: dict[str, dict[str, str]] = {name: {} for name in experiments}
    for key, value in parse_sets(items).items():
        target, dot, field = key.rpartition(".")
        if dot:
            if target not in fields:
                raise ConfigError(
                    f"--set {key}: experiment {target!r} is not selected "
                    f"(selected: {', '.join(experiments)})"
                )
            if field not in fields[target]:
                raise ConfigError(
                    f"--set {key}: unknown config key {field!r} of {target} "
                    f"(keys: {', '.join(fields[target])})"
                )
            out[target][field] = value
            continue
        having = [n for n in experiments if key in fields[n]]
        if not having:
            raise ConfigError(
                f"--set {key}: no selected experiment has a config key {key!r}; "
                "use NAME.key=value to address one experiment"
            )
        for name in having:
            out[name][key] = value
    return out


@app.command("reproduce")
def reproduce_command(
    quick: bool = typer.Option(
        False, "--quick", help="Quick configs and grids (minutes instead of an hour)."
    ),
    out: str = typer.Option("results", "--out", help="Results folder."),
    executor: str = typer.Option(
        "process", "--executor", help="Where runs execute: sequential, process or ray."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Parallel runs (process/ray; default: all CPUs)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="With --executor ray: the cluster to use ('auto', 'host:6379', "
        "'ray://host:10001'); default: start a local one on 127.0.0.1.",
    ),
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated experiment names (default: all)."
    ),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="Override a config value: key=value (every selected experiment with that key) "
        "or NAME.key=value (repeatable). A fixed key is no longer swept.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> int:
    """Run every experiment's sweep into --out, then write --out/index.html.

    Finished runs are skipped when run again, so an interrupted reproduction resumes. Exit
    status 1 when a run or an analysis failed; a claim the data do not support is a result
    (shown with ✗), not an error.
    """
    from ..runner import make_executor, plan_sweep, run_sweep
    from ..runner.executors import check_address

    if executor not in _EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(_EXECUTORS)}, got {executor!r}")
    check_address(executor, address)
    folder = output_folder(out)
    names = _parse_only(only)
    overrides = split_sets(set_ or (), names)
    for name in names:  # every config is validated before anything runs or is stored
        plan_sweep(name, overrides=overrides[name], quick=quick)
    if executor == "sequential" and workers in (None, 1):
        workers = None
    pool = make_executor(executor, workers=workers, address=address)
    t0 = time.perf_counter()
    summaries = {}
    try:
        for name in names:
            summaries[name] = run_sweep(
                name,
                overrides=overrides[name],
                quick=quick,
                store=folder,
                executor=pool,
                progress=progress,
            )
    finally:
        pool.shutdown()
    run_seconds = time.perf_counter() - t0
    with console.status("analyzing and writing the report"):
        sections, index = _write_report(
            folder, folder, None, all_runs=False, elsewhere="choose a writable --out folder"
        )
    chosen = set(names)
    title = (
        f"reproduce{' --quick' if quick else ''}: {len(names)} experiment(s), "
        f"{run_seconds:.0f} s on {executor} ×{pool.workers}"
    )
    rows, verdicts = [], []
    broken = False
    for s in sections:
        if s.name not in chosen:
            continue
        sm = summaries[s.name]
        style = _STYLES.get(s.status, "dim")
        runs = f"{sm.ok} new, {sm.skipped} kept" + (
            f", [red]{sm.failed} failed[/]" if sm.failed else ""
        )
        broken |= bool(sm.failed) or s.status == "failed"
        rows.append([f"[{style}]{s.mark}[/]", s.name, runs, f"{sm.seconds:.1f} s"])
        verdicts.append((s, style))
    columns = [Column("", justify="center"), Column("experiment"), Column("runs", justify="right")]
    columns.append(Column("time", justify="right"))
    print_tables(escape(title), fitted_tables(columns, rows))
    _print_verdicts(verdicts)
    console.print(f"report: {index.resolve()}", soft_wrap=True, highlight=False)
    return 1 if broken else 0


_STYLES = {"supported": "green", "not supported": "red", "failed": "red"}


def _print_verdicts(verdicts: Sequence[tuple[Any, str]]) -> None:
    """Each verdict below the table, wrapped at the terminal's width."""
    console.print("verdicts:")
    for s, style in verdicts:
        console.print(
            f"  [{style}]{s.mark} {escape(s.name)}[/]: {escape(s.summary)}", highlight=False
        )


def _write_report(
    folder: Path,
    to: Path,
    names: Sequence[str] | None,
    *,
    all_runs: bool,
    elsewhere: str = "write the report elsewhere with --to DIR",
) -> tuple[list[Any], Path]:
    """Read ``folder``'s store (read-only), analyze, write the report into ``to``; warn
    about stored rows that were skipped; a folder that cannot be written says so."""
    from ..fileio import check_writable
    from ..report import (
        build_sections,
        mixed_code_notes,
        open_store,
        pooled_settings_notes,
        render_html,
        store_notes,
        unregistered_notes,
    )
    from ..report.html import store_revisions

    with open_store(folder) as store:
        if to.is_dir():  # refuse an unwritable folder now, not after the analysis
            try:
                check_writable(to / "index.html", doing="write the report into")
            except OutputError as exc:
                _unwritable(exc, elsewhere)
        sections = build_sections(store, names, all_runs=all_runs)
        notes = store_notes(store) + mixed_code_notes(store, names, all_runs=all_runs)
        notes += pooled_settings_notes(store, names, all_runs=all_runs)
        if names is None:
            notes += unregistered_notes(store)
        revisions = store_revisions(store)
    warn(notes)
    try:
        index = render_html(sections, to, notes, revisions=revisions)
    except OutputError as exc:
        _unwritable(exc, elsewhere)
    return sections, index


def _unwritable(exc: OutputError, elsewhere: str) -> NoReturn:
    """Re-raise ``exc`` with what to do and that nothing was lost."""
    unwritable = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    hint = f"{elsewhere}; " if unwritable else ""
    raise OutputError(exc.errno, f"{exc}; {hint}the previous report files were kept") from exc


@app.command("report")
def report_command(
    out: str = typer.Option("results", "--out", help="Results folder (runs.sqlite)."),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Where to write index.html and the figures (default: --out); for a results "
        "folder that is read-only.",
    ),
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated experiment names (default: all)."
    ),
    all_runs: bool = typer.Option(
        False,
        "--all-runs",
        help="Pool every stored run of an experiment (default: its latest sweep only).",
    ),
    module: list[str] | None = typer.Option(
        None, "--module", help="Import this module first, to register your experiments."
    ),
) -> None:
    """Write --out/index.html (and one PNG per figure) from the runs stored in --out.

    Each experiment is judged on its latest sweep into --out, so a rerun with other
    settings replaces, rather than mixes with, the earlier one; --all-runs pools them. The
    store is only read, so a read-only results folder can be reported with --to elsewhere.
    Every file is replaced whole: a crash or a full disk leaves the previous report.
    """
    from ..runner.config import import_modules

    folder = output_folder(out)
    target = output_folder(to, "--to") if to is not None else folder
    import_modules(module or ())
    sections, index = _write_report(
        folder, target, _parse_only(only) if only is not None else None, all_runs=all_runs
    )
    # failed runs are not analyzed: say so beside the ok ones, as the HTML page does,
    # rather than in one total that reads as the runs behind the verdict
    rows = [
        [s.mark, s.name, f"{s.n_ok}" + (f" [red](+{s.n_failed} failed)[/]" if s.n_failed else "")]
        for s in sections
    ]
    columns = [Column("", justify="center"), Column("experiment"), Column("runs", justify="right")]
    title = escape(f"report of {out}")
    print_tables(title, fitted_tables(columns, rows))
    _print_verdicts([(s, _STYLES.get(s.status, "dim")) for s in sections])
    console.print(f"report: {index.resolve()}", soft_wrap=True, highlight=False)
