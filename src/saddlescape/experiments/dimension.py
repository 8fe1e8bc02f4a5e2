"""dimension: the time perturbed and noisy GD take to escape a strict saddle grows only
polylogarithmically with the dimension.

Jin, Ge, Netrapalli, Kakade, Jordan 2017 ("How to Escape Saddle Points Efficiently",
arXiv 1703.00887), Theorem 3: perturbed GD finds an ε-second-order stationary point in
O(ℓΔf/ε² · log⁴(dℓΔf/(ε²δ))) iterations — "almost dimension-free". Noisy GD (Ge, Huang,
Jin, Yuan 2015) escapes the same way. The test family (THEORY.md, "Measured here:
dimension dependence") is f(x) = ½xᵀAx + ‖x‖³/6 with A = diag(−1, a₂, …, a_d),
aᵢ ~ U[1, 2] (``cubic-regularized-quadratic``), whose ℓ, ρ and λ_min do not grow with d:
from the exact saddle 0, with η = ¼, r = 10⁻², g_thres = 10⁻³, t_thres = 50, count the
iterations until f ≤ −0.6 (f* = −2/3). A ball-uniform perturbation puts only ≈ r/√d
along the escape direction e₁, so the count grows like log d; THEORY.md measured
36, 42, 49, 52, 63 (PGD) and 41, 50, 49, 59, 63 (noisy GD) for d = 10 … 10⁵.
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
from ._fits import linear_fit, loglog_slope
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["Dimension"]

OPTIMIZERS = ("pgd", "noisy")
#: The largest power-law exponent (iterations ∝ d^p) still read as polylogarithmic over
#: the measured range; √d growth (p = 0.5) or faster contradicts the claim.
MAX_EXPONENT = 0.2
#: Jin et al. 2017 bound the count by a polynomial of degree 4 in log d.
POLYLOG_DEGREE = 4
#: THEORY.md medians of 3 seeds, d = 10, 10², 10³, 10⁴, 10⁵ (reference, not a criterion).
REFERENCE = {
    "pgd": {10: 36, 100: 42, 1000: 49, 10_000: 52, 100_000: 63},
    "noisy": {10: 41, 100: 50, 1000: 49, 10_000: 59, 100_000: 63},
}


@dataclass(frozen=True)
class DimensionConfig:
    """``optimizer``: ``"pgd"`` (Jin et al. 2017, Algorithm 2 without the stop test) or
    ``"noisy"`` (Ge et al. 2015: unit-sphere noise of size ``radius`` at every step).
    ``seed`` draws both the aᵢ of the problem and the optimizer's noise."""

    optimizer: str = "pgd"
    dim: int = 10
    lr: float = 0.25
    radius: float = 1e-2
    grad_threshold: float = 1e-3
    interval: int = 50
    target: float = -0.6
    max_iter: int = 10_000
    seed: int = 0

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_count("dim", self.dim, minimum=2, maximum=10**7)  # 80 MB per float64 vector
        check_positive("lr", self.lr)
        check_positive("radius", self.radius)
        check_positive("grad_threshold", self.grad_threshold)
        check_count("interval", self.interval, minimum=1, maximum=10**8)
        check_count("max_iter", self.max_iter, minimum=1, maximum=10**8)
        if not -2 / 3 < self.target < 0:
            raise ConfigError(f"target must lie in (f* = −2/3, 0), got {self.target}")


