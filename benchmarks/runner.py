"""Sweep runner: the same CPU-bound sweep on the sequential, process and Ray executors.

Each run is single-threaded torch work (gradient descent on a random SPD quadratic with a
block of right-hand sides, float64, about 0.5-1 s). The sweep has 16 runs; the parallel
executors get ``--workers`` workers (2 by default). The table shows, per executor:

- ``start-up``: creating the executor and starting its workers (a fork server or a Ray
  cluster), measured with one no-op task per worker;
- ``sweep``: ``run_sweep`` on the started executor (planning, runs, storing every result),
  the best of ``--repeat`` sweeps (each into a fresh store, so nothing is skipped);
- ``total``: both; the speed-ups are the sequential time over each of them.

It also checks that every executor stored bit-identical results, and times a ``bare pool``:
the same runs split statically over ``--workers`` plain processes without the runner, the
speed-up this machine allows at the moment (on a shared machine, other load lowers it).

    python benchmarks/runner.py [--runs 16] [--workers 2] [--steps 2000] [--dim 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import torch

from saddlescape.experiments import Analysis, Experiment, RunOutput, RunRecord, Verdict, register
from saddlescape.runner import Store, make_executor, run_sweep


@register
class BenchQuadratic(Experiment):
    """Gradient descent on ½ tr(XᵀAX) − tr(BᵀX): one 256×256 by 256×64 matmul a step."""

    name = "bench_quadratic"
    claim = "benchmark workload"
    source = "benchmarks/runner.py"

    @dataclass
    class Config:
        dim: int = 256
        rhs: int = 64
        steps: int = 2000
        seed: int = 0

    quick_overrides: ClassVar[dict[str, Any]] = {}

    def run(self, config: Config) -> RunOutput:
        gen = torch.Generator().manual_seed(config.seed)
        n = config.dim
        g = torch.randn(n, n, generator=gen, dtype=torch.float64)
        a = g @ g.T / n + torch.eye(n, dtype=torch.float64)
        b = torch.randn(n, config.rhs, generator=gen, dtype=torch.float64)
        x = torch.zeros(n, config.rhs, dtype=torch.float64)
        lr = 1.0 / torch.linalg.eigvalsh(a)[-1].item()
        for _ in range(config.steps):
            x -= lr * (a @ x - b)
        residual = torch.linalg.matrix_norm(a @ x - b).item()
        return RunOutput({"residual": residual}, {"x_head": x[:4].numpy().copy()})

    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        return Analysis([], Verdict(True, "benchmark"))


def _ready() -> int:
    """A no-op task that keeps its worker busy a moment, so that every worker starts."""
    torch.ones(1)
    time.sleep(0.3)
    return os.getpid()


def _chunk(seeds: list[int], overrides: dict) -> None:
    torch.set_num_threads(1)
    experiment = BenchQuadratic()
    for seed in seeds:
        experiment.run(experiment.config(seed=seed, **overrides))


def ceiling(workers: int, seeds: list[int], overrides: dict, repeat: int) -> float:
    """The machine's ceiling: the same runs split statically over ``workers`` bare
    processes (no runner, no store), best of ``repeat``."""
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
        cf.wait([pool.submit(_ready) for _ in range(workers)])
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            cf.wait([pool.submit(_chunk, seeds[i::workers], overrides) for i in range(workers)])
            best = min(best, time.perf_counter() - t0)
    return best


def _stored(directory: Path) -> dict[str, Any]:
    with Store(directory, create=False) as store:
        return {
            r.key: (r.metrics, {k: v.tobytes() for k, v in r.arrays.items()})
            for r in store.records()
        }


def measure(name: str, workers: int, grid: dict, overrides: dict, root: Path, repeat: int) -> dict:
    t0 = time.perf_counter()
    pool = make_executor(name, workers=None if name == "sequential" else workers)
    if name != "sequential":  # start every worker before timing the sweep
        cf.wait([pool.submit(_ready) for _ in range(pool.workers)])
    startup = time.perf_counter() - t0
    sweeps = []
    try:
        for i in range(repeat):
            t1 = time.perf_counter()
            summary = run_sweep(
                BenchQuadratic.name,
                overrides=overrides,
                grid=grid,
                store=root / f"{name}{i}",
                executor=pool,
                progress=False,
            )
            sweeps.append(time.perf_counter() - t1)
            assert summary.ok == summary.total, summary.failures
    finally:
        pool.shutdown()
    sweep = min(sweeps)
    return {"startup": startup, "sweep": sweep, "results": _stored(root / f"{name}0")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--executors", default="sequential,process,ray")
    parser.add_argument("--repeat", type=int, default=3, help="sweeps per executor (best kept)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    grid = {"seed": list(range(args.runs))}
    overrides = {"steps": args.steps, "dim": args.dim}
    names = args.executors.split(",")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows[name] = measure(name, args.workers, grid, overrides, Path(tmp), args.repeat)
    base = rows["sequential"]
    base_total = base["startup"] + base["sweep"]
    per_run = base["sweep"] / args.runs
    print(
        f"runner benchmark, {date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}: {args.runs} runs of "
        f"~{per_run:.2f} s single-threaded work, {args.workers} workers, "
        f"best sweep of {args.repeat}"
    )
    header = f"{'executor':<11} {'start-up s':>10} {'sweep s':>8} {'total s':>8} "
    header += f"{'speed-up (sweep)':>17} {'speed-up (total)':>17} {'same bits':>9}"
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        total = row["startup"] + row["sweep"]
        same = row["results"] == base["results"]
        print(
            f"{name:<11} {row['startup']:>10.2f} {row['sweep']:>8.2f} {total:>8.2f} "
            f"{base['sweep'] / row['sweep']:>16.2f}x {base_total / total:>16.2f}x "
            f"{'yes' if same else 'NO':>9}"
        )
    raw = ceiling(args.workers, grid["seed"], overrides, args.repeat)
    print(
        f"{'bare pool':<11} {'':>10} {raw:>8.2f} {'':>8} {base['sweep'] / raw:>16.2f}x"
        f"   <- ceiling: the runs split over {args.workers} bare processes, no runner"
    )


if __name__ == "__main__":
    main()
