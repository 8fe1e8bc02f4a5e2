"""stable-manifold: from a random start, gradient descent converges to a minimizer.

Lee, Simchowitz, Jordan, Recht 2016, "Gradient Descent Converges to Minimizers"
(arXiv 1602.04915), Theorem 4: for f ∈ C² whose saddles are strict and a step α < 1/L,
the set of starts from which GD converges to a saddle (the union of the saddles' stable
manifolds) has measure zero. Three measurements per 2-D problem:

1. ``n_init`` starts drawn uniformly from the box on which the problem's ℓ holds, run as
   one batch: the fraction whose limit is a saddle must be 0;
2. a basin map: a ``grid_size × grid_size`` grid of starts coloured by the critical point
   GD reaches (the boundaries between basins are the saddles' stable manifolds);
3. starts *on* a stable manifold — the saddles whose gradient is exactly zero in float64
   and, for ``lee-2d`` (f = ½x² + ¼y⁴ − ½y², THEORY.md), points of the x-axis, the stable
   manifold of the saddle 0 — where GD converges to the saddle, while perturbed GD
   (Jin et al. 2017) escapes to a minimum.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, check_count, check_positive
from ._common import check_problem
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["StableManifold"]

KIND_CODES = {"minimum": 0, "saddle": 1, "maximum": 2, "degenerate": 3}
UNCONVERGED = -1
#: Minimum fraction of random starts that must reach a minimum (the rest: not converged
#: within the step budget, or left the box) for the measurement to count.
MIN_CONVERGED = 0.99


@dataclass(frozen=True)
class StableManifoldConfig:
    """GD with η = ``step_fraction``/ℓ (Lee et al. need η < 1/ℓ) for at most ``steps``
    steps; an end point within ``tol`` of a critical point is classified by it."""

    problem: str = "lee-2d"
    n_init: int = 10_000
    grid_size: int = 200
    manifold_starts: int = 16
    steps: int = 6000
    step_fraction: float = 0.9
    tol: float = 1e-4
    pgd_radius: float = 1e-2
    pgd_grad_threshold: float = 1e-3
    pgd_interval: int = 50
    pgd_steps: int = 3000
    seed: int = 0

    def validate(self) -> None:
        check_problem(self.problem, "stable-manifold", _needs)
        check_count("n_init", self.n_init, minimum=1, maximum=10**7)
        check_count("grid_size", self.grid_size, minimum=0, maximum=3000)  # grid_size² starts
        check_count("manifold_starts", self.manifold_starts, minimum=0, maximum=100_000)
        check_count("steps", self.steps, minimum=1, maximum=10**8)
        check_count("pgd_interval", self.pgd_interval, minimum=1, maximum=10**8)
        check_count("pgd_steps", self.pgd_steps, minimum=1, maximum=10**8)
        if not 0 < check_positive("step_fraction", self.step_fraction) < 1:
            raise ConfigError(
                f"step_fraction must be in (0, 1) (Lee et al. need η < 1/ℓ), "
                f"got {self.step_fraction}"
            )
        check_positive("tol", self.tol)
        check_positive("pgd_radius", self.pgd_radius)
        check_positive("pgd_grad_threshold", self.pgd_grad_threshold)


def _needs(problem: Any) -> str | None:
    if problem.dim != 2 or problem.smoothness is None or not problem.critical_points:
        return "it needs a 2-D problem with known smoothness and critical points"
    return None


@register
class StableManifold(Experiment):
    name = "stable-manifold"
    claim = (
        "Gradient descent with step < 1/ℓ from a random start converges to a minimizer, "
        "not to a strict saddle: the saddles' stable manifolds have measure zero. Started "
        "on a stable manifold GD converges to the saddle; perturbed GD escapes."
    )
    source = (
        "Lee, Simchowitz, Jordan, Recht 2016, 'Gradient Descent Converges to Minimizers' "
        "(arXiv 1602.04915), Theorem 4 and the example ½x² + ¼y⁴ − ½y²; perturbed GD: "
        "Jin et al. 2017 (arXiv 1703.00887), Algorithm 2."
    )
    Config = StableManifoldConfig
    default_grid = {"problem": ["lee-2d", "himmelblau", "six-hump-camel"]}  # noqa: RUF012
    quick_grid = {"problem": ["lee-2d", "himmelblau", "six-hump-camel"]}  # noqa: RUF012
    quick_overrides = {"n_init": 2000, "grid_size": 100, "steps": 3000, "pgd_steps": 1500}  # noqa: RUF012

    # ------------------------------------------------------------------ run
    def run(self, config: StableManifoldConfig) -> RunOutput:
        from .. import problems

        problem = problems.get(config.problem)
        if problem.dim != 2 or problem.smoothness is None or not problem.critical_points:
            raise ConfigError(
                f"stable-manifold needs a 2-D problem with known smoothness and critical "
                f"points; {config.problem!r} is not one"
            )
        lo, hi = _box(problem)
        lr = config.step_fraction / problem.smoothness
        gen = torch.Generator().manual_seed(config.seed)
        random = lo + (hi - lo) * torch.rand(config.n_init, 2, generator=gen, dtype=torch.float64)
        g = config.grid_size
        if g:
            # cell centres: an even grid never lies on a symmetry axis of the box
            cx = torch.linspace(lo[0], hi[0], 2 * g + 1, dtype=torch.float64)[1::2]
            cy = torch.linspace(lo[1], hi[1], 2 * g + 1, dtype=torch.float64)[1::2]
            yy, xx = torch.meshgrid(cy, cx, indexing="ij")
            grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
        else:
            grid = torch.zeros(0, 2, dtype=torch.float64)
        starts = torch.cat([random, grid])
        end, iters = _descend(problem, starts, lr, config, lo, hi)
        labels = _classify(problem, end, config.tol)
        kinds = _kinds(problem)
        rand_labels = labels[: config.n_init]
        rand_kinds = np.where(rand_labels >= 0, kinds[np.maximum(rand_labels, 0)], UNCONVERGED)

        manifold = _manifold_starts(problem, config)
        n_m = len(manifold)
        gd_to_saddle = pgd_escaped = math.nan
        if n_m:
            gd_end, _ = _descend(problem, manifold, lr, config, lo, hi)
            gd_lab = _classify(problem, gd_end, config.tol)
            gd_to_saddle = float(np.mean((gd_lab >= 0) & (kinds[gd_lab] == 1)))
            pgd_end = _perturbed(problem, manifold, lr, config)
            pgd_lab = _classify(problem, pgd_end, 2 * config.pgd_radius)
            pgd_escaped = float(np.mean((pgd_lab >= 0) & (kinds[pgd_lab] == 0)))

        def frac(code: int) -> float:
            return float(np.mean(rand_kinds == code))

        grid_labels = labels[config.n_init :]
        return RunOutput(
            metrics={
                "n_random": config.n_init,
                "saddle_count": int(np.sum(rand_kinds == 1)),
                "frac_minimum": frac(0),
                "frac_saddle": frac(1),
                "frac_maximum": frac(2),
                "frac_unconverged": frac(UNCONVERGED),
                "grid_saddle_count": int(np.sum((grid_labels >= 0) & (kinds[grid_labels] == 1))),
                "n_manifold": n_m,
                "gd_to_saddle": gd_to_saddle,
                "pgd_escaped": pgd_escaped,
                "lr": lr,
                "smoothness": float(problem.smoothness),
                "iterations": iters,
            },
            arrays={
                "basin": grid_labels.reshape(g, g).astype(np.int16),
                "extent": np.array([lo[0], hi[0], lo[1], hi[1]], dtype=float),
                "critical_points": np.stack([c.x.numpy() for c in problem.critical_points]),
                "critical_kinds": kinds.astype(np.int16),
                "random_labels": rand_labels.astype(np.int16),
            },
        )

    # ------------------------------------------------------------------ analyze
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        runs = sorted(records, key=lambda r: r.config["problem"])
        table: list[dict[str, Any]] = []
        bad: list[str] = []
        total = saddles = 0
        min_conv = 1.0
        manifold_problems = 0
        for r in runs:
            m, name = r.metrics, r.config["problem"]
            total += int(m["n_random"])
            saddles += int(m["saddle_count"])
            min_conv = min(min_conv, float(m["frac_minimum"]))
            if m["saddle_count"] > 0:
                bad.append(f"{name}: {m['saddle_count']} random starts converged to a saddle")
            if m["frac_minimum"] < MIN_CONVERGED:
                bad.append(f"{name}: only {m['frac_minimum']:.1%} reached a minimum")
            if m["n_manifold"]:
                manifold_problems += 1
                if m["gd_to_saddle"] < 1:
                    bad.append(f"{name}: GD left the stable manifold ({m['gd_to_saddle']:.0%})")
                if m["pgd_escaped"] < 1:
                    bad.append(f"{name}: PGD escaped from {m['pgd_escaped']:.0%} only")
            table.append(
                {
                    "problem": name,
                    "random starts": m["n_random"],
                    "→ minimum": m["frac_minimum"],
                    "→ saddle": m["frac_saddle"],
                    "→ maximum": m["frac_maximum"],
                    "not converged": m["frac_unconverged"],
                    "grid starts → saddle": m["grid_saddle_count"],
                    "starts on stable manifold": m["n_manifold"],
                    "GD → saddle": None if not m["n_manifold"] else m["gd_to_saddle"],
                    "PGD escapes": None if not m["n_manifold"] else m["pgd_escaped"],
                    "η·ℓ": m["lr"] * m["smoothness"],
                }
            )
        if not manifold_problems:
            bad.append("no problem had starts on a stable manifold")
        supported = not bad and total > 0
        if bad:
            summary = f"{len(bad)} contradiction(s): " + "; ".join(bad[:4])
        else:
            summary = (
                f"{saddles} of {total} random starts converged to a saddle; "
                f"{_share(min_conv)} reached a minimum on every problem; on the stable manifold "
                f"GD converged to the saddle and PGD escaped in every start "
                f"({manifold_problems} problem(s))."
            )
        numbers = {
            "random_starts": float(total),
            "to_saddle": float(saddles),
            "min_fraction_to_minimum": min_conv,
            "contradictions": float(len(bad)),
        }
        figures = _figures(runs)
        figures["saddle slice with GD and PGD"] = _saddle_view(runs)
        return Analysis(table, Verdict(supported, summary, numbers), figures)


def _saddle_view(runs: Sequence[RunRecord]) -> Any:
    """lee-2d on the plane of its saddle's eigenvectors (x: λ = 1, y: λ = −1), with GD
    started on the stable manifold (the x-axis) sliding into the saddle and PGD with the
    same step leaving it along −y (issue 14, item 5). Settings of the stored lee-2d runs."""
    from .. import problems
    from ._saddle_view import saddle_slice_figure, trajectory

    mine = [r.config for r in runs if r.config.get("problem") == "lee-2d"]
    cfg = {**dataclasses.asdict(StableManifoldConfig()), **(mine[0] if mine else {})}
    problem = problems.get("lee-2d")
    saddle = problem.critical_points[0].x.to(torch.float64)
    minima = [c.x.to(torch.float64) for c in problem.critical_points if c.kind == "minimum"]
    lr = float(cfg["step_fraction"]) / problem.smoothness
    start = torch.tensor([1.2, 0.0], dtype=torch.float64)
    steps = int(min(cfg["pgd_steps"], 2000))

    def at_saddle(x: torch.Tensor) -> bool:
        return float(torch.linalg.vector_norm(x - saddle)) < 1e-8

    def at_minimum(x: torch.Tensor) -> bool:
        return min(float(torch.linalg.vector_norm(x - m)) for m in minima) < float(cfg["tol"])

    gd = trajectory(problem, start, "gd", steps, stop=at_saddle, lr=lr)
    pgd = trajectory(
        problem,
        start,
        "pgd",
        steps,
        stop=at_minimum,
        lr=lr,
        radius=float(cfg["pgd_radius"]),
        grad_threshold=float(cfg["pgd_grad_threshold"]),
        interval=int(cfg["pgd_interval"]),
        seed=int(cfg["seed"]),
    )
    return saddle_slice_figure(
        problem,
        saddle,
        {"GD": gd, "PGD": pgd},
        span=1.5,
        title="lee-2d through its saddle: GD from the stable manifold (y = 0), and PGD",
    )


def _share(fraction: float) -> str:
    """ "all" for 1, else "at least" the fraction rounded down (never "at least 100.0%")."""
    if fraction >= 1.0:
        return "all"
    return f"at least {math.floor(fraction * 1000) / 10:.1f}%"


# ---------------------------------------------------------------------- helpers
def _box(problem: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The box on which the problem's smoothness holds (``problem.box``, default 2)."""
    box = getattr(problem, "box", 2.0)
    hi = torch.as_tensor(box if isinstance(box, tuple | list) else (box, box), dtype=torch.float64)
    return -hi, hi


