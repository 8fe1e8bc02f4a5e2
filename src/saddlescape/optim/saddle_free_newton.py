"""Saddle-free Newton — Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio, "Identifying and
attacking the saddle point problem in high-dimensional non-convex optimization", NeurIPS
2014 (arXiv 1406.2572), Section 6 and Algorithm 1, with Hessian-vector products only.

Newton's step −H⁻¹g moves *towards* a critical point along every eigendirection whose
eigenvalue is negative: it is attracted to saddles. Gradient descent moves the right way
but slowly where the curvature is small (plateaus). Saddle-free Newton rescales the
gradient by the inverse of |H| (H with its eigenvalues replaced by their absolute values),
the generalized trust-region step of Dauphin et al. (their eq. 10)::

    x_{k+1} = x_k − (|H| + λI)⁻¹ g

so it moves away from a saddle along negative curvature, at a speed set by |λ_i|, and
like Newton elsewhere. Dauphin et al. build |H| in a Krylov subspace of k Lanczos vectors
(Algorithm 1: "V ← k Lanczos vectors", |Ĥ| by an eigendecomposition of the subspace
Hessian) and choose the damping λ by a line search on f.

Here the subspace is spanned by the Ritz vectors of H at both ends of the spectrum:
:func:`saddlescape.curvature.lanczos` with ``which="both"``, ``k = rank`` (so up to
2·``rank`` pairs (θᵢ, vᵢ): the most negative and the most positive curvature, which is
what |H| needs), started from the gradient as Dauphin's Krylov space is, to relative
tolerance ``lanczos_tol`` within ``max_hvps`` products per step. With Vᵀg = c and
g_⊥ = g − Vc, the step is::

    s(λ) = −Σᵢ vᵢ cᵢ/(|θᵢ| + λ) − g_⊥/(μ + λ),   μ = max |θᵢ| (≈ ‖H‖)

The second term is this implementation's addition: Dauphin et al. step inside the
subspace only; the part of g outside it gets the gradient step 1/(μ + λ), which is never
longer than 1/‖H‖ (a safe gradient step). When 2·rank ≥ the dimension, V spans the whole
space and the step is the exact damped saddle-free Newton step.

**Damping** (Dauphin et al., Algorithm 1, "λ ← argmin_λ f̂(...)"). With ``line_search``
(default) each step tries ``n_damping`` values λ = λ_c·10^j around the current centre
λ_c (j = −⌊n/2⌋ … ⌈n/2⌉ − 1; λ_c starts at ``damping``), evaluates f at each trial point
(one closure call each, :attr:`f_evals`) and takes the one with the lowest f, if it lowers
f; λ_c then moves to it (never below ``min_damping``). If none lowers f, x stays and
λ_c grows 100×. So f never increases. Without ``line_search`` the step uses λ =
``damping`` and is always taken.

``absolute=False`` makes this the **damped Newton** method, s = −(H + λI)⁻¹g in the same
subspace (the complement still gets −g_⊥/(μ + λ)), the baseline that is attracted to
saddles: use it with ``line_search=False`` (with a line search, f would be forced down,
which a step towards a saddle along negative curvature does not do). With H + λI singular
on the subspace (θᵢ = −λ) that denominator is replaced by its sign times the rounding
floor, so the step stays finite.

At g = 0 exactly (an exact critical point) the step is 0: like Newton and unlike
:class:`~saddlescape.optim.CubicNewton`, saddle-free Newton has no outside noise; it
escapes from any point near a saddle where g has a component along negative curvature.

**Closure.** ``step(closure)`` is required; for exact HVPs (double backward through its
graph) the closure should return the loss *without* calling ``backward()``; a closure
that calls ``backward()`` works too, with central differences of gradients (as
CubicNewton). Unbatched; all parameters form one vector, so every group must share the
hyperparameters; complex parameters are refused by name; no ``lr`` (torch's LR
schedulers do not apply, as for CubicNewton).

**Counters**: :attr:`iterations`, :attr:`grad_evals` (closure calls for derivatives,
finite differences included), :attr:`f_evals` (line-search evaluations of f), :attr:`hvps`
(every Hessian-vector product); :attr:`last_step` (:class:`SFNStep`) the last step's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import ConfigError
from ._second_order import SecondOrderOptimizer
from .base import Closure, ParamsT, check_hyper, check_hyper_int, eager_step

__all__ = ["SFNStep", "SaddleFreeNewton"]

_HYPER = (
    "rank",
    "damping",
    "min_damping",
    "line_search",
    "n_damping",
    "absolute",
    "lanczos_tol",
    "max_hvps",
)


@dataclass(frozen=True)
class SFNStep:
    """Diagnostics of the last step: ``damping`` λ used (NaN when no step was taken),
    ``lambda_min``/``lambda_max`` the extreme Ritz values of H (inside [λ_min, λ_max]),
    ``rank`` the number of Ritz pairs, ``grad_norm`` ‖g‖, ``subspace_fraction``
    ‖Vᵀg‖/‖g‖, ``step_norm`` ‖s‖, ``decrease`` f(x) − f(x + s) (NaN without a line
    search), ``accepted``, and the step's ``hvps``, ``grad_evals``, ``f_evals``."""

    damping: float
    lambda_min: float
    lambda_max: float
    rank: int
    grad_norm: float
    subspace_fraction: float
    step_norm: float
    decrease: float
    accepted: bool
    hvps: int
    grad_evals: int
    f_evals: int