@register
class Dimension(Experiment):
    name = "dimension"
    claim = (
        "Perturbed GD (and noisy GD) escape a strict saddle in a number of iterations that "
        "grows at most polylogarithmically with the dimension d ('almost dimension-free')."
    )
    source = (
        "Jin, Ge, Netrapalli, Kakade, Jordan 2017, 'How to Escape Saddle Points "
        "Efficiently' (arXiv 1703.00887), Theorem 3; Ge, Huang, Jin, Yuan 2015 (COLT); "
        "THEORY.md 'Measured here: dimension dependence'."
    )
    Config = DimensionConfig
    default_grid = {  # noqa: RUF012
        "optimizer": list(OPTIMIZERS),
        "dim": [10, 100, 1000, 10_000, 100_000],
        "seed": [0, 1, 2],
    }
    quick_grid = {  # noqa: RUF012
        "optimizer": list(OPTIMIZERS),
        "dim": [10, 100, 1000, 10_000],
        "seed": [0, 1, 2],
    }

    # ------------------------------------------------------------------ run
    def run(self, config: DimensionConfig) -> RunOutput:
        from .. import problems
        from ..optim import NoisyGD, PerturbedGD

        problem = problems.get("cubic-regularized-quadratic", dim=config.dim, seed=config.seed)
        x = torch.zeros(config.dim, dtype=torch.float64, requires_grad=True)  # the saddle
        if config.optimizer == "pgd":
            opt: Any = PerturbedGD(
                [x],
                lr=config.lr,
                radius=config.radius,
                grad_threshold=config.grad_threshold,
                interval=config.interval,
                seed=config.seed,
            )
        else:
            opt = NoisyGD([x], lr=config.lr, noise="sphere", radius=config.radius, seed=config.seed)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = problem.f(x)
            loss.backward()
            return loss

        escaped_at = -1
        f_val = 0.0
        for t in range(1, config.max_iter + 1):
            opt.step(closure)
            with torch.no_grad():
                f_val = float(problem.f(x))
            if f_val <= config.target:
                escaped_at = t
                break
        with torch.no_grad():
            e1 = float(x[0].abs())
        return RunOutput(
            metrics={
                "escaped": escaped_at > 0,
                "iterations": escaped_at if escaped_at > 0 else math.nan,
                "final_f": f_val,
                "final_abs_x1": e1,
                "perturbations": int(opt.perturbations),
                "grad_evals": opt.grad_evals,
            }
        )

    # ------------------------------------------------------------------ analyze
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        failed: list[str] = []
        for r in records:
            opt, d = r.config["optimizer"], int(r.config["dim"])
            it = r.metrics["iterations"]
            if not r.metrics["escaped"] or it is None or not math.isfinite(it):
                failed.append(f"{opt} d={d} seed={r.config['seed']}")
                it = math.inf
            by[opt][d].append(float(it))
        table: list[dict[str, Any]] = []
        fits: dict[str, dict[str, float]] = {}
        bad: list[str] = []
        for opt in _ordered(by):
            dims = sorted(by[opt])
            med = np.array([np.median(by[opt][d]) for d in dims], dtype=float)
            logd = np.log(np.array(dims, dtype=float))
            finite = np.isfinite(med)
            a, b, rms_log = linear_fit(logd[finite], med[finite])
            p = loglog_slope(np.array(dims, dtype=float)[finite], med[finite])
            _, _, rms_pow = linear_fit(logd[finite], np.log(med[finite]))
            growth = med[-1] / med[0] if finite.all() else math.inf
            allowed = (logd[-1] / logd[0]) ** POLYLOG_DEGREE if len(dims) > 1 else math.inf
            fits[opt] = {"a": a, "b": b, "p": p, "growth": growth, "allowed": allowed}
            if len(dims) < 3:
                bad.append(f"{opt}: fewer than 3 dimensions measured")
            elif not finite.all():
                bad.append(f"{opt}: some dimensions never escaped")
            else:
                if p > MAX_EXPONENT:
                    bad.append(f"{opt}: iterations ∝ d^{p:.2f}")
                if growth > allowed:
                    bad.append(f"{opt}: grew {growth:.1f}× > (log ratio)^4 = {allowed:.1f}")
            for d, m in zip(dims, med, strict=True):
                table.append(
                    {
                        "optimizer": opt,
                        "d": d,
                        "median iterations": m,
                        "runs": len(by[opt][d]),
                        "min": min(by[opt][d]),
                        "max": max(by[opt][d]),
                        "fit a + b·ln d": a + b * math.log(d),
                        "THEORY.md": REFERENCE.get(opt, {}).get(d),
                    }
                )
            fits[opt]["rms_log"], fits[opt]["rms_pow"] = rms_log, rms_pow
        if failed:
            bad.append(f"{len(failed)} run(s) did not escape: {', '.join(failed[:3])}")
        supported = not bad and bool(by)
        few = [o for o in fits if len(by[o]) < 3]
        parts = [
            f"{opt}: {f['growth']:.2f}× more iterations from d = {min(by[opt])} to "
            f"{max(by[opt])}, ≈ {f['a']:.0f} + {f['b']:.1f}·ln d, power-law exponent "
            f"{f['p']:.3f}"
            for opt, f in fits.items()
            if opt not in few
        ]
        summary = "; ".join(parts) + (
            f" — polylogarithmic (exponent ≤ {MAX_EXPONENT}, growth within log⁴)."
            if supported
            else f" — {'; '.join(bad[:3])}."
        )
        numbers: dict[str, float] = {}
        for opt, f in fits.items():
            numbers[f"{opt}_exponent"] = f["p"]
            numbers[f"{opt}_slope_per_ln_d"] = f["b"]
            numbers[f"{opt}_growth"] = f["growth"]
        numbers["failed_runs"] = float(len(failed))
        return Analysis(table, Verdict(supported, summary, numbers), _figures(by, fits))


