"""step-size: gradient descent converges for η·β < 2 and diverges (leaves) for η·β > 2.

THEORY.md, "Gradient descent on an ℓ-smooth function": decrease is guaranteed only for
η < 2/β; on the quadratic with curvature β, x_{t+1} = (1 − ηβ)x_t diverges for ηβ > 2.
Near a nondegenerate minimum x* of a nonconvex f the same holds locally: GD is the linear
map x − x* ↦ (I − η∇²f(x*))(x − x*), which contracts iff η·λ_max(∇²f(x*)) < 2, at the rate
q = max_i |1 − ηλ_i|; above 2/λ_max the minimum is unstable and GD cannot converge to it.
The descent lemma bounds the decrease of one step: f(x) − f(x − η∇f) ≥ η(1 − ηβ/2)‖∇f‖²,
with equality on a quadratic along its top eigenvector.

Each run starts ``n_init`` points at distance ``radius`` from x* (random directions) on a
convex quadratic (``quadratic-saddle`` with no negative direction, curvature β) or at the
global minimum of a nonconvex 2-D function (β = λ_max(∇²f(x*))), and runs GD with
η = ``lr_factor``/β.
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
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["StepSize"]

QUADRATIC = "quadratic-saddle"
#: A start is frozen (counted as diverged) once this far from x* (relative to the box).
FAR = 1e3
#: Converged: final distance below this fraction of the starting distance.
CONVERGED = 1e-3
#: Allowed shortfall of the measured one-step decrease against 1 − ηβ/2 (the start lies
#: ``radius`` from x*, where the curvature can exceed β by ρ·radius; plus rounding).
DECREASE_TOL = 0.01
#: Allowed relative gap between the measured contraction and max_i |1 − ηλ_i| (the rate is
#: a geometric mean over the linear regime, whose first steps mix eigendirections).
RATE_TOL = 0.1


@dataclass(frozen=True)
class StepSizeConfig:
    problem: str = QUADRATIC
    lr_factor: float = 1.0  # η·β
    curvature: float = 10.0  # β of the quadratic (ignored for other problems)
    dim: int = 10  # dimension of the quadratic (ignored for other problems)
    n_init: int = 16
    radius: float = 1e-5
    steps: int = 500
    seed: int = 0

    def validate(self) -> None:
        check_positive("lr_factor", self.lr_factor)
        check_positive("curvature", self.curvature)
        check_positive("radius", self.radius)
        if self.problem != QUADRATIC:
            check_problem(self.problem, "step-size", _needs)
        # the run takes the dense Hessian's eigenvalues at the minimum: O(dim³)
        check_count("dim", self.dim, minimum=1, maximum=2000)
        check_count("n_init", self.n_init, minimum=1, maximum=100_000)
        check_count("steps", self.steps, minimum=1, maximum=10**8)


def _needs(problem: Any) -> str | None:
    if not any(c.kind == "minimum" for c in problem.critical_points):
        return "it lists no minimum"
    if problem.dim > 2000:
        return f"its dimension {problem.dim} is too large for a dense Hessian"
    return None


@register
class StepSize(Experiment):
    name = "step-size"
    claim = (
        "Gradient descent with η·β < 2 converges (each step lowers f by at least "
        "η(1 − ηβ/2)‖∇f‖²) and with η·β > 2 it diverges: on a quadratic with curvature β "
        "it blows up; at a minimum of a nonconvex function with λ_max(∇²f(x*)) = β it "
        "cannot converge to that minimum. The per-step contraction is max_i |1 − ηλ_i|."
    )
    source = (
        "Descent lemma and its step-size condition (Nesterov 2004, §1.2.3); THEORY.md, "
        "'Gradient descent on an ℓ-smooth function': η > 2/ℓ diverges on the quadratic."
    )
    Config = StepSizeConfig
    default_grid = {  # noqa: RUF012
        "problem": [QUADRATIC, "six-hump-camel", "himmelblau"],
        "lr_factor": [0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 1.9, 2.1, 2.25, 2.5, 3.0],
    }
    quick_grid = {  # noqa: RUF012
        "problem": [QUADRATIC, "six-hump-camel", "himmelblau"],
        "lr_factor": [0.25, 0.5, 1.0, 1.5, 1.9, 2.1, 2.5, 3.0],
    }
    quick_overrides = {"n_init": 8, "steps": 400}  # noqa: RUF012

    # ------------------------------------------------------------------ run
    def run(self, config: StepSizeConfig) -> RunOutput:
        from .. import problems
        from ..optim import GD

        if config.problem == QUADRATIC:
            problem = problems.get(
                QUADRATIC, dim=config.dim, n_negative=0, positive_curvature=config.curvature
            )
        else:
            problem = problems.get(config.problem)
        minima = [c for c in problem.critical_points if c.kind == "minimum"]
        if not minima:
            raise ConfigError(f"step-size needs a problem with a known minimum: {config.problem}")
        xstar = min(minima, key=lambda c: c.value).x.to(torch.float64)
        eig = torch.linalg.eigvalsh(problem.hessian(xstar))
        beta = float(eig.max())
        if beta <= 0:
            raise ConfigError(f"{config.problem}: the Hessian at the minimum is not positive")
        lr = config.lr_factor / beta

        gen = torch.Generator().manual_seed(config.seed)
        u = torch.randn(config.n_init, problem.dim, generator=gen, dtype=torch.float64)
        x0 = xstar + config.radius * u / u.norm(dim=1, keepdim=True)
        x = x0.clone().requires_grad_(True)
        active = torch.ones(config.n_init, dtype=torch.bool)
        opt = GD([x], lr=lr, batched=True, seed=config.seed)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            # frozen (diverged) starts get no gradient, so the batch can go on
            loss = torch.where(active, problem.f(x), 0.0)
            loss.sum().backward()
            return loss

        d0 = (x0 - xstar).norm(dim=1)
        rate_steps = torch.full((config.n_init,), config.steps, dtype=torch.long)
        rate_dist = torch.full((config.n_init,), math.nan, dtype=torch.float64)
        decrease = None
        f_prev = problem.f(x0)
        for t in range(1, config.steps + 1):
            opt.step(closure)
            with torch.no_grad():
                dist = (x - xstar).norm(dim=1)
                if t == 1:  # normalized decrease of the first step vs the descent lemma
                    g0_sq = problem.grad(x0).square().sum(1)
                    decrease = (f_prev - problem.f(x.detach())) / (lr * g0_sq)
                # the linear regime ends when the distance shrank 1e8× (float64 resolution of x*
                # is ~1e-16) or grew 1e3×
                leaving = torch.isnan(rate_dist) & ((dist < 1e-8 * d0) | (dist > 1e3 * d0))
                rate_dist[leaving] = dist[leaving]
                rate_steps[leaving] = t
                active &= dist <= FAR
            if not bool(active.any()):
                break
        with torch.no_grad():
            dist = (x - xstar).norm(dim=1)
            rate_dist = torch.where(torch.isnan(rate_dist), dist, rate_dist)
            rate = (rate_dist / d0).clamp_min(1e-300) ** (1.0 / rate_steps.double())
            converged = dist <= CONVERGED * d0
            diverged = ~active
        q_theory = float((1 - lr * eig).abs().max())
        assert decrease is not None
        return RunOutput(
            metrics={
                "beta": beta,
                "lr": lr,
                "converged": float(converged.double().mean()),
                "diverged": float(diverged.double().mean()),
                "rate": float(rate.median()),
                "rate_theory": q_theory,
                "decrease_min": float(decrease.min()),
                "decrease_max": float(decrease.max()),
                "decrease_theory": 1 - config.lr_factor / 2,
                "steps_run": opt.iterations,
            },
            arrays={
                "final_distance": dist.numpy(),
                "start_distance": d0.numpy(),
                "rate": rate.numpy(),
                "decrease": decrease.numpy(),
                "eigenvalues": eig.numpy(),
            },
        )

    # ------------------------------------------------------------------ analyze
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        runs = sorted(records, key=lambda r: (r.config["problem"], r.config["lr_factor"]))
        table: list[dict[str, Any]] = []
        series: dict[str, list[dict[str, float]]] = defaultdict(list)
        bad: list[str] = []
        n_below = n_above = 0
        worst_decrease_gap = 0.0
        worst_quadratic_error = 0.0
        worst_rate = 0.0
        for r in runs:
            m, c = r.metrics, r.config
            h = float(c["lr_factor"])
            below = h < 2
            n_below += below
            n_above += h > 2
            gap = m["decrease_min"] - m["decrease_theory"]
            if below:
                worst_decrease_gap = min(worst_decrease_gap, gap)
                if m["converged"] < 1:
                    bad.append(f"{c['problem']} ηβ={h:g}: {m['converged']:.0%} converged")
                if gap < -DECREASE_TOL:
                    bad.append(f"{c['problem']} ηβ={h:g}: decrease {m['decrease_min']:.3g}")
            elif h > 2 and m["converged"] > 0:
                bad.append(f"{c['problem']} ηβ={h:g}: {m['converged']:.0%} converged")
            rate_err = abs(m["rate"] - m["rate_theory"])
            worst_rate = max(worst_rate, rate_err)
            if rate_err > RATE_TOL * max(m["rate_theory"], 1.0):
                bad.append(
                    f"{c['problem']} ηβ={h:g}: contraction {m['rate']:.3g} vs "
                    f"{m['rate_theory']:.3g}"
                )
            if c["problem"] == QUADRATIC:
                err = max(
                    abs(m["decrease_min"] - m["decrease_theory"]),
                    abs(m["decrease_max"] - m["decrease_theory"]),
                )
                worst_quadratic_error = max(worst_quadratic_error, err)
                if h > 2 and m["diverged"] < 1:
                    bad.append(f"quadratic ηβ={h:g}: only {m['diverged']:.0%} diverged")
            series[c["problem"]].append(
                {"h": h, "rate": m["rate"], "q": m["rate_theory"], "dec": m["decrease_min"]}
            )
            table.append(
                {
                    "problem": c["problem"],
                    "β": m["beta"],
                    "η·β": h,
                    "converged": m["converged"],
                    "diverged": m["diverged"],
                    "rate (measured)": m["rate"],
                    "max|1 − ηλ| (theory)": m["rate_theory"],
                    "decrease/(η‖∇f‖²)": m["decrease_min"],
                    "1 − ηβ/2": m["decrease_theory"],
                }
            )
        if worst_quadratic_error > 1e-6:
            bad.append(f"quadratic decrease off by {worst_quadratic_error:.2g}")
        supported = not bad and n_below > 0 and n_above > 0
        if bad:
            summary = f"{len(bad)} contradiction(s): " + "; ".join(bad[:4])
        else:
            summary = (
                f"ηβ < 2 ({n_below} runs): every start converged and each step lowered f by "
                f"at least (1 − ηβ/2)η‖∇f‖² (worst margin {worst_decrease_gap:+.1e}); "
                f"ηβ > 2 ({n_above} runs): no start converged, the quadratic diverged; "
                f"quadratic decrease matches 1 − ηβ/2 to {worst_quadratic_error:.1e}; "
                f"contraction within {worst_rate:.2g} of max|1 − ηλᵢ|."
            )
        if n_below == 0 or n_above == 0:
            summary += " (need step sizes on both sides of 2)"
        numbers = {
            "runs_below_2": float(n_below),
            "runs_above_2": float(n_above),
            "contradictions": float(len(bad)),
            "worst_decrease_margin": worst_decrease_gap,
            "quadratic_decrease_error": worst_quadratic_error,
            "worst_contraction_error": worst_rate,
        }
        return Analysis(table, Verdict(supported, summary, numbers), _figures(series))


MARKERS = ("o", "s", "^", "D", "v", "P")


def _figures(series: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    from .. import plotting as plots

    with plots.style():
        fig, (ax1, ax2) = plots.figure(ncols=2, height=3.4)
        grid = np.linspace(0.0, 3.2, 200)
        n = len(series)
        for i, (name, rows) in enumerate(sorted(series.items())):
            h = np.array([r["h"] for r in rows])
            c = plots.color(i)
            ax1.plot(h, [r["rate"] for r in rows], "o", color=c, label=f"{name} (measured)")
            ax1.plot(h, [r["q"] for r in rows], "-", color=c, alpha=0.5, linewidth=1.2)
            # the problems' decreases coincide (all follow the lemma's line): dodge them
            # sideways and give each its own marker so every problem stays visible
            dodge = (i - (n - 1) / 2) * 0.05
            ax2.plot(
                h + dodge,
                [r["dec"] for r in rows],
                MARKERS[i % len(MARKERS)],
                color=c,
                mfc="none" if i % 2 else c,
                label=name,
            )
        ax1.plot([], [], "-", color=plots.THEORY_COLOR, label="max|1 − ηλᵢ| (theory)")
        ax1.axhline(1.0, color=plots.THEORY_COLOR, linewidth=0.8)
        ax1.set_ylim(0, 2.2)
        ax1.set_ylabel("contraction per step")
        ax1.set_title("Contraction near the minimum")
        ax2.plot(grid, 1 - grid / 2, "--", color=plots.THEORY_COLOR, label="1 − ηβ/2 (lemma)")
        ax2.axhline(0.0, color=plots.THEORY_COLOR, linewidth=0.8)
        ax2.set_ylabel("first-step decrease / (η‖∇f‖²)")
        ax2.set_title("Decrease per step (problems offset ±0.05 in η·β)")
        for ax in (ax1, ax2):
            ax.axvline(2.0, color="#B3261E", linestyle=":", linewidth=1.2)
            ax.set_xlabel("η·β")
            ax.legend(loc="upper left" if ax is ax1 else "lower left")
    return {"step size": fig}
