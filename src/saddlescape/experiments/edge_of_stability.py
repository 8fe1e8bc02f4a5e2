"""Edge of stability: under full-batch gradient descent with step η the sharpness rises to
``2/η`` and hovers there (Cohen, Kaur, Li, Kolter & Talwalkar, ICLR 2021).

Classical step-size theory (the descent lemma; THEORY.md "Gradient descent on an ℓ-smooth
function") needs ``λ_max(∇²L) < 2/η`` for GD to decrease the loss: on a quadratic of
curvature ``λ > 2/η`` GD diverges. Cohen et al. observed that on neural networks the
sharpness ``λ_max`` first *rises* during training ("progressive sharpening") until it
reaches ``2/η``, then stops rising and hovers at or just above ``2/η`` while the loss keeps
decreasing, non-monotonically, over long time scales.

Set-up (THEORY.md, "Edge of stability on digits"): a tanh MLP 64-200-200-10
(:func:`~saddlescape.problems.networks.make_mlp`, PyTorch's default initialisation from
``seed``) on scikit-learn's 1,797 digits (pixels/16), trained by full-batch GD
(``torch.optim.SGD`` without momentum) on the squared loss on one-hot targets. Loss
convention (:func:`~saddlescape.problems.networks.make_loss` ``"mse"``, Cohen et al.'s
``SquaredLoss``): ``L = (1/n) Σ_i ½‖f(x_i) − e_{y_i}‖²``. This is the normalization that
reproduces THEORY.md's initial sharpness ≈ 11 at seed 0 (measured 2026-11-28: 10.95 with
½·sum/n on pixels/16; without the ½ it is 22.5, with ``torch.nn.MSELoss`` 2.25, with
standardized pixels 3.9). The sharpness is measured by Lanczos on exact Hessian-vector
products of the full-data loss (:class:`~saddlescape.curvature.SharpnessTracker`) every
``every`` steps.

**Verdict.** Each η is judged on the ratio ``r = λ_max/(2/η)`` at the measurements, against
the paper's description: *progressive sharpening* (``r`` rises while training is stable)
until the *edge* ``r ≈ 1``, then the sharpness *hovers* there. A run supports the claim when

1. it starts below the edge, ``r(0) < START_MAX = 0.9`` (the η must be small enough that
   the initialisation is stable; a run that starts above ``2/η`` and falls back, as at
   η = 0.4 where λ_max = 11.5 > 2/η = 5, shows the opposite of sharpening);
2. ``r`` rises to ``BAND_LOW = 0.9``: the *edge step* is the first measurement with
   ``r ≥ 0.9``, and it comes before the *late window*, the last ``LATE_FRACTION = 1/3``
   of the steps (at least ``LATE_MIN_POINTS = 4`` measurements);
3. over the late window it hovers: the median of ``r`` lies in ``[HOVER_LOW, HOVER_HIGH] =
   [0.9, 1.2]`` — Cohen et al.'s abstract: the sharpness "hovers just above the value
   2/(step size)"; 0.9 leaves room for the Lanczos tolerance and the dips after each
   catapult (measured down to 0.96), 1.2 for "just above" (measured medians 1.03–1.05);
   the spread ``max r − min r`` is at most ``SPREAD_MAX = 0.25`` (measured 0.04–0.13);
   and the least-squares drift of ``r`` across the window is at most ``DRIFT_MAX = 0.1``
   in size (measured |drift| ≤ 0.03), which rejects a run still sharpening — before the
   edge ``r`` rises by 0.025–0.04 every 50 steps at η = 0.08–0.1, ≥ 0.15 over the quick
   run's 300-step window (the old 600-step quick run at η = 0.1: drift +0.14 over steps
   400–600, rejected);
4. the loss keeps decreasing overall after the edge — the median loss over the late window
   is below the loss at the edge (a median, because single steps spike: at η = 0.1 the
   loss at step 900 is 0.161 against 0.149 fifty steps earlier) — while going up at least
   once (non-monotone), as in the paper.

The verdict needs every η to pass and reports, per η, the deciding numbers: ``r(0)``, the
edge step, and the late-window median, spread and drift.

Measured (2026-11-28, seed 0, ``every`` = 50; sharpness 11.53 at step 0 for every η):

- full run, 2,400 steps, late window 1,600–2,400: η = 0.08 — r(0) = 0.46, edge at step
  800, late median r 1.04 (spread 0.07, drift +0.01); η = 0.1 — 0.58, step 350, 1.05
  (0.08, −0.03); η = 0.12 — 0.69, step 150, 1.05 (0.06, −0.01); η = 0.14 — 0.81, step
  50, 1.05 (0.06, −0.02); loss at the edge → late median 0.152 → 0.121, 0.162 → 0.107,
  0.176 → 0.098, 0.214 → 0.090; 55–80 s a run on one core.
- quick run, 900 steps, late window 600–900: η = 0.1 — edge at step 350, median r 1.03
  (spread 0.13, drift −0.03); η = 0.12 — step 150, 1.05 (0.04, −0.01); η = 0.14 — step
  50, 1.03 (0.05, +0.01); loss 0.162 → 0.152, 0.176 → 0.152, 0.214 → 0.152.
- not used: η = 0.05 is still sharpening at step 1,500 (r = 0.29 → 0.62); η = 0.15 starts
  at r = 0.865, barely below the edge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError, DivergenceError, check_count, check_int, check_positive
from ._common import mlp_widths
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = [
    "BAND_LOW",
    "DRIFT_MAX",
    "HOVER_HIGH",
    "HOVER_LOW",
    "LATE_FRACTION",
    "SPREAD_MAX",
    "START_MAX",
    "EdgeOfStability",
    "EdgeOfStabilityConfig",
]

START_MAX = 0.9
"""A run must start below ``START_MAX × 2/η`` (stable initialisation, room to sharpen)."""
BAND_LOW = 0.9
"""The edge is reached at the first measurement with ``λ_max ≥ BAND_LOW × 2/η``."""
LATE_FRACTION = 1.0 / 3.0
"""The late window is the last third of the steps."""
LATE_MIN_POINTS = 4
"""Fewest sharpness measurements in the late window for a verdict."""
HOVER_LOW = 0.9
"""Lowest accepted median of ``λ_max/(2/η)`` over the late window."""
HOVER_HIGH = 1.2
"""Highest accepted median (the paper: "at, or just above, 2/η")."""
SPREAD_MAX = 0.25
"""Largest accepted ``max − min`` of ``λ_max/(2/η)`` over the late window."""
DRIFT_MAX = 0.1
"""Largest accepted size of the fitted change of ``λ_max/(2/η)`` across the late window."""


@dataclass(frozen=True)
class EdgeOfStabilityConfig:
    """One full-batch GD run.

    ``lr`` η; ``steps`` GD steps; ``every`` sharpness measurement interval; ``hidden``
    hidden widths (``"200,200"`` → 64-200-200-10); ``activation``; ``loss`` (``"mse"``
    on one-hot targets, ``½·sum/n``, or ``"cross-entropy"``); ``n_samples`` the first n
    digits (0: all 1,797); ``dtype`` ``"float32"`` or ``"float64"``; ``lanczos_tol``
    relative Lanczos tolerance; ``seed`` the network initialisation.
    """

    lr: float = 0.1
    steps: int = 2400
    every: int = 50
    hidden: str = "200,200"
    activation: str = "tanh"
    loss: str = "mse"
    n_samples: int = 0
    dtype: str = "float32"
    lanczos_tol: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        check_positive("lr", self.lr)
        from ..problems.networks import ACTIVATIONS, DIGITS_SIZE, LOSSES

        check_count("steps", self.steps, minimum=1, maximum=10**7)
        check_int("every", self.every, minimum=1)
        check_count("n_samples", self.n_samples, minimum=0, maximum=DIGITS_SIZE)
        check_int("seed", self.seed, minimum=0)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        check_positive("lanczos_tol", self.lanczos_tol)
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.every > self.steps:
            raise ConfigError(f"every ({self.every}) must be <= steps ({self.steps})")
        _widths(self.hidden)


def _widths(hidden: str) -> tuple[int, ...]:
    return mlp_widths(hidden, "'200,200'")


@register
class EdgeOfStability(Experiment):
    """Sharpness under full-batch GD rises to ``2/η`` and hovers there (Cohen et al. 2021).

    >>> from saddlescape import experiments
    >>> exp = experiments.get("edge-of-stability")
    >>> out = exp.run(exp.config(hidden="16", n_samples=100, steps=20, every=10))
    >>> out.arrays["steps"].tolist(), out.arrays["loss"].shape
    ([0, 10, 20], (21,))
    """

    name = "edge-of-stability"
    claim = (
        "Under full-batch gradient descent with step size η the sharpness λ_max(∇²L) rises "
        "until it reaches 2/η and then hovers at or just above 2/η, while the loss keeps "
        "decreasing non-monotonically."
    )
    source = (
        "Cohen, Kaur, Li, Kolter, Talwalkar, 'Gradient descent on neural networks typically "
        "occurs at the edge of stability', ICLR 2021 (arXiv 2103.00065)"
    )
    Config = EdgeOfStabilityConfig
    # η with 2/η above the initial sharpness 11.5 (ratio 0.46–0.81 at step 0): each must
    # sharpen to the edge; the quick run drops the slowest (η = 0.08 reaches it at step 800).
    quick_overrides: ClassVar[dict[str, Any]] = {"steps": 900}
    default_grid: ClassVar[dict[str, list[Any]]] = {"lr": [0.08, 0.1, 0.12, 0.14], "seed": [0]}
    quick_grid: ClassVar[dict[str, list[Any]]] = {"lr": [0.1, 0.12, 0.14], "seed": [0]}

    # ------------------------------------------------------------------ one run
    def run(self, config: EdgeOfStabilityConfig) -> RunOutput:
        """Train by full-batch GD, measuring the sharpness every ``config.every`` steps."""
        from ..curvature import SharpnessTracker
        from ..problems.networks import load_digits_tensors, make_loss, make_mlp

        t0 = time.perf_counter()
        dtype = getattr(torch, config.dtype)
        X, y = load_digits_tensors(config.n_samples or None, dtype=dtype)
        model = make_mlp(_widths(config.hidden), config.activation, config.seed, dtype)
        loss_fn = make_loss(config.loss)
        tracker = SharpnessTracker(
            model,
            loss_fn,
            (X, y),
            every=config.every,
            lr=config.lr,
            tol=config.lanczos_tol,
            seed=config.seed,
        )
        opt = torch.optim.SGD(model.parameters(), lr=config.lr)
        losses = np.empty(config.steps + 1)
        for t in range(config.steps + 1):
            tracker.step(t)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise DivergenceError(f"edge-of-stability: loss {value} at step {t}")
            losses[t] = value
            if t == config.steps:
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            accuracy = float((model(X).argmax(1) == y).double().mean())
        hist = tracker.history
        steps = np.array([r.step for r in hist], dtype=np.int64)
        sharp = np.array([r.lambda_max for r in hist])
        s = _summarize(steps, sharp, losses, config.lr)
        metrics = {
            "lr": config.lr,
            "threshold": 2.0 / config.lr,
            "sharpness_initial": float(sharp[0]),
            "sharpness_final": float(sharp[-1]),
            "sharpness_max": float(sharp.max()),
            **s,
            "loss_initial": float(losses[0]),
            "loss_final": float(losses[-1]),
            "train_accuracy": accuracy,
            "n_samples": int(X.shape[0]),
            "n_params": sum(p.numel() for p in model.parameters()),
            "hvps": tracker.total_hvps,
            "lanczos_converged": all(r.converged for r in hist),
            "seconds": time.perf_counter() - t0,
        }
        return RunOutput(metrics, {"steps": steps, "sharpness": sharp, "loss": losses})

    # ------------------------------------------------------------------ analysis
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        """Per-run table (start, edge, late-window hovering); verdict over all runs."""
        ok = [r for r in records if r.status == "ok"]
        failed = len(records) - len(ok)
        if not ok:
            return Analysis(
                [], Verdict(False, f"no successful runs ({failed} failed)", {"failed": failed})
            )
        ok = sorted(ok, key=lambda r: (float(r.config["lr"]), int(r.config.get("seed", 0))))
        rows, numbers, problems, desc = [], {"failed": float(failed)}, [], []
        for r in ok:
            lr = float(r.config["lr"])
            s = _summarize(
                np.asarray(r.arrays["steps"]),
                np.asarray(r.arrays["sharpness"]),
                np.asarray(r.arrays["loss"]),
                lr,
            )
            seed = r.config.get("seed")
            tag = f"η={lr:g}" + (f", seed {seed}" if seed is not None else "")
            rows.append(
                {
                    "lr": lr,
                    "seed": seed,
                    "2/lr": 2.0 / lr,
                    "sharpness at step 0": float(r.arrays["sharpness"][0]),
                    "ratio at step 0": s["ratio_initial"],
                    "edge step": s["edge_step"],
                    "late window": f"{s['late_from']}–{s['late_to']}",
                    "late ratio median": s["late_median"],
                    "late ratio spread": s["late_spread"],
                    "late ratio drift": s["late_drift"],
                    "loss at edge": s["loss_at_edge"],
                    "late loss median": s["late_loss_median"],
                    "final loss": float(r.arrays["loss"][-1]),
                    "loss increases after edge": s["loss_increases_after_edge"],
                    "train accuracy": r.metrics.get("train_accuracy"),
                    "HVPs": r.metrics.get("hvps"),
                }
            )
            key = f"lr={lr:g}" + (f" seed={seed}" if seed not in (None, 0) else "")
            numbers[f"{key} ratio at step 0"] = s["ratio_initial"]
            numbers[f"{key} edge step"] = float(s["edge_step"])
            numbers[f"{key} late median"] = s["late_median"]
            numbers[f"{key} late spread"] = s["late_spread"]
            numbers[f"{key} late drift"] = s["late_drift"]
            problems += [f"{tag}: {p}" for p in _problems(s)]
            edge = (
                f"edge (r ≥ {BAND_LOW:g}) at step {s['edge_step']}"
                if s["edge_step"] >= 0
                else (f"never reached r = {BAND_LOW:g} (max {s['ratio_max']:.2f})")
            )
            desc.append(
                f"η={lr:g}: r(0) = {s['ratio_initial']:.2f}, {edge}; steps "
                f"{s['late_from']}–{s['late_to']}: median r {s['late_median']:.2f}, spread "
                f"{s['late_spread']:.2f}, drift {s['late_drift']:+.2f}; loss "
                f"{s['loss_at_edge']:.3g} at the edge → late median {s['late_loss_median']:.3g}"
            )
        supported = not problems and failed == 0
        measured = "; ".join(desc)
        if supported:
            summary = (
                f"Supported: for every η the sharpness started below {START_MAX:g}×2/η, rose "
                f"to the edge and then hovered there (late-window median of r = λ_max/(2/η) "
                f"in [{HOVER_LOW:g}, {HOVER_HIGH:g}], spread ≤ {SPREAD_MAX:g}, |drift| ≤ "
                f"{DRIFT_MAX:g}) while the loss kept decreasing non-monotonically. Measured: "
                f"{measured}."
            )
        else:
            extra = f"; {failed} run(s) failed" if failed else ""
            summary = "Not supported: " + "; ".join(problems) + extra + f". Measured: {measured}."
        return Analysis(rows, Verdict(supported, summary, numbers), _figures(ok))


def _summarize(
    steps: np.ndarray, sharp: np.ndarray, losses: np.ndarray, lr: float
) -> dict[str, Any]:
    """The verdict's numbers for one run: ratio ``r = λ_max/(2/η)`` at step 0, edge step
    (first measurement with ``r ≥ BAND_LOW``, −1 if none), the late window (last
    ``LATE_FRACTION`` of the steps) with its median, spread and fitted drift of ``r``, and
    the loss after the edge."""
    steps = np.asarray(steps, dtype=float)
    ratios = np.asarray(sharp, dtype=float) * lr / 2.0
    first, last = float(steps[0]), float(steps[-1])
    late_from = last - LATE_FRACTION * (last - first)
    late = steps >= late_from
    r_late, s_late = ratios[late], steps[late]
    if r_late.size >= 2 and np.ptp(s_late) > 0:
        drift = float(np.polyfit(s_late, r_late, 1)[0] * np.ptp(s_late))
    else:
        drift = float("nan")
    out: dict[str, Any] = {
        "ratio_initial": float(ratios[0]),
        "ratio_max": float(ratios.max()),
        "late_from": int(s_late[0]) if s_late.size else int(last),
        "late_to": int(last),
        "late_points": int(r_late.size),
        "late_median": float(np.median(r_late)) if r_late.size else float("nan"),
        "late_spread": float(np.ptp(r_late)) if r_late.size else float("nan"),
        "late_drift": drift,
    }
    inside = np.flatnonzero(ratios >= BAND_LOW)
    if inside.size == 0:
        return {
            **out,
            "edge_step": -1,
            "loss_at_edge": float("nan"),
            "late_loss_median": float("nan"),
            "loss_late_below_edge": False,
            "loss_increases_after_edge": 0,
        }
    edge = int(steps[int(inside[0])])
    tail = losses[edge:]
    late_loss = float(np.median(losses[out["late_from"] :]))
    return {
        **out,
        "edge_step": edge,
        "loss_at_edge": float(losses[edge]),
        "late_loss_median": late_loss,
        "loss_late_below_edge": bool(late_loss < losses[edge]),
        "loss_increases_after_edge": int((np.diff(tail) > 0).sum()),
    }


def _problems(s: dict[str, Any]) -> list[str]:
    """What in one run's summary contradicts the claim (empty: the run supports it)."""
    out = []
    if not s["ratio_initial"] < START_MAX:
        out.append(
            f"started at r = {s['ratio_initial']:.2f} ≥ {START_MAX:g}, at or above the edge "
            "(no progressive sharpening to observe)"
        )
        return out
    if s["edge_step"] < 0:
        out.append(f"never reached the edge r = {BAND_LOW:g} (max r {s['ratio_max']:.2f})")
        return out
    if s["late_points"] < LATE_MIN_POINTS:
        out.append(
            f"only {s['late_points']} measurements in the late window "
            f"(need {LATE_MIN_POINTS}; measure more often)"
        )
        return out
    if s["edge_step"] > s["late_from"]:
        out.append(
            f"reached the edge only at step {s['edge_step']}, inside the late window "
            f"(from step {s['late_from']}): hovering not shown"
        )
        return out
    if not HOVER_LOW <= s["late_median"] <= HOVER_HIGH:
        out.append(
            f"late-window median r = {s['late_median']:.2f} outside "
            f"[{HOVER_LOW:g}, {HOVER_HIGH:g}] (did not hover at the edge)"
        )
    if not s["late_spread"] <= SPREAD_MAX:
        out.append(f"late-window spread of r {s['late_spread']:.2f} > {SPREAD_MAX:g}")
    if not abs(s["late_drift"]) <= DRIFT_MAX:
        out.append(
            f"r drifted by {s['late_drift']:+.2f} across the late window "
            f"(|drift| > {DRIFT_MAX:g}: still moving, not hovering)"
        )
    if not s["loss_late_below_edge"]:
        out.append(
            f"loss did not decrease after reaching the edge (late-window median "
            f"{s['late_loss_median']:.3g} ≥ {s['loss_at_edge']:.3g} at the edge)"
        )
    if s["loss_increases_after_edge"] < 1:
        out.append("loss decreased monotonically after the edge (no oscillation)")
    return out


def _figures(records: Sequence[RunRecord]) -> dict[str, Any]:
    from .. import plotting as plots

    with plots.style():
        fig_s, ax_s = plots.figure(width=6.0)
        fig_l, ax_l = plots.figure(width=6.0)
        for i, r in enumerate(records):
            lr = float(r.config["lr"])
            c = plots.color(i)
            label = f"η = {lr:g}"
            ax_s.plot(r.arrays["steps"], r.arrays["sharpness"], "o-", ms=3, color=c, label=label)
            ax_s.axhline(2.0 / lr, color=c, ls="--", lw=1, label=f"2/η = {2 / lr:g}")
            loss = np.asarray(r.arrays["loss"])
            ax_l.plot(np.arange(loss.size), loss, color=c, lw=1, label=label)
        ax_s.set_xlabel("GD step")
        ax_s.set_ylabel("sharpness λ_max(∇²L)")
        ax_s.set_title("Sharpness under full-batch GD (dashed: 2/η)")
        ax_s.legend()
        ax_l.set_xlabel("GD step")
        ax_l.set_ylabel("training loss")
        ax_l.set_yscale("log")
        ax_l.set_title("Training loss (full batch)")
        ax_l.legend()
    return {"sharpness": fig_s, "loss": fig_l}
