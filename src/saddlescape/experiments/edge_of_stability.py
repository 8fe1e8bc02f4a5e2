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

**Verdict.** For each run, the *edge step* is the first measurement whose ratio
``λ_max/(2/η)`` lies in the band ``[BAND_LOW, BAND_HIGH] = [0.9, 1.3]`` (reached from
below by progressive sharpening, or from above when training starts too sharp). The
claim is supported when every run reaches the edge, every later measurement stays in the
band, and the loss keeps decreasing overall after the edge (final loss below the loss at
the edge) while going up at least once (non-monotone). A run whose sharpness never reaches
``0.9·2/η`` (too small η, too few steps) or leaves the band fails it.

Measured (2026-11-28, full run, seed 0): η = 0.1 — sharpness 11.53 at step 0, reaches the
band at step 400, then 0.97–1.10 × 2/η to step 1,500, loss 0.160 → 0.135; η = 0.4 — in
the band from step 100 on at 1.13–1.21 × 2/η, loss 0.174 → 0.074. On small subsets (300
digits) the sharpness hovers higher, up to 1.36 × 2/η at η = 0.4.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError, DivergenceError, check_int, check_positive
from ._common import mlp_widths
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["BAND_HIGH", "BAND_LOW", "EdgeOfStability", "EdgeOfStabilityConfig"]

BAND_LOW = 0.9
"""Lower end of the band ``λ_max/(2/η)`` must stay in after the edge is reached."""
BAND_HIGH = 1.3
"""Upper end of that band."""


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
    steps: int = 1500
    every: int = 100
    hidden: str = "200,200"
    activation: str = "tanh"
    loss: str = "mse"
    n_samples: int = 0
    dtype: str = "float32"
    lanczos_tol: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        check_positive("lr", self.lr)
        check_int("steps", self.steps, minimum=1)
        check_int("every", self.every, minimum=1)
        check_int("n_samples", self.n_samples, minimum=0)
        check_int("seed", self.seed, minimum=0)
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
    quick_overrides: ClassVar[dict[str, Any]] = {"steps": 600, "every": 50}
    default_grid: ClassVar[dict[str, list[Any]]] = {"lr": [0.1, 0.4], "seed": [0]}
    quick_grid: ClassVar[dict[str, list[Any]]] = {"lr": [0.1, 0.4], "seed": [0]}

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
        """Per-run table of sharpness ratios after the edge; verdict over all runs."""
        ok = [r for r in records if r.status == "ok"]
        failed = len(records) - len(ok)
        if not ok:
            return Analysis(
                [], Verdict(False, f"no successful runs ({failed} failed)", {"failed": failed})
            )
        ok = sorted(ok, key=lambda r: (float(r.config["lr"]), int(r.config.get("seed", 0))))
        rows, numbers, problems = [], {"failed": float(failed)}, []
        for r in ok:
            lr = float(r.config["lr"])
            s = _summarize(
                np.asarray(r.arrays["steps"]),
                np.asarray(r.arrays["sharpness"]),
                np.asarray(r.arrays["loss"]),
                lr,
            )
            tag = f"lr={lr:g}" + (f", seed {r.config['seed']}" if "seed" in r.config else "")
            rows.append(
                {
                    "lr": lr,
                    "seed": r.config.get("seed"),
                    "2/lr": 2.0 / lr,
                    "sharpness at step 0": float(r.arrays["sharpness"][0]),
                    "edge step": s["edge_step"],
                    "ratio min after edge": s["ratio_min_after_edge"],
                    "ratio max after edge": s["ratio_max_after_edge"],
                    "loss at edge": s["loss_at_edge"],
                    "final loss": float(r.arrays["loss"][-1]),
                    "loss increases after edge": s["loss_increases_after_edge"],
                    "train accuracy": r.metrics.get("train_accuracy"),
                    "HVPs": r.metrics.get("hvps"),
                }
            )
            key = f"lr={lr:g}"
            numbers[f"{key} ratio min"] = s["ratio_min_after_edge"]
            numbers[f"{key} ratio max"] = s["ratio_max_after_edge"]
            numbers[f"{key} edge step"] = float(s["edge_step"])
            if s["edge_step"] < 0:
                ratios = np.asarray(r.arrays["sharpness"]) * lr / 2.0
                problems.append(
                    f"{tag}: sharpness never entered [{BAND_LOW}, {BAND_HIGH}]×2/η "
                    f"(ratios {ratios.min():.2f}–{ratios.max():.2f})"
                )
                continue
            if s["ratio_min_after_edge"] < BAND_LOW or s["ratio_max_after_edge"] > BAND_HIGH:
                problems.append(
                    f"{tag}: after the edge the ratio left the band "
                    f"({s['ratio_min_after_edge']:.2f}–{s['ratio_max_after_edge']:.2f})"
                )
            if not s["loss_final_below_edge"]:
                problems.append(f"{tag}: loss did not decrease after reaching the edge")
            if s["loss_increases_after_edge"] < 1:
                problems.append(f"{tag}: loss decreased monotonically (no oscillation)")
        supported = not problems and failed == 0
        desc = "; ".join(
            f"η={row['lr']:g}: edge at step {row['edge step']}, λ_max/(2/η) "
            f"{row['ratio min after edge']:.2f}–{row['ratio max after edge']:.2f}, loss "
            f"{row['loss at edge']:.3g} → {row['final loss']:.3g}"
            for row in rows
            if row["edge step"] >= 0
        )
        if supported:
            summary = (
                f"Supported: after reaching 2/η the sharpness stayed within "
                f"[{BAND_LOW}, {BAND_HIGH}]×2/η while the loss kept decreasing "
                f"non-monotonically ({desc})."
            )
        else:
            extra = f"; {failed} run(s) failed" if failed else ""
            summary = (
                "Not supported: "
                + "; ".join(problems)
                + extra
                + (f" (measured: {desc})" if desc else "")
            )
        return Analysis(rows, Verdict(supported, summary, numbers), _figures(ok))


def _summarize(
    steps: np.ndarray, sharp: np.ndarray, losses: np.ndarray, lr: float
) -> dict[str, Any]:
    """Edge step (first measurement in the band), ratio range after it, loss behaviour."""
    ratios = sharp * lr / 2.0
    inside = np.flatnonzero((ratios >= BAND_LOW) & (ratios <= BAND_HIGH))
    if inside.size == 0:
        return {
            "edge_step": -1,
            "ratio_min_after_edge": float("nan"),
            "ratio_max_after_edge": float("nan"),
            "loss_at_edge": float("nan"),
            "loss_final_below_edge": False,
            "loss_increases_after_edge": 0,
        }
    k = int(inside[0])
    edge = int(steps[k])
    after = ratios[k:]
    tail = losses[edge:]
    return {
        "edge_step": edge,
        "ratio_min_after_edge": float(after.min()),
        "ratio_max_after_edge": float(after.max()),
        "loss_at_edge": float(losses[edge]),
        "loss_final_below_edge": bool(losses[-1] < losses[edge]),
        "loss_increases_after_edge": int((np.diff(tail) > 0).sum()),
    }


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
