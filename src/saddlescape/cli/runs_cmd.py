"""``saddlescape run`` (a sweep into a results folder) and ``saddlescape runs`` (list it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from ._app import Column, app, console, err_console, fitted_tables, output_folder, print_tables

_EXECUTORS = ("sequential", "process", "ray")


@app.command("run")
def run_command(
    experiment: str | None = typer.Argument(
        None, help="Experiment name (see `saddlescape experiments`); optional with --config."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Fix a config value: key=value (repeatable)."
    ),
    grid: list[str] | None = typer.Option(
        None, "--grid", help="Sweep a config key: key=v1,v2,... (repeatable)."
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Shorthand for --grid seed=0,...,N-1."),
    config: Path | None = typer.Option(None, "--config", help="A TOML sweep file."),
    quick: bool = typer.Option(False, "--quick", help="Quick config and quick grid."),
    executor: str = typer.Option(
        "sequential", "--executor", help="Where runs execute: sequential, process or ray."
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
    out: str = typer.Option("results", "--out", help="Results folder."),
    module: list[str] | None = typer.Option(
        None, "--module", help="Import this module first, to register your experiments."
    ),
    retry_failed: bool = typer.Option(
        True, "--retry-failed/--skip-failed", help="Rerun runs stored as failed."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> int:
    """Run a sweep of EXPERIMENT into --out; finished runs are skipped when run again.

    Exit status 1 when a run failed (its error is stored; `saddlescape runs --status failed`).
    """
    from ..runner import run_sweep, sweep_args
    from ..runner.executors import check_executor

    if executor not in _EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(_EXECUTORS)}, got {executor!r}")
    check_executor(executor, workers, address)
    folder = output_folder(out)
    args = sweep_args(
        experiment,
        sets=set_ or (),
        grids=grid or (),
        seeds=seeds,
        config_file=config,
        quick=quick,
        modules=module or (),
    )
    summary = run_sweep(
        args.experiment,
        overrides=args.overrides,
        grid=args.grid,
        quick=args.quick,
        store=folder,
        executor=executor,
        workers=workers,
        address=address,
        progress=progress,
        retry_failed=retry_failed,
    )
    table = Table(title=f"sweep of {summary.experiment}", title_justify="left")
    for column in ("runs", "ok", "failed", "skipped", "seconds", "executor"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.total),
        f"[green]{summary.ok}[/]",
        f"[red]{summary.failed}[/]" if summary.failed else "0",
        str(summary.skipped),
        f"{summary.seconds:.1f}",
        f"{summary.executor} ×{summary.workers}",
    )
    console.print(table)
    console.print(f"results: {Path(summary.directory) / 'runs.sqlite'}", soft_wrap=True)
    for key, error in summary.failures:
        first_line = error.splitlines()[0] if error else ""
        line = f"[red]failed[/] {key}: {escape(first_line)}"
        console.print(line, soft_wrap=True, highlight=False)
    return 1 if summary.failed else 0


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def warn(lines: list[str]) -> None:
    """Print each line as a one-line warning on stderr."""
    for line in lines:
        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


@app.command("runs")
def runs_command(
    out: str = typer.Option("results", "--out", help="Results folder."),
    experiment: str | None = typer.Option(None, "--experiment", help="Only this experiment."),
    status: str | None = typer.Option(None, "--status", help="Only ok or failed runs."),
    where: list[str] | None = typer.Option(
        None, "--where", help="Only runs whose config has key=value (repeatable)."
    ),
    metrics: int = typer.Option(4, "--metrics", help="How many metric columns to show."),
) -> None:
    """List the runs stored in --out: key, varying config values, seed, status, metrics.

    Every value is shown whole: columns that do not fit the terminal side by side continue
    in a second table (each starts with the run key), and errors are listed below.
    """
    from ..report import store_notes
    from ..runner import Store
    from ..runner.config import parse_sets

    folder = output_folder(out)
    filters = parse_sets(where or (), option="--where")
    with Store(folder, readonly=True) as store:
        rows = store.rows(experiment, status, **filters)
        warn(store_notes(store))
    if not rows:
        console.print(f"no runs in {out}" + (" match" if experiment or status or filters else ""))
        return
    config_keys = list(dict.fromkeys(k for r in rows for k in r["config"] if k != "seed"))
    varying = [k for k in config_keys if len({repr(r["config"].get(k)) for r in rows}) > 1]
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))[: max(metrics, 0)]
    experiments = {r["experiment"] for r in rows}

    # One line per run, every cell whole: the key is shortened to its first 8 characters
    # (like a short git hash; load_runs has the full keys); columns that do not fit continue
    # in another table that starts with the key again; errors follow the tables.
    columns = [Column("key", style="dim")]
    if len(experiments) > 1:
        columns.append(Column("experiment"))
    columns += [Column(k, justify="right") for k in varying]
    columns += [Column("seed", justify="right"), Column("status")]
    columns += [Column(k, justify="right") for k in metric_keys]
    columns.append(Column("seconds", justify="right"))
    cells = []
    for r in rows:
        row = [r["key"][:8]]
        if len(experiments) > 1:
            row.append(escape(r["experiment"]))
        row += [escape(_format(r["config"].get(k, ""))) for k in varying]
        row.append(escape(_format(r["config"].get("seed", ""))))
        row.append("[green]ok[/]" if r["status"] == "ok" else "[red]failed[/]")
        row += [escape(_format(r["metrics"].get(k, ""))) for k in metric_keys]
        row.append(f"{r['seconds']:.2f}")
        cells.append(row)
    title = escape(f"{len(rows)} runs in {out}")
    print_tables(title, fitted_tables(columns, cells))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        console.print("\nerrors:")
    for r in failed:
        first = (r["error"] or "").splitlines()[0] if r["error"] else "(no message)"
        console.print(f"  [dim]{r['key'][:8]}[/] {escape(first)}", highlight=False)
