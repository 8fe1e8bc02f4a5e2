"""Matrix problems with known landscapes: symmetric low-rank factorisation and real phase
retrieval.

Both are "strict saddle" problems: every local minimum is global and every other critical
point has a direction of negative curvature (Ge, Jin & Zheng 2017, "No spurious local minima
in nonconvex low rank problems"; Sun, Qu & Wright 2016/2018, "A geometric analysis of phase
retrieval").
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_int, check_int64, check_positive
from .base import CriticalPoint, Problem
from .registry import register

__all__ = ["MatrixFactorization", "PhaseRetrieval"]

_MAX_LISTED = 64


@register("matrix-factorization")
@dataclass
class MatrixFactorization(Problem):
    """Symmetric low-rank factorisation ``f(U) = ‖UUᵀ − M‖²_F``, ``U ∈ R^{n×r}``.

    ``x`` is ``U`` flattened row-major (``dim = n·r``). ``M = V diag(λ) Vᵀ ⪰ 0`` has
    rank ``rank`` with eigenvalues ``λ_i = 1 − (i − 1)/rank`` (``1, …, 1/rank``: distinct)
    and orthonormal eigenvectors ``V`` from ``seed`` (QR of a Gaussian matrix).

    Gradient ``4(UUᵀ − M)U``; Hessian form
    ``∇²f[Δ, Δ] = 2‖ΔUᵀ + UΔᵀ‖² + 4⟨UUᵀ − M, ΔΔᵀ⟩``. Critical points (Ge, Jin & Zheng 2017;
    up to ``U ↦ UQ``, ``Q`` orthogonal): for every subset ``S`` of eigenvectors with
    ``|S| ≤ r``, ``U_S`` with columns ``√λ_i v_i`` (``i ∈ S``) and zero columns, value
    ``Σ_{i∉S} λ_i²``. One ``U_S`` per orbit is listed; :meth:`align` rotates ``U`` onto a
    listed point for distances.

    - ``S`` = the top ``min(r, rank)``: **global minimum**, ``f_min = Σ_{i>r} λ_i²``.
      Rotations ``UQ`` leave f unchanged, so the Hessian has ``r(r−1)/2`` zero eigenvalues
      along the orbit (more if ``rank < r``); none is negative and the point attains
      ``f_min``: kind ``"minimum"``.
    - any other nonempty ``S``: **strict saddle**. With ``i ∉ S`` and a zero column ``j``,
      ``Δ = v_i e_jᵀ`` has curvature ``−4λ_i``; with column ``j`` holding ``√λ_s v_s``,
      ``λ_s < λ_i``, the curvature is ``4(λ_s − λ_i) < 0``.
    - ``S = ∅`` (``U = 0``): Hessian ``−4M ⊗ I_r``, curvature along ``v e₁ᵀ`` is ``−4vᵀMv``:
      a strict saddle when ``rank < n`` (f grows quartically on ``null(M)``), a strict
      local **maximum** when ``rank = n``.

    All subsets are listed when there are at most 64, otherwise representatives
    (0, the minimum, a top-swap saddle, a shifted saddle, one with a zero column).

    Smoothness on the ball ``‖U‖_F ≤ R`` (``radius``; default ``2√tr M``, which holds every
    critical point): from the Hessian form, ``−4λ₁ ≤ ∇²f ≤ 12R²``, so
    ``ℓ = max(12R², 4λ₁)``; the third derivative
    ``4⟨ΔUᵀ + UΔᵀ, ΔEᵀ + EΔᵀ⟩ + 4⟨EUᵀ + UEᵀ, ΔΔᵀ⟩`` is at most ``24R‖Δ‖²‖E‖``, so
    ``ρ = 24R``.

    >>> p = MatrixFactorization(n=5, r=2, rank=3)
    >>> p.dim, round(p.f_min, 4), len(p.critical_points)
    (10, 0.1111, 7)
    """

    name = "matrix-factorization"
    n: int = 5
    r: int = 2
    rank: int = 3
    seed: int = 0
    radius: float | None = None

    def __post_init__(self) -> None:
        self.n = check_int("n", self.n, minimum=1)
        self.r = check_int("r", self.r, minimum=1)
        self.rank = check_int("rank", self.rank, minimum=1)
        if self.rank > self.n:
            raise ConfigError(f"rank must be <= n = {self.n}, got {self.rank}")
        if self.r > self.n:
            raise ConfigError(f"r must be <= n = {self.n}, got {self.r}")
        self.seed = check_int64("seed", check_int("seed", self.seed))
        self.dim = self.n * self.r
        g = torch.Generator().manual_seed(self.seed)
        Q, R = torch.linalg.qr(torch.randn(self.n, self.rank, generator=g, dtype=torch.float64))
        self.eigenvectors: torch.Tensor = Q * torch.sign(torch.diagonal(R))[None, :]
        self.eigenvalues: torch.Tensor = 1.0 - torch.arange(self.rank, dtype=torch.float64) / (
            self.rank
        )
        self.M: torch.Tensor = (self.eigenvectors * self.eigenvalues) @ self.eigenvectors.T
        if self.radius is None:
            self.radius = 2.0 * math.sqrt(float(self.eigenvalues.sum()))
        self.radius = check_positive("radius", self.radius)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        U = x.reshape(*x.shape[:-1], self.n, self.r)
        D = U @ U.transpose(-1, -2) - self.M.to(x.dtype)
        return D.square().sum((-2, -1))

    @property
    def smoothness(self) -> float:
        return max(12.0 * self.radius**2, 4.0 * float(self.eigenvalues[0]))

    @property
    def hessian_lipschitz(self) -> float:
        return 24.0 * self.radius

    @property
    def f_min(self) -> float:
        return float(self.eigenvalues[self.r :].square().sum())

    def point(self, subset: tuple[int, ...] | list[int]) -> torch.Tensor:
        """``U_S`` (flattened) with columns ``√λ_i v_i`` for ``i`` in ``subset`` (0-based,
        at most ``r`` of them), remaining columns zero."""
        subset = list(subset)
        if len(subset) > self.r or any(not 0 <= i < self.rank for i in subset):
            raise ConfigError(
                f"subset must hold at most r = {self.r} indices in [0, {self.rank}), got {subset}"
            )
        U = torch.zeros(self.n, self.r, dtype=torch.float64)
        if subset:
            U[:, : len(subset)] = self.eigenvectors[:, subset] * self.eigenvalues[subset].sqrt()
        return U.reshape(-1)

    def _kind(self, subset: tuple[int, ...]) -> str:
        k = min(self.r, self.rank)
        if tuple(subset) == tuple(range(k)):
            return "minimum"
        if not subset and self.rank == self.n:
            return "maximum"
        return "saddle"

    @property
    def critical_points(self) -> list[CriticalPoint]:
        k = min(self.r, self.rank)
        total = sum(math.comb(self.rank, s) for s in range(k + 1))
        if total <= _MAX_LISTED:
            subsets = [c for s in range(k + 1) for c in itertools.combinations(range(self.rank), s)]
        else:
            top = tuple(range(k))
            candidates = [(), top, (*top[:-1], k), tuple(range(1, k + 1)), top[:-1]]
            subsets = []
            for c in candidates:
                if c not in subsets and all(i < self.rank for i in c):
                    subsets.append(c)
        lam2 = self.eigenvalues.square()
        return [
            CriticalPoint(
                self.point(s),
                self._kind(s),  # type: ignore[arg-type]
                float(lam2.sum() - lam2[list(s)].sum()),
            )
            for s in subsets
        ]

    def align(self, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """``UQ`` with the orthogonal ``Q`` nearest ``point`` (orthogonal Procrustes:
        ``UᵀC = AΣBᵀ``, ``Q = ABᵀ``). f is invariant under ``U ↦ UQ`` (column sign flips,
        permutations, rotations) and :attr:`critical_points` lists one ``U_S`` per orbit."""
        U = x.detach().reshape(self.n, self.r).double()
        C = point.detach().reshape(self.n, self.r).double().to(U.device)
        A, _, Bh = torch.linalg.svd(U.T @ C)
        return (U @ (A @ Bh)).reshape(-1).to(x.dtype)

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """Entries of ``U`` from ``N(0, 1/n)`` (so ``‖U‖²_F ≈ r``), float64."""
        shape = (self.dim,) if batch is None else (check_int("batch", batch, minimum=1), self.dim)
        return torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(self.n)


@register("phase-retrieval")
@dataclass
class PhaseRetrieval(Problem):
    """Real phase retrieval: recover ``x`` (up to sign) from ``y_i = (a_iᵀx)²``
    (Sun, Qu & Wright 2016, "A geometric analysis of phase retrieval", eq. (1.2)):

    ``f(z) = (1/4n) Σ_i ((a_iᵀz)² − y_i)²``, ``a_i ~ N(0, I)``.

    The signal ``x`` is a unit vector drawn from ``seed``. With ``n_measurements=None`` the
    problem is the **population** objective ``E f`` (Gaussian moments
    ``E(aᵀz)⁴ = 3‖z‖⁴``, ``E(aᵀz)²(aᵀx)² = ‖z‖²‖x‖² + 2(zᵀx)²``):

    ``f(z) = ¼(3‖z‖⁴ − 2‖z‖²‖x‖² − 4(zᵀx)² + 3‖x‖⁴)``,

    gradient ``(3‖z‖² − 1)z − 2(zᵀx)x``, Hessian ``(3‖z‖² − 1)I + 6zzᵀ − 2xxᵀ``
    (``‖x‖ = 1``). Its critical points (all listed):

    - ``±x``: global minima, ``f = 0``, Hessian ``2I + 4xxᵀ ≻ 0``;
    - ``0``: local maximum, ``f = 3/4``, Hessian ``−I − 2xxᵀ``;
    - the sphere ``{z ⊥ x, ‖z‖ = 1/√3}``: strict saddles, ``f = 2/3``, Hessian eigenvalues
      ``−2`` (along x), ``2`` (along z) and ``0`` along the sphere (dim ≥ 3). Listed:
      ``±b_k/√3`` for the first ``min(2, dim − 1)`` vectors ``b_k`` of an orthonormal
      basis of ``x^⊥``.

    With an integer ``n_measurements ≥ dim`` (``a_i`` from ``seed``) the sample objective is
    used. ``±x`` (minima, ``f = 0``, Hessian ``(2/n)Σ(a_iᵀx)² a_i a_iᵀ ≻ 0``) and ``0``
    (maximum, Hessian ``−(1/n)Σ(a_iᵀx)² a_i a_iᵀ``) stay exact. The saddles have no closed
    form: from each population saddle ``b_k/√3`` (all ``k``), Newton's method restricted
    to ``x^⊥`` and then step-capped Newton in ``R^dim`` converge to nearby critical points
    (listed with their negatives: f is even), which are kept only if the gradient falls below
    ``1e-12`` and the dense Hessian has eigenvalues of both signs, all of magnitude above
    ``1e-8`` (numerically verified, not derived). The list can be empty or miss saddles:
    it is a verified sample, not an enumeration.

    Smoothness on the ball ``‖z‖ ≤ R`` (``radius``, default 2): population
    ``ℓ = max(9R² − 1, 3)``, ``ρ = 18R`` (derivative of the Hessian along unit ``w`` is
    ``6(zᵀw)I + 6(wzᵀ + zwᵀ)``); sampled ``ℓ = max(3R²‖S₄‖, ‖Sₓ‖)``, ``ρ = 6R‖S₄‖`` with
    ``S₄ = (1/n)Σ‖a_i‖² a_i a_iᵀ``, ``Sₓ = (1/n)Σ(a_iᵀx)² a_i a_iᵀ``.

    >>> p = PhaseRetrieval(dim=3)
    >>> [(c.kind, round(c.value, 4)) for c in p.critical_points][:3]
    [('minimum', 0.0), ('minimum', 0.0), ('maximum', 0.75)]
    """

    name = "phase-retrieval"
    dim: int = 4  # type: ignore[misc]
    n_measurements: int | None = None
    seed: int = 0
    radius: float = 2.0

    def __post_init__(self) -> None:
        self.dim = check_int("dim", self.dim, minimum=1)
        if self.n_measurements is not None:
            self.n_measurements = check_int("n_measurements", self.n_measurements, minimum=1)
            if self.n_measurements < self.dim:
                raise ConfigError(
                    f"n_measurements must be >= dim = {self.dim} (or None for the population "
                    f"objective), got {self.n_measurements}"
                )
        self.seed = check_int64("seed", check_int("seed", self.seed))
        self.radius = check_positive("radius", self.radius)
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.dim, generator=g, dtype=torch.float64)
        self.signal: torch.Tensor = x / x.norm()
        self.A: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        if self.n_measurements is not None:
            self.A = torch.randn(self.n_measurements, self.dim, generator=g, dtype=torch.float64)
            self.y = (self.A @ self.signal).square()

    def align(self, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """The image of ``x`` under f's symmetries nearest ``point``. f is even
        (``z ↦ −z``); the population objective depends only on ``|zᵀx|`` and ``‖z‖``, so any
        orthogonal map fixing the signal up to sign is a symmetry, and the nearest image
        keeps ``|zᵀx|`` and ``‖z_⊥‖`` but takes the sign of ``point``'s signal component and
        the direction of its ``x^⊥`` component (the saddle sphere is listed by samples)."""
        if self.A is not None:
            return x if float((x - point).norm()) <= float((x + point).norm()) else -x
        sig = self.signal.to(x.dtype)
        zx, cx = x @ sig, point.to(x.dtype) @ sig
        z_perp, c_perp = x - zx * sig, point.to(x.dtype) - cx * sig
        sign = 1.0 if float(cx) >= 0 else -1.0
        c_norm = float(c_perp.norm())
        perp = z_perp.norm() * c_perp / c_norm if c_norm > 0 else z_perp
        return sign * zx.abs() * sig + perp

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        s = self.signal.to(x.dtype)
        if self.A is None:
            zz = x.square().sum(-1)
            zx = x @ s
            return 0.25 * (3 * zz.square() - 2 * zz - 4 * zx.square() + 3)
        Az = x @ self.A.to(x.dtype).T
        return 0.25 * (Az.square() - self.y.to(x.dtype)).square().mean(-1)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ constants
    @functools.cached_property
    def _moments(self) -> tuple[float, float]:
        A = self.A
        assert A is not None and self.y is not None
        n = A.shape[0]
        S4 = (A * A.square().sum(1, keepdim=True)).T @ A / n
        Sx = (A * self.y[:, None]).T @ A / n
        return float(torch.linalg.eigvalsh(S4)[-1]), float(torch.linalg.eigvalsh(Sx)[-1])

    @property
    def smoothness(self) -> float:
        R = self.radius
        if self.A is None:
            return max(9 * R**2 - 1, 3.0)
        s4, sx = self._moments
        return max(3 * R**2 * s4, sx)

    @property
    def hessian_lipschitz(self) -> float:
        if self.A is None:
            return 18.0 * self.radius
        return 6.0 * self.radius * self._moments[0]

    @property
    def f_min(self) -> float:
        return 0.0

    # ------------------------------------------------------------------ critical points
    def _population_saddles(self, count: int) -> list[torch.Tensor]:
        x = self.signal
        basis = torch.eye(self.dim, dtype=torch.float64) - torch.outer(x, x)
        Q, _ = torch.linalg.qr(basis)
        # columns of Q spanning x^⊥: drop the one most aligned with x
        keep = (Q.T @ x).abs().argsort()[: self.dim - 1]
        out = []
        for k in keep[:count].tolist():
            b = Q[:, k] - (Q[:, k] @ x) * x
            b = b / b.norm() / math.sqrt(3.0)
            out += [b, -b]
        return out

    def _grad_hess(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        A, y = self.A, self.y
        assert A is not None and y is not None
        Az = A @ z
        g = A.T @ ((Az.square() - y) * Az) / A.shape[0]
        H = (A * (3 * Az.square() - y)[:, None]).T @ A / A.shape[0]
        return g, H

    def _newton(self, z: torch.Tensor) -> torch.Tensor | None:
        """Newton within ``x^⊥`` (where the sampled saddles' stable directions lie), then
        step-capped Newton in ``R^dim``; the limit if it is a nondegenerate saddle."""
        x = self.signal
        P = torch.eye(self.dim, dtype=torch.float64) - torch.outer(x, x)
        for _ in range(30):
            g, H = self._grad_hess(z)
            z = z - torch.linalg.solve(P @ H @ P + torch.outer(x, x), P @ g)
        for _ in range(50):
            g, H = self._grad_hess(z)
            if not torch.isfinite(g).all() or g.norm() < 1e-13:
                break
            step = torch.linalg.solve(H, g)
            z = z - step * min(1.0, 0.1 / float(step.norm()))
        g, H = self._grad_hess(z)
        if not torch.isfinite(g).all() or g.norm() >= 1e-12:
            return None
        ev = torch.linalg.eigvalsh(H)
        if ev.abs().min() <= 1e-8 or ev[0] >= 0 or ev[-1] <= 0:
            return None
        return z

    @functools.cached_property
    def _critical_points(self) -> list[CriticalPoint]:
        x = self.signal
        zero = torch.zeros(self.dim, dtype=torch.float64)
        pts = [
            CriticalPoint(x.clone(), "minimum", 0.0),
            CriticalPoint(-x, "minimum", 0.0),
            CriticalPoint(zero, "maximum", float(self._f(zero))),
        ]
        found: list[torch.Tensor] = []
        starts = self._population_saddles(2 if self.A is None else self.dim - 1)
        for z0 in starts:
            z = z0 if self.A is None else self._newton(z0)
            if z is None or any((z - w).norm() < 1e-6 for w in found):
                continue
            pair = [z] if self.A is None else [z, -z]  # f is even
            found += pair
            pts += [CriticalPoint(w, "saddle", float(self._f(w))) for w in pair]
        return pts

    @property
    def critical_points(self) -> list[CriticalPoint]:
        # copies: an in-place change to a returned point must not alter the cached list
        return [CriticalPoint(c.x.clone(), c.kind, c.value) for c in self._critical_points]

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """``z₀ ~ N(0, I/dim)`` (so ``‖z₀‖ ≈ ‖x‖ = 1``), float64."""
        shape = (self.dim,) if batch is None else (check_int("batch", batch, minimum=1), self.dim)
        return torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(self.dim)
