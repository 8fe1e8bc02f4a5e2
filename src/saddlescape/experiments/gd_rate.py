"""gd-rate: gradient descent with η = 1/β finds an ε-stationary point within
2β(f(x0) − f*)/ε² iterations, and that exponent of ε is nearly attained.

Descent lemma (Nesterov 2004, §1.2.3; THEORY.md "Gradient descent on an ℓ-smooth
function"): on a β-smooth f, x_{t+1} = x_t − ∇f(x_t)/β gives
f(x_{t+1}) ≤ f(x_t) − ‖∇f(x_t)‖²/(2β); summing, min_{t<T} ‖∇f(x_t)‖² ≤ 2β(f(x0) − f*)/T,
so T(ε) = ⌈2β(f(x0) − f*)/ε²⌉ iterations reach ‖∇f‖ ≤ ε. A function that is ℓ-smooth is
β-smooth for every β ≥ ℓ, so the experiment sweeps β = factor·ℓ on problems whose ℓ holds
on the box their random starts are drawn from, and measures, for every start and every ε,
the first iteration t with ‖∇f(x_t)‖ ≤ ε. The bound is a worst case: near a nondegenerate
minimum the count grows only like log(1/ε) (himmelblau, six-hump-camel, rosenbrock), but
never more than linearly in β, and no run may exceed its own bound.

That the ε⁻² cannot be improved is shown on ``power-tail`` (Cartis, Gould, Toint 2010's
mechanism in closed form: a convex C² function whose infimum is approached along a
flattening tail), where GD needs ≈ ε^{−(1+1/p)} = ε^{−1.91} iterations for p = 1.1
(:meth:`~saddlescape.problems.power_tail.PowerTail.gd_iterations`). Slopes are fitted to
the median counts of at least ``MIN_COUNT`` iterations (smaller counts are quantized by
the step) and need three such ε.

The β half of the claim ("at most linearly in β") is a bound of slope 1 in log-log, but
the verdict accepts a fitted slope up to ``BETA_SLOPE_CEIL`` = 1.15: the fit is over two
(quick) or four β values of median iteration counts, which are whole steps: a count of
``MIN_COUNT`` = 10 off by one step tilts the slope over β = ℓ…4ℓ by ln(1.1)/ln 4 ≈ 0.07
(measured: at most 1.02 on both the quick and the full grid). A slope above 1.15 (a
count growing like β^1.15, 11 % more than linear over one doubling) is not such noise.
Every run is also checked against its own bound, which is exactly linear in β.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, check_count, check_positive
from ._common import check_problem
from ._fits import loglog_slope
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["GDRate"]

#: Tolerances of the verdict on the fitted slopes (finite-range fits of a few points).
EPS_SLOPE_FLOOR = -2.1  # iterations ∝ ε^s with s ≥ −2 (the bound's exponent)
BETA_SLOPE_CEIL = 1.15  # iterations ∝ β^s with s ≤ 1 (discrete steps add a few percent)
TAIL_SLOPE_TOL = 0.1  # power-tail's fitted ε slope within this of −(1 + 1/p)
MIN_COUNT = 10  # iteration counts below this are quantized by the step: not fitted
TAIL_PROBLEM = "power-tail"


@dataclass(frozen=True)
class GDRateConfig:
    """One problem and one β = ``beta_factor``·ℓ; ``n_init`` random starts run batched;
    ``n_eps`` tolerances log-spaced from ``eps_max`` down to ``eps_min``; at most
    ``max_iter`` iterations (a (start, ε) pair not reached by then is *censored*: it is a
    violation only if its bound is below ``max_iter``)."""

    problem: str = "himmelblau"
    beta_factor: float = 1.0
    n_init: int = 16
    eps_max: float = 1.0
    eps_min: float = 1e-4
    n_eps: int = 9
    max_iter: int = 100_000
    seed: int = 0

    def validate(self) -> None:
        if check_positive("beta_factor", self.beta_factor) < 1:
            raise ConfigError(
                f"beta_factor must be >= 1 (β below the smoothness ℓ voids the descent "
                f"lemma), got {self.beta_factor}"
            )
        check_problem(self.problem, "gd-rate", _needs)
        check_count("n_init", self.n_init, minimum=1, maximum=1_000_000)
        check_count("n_eps", self.n_eps, minimum=1, maximum=1000)
        check_count("max_iter", self.max_iter, minimum=1, maximum=10**9)
        check_positive("eps_min", self.eps_min)
        if check_positive("eps_max", self.eps_max) < self.eps_min:
            raise ConfigError(f"eps_max ({self.eps_max}) must be >= eps_min ({self.eps_min})")


def _needs(problem: Any) -> str | None:
    f_min = problem.f_min
    if problem.smoothness is None or f_min is None or not math.isfinite(f_min):
        return "it needs a known smoothness and a finite f_min"
    return None


@register
class GDRate(Experiment):
    name = "gd-rate"
    claim = (
        "Gradient descent with step 1/β on a β-smooth function reaches ‖∇f‖ ≤ ε within "
        "2β(f(x0) − f*)/ε² iterations: every run stays within its bound, the iteration "
        "count grows no faster than ε⁻² and at most linearly in β, and on power-tail it "
        "grows like ε to the power −(1 + 1/p), so the exponent −2 cannot be improved."
    )
    source = (
        "Descent lemma, Nesterov 2004 (Introductory Lectures on Convex Optimization, "
        "§1.2.3); THEORY.md, 'Gradient descent on an ℓ-smooth function'; tightness: "
        "Cartis, Gould, Toint 2010 (SIAM J. Optim. 20(6), §2)."
    )
    Config = GDRateConfig
    default_grid = {  # noqa: RUF012
        "problem": ["himmelblau", "six-hump-camel", "rosenbrock", TAIL_PROBLEM],
        "beta_factor": [1.0, 2.0, 4.0, 8.0],
    }
    quick_grid = {  # noqa: RUF012
        "problem": ["himmelblau", "six-hump-camel", "rosenbrock", TAIL_PROBLEM],
        "beta_factor": [1.0, 4.0],
    }
    quick_overrides = {"n_init": 8, "eps_min": 1e-3, "n_eps": 7, "max_iter": 20_000}  # noqa: RUF012

    # ------------------------------------------------------------------ run
    def run(self, config: GDRateConfig) -> RunOutput:
        from .. import problems
        from ..optim import GD

        problem = problems.get(config.problem)
        ell, f_star = problem.smoothness, problem.f_min
        if ell is None or f_star is None or not math.isfinite(f_star):
            raise ConfigError(
                f"gd-rate needs a problem with known smoothness and finite f_min; "
                f"{config.problem!r} has smoothness={ell}, f_min={f_star}"
            )
        beta = config.beta_factor * ell
        gen = torch.Generator().manual_seed(config.seed)
        x0 = problem.sample_init(gen, batch=config.n_init).to(torch.float64)
        x = x0.clone().requires_grad_(True)
        opt = GD([x], lr=1.0 / beta, batched=True, seed=config.seed)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = problem.f(x)
            loss.sum().backward()
            return loss

        eps = torch.logspace(
            math.log10(config.eps_max),
            math.log10(config.eps_min),
            config.n_eps,
            dtype=torch.float64,
        )
        hits = torch.full((config.n_init, config.n_eps), -1, dtype=torch.long)
        for t in range(config.max_iter + 1):
            opt.step(closure)  # evaluates ∇f(x_t) into x.grad, then moves to x_{t+1}
            gnorm = x.grad.detach().norm(dim=1)
            new = (gnorm[:, None] <= eps[None, :]) & (hits < 0)
            if bool(new.any()):
                hits[new] = t
                if bool((hits >= 0).all()):
                    break
        f0 = problem.f(x0)
        gap = (f0 - f_star).clamp_min(0.0)
        bound = (2.0 * beta * gap[:, None] / eps[None, :] ** 2).ceil()
        reached = hits >= 0
        iters = torch.where(reached, hits.double(), torch.tensor(math.nan, dtype=torch.float64))
        violation = (reached & (iters > bound)) | (~reached & (bound <= config.max_iter))
        ratio = torch.where(reached, iters / bound.clamp_min(1.0), torch.zeros(()))
        median = _censored_median(iters.numpy())
        return RunOutput(
            metrics={
                "smoothness": ell,
                "beta": beta,
                "pairs": int(hits.numel()),
                "reached": int(reached.sum()),
                "censored": int((~reached).sum()),
                "violations": int(violation.sum()),
                "max_ratio": float(ratio.max()),
                "eps_slope": _eps_slope(eps.numpy(), median),
                "iterations_run": opt.iterations,
            },
            arrays={
                "eps": eps.numpy(),
                "iterations": iters.numpy(),
                "bound": bound.numpy(),
                "f0": f0.detach().numpy(),
            },
        )

    # ------------------------------------------------------------------ analyze
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        runs = sorted(records, key=lambda r: (r.config["problem"], r.config["beta_factor"]))
        table: list[dict[str, Any]] = []
        by_problem: dict[str, list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(
            list
        )
        violations = pairs = censored = 0
        max_ratio = 0.0
        eps_slopes: list[float] = []
        tail_slopes: list[float] = []
        for r in runs:
            eps = np.asarray(r.arrays["eps"], dtype=float)
            iters = np.asarray(r.arrays["iterations"], dtype=float)
            bound = np.asarray(r.arrays["bound"], dtype=float)
            med_it, med_b = _censored_median(iters), np.median(bound, axis=0)
            slope = _eps_slope(eps, med_it)
            if math.isfinite(slope):
                eps_slopes.append(slope)
                if r.config["problem"] == TAIL_PROBLEM:
                    tail_slopes.append(slope)
            by_problem[r.config["problem"]].append((r.config["beta_factor"], eps, med_it, med_b))
            violations += int(r.metrics["violations"])
            pairs += int(r.metrics["pairs"])
            censored += int(r.metrics["censored"])
            max_ratio = max(max_ratio, float(r.metrics["max_ratio"]))
            k = _last_finite(med_it)
            table.append(
                {
                    "problem": r.config["problem"],
                    "ℓ": r.metrics["smoothness"],
                    "β/ℓ": r.config["beta_factor"],
                    "smallest ε reached": float(eps[k]) if k is not None else None,
                    "median iterations": float(med_it[k]) if k is not None else None,
                    "median bound": float(med_b[k]) if k is not None else None,
                    "max iterations/bound": r.metrics["max_ratio"],
                    "slope in ε": slope,
                    "censored": r.metrics["censored"],
                    "violations": r.metrics["violations"],
                }
            )
        beta_slopes = {name: _beta_slope(rows) for name, rows in by_problem.items()}
        finite_beta = [s for s in beta_slopes.values() if math.isfinite(s)]
        min_eps_slope = min(eps_slopes) if eps_slopes else math.nan
        max_beta_slope = max(finite_beta) if finite_beta else math.nan
        for row in table:
            row["slope in β"] = beta_slopes[row["problem"]]
        checks = [violations == 0, pairs - censored > 0]
        if eps_slopes:
            checks.append(min_eps_slope >= EPS_SLOPE_FLOOR)
        if finite_beta:
            checks.append(max_beta_slope <= BETA_SLOPE_CEIL)
        tail_theory = _tail_slope_theory()
        if tail_slopes:
            tail_error = max(abs(s - tail_theory) for s in tail_slopes)
            checks.append(tail_error <= TAIL_SLOPE_TOL)
        supported = all(checks)
        summary = (
            f"{violations} of {pairs} (start, ε) pairs exceed 2β(f(x0) − f*)/ε² "
            f"(largest iterations/bound {max_ratio:.2g}); fitted slopes: "
            f"min {min_eps_slope:.2f} in ε (bound: −2, accepted ≥ {EPS_SLOPE_FLOOR}), max "
            f"{max_beta_slope:.2f} in β (bound: 1, accepted ≤ {BETA_SLOPE_CEIL} for the "
            f"fit's step quantization); {censored} pairs censored by max_iter."
        )
        if tail_slopes:
            summary += (
                f" Tightness: on {TAIL_PROBLEM} the ε slope is "
                f"{min(tail_slopes):.2f} to {max(tail_slopes):.2f} "
                f"(theory −(1 + 1/p) = {tail_theory:.2f}, tolerance {TAIL_SLOPE_TOL})."
            )
        if not eps_slopes and not finite_beta:
            summary += " Too few points reached to fit slopes."
        numbers = {
            "pairs": float(pairs),
            "violations": float(violations),
            "censored": float(censored),
            "max_iterations_over_bound": max_ratio,
            "min_slope_eps": min_eps_slope,
            "max_slope_beta": max_beta_slope,
            "tail_slope_eps_min": min(tail_slopes) if tail_slopes else math.nan,
            "tail_slope_eps_max": max(tail_slopes) if tail_slopes else math.nan,
            "tail_slope_theory": tail_theory,
        }
        return Analysis(
            table=table,
            verdict=Verdict(supported, summary, numbers),
            figures=_figures(by_problem),
        )


def _censored_median(a: np.ndarray) -> np.ndarray:
    """Column medians of iteration counts where NaN means *not reached yet* (right
    censored): NaN counts as +∞, so a column more than half censored has median NaN."""
    med = np.median(np.where(np.isfinite(a), a, np.inf), axis=0)
    return np.where(np.isfinite(med), med, np.nan)


def _eps_slope(eps: np.ndarray, median: np.ndarray) -> float:
    """Log-log slope of the median iteration counts against ε, over the ε whose median is
    at least ``MIN_COUNT``; NaN with fewer than three such ε."""
    ok = np.isfinite(median) & (median >= MIN_COUNT)
    return loglog_slope(eps[ok], median[ok]) if ok.sum() >= 3 else math.nan


def _tail_slope_theory() -> float:
    """−(1 + 1/p) for the registered power-tail's default p."""
    from .. import problems

    return -(1.0 + 1.0 / problems.get(TAIL_PROBLEM).p)


