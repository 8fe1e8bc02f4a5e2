"""Orthogonal 4th-order tensor decomposition (Ge, Huang, Jin & Yuan 2015, "Escaping from
saddle points — online stochastic gradient for tensor decomposition", COLT, Section 5)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import check_int, check_int64
from .base import CriticalPoint, Problem
from .registry import register

__all__ = ["TensorDecomposition"]


@register("tensor-decomposition")
@dataclass
class TensorDecomposition(Problem):
    """Recover the components of ``T = Σ_{k=1}^d a_k^{⊗4}`` (orthonormal ``a_k``, a random
    orthogonal matrix from ``seed``) by

    ``min Σ_{i≠j} T(u_i, u_i, u_j, u_j)`` subject to ``‖u_i‖ = 1`` (Ge et al. 2015, eq. (13)),

    where ``T(u, u, v, v) = Σ_k (a_kᵀu)²(a_kᵀv)²``.

    **Constraint.** ``x`` holds ``d`` raw vectors ``w_1 … w_d`` (rows of a ``d×d`` matrix,
    ``dim = d²``) and ``u_i = w_i/‖w_i‖``: an unconstrained function on
    ``{w_i ≠ 0}``, so every optimizer of this library applies without projection. It is
    scale invariant in each ``w_i``: the gradient is orthogonal to each ``w_i`` (gradient
    steps only grow ``‖w_i‖``), and at a critical point with ``‖w_i‖ = 1`` the Hessian is the
    Riemannian Hessian on the tangent space plus exactly ``d`` zero eigenvalues along the
    radial directions ``w_i``. Kinds below refer to the tangent space: a ``"minimum"`` or
    ``"maximum"`` has ``d`` (radial) zero eigenvalues and none of the other sign. A penalty
    ``λ(‖u_i‖² − 1)²`` was not used: it moves the critical points off the sphere by an
    amount depending on ``λ`` and adds stiff curvature ``∝ λ``. ``f`` is ``nan`` if some
    ``w_i = 0``. :meth:`normalize` maps ``x`` to the unit vectors (projection).

    **Landscape (derived here).** With ``c_i = Aᵀu_i`` (unit vectors),
    ``f = Σ_{i≠j} Σ_k c_{ik}² c_{jk}² ≥ 0``, and ``f = 0`` iff no two ``c_i`` share a
    coordinate; ``d`` unit vectors in ``R^d`` then have singleton supports, so the **global
    minima** (``f = 0``) are exactly the signed permutations ``u_i = ±a_{π(i)}``; at them
    ``f ≈ 2Σ_{i≠j}δ_{ij}²`` for tangent perturbations (Riemannian Hessian ``4I``). That
    every *local* minimum is one of them is Ge et al.'s claim (THEORY.md: unverified); the
    tests support it numerically (gradient descent from random starts always ends at a
    signed permutation). Listed critical points (``d ≥ 2``):

    - minima, ``f = 0``: ``u_i = a_i``; ``u_i = (−1)^i a_i``; ``u_i = a_{i+1 mod d}``;
    - saddle, ``f = 1``: ``u_1 = (a_1 + a_2)/√2``, ``u_2 = (a_1 − a_2)/√2``, ``u_i = a_i``
      (``i ≥ 3``); rotating ``(u_1, u_2)`` in their plane by ``α, β`` gives
      ``f = 1 − sin 2α sin 2β``, indefinite;
    - saddle, ``f = 2`` (``d ≥ 3``): ``u_1 = u_2 = a_1``, ``u_i = a_i`` (``i ≥ 3``); turning
      ``u_1`` toward the unused ``a_2`` gives ``f = 2cos²t``, turning ``u_3`` toward ``a_1``
      raises f;
    - maximum, ``f = d(d − 1)`` (the largest value, since ``Σ_k c_{ik}²c_{jk}² ≤ 1``):
      ``u_i = a_1`` for all ``i``; tangent Hessian ``−4(d − 1)I``.

    ℓ and ρ are not given: the Hessian scales as ``1/‖w_i‖²`` and blows up near ``w_i = 0``.

    >>> p = TensorDecomposition(d=3)
    >>> p.dim, [(c.kind, c.value) for c in p.critical_points][2:]
    (9, [('minimum', 0.0), ('saddle', 1.0), ('saddle', 2.0), ('maximum', 6.0)])
    """

    name = "tensor-decomposition"
    d: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        self.d = check_int("d", self.d, minimum=2)
        self.seed = check_int64("seed", check_int("seed", self.seed))
        self.dim = self.d * self.d
        g = torch.Generator().manual_seed(self.seed)
        Q, R = torch.linalg.qr(torch.randn(self.d, self.d, generator=g, dtype=torch.float64))
        self.components: torch.Tensor = Q * torch.sign(torch.diagonal(R))[None, :]
        """``A`` with the orthonormal components ``a_k`` as columns."""

    def tensor(self) -> torch.Tensor:
        """The dense 4th-order tensor ``T = Σ_k a_k^{⊗4}`` of shape ``(d, d, d, d)``."""
        A = self.components
        return torch.einsum("ik,jk,lk,mk->ijlm", A, A, A, A)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with each block ``w_i`` scaled to unit norm (the feasible point it means)."""
        W = x.reshape(*x.shape[:-1], self.d, self.d)
        return (W / W.norm(dim=-1, keepdim=True)).reshape(x.shape)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        W = x.reshape(*x.shape[:-1], self.d, self.d)
        U = W / W.norm(dim=-1, keepdim=True)
        Q = (U @ self.components.to(x.dtype)).square()  # Q_ik = (a_kᵀu_i)²
        return Q.sum(-2).square().sum(-1) - Q.square().sum((-2, -1))

    @property
    def f_min(self) -> float:
        return 0.0

    def _point(self, rows: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(rows).reshape(-1)

    @property
    def critical_points(self) -> list[CriticalPoint]:
        d, A = self.d, self.components
        a = [A[:, k] for k in range(d)]
        s = 2.0**-0.5
        pts = [
            CriticalPoint(self._point(a), "minimum", 0.0),
            CriticalPoint(self._point([(-1) ** i * a[i] for i in range(d)]), "minimum", 0.0),
            CriticalPoint(self._point([a[(i + 1) % d] for i in range(d)]), "minimum", 0.0),
            CriticalPoint(
                self._point([s * (a[0] + a[1]), s * (a[0] - a[1]), *a[2:]]), "saddle", 1.0
            ),
        ]
        if d >= 3:
            pts.append(CriticalPoint(self._point([a[0], a[0], *a[2:]]), "saddle", 2.0))
        pts.append(CriticalPoint(self._point([a[0]] * d), "maximum", float(d * (d - 1))))
        return pts

    def align(self, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """f is invariant under scaling each ``w_i`` (by any nonzero factor, so also its
        sign) and under permuting the ``w_i``; the listed critical points are one
        representative each (e.g. the minima ``u_i = ±a_{π(i)}`` appear 3 times out of
        ``2^d·d!``). Returns the rows of ``x`` normalized, sign-flipped and permuted to
        best match ``point``'s rows (an assignment problem on ``|⟨u_i, c_j⟩|``)."""
        from scipy.optimize import linear_sum_assignment

        U = self.normalize(x.detach()).reshape(self.d, self.d).double()
        C = point.detach().reshape(self.d, self.d).double().to(U.device)
        C = C / C.norm(dim=-1, keepdim=True)
        G = C @ U.T  # G_ji = ⟨c_j, u_i⟩
        rows, cols = linear_sum_assignment(-G.abs().cpu().numpy())
        cols_t = torch.as_tensor(cols, device=U.device)
        signs = torch.sign(G[torch.as_tensor(rows, device=U.device), cols_t])
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        return (U[cols_t] * signs[:, None]).reshape(-1).to(x.dtype)

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """Each ``w_i ~ N(0, I)`` (so ``u_i`` is uniform on the sphere), float64."""
        return super().sample_init(generator, batch)
