"""Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

Ubaru, Chen & Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
SIAM J. Matrix Anal. Appl. 2017; Ghorbani, Krishnan & Xiao, "An investigation into
neural net optimization via Hessian eigenvalue density", ICML 2019.

For each random unit probe ``u`` (normalized Rademacher vector), ``m`` steps of Lanczos
with full reorthogonalization give a tridiagonal ``T = W diag(θ) Wᵀ``; the Gauss
quadrature nodes ``θ_j`` and weights ``τ_j = W_{1j}²`` satisfy
``Σ_j τ_j p(θ_j) = uᵀ p(A) u`` for every polynomial of degree ``< 2m``. Since
``E[uᵀ p(A) u] = tr p(A)/n``, the average over probes of these discrete measures is an
unbiased estimate of the eigenvalue distribution ``(1/n) Σ_i δ(λ − λ_i)`` in that sense;
:meth:`SpectralDensity.evaluate` smooths it with a Gaussian kernel of width ``σ``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DivergenceError, check_int, check_positive
from ._probing import _CountingOperator, make_generator, rademacher
from ._progress import CurvatureProgress, Watch

__all__ = ["SpectralDensity", "plot_spectral_density", "spectral_density"]

_BASIS_BUDGET = 2**26  # float64 entries of Lanczos basis held at once


@dataclass(frozen=True)
class SpectralDensity:
    """Gauss quadrature nodes and weights from SLQ, one row per probe.

    ``nodes`` and ``weights`` have shape ``(num_probes, lanczos_steps)`` (float64, CPU);
    rows whose Krylov space closed early (exhausted before ``lanczos_steps``) are padded
    with weight 0. Each row's weights sum to 1. ``hvps`` counts operator products, ``passes`` the
    passes over the data they took (the probes of a block share them).
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    hvps: int
    seconds: float
    passes: int = 0

    @property
    def num_probes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def lambda_min(self) -> float:
        """The smallest Ritz value (an upper bound on ``λ_min`` that converges fast)."""
        return float(self.nodes[self.weights > 0].min())

    @property
    def lambda_max(self) -> float:
        """The largest Ritz value (a lower bound on ``λ_max``)."""
        return float(self.nodes[self.weights > 0].max())

    def moment(self, k: int) -> float:
        """Estimate of ``(1/n) Σ_i λ_i^k`` (exact per probe for ``k < 2·steps``)."""
        k = check_int("k", k, minimum=0)
        return float((self.weights * self.nodes**k).sum() / self.num_probes)

    def default_sigma(self) -> float:
        """Kernel width used when none is given: 1% of the Ritz-value range
        (or of ``max(1, |λ|)`` when all nodes coincide)."""
        span = self.lambda_max - self.lambda_min
        return 0.01 * (span if span > 0 else max(1.0, abs(self.lambda_max)))

    def grid(self, num: int = 512, margin: float = 0.05) -> np.ndarray:
        """An evenly spaced grid covering the nodes plus a margin (and 5 kernel widths)."""
        lo, hi = self.lambda_min, self.lambda_max
        pad = margin * (hi - lo) + 5 * self.default_sigma()
        return np.linspace(lo - pad, hi + pad, check_int("num", num, minimum=2))

    def evaluate(
        self, grid: Sequence[float] | np.ndarray | torch.Tensor, sigma: float | None = None
    ) -> np.ndarray:
        """The Gaussian-smoothed density ``φ_σ(t) = (1/P) Σ_l Σ_j τ_j^{(l)} g_σ(t − θ_j^{(l)})``
        on ``grid`` (a numpy array of the grid's shape); it integrates to 1 over ℝ."""
        sigma = self.default_sigma() if sigma is None else check_positive("sigma", sigma)
        t = np.asarray(
            grid.detach().cpu() if isinstance(grid, torch.Tensor) else grid, dtype=np.float64
        )
        nodes = self.nodes.numpy().reshape(-1)
        w = self.weights.numpy().reshape(-1) / self.num_probes
        keep = w > 0
        nodes, w = nodes[keep], w[keep]
        flat = t.reshape(-1, 1)
        out = np.zeros(flat.shape[0])
        for start in range(0, nodes.size, 4096):  # bound memory at grid x 4096
            d = (flat - nodes[start : start + 4096]) / sigma
            out += (np.exp(-0.5 * d * d) * w[start : start + 4096]).sum(axis=1)
        return (out / (sigma * math.sqrt(2 * math.pi))).reshape(t.shape)


