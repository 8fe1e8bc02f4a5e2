"""Run one optimizer on one problem and record the trajectory."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, check_int
from ..problems.base import CriticalPoint, Problem
from .registry import get_class, make

__all__ = ["Trajectory", "run"]


@dataclass(frozen=True)
class Trajectory:
    """One optimizer run on one problem.

    ``xs[k]`` is the iterate after ``k`` steps (``xs[0]`` the start), ``fs`` and
    ``grad_norms`` f and ‖∇f‖ there; ``perturbation_steps`` the steps in which the optimizer
    perturbed (every step for noisy GD). Counters come from the optimizer; ``seconds`` is the
    wall time of the optimization loop.
    """

    problem: str
    optimizer: str
    hyperparams: dict[str, Any]
    xs: torch.Tensor
    fs: torch.Tensor
    grad_norms: torch.Tensor
    perturbation_steps: tuple[int, ...]
    iterations: int
    grad_evals: int
    perturbations: int
    converged: bool
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def x(self) -> torch.Tensor:
        """The final iterate."""
        return self.xs[-1]

    @property
    def f(self) -> float:
        """f at the final iterate."""
        return float(self.fs[-1])

    @property
    def grad_norm(self) -> float:
        """‖∇f‖ at the final iterate."""
        return float(self.grad_norms[-1])

    def nearest(self, problem: Problem) -> tuple[CriticalPoint, float] | None:
        """The known critical point of ``problem`` nearest the final iterate and its
        distance, or None if the problem lists none."""
        return nearest_critical_point(problem, self.x)

    def save(self, path: str | Path) -> Path:
        """Write ``.csv`` (step, f, grad_norm, x_0 … x_{d−1}, perturbed) or ``.npz``."""
        path = Path(path)
        xs = self.xs.detach().cpu().double()
        steps = torch.arange(xs.shape[0])
        perturbed = torch.zeros(xs.shape[0], dtype=torch.bool)
        if self.perturbation_steps:
            perturbed[torch.tensor(self.perturbation_steps)] = True
        if path.suffix == ".npz":
            import numpy as np

            np.savez(
                path,
                step=steps.numpy(),
                x=xs.numpy(),
                f=self.fs.double().numpy(),
                grad_norm=self.grad_norms.double().numpy(),
                perturbed=perturbed.numpy(),
            )
        elif path.suffix == ".csv":
            d = xs.shape[1]
            header = ["step", "f", "grad_norm"] + [f"x_{i}" for i in range(d)] + ["perturbed"]
            with path.open("w") as fh:
                fh.write(",".join(header) + "\n")
                for k in range(xs.shape[0]):
                    row = [str(k), repr(float(self.fs[k])), repr(float(self.grad_norms[k]))]
                    row += [repr(v) for v in xs[k].tolist()] + [str(int(perturbed[k]))]
                    fh.write(",".join(row) + "\n")
        else:
            raise ConfigError(f"out file must end in .csv or .npz, got {str(path)!r}")
        return path


def nearest_critical_point(problem: Problem, x: torch.Tensor) -> tuple[CriticalPoint, float] | None:
    """The listed critical point nearest ``x`` and its Euclidean distance, measured to the
    point's symmetry orbit: ``‖problem.align(x, c) − c‖`` (problems that list one
    representative per orbit, such as the octopus's all-positive copies, map ``x`` to its
    symmetric image nearest ``c``; by default ``align`` is the identity)."""
    cps = problem.critical_points
    if not cps:
        return None
    x = x.detach()
    dists = [
        float(torch.linalg.vector_norm(problem.align(x, c.x).double() - c.x.double())) for c in cps
    ]
    k = min(range(len(cps)), key=dists.__getitem__)
    return cps[k], dists[k]


def run(
    problem: Problem,
    optimizer: str,
    steps: int,
    *,
    x0: torch.Tensor | None = None,
    seed: int = 0,
    lr: float | None = None,
    dtype: torch.dtype = torch.float64,
    callback: Callable[[int], None] | None = None,
    **hyperparams: Any,
) -> Trajectory:
    """Run ``optimizer`` (a short name: gd, pgd, noisy, pagd, cubic) for ``steps`` steps.

    ``x0`` defaults to ``problem.sample_init`` drawn with ``seed``; the optimizer is seeded
    with ``seed`` too. ``lr`` defaults to 1/ℓ from ``problem.smoothness`` (cubic Newton:
    ``M`` defaults to ρ from ``problem.hessian_lipschitz``). The run stops
    early when a PerturbedGD stop test returns x̃. ``callback(step)`` is called after each
    step (progress bars).

    >>> from saddlescape import problems
    >>> p = problems.get("lee-2d")
    >>> tr = run(p, "pgd", 300, x0=torch.zeros(2, dtype=torch.float64), radius=0.01)
    >>> nearest, dist = tr.nearest(p)
    >>> nearest.kind, dist < 1e-3, tr.perturbations >= 1
    ('minimum', True, True)
    """
    steps = check_int("steps", steps, minimum=0)
    seed = check_int("seed", seed)
    cls = get_class(optimizer)
    accepted = inspect.signature(cls).parameters
    if x0 is None:
        x0 = problem.sample_init(torch.Generator().manual_seed(seed))
    x0 = torch.as_tensor(x0, dtype=dtype).detach().clone()
    if x0.shape != (problem.dim,):
        raise ConfigError(f"init must have {problem.dim} entries, got shape {tuple(x0.shape)}")
    kwargs = dict(hyperparams)
    if "lr" in accepted:
        if lr is None:
            if problem.smoothness is None:
                raise ConfigError(
                    f"problem {problem.name!r} has no known smoothness: pass lr explicitly"
                )
            lr = 1.0 / problem.smoothness
        kwargs["lr"] = lr
    elif lr is not None:
        raise ConfigError(f"optimizer {optimizer!r} takes no lr")
    if "M" in accepted and "M" not in kwargs:  # cubic Newton: M = ρ by default
        if problem.hessian_lipschitz is None:
            raise ConfigError(
                f"problem {problem.name!r} has no known Hessian-Lipschitz constant: pass M"
            )
        kwargs["M"] = max(problem.hessian_lipschitz, 1e-12)
    if "seed" in accepted:
        kwargs.setdefault("seed", seed)
    x = x0.clone().requires_grad_(True)
    opt = make(optimizer, [x], **kwargs)

    keeps_graph = bool(getattr(cls, "closure_keeps_graph", False))

    def closure() -> torch.Tensor:
        if keeps_graph:  # the optimizer differentiates the graph itself (HVPs)
            return problem.f(x)
        opt.zero_grad()
        loss = problem.f(x)
        loss.backward()
        return loss

    xs = [x0]
    perturbation_steps: list[int] = []
    count = _perturbation_count(opt)
    start = time.perf_counter()
    for k in range(steps):
        opt.step(closure)
        xs.append(x.detach().clone())
        now = _perturbation_count(opt)
        if now > count:
            perturbation_steps.append(k)
            count = now
        if callback is not None:
            callback(k + 1)
        if bool(getattr(opt, "converged", False)):
            break
    seconds = time.perf_counter() - start
    X = torch.stack(xs)
    with torch.no_grad():
        fs = problem.f(X).detach()
    gn = torch.linalg.vector_norm(problem.grad(X), dim=1)
    return Trajectory(
        problem=problem.describe(),
        optimizer=optimizer,
        hyperparams={k: v for k, v in kwargs.items()},
        xs=X,
        fs=fs,
        grad_norms=gn,
        perturbation_steps=tuple(perturbation_steps),
        iterations=int(getattr(opt, "iterations", len(xs) - 1)),
        grad_evals=int(getattr(opt, "grad_evals", 0)),
        perturbations=count,
        converged=bool(getattr(opt, "converged", False)),
        seconds=seconds,
    )


def _perturbation_count(opt: torch.optim.Optimizer) -> int:
    p = getattr(opt, "perturbations", 0)
    return int(p.sum()) if isinstance(p, torch.Tensor) else int(p)
