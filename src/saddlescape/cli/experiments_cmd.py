"""``saddlescape experiments`` (list the claims), ``saddlescape reproduce`` (run every
experiment's sweep and write the report: the project's main job) and ``saddlescape report``
(write the HTML report of a results folder)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..errors import ConfigError
from ._app import app, console

_EXECUTORS = ("sequential", "process", "ray")


@app.command("experiments")
def experiments_command(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the sources too."),
) -> None:
    """List the registered experiments: the claim each one tests, and its source."""
    from ..experiments import get, names

    table = Table(title="experiments", title_justify="left", show_lines=verbose)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("claim")
    if verbose:
        table.add_column("source", style="dim")
    table.add_column("runs (quick/full)", justify="right", no_wrap=True)
    for name in names():
        exp = get(name)
        row = [name, exp.claim]
        if verbose:
            row.append(exp.source)
        row.append(f"{_grid_size(exp, True)}/{_grid_size(exp, False)}")
        table.add_row(*row)
    console.print(table)


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
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
    executor: str = typer.Option(
        "process", "--executor", help="Where runs execute: sequential, process or ray."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Parallel runs (process/ray; default: all CPUs)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="With --executor ray: the cluster to use ('auto', 'ray://host:10001'); "
        "default: start a local one.",
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
    from ..report import build_sections, render_html
    from ..runner import make_executor, run_sweep

    if executor not in _EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(_EXECUTORS)}, got {executor!r}")
    names = _parse_only(only)
    overrides = split_sets(set_ or (), names)
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
                store=out,
                executor=pool,
                progress=progress,
            )
    finally:
        pool.shutdown()
    run_seconds = time.perf_counter() - t0
    with console.status("analyzing and writing the report"):
        sections = build_sections(out)
        index = render_html(sections, out)
    chosen = set(names)
    table = Table(
        title=f"reproduce{' --quick' if quick else ''}: {len(names)} experiment(s), "
        f"{run_seconds:.0f} s on {executor} ×{pool.workers}",
        title_justify="left",
    )
    for col, just in (("", "center"), ("experiment", "left"), ("runs", "right")):
        table.add_column(col, justify=just, no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("verdict")
    broken = False
    for s in sections:
        if s.name not in chosen:
            continue
        sm = summaries[s.name]
        style = {"supported": "green", "not supported": "red", "failed": "red"}.get(s.status, "dim")
        runs = f"{sm.ok} new, {sm.skipped} kept" + (
            f", [red]{sm.failed} failed[/]" if sm.failed else ""
        )
        broken |= bool(sm.failed) or s.status == "failed"
        table.add_row(
            f"[{style}]{s.mark}[/]", s.name, runs, f"{sm.seconds:.1f} s", f"[{style}]{s.summary}[/]"
        )
    console.print(table)
    console.print(f"report: {index.resolve()}", soft_wrap=True, highlight=False)
    return 1 if broken else 0


@app.command("report")
def report_command(
    out: Path = typer.Option(Path("results"), "--out", help="Results folder (runs.sqlite)."),
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated experiment names (default: all)."
    ),
    all_runs: bool = typer.Option(
        False,
        "--all-runs",
        help="Pool every stored run of an experiment (default: its latest sweep only).",
    ),
) -> None:
    """Write --out/index.html (and one PNG per figure) from the runs stored in --out.

    Each experiment is judged on its latest sweep into --out, so a rerun with other
    settings replaces, rather than mixes with, the earlier one; --all-runs pools them.
    """
    from ..report import build_sections, render_html

    names = _parse_only(only)
    sections = build_sections(out, names, all_runs=all_runs)
    index = render_html(sections, out)
    table = Table(title=f"report of {out}", title_justify="left")
    table.add_column("")
    table.add_column("experiment", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("verdict")
    for s in sections:
        table.add_row(s.mark, s.name, str(s.n_ok + s.n_failed), s.summary)
    console.print(table)
    console.print(f"report: {index.resolve()}", soft_wrap=True, highlight=False)