def _kinds(problem: Any) -> np.ndarray:
    return np.array([KIND_CODES[c.kind] for c in problem.critical_points])


def _classify(problem: Any, x: torch.Tensor, tol: float) -> np.ndarray:
    """Index of the critical point within ``tol`` of each row of ``x``, else −1."""
    pts = torch.stack([c.x.to(torch.float64) for c in problem.critical_points])
    d = torch.cdist(x, pts)
    d = torch.where(torch.isfinite(d), d, torch.full_like(d, math.inf))
    dist, idx = d.min(dim=1)
    return torch.where(dist <= tol, idx, torch.full_like(idx, UNCONVERGED)).numpy()


def _descend(
    problem: Any,
    starts: torch.Tensor,
    lr: float,
    config: StableManifoldConfig,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """Batched GD until every run's gradient is below tol/10, or for ``steps`` steps; runs
    that leave 10× the box are frozen there (counted as not converged)."""
    from ..optim import GD

    x = starts.clone().requires_grad_(True)
    active = torch.ones(len(starts), dtype=torch.bool)
    opt = GD([x], lr=lr, batched=True, seed=config.seed)
    far = 10 * hi.abs().max()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.where(active, problem.f(x), 0.0)
        loss.sum().backward()
        return loss

    stop = 0.1 * config.tol  # distance to a minimum ≈ ‖∇f‖/λ_min, and λ_min ≥ 1 here
    for t in range(1, config.steps + 1):
        opt.step(closure)
        if t % 50 == 0 or t == config.steps:
            with torch.no_grad():
                active &= x.abs().amax(dim=1) <= far
                gnorm = x.grad.norm(dim=1)
            if bool((gnorm[active] <= stop).all()):
                break
    return x.detach(), opt.iterations


def _manifold_starts(problem: Any, config: StableManifoldConfig) -> torch.Tensor:
    """Starts on a stable manifold: saddles with an exactly zero float64 gradient, and
    for lee-2d points of the x-axis (the stable manifold of its saddle 0)."""
    if config.manifold_starts == 0:
        return torch.zeros(0, 2, dtype=torch.float64)
    pts = []
    for c in problem.critical_points:
        if c.kind == "saddle" and bool((problem.grad(c.x.to(torch.float64)) == 0).all()):
            pts.append(c.x.to(torch.float64))
    if problem.name == "lee-2d":
        lo, hi = _box(problem)
        n = max(config.manifold_starts - len(pts), 0)
        xs = torch.linspace(float(lo[0]), float(hi[0]), n + 2, dtype=torch.float64)[1:-1]
        pts += [torch.stack([v, torch.zeros((), dtype=torch.float64)]) for v in xs if v != 0]
    if not pts:
        return torch.zeros(0, 2, dtype=torch.float64)
    return torch.stack(pts)


def _perturbed(
    problem: Any, starts: torch.Tensor, lr: float, config: StableManifoldConfig
) -> torch.Tensor:
    """Perturbed GD (Jin et al. 2017, no stop test) from each start, batched."""
    from ..optim import PerturbedGD

    x = starts.clone().requires_grad_(True)
    opt = PerturbedGD(
        [x],
        lr=lr,
        radius=config.pgd_radius,
        grad_threshold=config.pgd_grad_threshold,
        interval=config.pgd_interval,
        batched=True,
        seed=config.seed,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = problem.f(x)
        loss.sum().backward()
        return loss

    for _ in range(config.pgd_steps):
        opt.step(closure)
    return x.detach()


def _figures(runs: Sequence[RunRecord]) -> dict[str, Any]:
    from matplotlib.colors import ListedColormap

    from .. import plotting as plots

    runs = [r for r in runs if np.asarray(r.arrays["basin"]).size]
    if not runs:
        return {}
    with plots.style():
        fig, axes = plots.figure(ncols=len(runs), height=3.6)
        axes = np.atleast_1d(axes)
        for ax, r in zip(axes, runs, strict=True):
            basin = np.asarray(r.arrays["basin"])
            extent = np.asarray(r.arrays["extent"])
            pts = np.asarray(r.arrays["critical_points"])
            kinds = np.asarray(r.arrays["critical_kinds"])
            minima = [i for i, k in enumerate(kinds) if k == 0]
            # colour: one per minimum, then saddle, maximum, unconverged
            colors = [plots.color(j + 1) for j in range(len(minima))]
            colors += [plots.KIND_COLORS["saddle"], plots.KIND_COLORS["maximum"], "#DDDDDD"]
            code = np.full(basin.shape, len(colors) - 1)
            for j, i in enumerate(minima):
                code[basin == i] = j
            for i, k in enumerate(kinds):
                if k == 1:
                    code[basin == i] = len(minima)
                elif k == 2:
                    code[basin == i] = len(minima) + 1
            ax.imshow(
                code,
                origin="lower",
                extent=tuple(extent),
                cmap=ListedColormap(colors),
                vmin=-0.5,
                vmax=len(colors) - 0.5,
                interpolation="nearest",
                aspect="auto",
            )
            marker = {0: ("o", "white"), 1: ("X", "#B3261E"), 2: ("^", "black")}
            for k, (mk, col) in marker.items():
                sel = pts[kinds == k]
                if len(sel):
                    ax.scatter(
                        sel[:, 0],
                        sel[:, 1],
                        marker=mk,
                        s=42,
                        c=col,
                        edgecolors="black",
                        linewidths=0.6,
                        zorder=3,
                    )
            ax.set_title(f"{r.config['problem']}: where GD ends")
            ax.set_xlabel("x")
            ax.grid(False)
        axes[0].set_ylabel("y")
        axes[-1].scatter([], [], marker="o", c="white", edgecolors="black", label="minimum")
        axes[-1].scatter([], [], marker="X", c="#B3261E", edgecolors="black", label="saddle")
        axes[-1].scatter([], [], marker="^", c="black", label="maximum")
        axes[-1].legend(loc="lower right", frameon=True, framealpha=0.85)
        fig.suptitle(
            "Basins of attraction (colour = minimum reached); boundaries are the "
            "saddles' stable manifolds"
        )
    return {"basin map": fig}
