"""Hard spectra for property tests of the curvature solvers (shared by several test files).

``spectrum(kind, n, gen)`` draws ``n`` eigenvalues of one of the :data:`SPECTRA` shapes and
``random_symmetric(ev, gen)`` rotates them by a random orthogonal matrix.
"""

import torch

SPECTRA = ("random", "clustered", "indefinite", "near_singular", "repeated")


def spectrum(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    if kind == "random":
        return 10 * u - 3
    if kind == "clustered":  # two tight clusters at the ends plus a bulk
        ev = 2 * u - 1
        ev[:3] = -5 + 1e-7 * u[:3]
        ev[-3:] = 5 + 1e-7 * u[-3:]
        return ev
    if kind == "indefinite":  # symmetric about 0, so λ_min ≈ −λ_max
        half = u[: (n + 1) // 2] + 0.5
        return torch.cat([half, -half])[:n]
    if kind == "near_singular":  # most eigenvalues ~1e-9, a few of order one
        ev = 1e-9 * (u - 0.5)
        ev[0], ev[-1] = -1.0, 1.0
        return ev
    ev = torch.round(4 * u) - 2  # repeated: integers in [-2, 2], multiplicities ~n/5
    ev[: min(3, n)] = -3.0  # an extreme eigenvalue of multiplicity 3
    return ev


def random_symmetric(ev: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``Q diag(ev) Qᵀ`` for a random orthogonal ``Q``, exactly symmetrized."""
    n = ev.numel()
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    A = (Q * ev) @ Q.T
    return (A + A.T) / 2