def spectral_density(
    op: Any,
    num_probes: int = 8,
    lanczos_steps: int = 80,
    seed: int | torch.Generator | None = None,
    *,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature estimate of the eigenvalue density of ``op``.

    ``op`` is a square tensor or an operator with ``matvec``/``shape``/``dtype`` (used with
    ``matmat`` when available: the probes run as one block). Each probe costs up to
    ``min(lanczos_steps, n)`` products; Lanczos uses full reorthogonalization (it is a
    plain tridiagonalization, not the restarted eigen-solver). ``progress=True`` shows a
    bar of the products (``num_probes × lanczos_steps`` at most); ``callback(p)`` gets a
    :class:`~saddlescape.curvature.CurvatureProgress` after each step.

    >>> A = torch.diag(torch.tensor([-1.0, 0.0, 0.0, 2.0], dtype=torch.float64))
    >>> d = spectral_density(A, num_probes=4, lanczos_steps=10, seed=0)
    >>> round(d.lambda_min, 6), round(d.lambda_max, 6), round(d.moment(1), 6)  # tr(A)/n
    (-1.0, 2.0, 0.25)
    """
    A = _CountingOperator(op)
    p = check_int("num_probes", num_probes, minimum=1)
    m = min(check_int("lanczos_steps", lanczos_steps, minimum=1), A.n)
    gen = make_generator(seed)
    t0 = time.perf_counter()
    U = rademacher((A.n, p), gen, A).to(torch.float64) / math.sqrt(A.n)
    # probes run as blocks whose Lanczos bases (steps x n x block float64) fit in ~512 MiB
    block = max(1, min(p, _BASIS_BUDGET // max(1, m * A.n)))
    with Watch("spectral density (SLQ)", progress, callback, p * m) as watch:
        A._watch = watch
        parts = [_block_lanczos_tridiag(A, U[:, i : i + block], m) for i in range(0, p, block)]
    alpha = torch.cat([a for a, _, _ in parts], dim=1)
    beta = torch.cat([b for _, b, _ in parts], dim=1)
    steps = [k for _, _, ks in parts for k in ks]
    nodes = torch.zeros(p, m, dtype=torch.float64)
    weights = torch.zeros(p, m, dtype=torch.float64)
    for j in range(p):
        k = steps[j]
        T = (
            torch.diag(alpha[:k, j])
            + torch.diag(beta[: k - 1, j], 1)
            + torch.diag(beta[: k - 1, j], -1)
        )
        theta, W = torch.linalg.eigh(T)
        nodes[j, :k] = theta
        weights[j, :k] = W[0] ** 2
    if not bool(torch.isfinite(nodes).all()):  # overflow in the recurrence
        raise DivergenceError("spectral_density: non-finite Lanczos coefficients")
    return SpectralDensity(
        nodes=nodes,
        weights=weights,
        hvps=A.products,
        seconds=time.perf_counter() - t0,
        passes=A.passes,
    )


def _block_lanczos_tridiag(
    A: _CountingOperator, U: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Independent Lanczos runs, one per column of ``U`` (unit columns), advanced together.

    The basis is kept in float64 (products are cast to the operator's dtype and back).
    Returns ``alpha`` (m, p), ``beta`` (m, p) in float64 and each run's number of steps
    (fewer than ``m`` when the Krylov space closes: ``β_k`` ≈ 0).
    """
    n, p = U.shape
    Q = torch.zeros(m, n, p, dtype=U.dtype, device=U.device)
    alpha = torch.zeros(m, p, dtype=torch.float64)
    beta = torch.zeros(m, p, dtype=torch.float64)
    steps = [m] * p
    active = torch.ones(p, dtype=torch.bool)
    q = U
    eps = torch.finfo(A.dtype).eps
    scale = torch.zeros(p, dtype=torch.float64)
    for k in range(m):
        Q[k] = q
        cols = active.nonzero().flatten()
        W = torch.zeros_like(q)
        c = cols.to(q.device)
        W[:, c] = A.matmat(q[:, c].to(A.dtype)).to(torch.float64)
        if not bool(torch.isfinite(W).all()):  # before any eigh sees it
            raise DivergenceError(
                "spectral_density: an operator product is not finite (contains nan or inf)"
            )
        a = (q * W).sum(dim=0)
        alpha[k] = a.to(torch.float64).cpu()
        # full reorthogonalization, twice ("twice is enough", Parlett)
        for _ in range(2):
            coef = torch.einsum("knp,np->kp", Q[: k + 1], W)
            W = W - torch.einsum("knp,kp->np", Q[: k + 1], coef)
        b = W.norm(dim=0)
        bf = b.to(torch.float64).cpu()
        beta[k] = bf
        scale = torch.maximum(scale, alpha[k].abs() + bf)
        if k == m - 1:
            break
        # Closed: β at the rounding of one product (a few eps of the operator's dtype times
        # ‖H‖). Not n·eps, a worst case of dot products that reached ‖H‖ itself for float32
        # at n ≈ 1e6 or float16 at n ≈ 100, closing every probe after one step: the density
        # was one node at the mean. A closure missed costs nothing: the next directions are
        # rounding, coupled by β ≈ 0, and their nodes get weights ≈ 0.
        closed = active & (bf <= 4 * eps * torch.clamp(scale, min=1e-300))
        for j in closed.nonzero().flatten().tolist():
            steps[j] = k + 1
            beta[k, j] = 0.0
        active &= ~closed
        if not bool(active.any()):
            break
        safe = torch.where(b > 0, b, torch.ones_like(b))
        q = torch.where(active.to(W.device), W / safe, torch.zeros_like(W))
    return alpha, beta, steps


def plot_spectral_density(
    density: SpectralDensity,
    ax: Any = None,
    mark: tuple[float, float] | None = None,
    sigma: float | None = None,
    grid: np.ndarray | None = None,
    log: bool = False,
    label: str | None = None,
) -> Any:
    """Draw the smoothed density; returns the matplotlib ``Figure``.

    ``mark=(λ_min, λ_max)`` draws dashed vertical lines at the extremal eigenvalues
    (default: the extreme Ritz values). ``log=True`` uses a log density axis, as in
    Ghorbani et al. 2019. Without ``ax`` a new figure is made without pyplot (no display,
    no global state; ``fig.savefig`` works with the Agg renderer).
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(6.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    t = density.grid() if grid is None else np.asarray(grid, dtype=np.float64)
    y = density.evaluate(t, sigma)
    ax.plot(t, y, color="C0", label=label)
    if not log:
        ax.fill_between(t, y, color="C0", alpha=0.2)
    if log:
        ax.set_yscale("log")
        top = max(float(y.max()), 1e-300)
        ax.set_ylim(top * 1e-8, top * 3)
    lo, hi = mark if mark is not None else (density.lambda_min, density.lambda_max)
    ax.axvline(lo, color="C3", ls="--", lw=1, label=f"λ_min = {lo:.4g}")
    ax.axvline(hi, color="C2", ls="--", lw=1, label=f"λ_max = {hi:.4g}")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize="small")
    return fig
