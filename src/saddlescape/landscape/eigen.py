"""Hessian eigenvectors as slice directions: the λ_max and λ_min eigenvectors.

At a strict saddle (λ_min < 0 < λ_max) the 2-D slice along ``(v_max, v_min)`` shows the
saddle itself: a parabola opening up along the first axis and down along the second. The
eigenpairs come from :func:`saddlescape.curvature.lanczos` (``which="both"``), so they
carry their residuals and cost; each eigenvector's sign is fixed (largest entry positive)
so that the same point gives the same picture.

>>> import torch
>>> from saddlescape import problems
>>> from saddlescape.landscape import LossTarget, eigen_directions
>>> t = LossTarget.from_problem(problems.get("lee-2d"))
>>> d = eigen_directions(t, torch.zeros(2, dtype=torch.float64))
>>> d.labels, d.values.tolist(), d.vectors.abs().round(decimals=12).tolist()
(('v_max (λ = 1)', 'v_min (λ = -1)'), [1.0, -1.0], [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import ConfigError
from .directions import Directions, fix_sign
from .target import as_target

__all__ = ["eigen_directions"]


def eigen_directions(
    target: Any,
    center: torch.Tensor | None = None,
    *,
    which: str = "both",
    tol: float | None = None,
    max_hvps: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Directions:
    """Unit eigenvectors of the Hessian at ``center``: ``which="both"`` gives
    ``(v_max, v_min)`` (the x axis curves up by λ_max, the y axis by λ_min),
    ``"largest"`` or ``"smallest"`` one of them.

    ``target``: a :class:`~saddlescape.problems.Problem`, a :class:`LossTarget` or a
    symmetric operator (e.g. :class:`~saddlescape.curvature.HessianOperator`, then
    ``center`` is ignored). ``tol`` is Lanczos' relative residual tolerance (default 1e-10,
    or the finest the operator's dtype resolves, ``eps/8``, if coarser); ``values`` of the
    result are the Ritz values (the eigenvalues to within the residuals).
    """
    from ..curvature import lanczos
    from ..curvature.lanczos import precision_floor

    t0 = time.perf_counter()
    if which not in ("both", "largest", "smallest"):
        raise ConfigError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
    if hasattr(target, "matvec") and hasattr(target, "shape"):
        op = target
    else:
        tgt = as_target(target)
        if center is None:
            center = tgt.center
        if center is None:
            raise ConfigError("eigen directions need the point: give center=")
        op = tgt.hessian(center)
    n = op.shape[0]
    if which == "both" and n < 2:
        raise ConfigError("two eigen directions need dimension >= 2")
    if tol is None:
        tol = max(1e-10, precision_floor(getattr(op, "dtype", torch.float64)))
    res = lanczos(op, k=1, which=which, tol=tol, max_hvps=max_hvps, seed=seed, progress=progress)
    vals, vecs = res.eigenvalues.to(torch.float64), res.eigenvectors.to(torch.float64)
    order = [vals.numel() - 1, 0] if which == "both" else [0]
    names = ["v_max", "v_min"] if which == "both" else ["v_max" if which == "largest" else "v_min"]
    vectors = torch.stack([fix_sign(vecs[:, i].cpu()) for i in order])
    values = torch.stack([vals[i].cpu() for i in order])
    labels = tuple(f"{name} (λ = {float(v):.4g})" for name, v in zip(names, values, strict=True))
    return Directions(
        vectors,
        "eigen",
        labels,
        values,
        seed=seed,
        hvps=int(res.hvps),
        seconds=time.perf_counter() - t0,
    )
