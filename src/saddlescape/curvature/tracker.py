"""Sharpness (λ_max of the training-loss Hessian) tracked during training.

The edge-of-stability phenomenon (Cohen, Kaur, Li, Kolter & Talwalkar, "Gradient descent
on neural networks typically occurs at the edge of stability", ICLR 2021): under
full-batch gradient descent with step η the sharpness rises until it reaches ``2/η`` and
then hovers there. They measured it by Lanczos on exact Hessian-vector products every
50–100 steps; :class:`SharpnessTracker` does the same and warm-starts each Lanczos run
from the previous top eigenvector (``v0``), so when the spectrum drifts slowly an update
costs a handful of products instead of a cold start's dozens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import ConfigError, DivergenceError, check_int, check_positive
from ._empirical_risk import MODES
from .lanczos import lanczos
from .operators import HessianOperator

__all__ = ["SharpnessRecord", "SharpnessTracker"]


@dataclass(frozen=True)
class SharpnessRecord:
    """One measurement: the training step, the extreme eigenvalues, the stability
    threshold ``2/η`` (``None`` without ``lr``), the cost and whether Lanczos converged."""

    step: int
    lambda_max: float
    lambda_min: float | None
    threshold: float | None
    hvps: int
    seconds: float
    converged: bool

    @property
    def ratio(self) -> float | None:
        """``λ_max / (2/η)``: 1 at the edge of stability."""
        return None if self.threshold is None else self.lambda_max / self.threshold


class SharpnessTracker:
    """Re-estimate the sharpness of ``loss_fn(model(inputs), targets)`` on ``data`` every
    ``every`` training steps.

    Call :meth:`step` with the training step index once per step (it measures when
    ``step_index % every == 0``); :meth:`update` measures now. ``data``, ``params``:
    as for :meth:`HessianOperator.from_model` (the full training set for full-batch GD).
    ``lr``: the step size η, recorded as the threshold ``2/η``. ``track_min``: also
    estimate λ_min (a second, also warm-started, Lanczos run). ``tol``: Lanczos tolerance
    relative to ``‖H‖``; ``max_hvps``: budget per run; ``seed``: the first cold start.
    ``mode`` (``"eval"`` or ``"train"``, see the module docstring), ``reduction``,
    ``batch_size_fn`` and ``batch_loss``: the batch protocol of
    :meth:`HessianOperator.from_model`. ``progress``/``callback``: as for
    :func:`~saddlescape.curvature.lanczos`, per measurement.

    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> X = torch.randn(50, 3, dtype=torch.float64); y = torch.randn(50, 1, dtype=torch.float64)
    >>> tr = SharpnessTracker(model, torch.nn.functional.mse_loss, (X, y), every=10, lr=0.1)
    >>> [tr.step(t) is not None for t in range(12)].count(True)   # steps 0 and 10
    2
    >>> Z = torch.cat([X, torch.ones(50, 1, dtype=torch.float64)], 1)
    >>> H = 2 * Z.T @ Z / 50                       # the (constant) Hessian of the MSE
    >>> abs(tr.history[-1].lambda_max - float(torch.linalg.eigvalsh(H)[-1])) < 1e-3
    True
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        every: int = 100,
        lr: float | None = None,
        track_min: bool = False,
        tol: float = 1e-3,
        seed: int | None = 0,
        params: Sequence[Any] | None = None,
        max_hvps: int | None = None,
        *,
        mode: str = "eval",
        reduction: str | None = None,
        batch_size_fn: Callable[[Any], float] | None = None,
        batch_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
        cache: bool | None = None,
        distributed: Any = False,
        progress: bool = False,
        callback: Callable[[Any], None] | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if mode not in MODES:
            raise ConfigError(f"mode must be 'eval' or 'train', got {mode!r}")
        self.model, self.loss_fn, self.data, self.params = model, loss_fn, data, params
        self.mode = mode
        self._options: dict[str, Any] = {
            "mode": mode,
            "reduction": reduction,
            "batch_size_fn": batch_size_fn,
            "batch_loss": batch_loss,
            "cache": cache,
            "distributed": distributed,
        }
        self.progress, self.callback = bool(progress), callback
        self.every = check_int("every", every, minimum=1)
        self.lr = None if lr is None else check_positive("lr", lr)
        self.track_min = bool(track_min)
        self.tol = check_positive("tol", tol, allow_zero=True)
        self.seed = seed
        self.max_hvps = None if max_hvps is None else check_int("max_hvps", max_hvps, minimum=1)
        self.history: list[SharpnessRecord] = []
        self._v_max: torch.Tensor | None = None
        self._v_min: torch.Tensor | None = None

    @property
    def threshold(self) -> float | None:
        """``2/η`` when ``lr`` was given."""
        return None if self.lr is None else 2.0 / self.lr

    @property
    def total_hvps(self) -> int:
        """Hessian-vector products spent by all measurements so far."""
        return sum(r.hvps for r in self.history)

    @property
    def last(self) -> SharpnessRecord | None:
        return self.history[-1] if self.history else None

    def step(self, step_index: int) -> SharpnessRecord | None:
        """Measure if ``step_index`` is a multiple of ``every``; return the new record or None."""
        step_index = check_int("step_index", step_index)
        if step_index % self.every:
            return None
        return self.update(step_index)

    maybe_update = step

    def update(self, step_index: int | None = None) -> SharpnessRecord:
        """Measure now (``step_index`` defaults to the last recorded step + ``every``)."""
        if step_index is None:
            step_index = 0 if not self.history else self.history[-1].step + self.every
        t0 = time.perf_counter()
        op = HessianOperator.from_model(
            self.model, self.loss_fn, self.data, params=self.params, **self._options
        )
        v_max = self._warm(self._v_max, op.shape[0])
        watch = {"progress": self.progress, "callback": self.callback}
        r = lanczos(
            op,
            k=1,
            which="largest",
            tol=self.tol,
            max_hvps=self.max_hvps,
            seed=self.seed,
            v0=v_max,
            **watch,
        )
        lam_max = float(r.eigenvalues[-1])
        self._v_max = r.eigenvectors[:, -1].clone()
        hvps, converged = r.hvps, bool(r.converged)
        lam_min = None
        if self.track_min:
            v_min = self._warm(self._v_min, op.shape[0])
            s = lanczos(
                op,
                k=1,
                which="smallest",
                tol=self.tol,
                max_hvps=self.max_hvps,
                seed=None if self.seed is None else self.seed + 1,
                v0=v_min,
                **watch,
            )
            lam_min = float(s.eigenvalues[0])
            self._v_min = s.eigenvectors[:, 0].clone()
            hvps += s.hvps
            converged &= bool(s.converged)
        if not math.isfinite(lam_max) or (lam_min is not None and not math.isfinite(lam_min)):
            raise DivergenceError(f"SharpnessTracker: non-finite eigenvalue at step {step_index}")
        rec = SharpnessRecord(
            step=int(step_index),
            lambda_max=lam_max,
            lambda_min=lam_min,
            threshold=self.threshold,
            hvps=hvps,
            seconds=time.perf_counter() - t0,
            converged=converged,
        )
        self.history.append(rec)
        return rec

    @staticmethod
    def _warm(v: torch.Tensor | None, n: int) -> torch.Tensor | None:
        # a warm start only makes sense while the parameter count is unchanged
        return v if v is not None and v.numel() == n and bool(torch.isfinite(v).all()) else None

    def to_pandas(self) -> Any:
        """The history as a ``pandas.DataFrame`` (one row per measurement, plus ``ratio``)."""
        import pandas as pd

        rows = [{**asdict(r), "ratio": r.ratio} for r in self.history]
        cols = [*SharpnessRecord.__dataclass_fields__, "ratio"]
        return pd.DataFrame(rows, columns=cols)