def _ordered(by: dict[str, Any]) -> list[str]:
    return sorted(by, key=lambda o: (OPTIMIZERS.index(o) if o in OPTIMIZERS else 99, o))


def _figures(by: dict[str, dict[int, list[float]]], fits: dict[str, dict[str, float]]) -> dict:
    from .. import plotting as plots

    with plots.style():
        fig, ax = plots.figure(width=6.4, height=3.8)
        for i, opt in enumerate(_ordered(by)):
            c = plots.color(i)
            dims = sorted(by[opt])
            for d in dims:
                vals = [v for v in by[opt][d] if math.isfinite(v)]
                ax.plot([d] * len(vals), vals, ".", color=c, alpha=0.35)
            med = [np.median(by[opt][d]) for d in dims]
            ax.plot(dims, med, "o-", color=c, label=f"{opt} (median)")
            f = fits[opt]
            dd = np.logspace(math.log10(dims[0]), math.log10(dims[-1]), 100)
            if math.isfinite(f["b"]):
                ax.plot(
                    dd,
                    f["a"] + f["b"] * np.log(dd),
                    "--",
                    color=c,
                    linewidth=1.1,
                    label=f"{opt}: {f['a']:.0f} + {f['b']:.1f}·ln d",
                )
            ref = {d: v for d, v in REFERENCE.get(opt, {}).items() if d in by[opt]}
            if ref:
                ax.plot(
                    list(ref),
                    list(ref.values()),
                    "s",
                    mfc="none",
                    color=c,
                    alpha=0.8,
                    label=f"{opt}: THEORY.md",
                )
        if by:
            d0 = min(min(v) for v in by.values())
            d1 = max(max(v) for v in by.values())  # the contrast line ends with the data
            m0 = min(np.median(by[o][d0]) for o in by if d0 in by[o])
            dd = np.logspace(math.log10(d0), math.log10(max(d1, d0)), 50)
            ax.plot(
                dd,
                m0 * np.sqrt(dd / d0),
                ":",
                color=plots.THEORY_COLOR,
                label="√d growth (for contrast)",
            )
        ax.set_xscale("log")
        if by:  # fit the axis to the dimensions measured (quick: 10…10⁴, full: 10…10⁵)
            ax.set_xlim(d0 / 1.6, d1 * 1.6)
        top = max(
            (max(v for vs in d.values() for v in vs if math.isfinite(v)) for d in by.values()),
            default=100,
        )
        ax.set_ylim(0, 1.6 * top)
        ax.set_xlabel("dimension d")
        ax.set_ylabel("iterations until f ≤ −0.6")
        ax.set_title("Escape from the saddle of ½xᵀAx + ‖x‖³/6")
        ax.legend(ncols=2, loc="lower right")
    return {"escape time vs dimension": fig}
