"""Principal components of an optimizer trajectory as slice directions.

Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets",
§7: random directions in high dimension are nearly orthogonal to an optimization path,
which then looks like a point; instead take the matrix ``M = [θ_0 − θ_c; …; θ_T − θ_c]`` of
the iterates minus the centre (the final iterate by default), centre its rows (as PCA
does) and use its top right-singular vectors. The fraction of the variance each captures,
``σ_i² / Σ_j σ_j²``, says how much of the path the plane shows (the paper reports it on
its axes, e.g. "1st PC: 88.5 %"); the trajectory projects onto the plane by least squares.
Singular vectors are unit vectors with their largest entry positive.

>>> import torch
>>> line = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None] * torch.tensor([3.0, 4.0, 0.0])
>>> d = pca_directions(line, k=2)
>>> round(float(d.values[0]), 12), d.vectors[0].round(decimals=12).tolist()
(1.0, [0.6, 0.8, 0.0])
"""

from __future__ import annotations

import time

import torch

from ..errors import ConfigError, check_int
from .directions import Directions, fix_sign

__all__ = ["pca_directions"]


def pca_directions(
    trajectory: torch.Tensor, k: int = 2, *, center: torch.Tensor | None = None
) -> Directions:
    """The top ``k`` principal directions of ``trajectory`` (``(T, n)`` iterates, ``T ≥ 2``)
    taken relative to ``center`` (default: the last iterate). ``values`` are the
    explained-variance ratios (they sum to at most 1)."""
    t0 = time.perf_counter()
    k = check_int("k", k, minimum=1)
    xs = torch.as_tensor(trajectory).detach().to("cpu", torch.float64)
    if xs.ndim != 2 or xs.shape[0] < 2:
        raise ConfigError(f"a trajectory must be (T, n) with T >= 2 points, got {tuple(xs.shape)}")
    if not bool(torch.isfinite(xs).all()):
        raise ConfigError("the trajectory contains nan or inf")
    if k > min(xs.shape):
        raise ConfigError(f"k = {k} components need at least {k} points and {k} dimensions")
    c = xs[-1] if center is None else torch.as_tensor(center).to(torch.float64).reshape(-1)
    M = xs - c
    M = M - M.mean(dim=0, keepdim=True)
    _, s, Vh = torch.linalg.svd(M, full_matrices=False)
    total = float((s * s).sum())
    if total == 0.0:
        raise ConfigError("the trajectory does not move: it has no principal direction")
    ratios = (s[:k] ** 2) / total
    vectors = torch.stack([fix_sign(Vh[i]) for i in range(k)])
    labels = tuple(f"PC{i + 1} ({100 * float(r):.1f} % of variance)" for i, r in enumerate(ratios))
    return Directions(vectors, "pca", labels, ratios, seconds=time.perf_counter() - t0)
