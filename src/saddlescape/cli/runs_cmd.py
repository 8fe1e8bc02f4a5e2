"""``saddlescape run`` (a sweep into a results folder) and ``saddlescape runs`` (list it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from ..errors import ConfigError
from ._app import app, console

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
        None, "--address", help="Ray cluster address (default: start a local one)."
    ),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
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

    if executor not in _EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(_EXECUTORS)}, got {executor!r}")
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
        store=out,
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
        console.print(f"[red]failed[/] {key}: {first_line}", soft_wrap=True, highlight=False)
    return 1 if summary.failed else 0


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list | dict):
        text = str(value)
        return text if len(text) <= 24 else text[:21] + "..."
    return str(value)


@app.command("runs")
def runs_command(
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
    experiment: str | None = typer.Option(None, "--experiment", help="Only this experiment."),
    status: str | None = typer.Option(None, "--status", help="Only ok or failed runs."),
    where: list[str] | None = typer.Option(
        None, "--where", help="Only runs whose config has key=value (repeatable)."
    ),
    metrics: int = typer.Option(4, "--metrics", help="How many metric columns to show."),
) -> None:
    """List the runs stored in --out: key, varying config values, seed, status, metrics."""
    from ..runner import Store
    from ..runner.config import parse_sets

    filters = parse_sets(where or (), option="--where")
    with Store(out, create=False) as store:
        rows = store.rows(experiment, status, **filters)
    if not rows:
        console.print(f"no runs in {out}" + (" match" if experiment or status or filters else ""))
        return
    config_keys = list(dict.fromkeys(k for r in rows for k in r["config"] if k != "seed"))
    varying = [k for k in config_keys if len({repr(r["config"].get(k)) for r in rows}) > 1]
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))[: max(metrics, 0)]
    experiments = {r["experiment"] for r in rows}

    # One line per run: cells never wrap; the key is shortened to its first 8 characters
    # (like a short git hash; load_runs has the full keys) and a narrow terminal ellipsizes
    # the widest cells.
    table = Table(
        title=f"{len(rows)} runs in {out}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("key", style="dim", no_wrap=True, min_width=8, max_width=8)
    if len(experiments) > 1:
        table.add_column("experiment", no_wrap=True)
    for key in varying:
        table.add_column(key, justify="right", no_wrap=True)
    table.add_column("seed", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=6)
    for key in metric_keys:
        table.add_column(key, justify="right", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    any_failed = any(r["status"] != "ok" for r in rows)
    if any_failed:
        table.add_column("error", overflow="ellipsis", no_wrap=True, max_width=48)
    for r in rows:
        cells = [r["key"][:8]]
        if len(experiments) > 1:
            cells.append(r["experiment"])
        cells += [_format(r["config"].get(k, "")) for k in varying]
        cells.append(_format(r["config"].get("seed", "")))
        cells.append("[green]ok[/]" if r["status"] == "ok" else "[red]failed[/]")
        cells += [_format(r["metrics"].get(k, "")) for k in metric_keys]
        cells.append(f"{r['seconds']:.2f}")
        if any_failed:
            cells.append((r["error"] or "").splitlines()[0] if r["error"] else "")
        table.add_row(*cells)
    console.print(table)