class _ClosureHessian:
    """The Hessian of the closure's loss at x as an operator for :func:`lanczos`."""

    def __init__(self, hvp: Any, n: int, device: torch.device) -> None:
        self._hvp = hvp
        self.shape = (n, n)
        self.dtype = torch.float64
        self.device = device
        self.hvps = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvps += 1
        return self._hvp(v.to(torch.float64))

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)


class SaddleFreeNewton(SecondOrderOptimizer):
    """Saddle-free Newton (Dauphin et al. 2014) with |H| from Lanczos Ritz pairs.

    Args:
        params: parameters (or groups sharing the same hyperparameters).
        rank: Ritz pairs per end of the spectrum (k of ``lanczos(which="both")``).
        damping: initial damping λ (the centre of the line search).
        min_damping: the smallest damping the line search may move to.
        line_search: choose λ among ``n_damping`` candidates by f (default True).
        n_damping: candidates of the line search (spaced by 10×).
        absolute: True: |H| (saddle-free); False: H (damped Newton).
        lanczos_tol: relative tolerance of the Ritz pairs.
        max_hvps: Hessian-vector products per step for Lanczos (default 20·rank, at
            most 10·n).
        seed, generator: the random stream of Lanczos' restarts.

    >>> x = torch.tensor([1e-3, 1e-3], dtype=torch.float64, requires_grad=True)
    >>> f = lambda: 0.5 * x[0] ** 2 + 0.25 * x[1] ** 4 - 0.5 * x[1] ** 2  # saddle at 0
    >>> opt = SaddleFreeNewton([x], rank=1, damping=1e-3, seed=0)
    >>> for _ in range(25):
    ...     _ = opt.step(f)
    >>> [round(abs(v), 6) for v in x.tolist()]    # a minimum (0, ±1)
    [0.0, 1.0]
    >>> newton = SaddleFreeNewton([y := torch.tensor([1e-3, 1e-3], dtype=torch.float64,
    ...     requires_grad=True)], rank=1, damping=1e-8, absolute=False, line_search=False)
    >>> for _ in range(5):
    ...     _ = newton.step(lambda: 0.5 * y[0] ** 2 + 0.25 * y[1] ** 4 - 0.5 * y[1] ** 2)
    >>> float(y.detach().norm()) < 1e-12                   # Newton: attracted to the saddle
    True
    """

    requires_closure = True
    shared_hyperparameters = _HYPER
    closure_keeps_graph: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsT,
        rank: int = 10,
        damping: float = 1e-2,
        *,
        min_damping: float = 1e-8,
        line_search: bool = True,
        n_damping: int = 5,
        absolute: bool = True,
        lanczos_tol: float = 1e-3,
        max_hvps: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        defaults = {
            "rank": rank,
            "damping": damping,
            "min_damping": min_damping,
            "line_search": line_search,
            "n_damping": n_damping,
            "absolute": absolute,
            "lanczos_tol": lanczos_tol,
            "max_hvps": max_hvps,
        }
        self._hvps = 0
        self._f_evals = 0
        self.last_step: SFNStep | None = None
        super().__init__(params, defaults, batched=False, seed=seed, generator=generator)

    # ------------------------------------------------------------------ config
    def _validate_group(self, group: dict[str, Any]) -> None:
        group["rank"] = check_hyper_int("rank", group["rank"], minimum=1)
        group["damping"] = check_hyper("damping", group["damping"])
        group["min_damping"] = check_hyper("min_damping", group["min_damping"])
        for key in ("line_search", "absolute"):
            if not isinstance(group[key], bool):
                raise ConfigError(f"{key} must be True or False, got {group[key]!r}")
        group["n_damping"] = check_hyper_int("n_damping", group["n_damping"], minimum=1)
        group["lanczos_tol"] = check_hyper("lanczos_tol", group["lanczos_tol"], allow_zero=True)
        if group["max_hvps"] is not None:
            group["max_hvps"] = check_hyper_int("max_hvps", group["max_hvps"], minimum=1)
        for p in group["params"]:
            if p.is_complex():
                raise ConfigError(
                    "SaddleFreeNewton does not support complex parameters (its Hessian-vector "
                    "products are real): optimize torch.view_as_real(z) as a real parameter"
                )

    # ------------------------------------------------------------------ counters
    @property
    def counters(self) -> dict[str, Any]:
        return {**super().counters, "hvps": self._hvps, "f_evals": self._f_evals}

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        return {"hvps": self._hvps, "f_evals": self._f_evals}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        self._hvps = int(extra.get("hvps", 0))
        self._f_evals = int(extra.get("f_evals", 0))

    # ------------------------------------------------------------------ step
    @eager_step
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One saddle-free Newton step; returns the loss at the point before the step."""
        from ..curvature.lanczos import lanczos

        closure = self._need_closure(closure)
        hp = self.param_groups[0]
        step_no = self._iterations
        evals0, f_evals0, hvps0 = self._grad_evals, self._f_evals, self._hvps
        point = self._first_and_second_order(closure, step_no)
        if point.params is None:
            return self._nothing_to_do(point.loss.reshape(1))  # type: ignore[return-value]
        loss, grad, params, gnorm = point.loss_tensor, point.grad, point.params, point.gnorm
        f0 = float(loss.detach())
        n = grad.numel()
        if gnorm == 0.0:  # an exact critical point: s = 0 for every λ
            self._finish(f0, evals0, f_evals0, hvps0, gnorm, n)
            return loss.detach()
        counted = point.hvp

        op = _ClosureHessian(counted, n, grad.device)
        budget = hp["max_hvps"] or 20 * hp["rank"]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator).item())
        eig = lanczos(
            op,
            k=min(hp["rank"], n),
            which="both",
            tol=hp["lanczos_tol"],
            max_hvps=min(budget, 10 * n),
            seed=seed,
            v0=grad / gnorm,
            block_size=min(hp["rank"], n),  # |H| needs every copy of a repeated eigenvalue
        )
        theta = eig.eigenvalues.to(torch.float64)
        V = eig.eigenvectors.to(torch.float64)
        # Ritz vectors of a converged run are orthonormal; a re-orthonormalization keeps the
        # projection exact when they are not (an unconverged run, a repeated eigenvalue)
        V, theta = _orthonormal(V, theta)
        c = V.T @ grad
        g_perp = grad - V @ c
        mu = float(theta.abs().max()) if theta.numel() else 0.0
        curv = theta.abs() if hp["absolute"] else theta

        def step_for(lam: float) -> torch.Tensor:
            denom = curv + lam
            tiny = 64 * torch.finfo(torch.float64).eps * max(mu, lam)
            denom = torch.where(denom.abs() < tiny, torch.where(denom < 0, -tiny, tiny), denom)
            return -(V @ (c / denom)) - g_perp / (mu + lam)

        centre = hp["damping"]
        accepted, used, decrease, s_norm = False, float("nan"), float("nan"), 0.0
        with torch.no_grad():
            x0 = [p.detach().clone() for p in params]
            if not hp["line_search"]:
                s = step_for(centre)
                _add(params, x0, s)
                accepted, used, s_norm = True, centre, float(s.norm())
            else:
                m = hp["n_damping"]
                best: tuple[float, float, torch.Tensor] | None = None
                for j in range(-(m // 2), m - m // 2):
                    lam = max(centre * 10.0**j, hp["min_damping"])
                    s = step_for(lam)
                    _add(params, x0, s)
                    with torch.enable_grad():
                        trial = closure()
                    self._f_evals += 1
                    f1 = float(trial.detach())
                    if math.isfinite(f1) and (best is None or f1 < best[0]):
                        best = (f1, lam, s)
                if best is not None and best[0] < f0:
                    f1, lam, s = best
                    _add(params, x0, s)
                    accepted, used, decrease, s_norm = True, lam, f0 - f1, float(s.norm())
                    new_centre = max(lam, hp["min_damping"])
                else:
                    _add(params, x0, torch.zeros_like(grad))
                    new_centre = 100.0 * centre
                for group in self.param_groups:
                    group["damping"] = new_centre
        self._finish(
            f0,
            evals0,
            f_evals0,
            hvps0,
            gnorm,
            n,
            damping=used,
            theta=theta,
            frac=float(c.norm()) / gnorm,
            step_norm=s_norm,
            decrease=decrease,
            accepted=accepted,
        )
        return loss.detach()

    def _finish(
        self,
        f0: float,
        evals0: int,
        f_evals0: int,
        hvps0: int,
        gnorm: float,
        n: int,
        *,
        damping: float = float("nan"),
        theta: torch.Tensor | None = None,
        frac: float = 0.0,
        step_norm: float = 0.0,
        decrease: float = float("nan"),
        accepted: bool = False,
    ) -> None:
        have = theta is not None and theta.numel() > 0
        self.last_step = SFNStep(
            damping=damping,
            lambda_min=float(theta.min()) if have else float("nan"),  # type: ignore[union-attr]
            lambda_max=float(theta.max()) if have else float("nan"),  # type: ignore[union-attr]
            rank=int(theta.numel()) if theta is not None else 0,
            grad_norm=gnorm,
            subspace_fraction=frac,
            step_norm=step_norm,
            decrease=decrease,
            accepted=accepted,
            hvps=self._hvps - hvps0,
            grad_evals=self._grad_evals - evals0,
            f_evals=self._f_evals - f_evals0,
        )
        self._iterations += 1


def _orthonormal(V: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop duplicate Ritz vectors and orthonormalize: an orthonormal basis of span(V) with
    the Ritz values kept for the vectors that survive (Gram–Schmidt order)."""
    if V.shape[1] == 0:
        return V, theta
    Q, R = torch.linalg.qr(V)
    keep = R.diagonal().abs() > 1e-8
    return Q[:, keep], theta[keep]


def _add(params: list[torch.Tensor], x0: list[torch.Tensor], s: torch.Tensor) -> None:
    """Set the parameters to x0 + s (s a flat float64 vector)."""
    offset = 0
    for p, x in zip(params, x0, strict=True):
        k = p.numel()
        p.copy_(x + s[offset : offset + k].view_as(p).to(p.dtype))
        offset += k