def _last_finite(a: np.ndarray) -> int | None:
    idx = np.flatnonzero(np.isfinite(a))
    return int(idx[-1]) if idx.size else None


def _beta_slope(rows: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """Largest (over ε) log-log slope of median iterations against β, using every ε that
    all β values reached with at least 10 iterations (smaller counts are step-quantized)."""
    if len({b for b, *_ in rows}) < 2:
        return math.nan
    betas = np.array([b for b, *_ in rows])
    med = np.stack([m for _, _, m, _ in rows])  # (n_beta, n_eps)
    slopes = [
        loglog_slope(betas, med[:, j])
        for j in range(med.shape[1])
        if np.isfinite(med[:, j]).all() and med[:, j].min() >= 10
    ]
    return max(slopes) if slopes else math.nan


def _figures(by_problem: dict[str, list]) -> dict[str, Any]:
    from matplotlib.ticker import ScalarFormatter

    from .. import plotting as plots

    names = sorted(by_problem)
    with plots.style():
        fig, axes = plots.grid(len(names), ncols=2, panel_width=4.4, panel_height=3.0)
        for ax, name in zip(axes, names, strict=False):
            for i, (factor, eps, med_it, med_b) in enumerate(by_problem[name]):
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = med_it / med_b
                ax.plot(eps, ratio, "o-", color=plots.color(i), label=f"β = {factor:g}ℓ")
            ax.axhline(1.0, color=plots.THEORY_COLOR, linestyle="--", linewidth=1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.invert_xaxis()
            ax.set_xlabel("ε (target ‖∇f‖)")
            ax.set_ylabel("iterations / bound")
            ax.set_title(name)
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        handles.append(axes[0].lines[-1])
        labels.append("bound (ratio 1)")
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        fig.suptitle(
            "GD with η = 1/β: median iterations to ‖∇f‖ ≤ ε over the bound 2β(f(x0) − f*)/ε²"
            " (claim: ≤ 1)"
        )

        fig2, ax = plots.figure(height=3.6, width=6.0)
        plotted = False
        for i, name in enumerate(names):
            rows = by_problem[name]
            betas = np.array([b for b, *_ in rows])
            med = np.stack([m for _, _, m, _ in rows])
            cols = [j for j in range(med.shape[1]) if np.isfinite(med[:, j]).all()]
            if not cols or len(betas) < 2:
                continue
            j = cols[-1]
            plotted = True
            eps_j = rows[0][1][j]
            ax.plot(betas, med[:, j], "o-", color=plots.color(i), label=f"{name}, ε = {eps_j:g}")
            # the ∝ β reference starts 2× above the data's first point, not on the data
            ax.plot(
                betas,
                2.0 * med[:, j].max() * betas / betas[0],
                ":",
                color=plots.color(i),
                alpha=0.6,
                linewidth=1.2,
            )
        ax.plot([], [], ":", color=plots.THEORY_COLOR, label="slope 1 (∝ β), offset ×2")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("β / ℓ")
        ax.set_ylabel("iterations (median)")
        ax.set_title("Iterations grow at most linearly in β")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    figures = {"iterations vs epsilon": fig}
    if plotted:  # needs two β values reaching a common ε
        figures["iterations vs beta"] = fig2
    return figures
