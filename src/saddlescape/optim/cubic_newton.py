"""Cubic-regularized Newton method — Nesterov & Polyak, "Cubic regularization of Newton
method and its global performance", Math. Program. 108 (2006), with Hessian-vector
products only.

Each step minimizes the cubic model of f around x globally::

    x_{k+1} = x_k + s_k,   s_k = argmin_s  ⟨g, s⟩ + ½⟨H s, s⟩ + (M/6)‖s‖³,

with g = ∇f(x_k), H = ∇²f(x_k) and M ≥ ρ (the Hessian-Lipschitz constant). The global
minimizer satisfies (H + (M/2)‖s‖ I) s = −g with H + (M/2)‖s‖ I ⪰ 0 (NP06, Prop. 1), so a
step from a strict saddle moves ‖s‖ ≥ 2|λ_min|/M along negative curvature: the method
needs no outside noise to leave a saddle — except where g = 0 exactly or g is orthogonal
to the negative eigenvectors, where the model's solution is found through a tiny random
perturbation of g (below). Iteration count to an ε-second-order stationary point:
O(√M·(f(x0) − f*)/ε^{3/2}) (NP06, Thm. 1 and its corollaries). The Hessian is never formed.

Subproblem solvers (``subproblem=``):

- ``"krylov"`` (default): Lanczos with full reorthogonalization builds an orthonormal
  basis Q of the Krylov space of H started from g̃ = g + σu (u uniform on the unit
  sphere), and the small problem ``min_y ‖g̃‖⟨e₁, y⟩ + ½ yᵀTy + (M/6)‖y‖³`` (T = QᵀHQ
  tridiagonal) is solved exactly through the eigenvalues of T and a root of the secular
  equation ``‖(T + σI)⁻¹‖g̃‖e₁‖ = 2σ/M`` on σ ≥ max(0, −λ_min(T)), including the hard case
  (Carmon & Duchi, "Analysis of Krylov subspace solutions of regularized nonconvex quadratic
  problems", NeurIPS 2018; Conn, Gould & Toint, "Trust-Region Methods", 2000, §7.3 for the
  secular equation). It stops when the full-space model gradient, β_k|e_kᵀy| (no extra
  product), is below ``subproblem_tol·(‖g̃‖ + (M/2)‖y‖²)`` *and* the bottom Ritz pair is
  accurate enough (residual ≤ max(θ_min + σ, √tol·‖T‖)) that no eigenvalue near θ_min can
  violate H + σI ⪰ 0, after at least 5 steps (a Ritz residual alone cannot certify that
  no lower eigenvalue exists: Lanczos must first have had a chance to find it); or when the
  Krylov space closes; or after ``subproblem_iters`` products.
- ``"gd"``: gradient descent on the cubic model (Carmon & Duchi, "Gradient descent
  efficiently finds the cubic-regularized non-convex Newton step", SIAM J. Optim. 2019;
  arXiv 1612.00547): perturbed linear term g̃ = g + σu, start at the Cauchy point
  −R_c g̃/‖g̃‖ with ``R_c = −κ/M + √((κ/M)² + 2‖g̃‖/M)``, κ = g̃ᵀHg̃/‖g̃‖², and step
  η = 1/(4(β + (M/2)R)) where β ≥ ‖H‖ (a short Lanczos estimate) and R = 2β/M + √(2‖g‖/M)
  bounds ‖s*‖. Where the model curves upwards along the last move, the step is the
  Barzilai–Borwein one, ‖Δs‖²/⟨Δs, Δ∇m⟩ (never shorter than η, at most 10⁴η, and only
  if it stays in the ball ‖s‖ ≤ R that holds the global minimizer): on ill-conditioned
  models it needs tens of products where the fixed step needs thousands. It stops when
  the model gradient is below ``subproblem_tol·(‖g̃‖ + (M/2)‖s‖²)`` or, inside
  :class:`CubicNewton`, below ARC's inexact-solve bound 0.1·min(1, h)·‖g̃‖, h = max(‖s‖, ‖g̃‖^½)
  (Cartis, Gould & Toint 2011, §3.2, TC.s/TC.g): the acceptance test guards the step.

The perturbation σ = ``perturbation``·‖g‖ draws u from the optimizer's own generator
(``seed``/``generator``; its state is in :meth:`state_dict`). Where g = 0 exactly, the
Krylov solver starts Lanczos from u and solves the unperturbed model (the pure hard case:
s is the bottom Ritz vector scaled to ‖s‖ = 2|λ_min|/M); gradient descent uses σ =
``perturbation`` there.

**Closure.** ``step(closure)`` is required. For exact Hessian-vector products (double
backward through the closure's graph) the closure should return the loss *without*
calling ``backward()``. A conventional closure that calls ``backward()`` also works: the
graph is gone by then, so products fall back to central differences of gradients
(two closure calls each, relative accuracy about ε_mach^{2/3}).

The optimizer is unbatched (one run; ``batched`` is not supported) and treats all
parameters as one vector, so every parameter group must share its hyperparameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from scipy.optimize import brentq

from ..errors import ConfigError, DivergenceError, check_positive
from ._second_order import SecondOrderOptimizer
from .base import Closure, ParamsT, check_hyper, check_hyper_int, eager_step

__all__ = ["CubicNewton", "CubicStep", "solve_cubic_subproblem"]

Solver = Literal["krylov", "gd"]
#: ARC's inexact-solve rule for the gd solver inside CubicNewton (Cartis, Gould & Toint
#: 2011, §3.2, TC.s or TC.g): stop once ‖∇m(s)‖ ≤ κ·min(1, h)·‖g‖ with h = ‖s‖ or ‖g‖^½
#: (whichever is met first); the acceptance test guards the step, and either rule keeps
#: the outer method's fast local convergence
_ARC_STOP = 0.1
_BB_CAP = 1e4  # longest Barzilai–Borwein step of the gd solver, in units of the safe step
_MIN_KRYLOV = 5  # Lanczos steps before the Krylov solver may stop (small spaces: all of R^n)
_HYPER = (
    "M",
    "subproblem",
    "subproblem_iters",
    "subproblem_tol",
    "perturbation",
    "adaptive",
    "M_min",
)
#: ARC's constants (Cartis, Gould & Toint 2011, Algorithm 2.1): accept when ρ ≥ η₁, lower M
#: when ρ ≥ η₂ (very successful), raise or lower it by the factor γ
ETA1, ETA2, GAMMA_M = 0.1, 0.9, 2.0


@dataclass(frozen=True)
class CubicStep:
    """Diagnostics of the last step: ``step_norm = ‖s‖``, ``model_decrease`` = −m(s) ≥ 0
    (the model's predicted decrease), ``lambda_min``/``lambda_max`` the extreme Ritz values
    of H seen by the solver (they lie inside [λ_min(H), λ_max(H)]), ``grad_norm = ‖g‖``,
    the subproblem's ``iterations``, ``hvps``, and ``converged`` (its test was met).

    The model's decrease is that of the unperturbed model (gradient g, not g̃). Filled in
    by :class:`CubicNewton` (the defaults for a bare :func:`solve_cubic_subproblem`):
    ``accepted`` (the ARC test passed and x moved), ``ratio`` ρ = actual/predicted
    decrease, ``M`` the regularization this step used, and the step's ``grad_evals`` and
    ``f_evals`` (closure calls for derivatives, and for f(x + s) alone)."""

    step_norm: float
    model_decrease: float
    lambda_min: float
    lambda_max: float
    grad_norm: float
    iterations: int
    hvps: int
    converged: bool
    accepted: bool = True
    ratio: float = float("nan")
    M: float = float("nan")
    grad_evals: int = 0
    f_evals: int = 0


class CubicNewton(SecondOrderOptimizer):
    """Cubic-regularized Newton (Nesterov & Polyak 2006) with HVP-only subproblem solvers.

    Args:
        params: parameters (or groups sharing the same hyperparameters).
        M: cubic regularization, M ≥ ρ (the Hessian-Lipschitz constant) for the theory's
            monotone decrease ``f(x_{k+1}) ≤ f(x_k) − (M/12)‖s_k‖³`` (NP06, Lemma 4).
        subproblem: ``"krylov"`` (default) or ``"gd"``, see the module docstring.
        subproblem_iters: product budget of the subproblem (default 100 for krylov, capped
            at the dimension; 2000 for gd).
        subproblem_tol: relative tolerance on the model's gradient.
        perturbation: relative size σ/‖g‖ of the random perturbation of g.
        adaptive: ARC's acceptance test and adaptive M (default True; False takes every
            step with the fixed M, as Nesterov & Polyak's method with a known M ≥ ρ).
        M_min: the smallest M the adaptive rule may lower M to (default: the initial M,
            so that with M ≥ ρ no step is ever rejected and the iterates are those of the
            fixed-M method).
        seed, generator: the perturbation's random stream.

    **Acceptance and adaptive M** (Cartis, Gould & Toint, "Adaptive cubic regularisation
    methods for unconstrained optimization", Math. Program. 127 (2011), Algorithm 2.1;
    Nesterov & Polyak 2006, §5.1). After solving the model, f(x + s) is evaluated (one
    more closure call, :attr:`f_evals`) and ρ = (f(x) − f(x + s))/(f(x) − m(s)) compares
    the actual with the predicted decrease. If ρ < η₁ = 0.1 the step is rejected (x stays,
    :attr:`rejections` counts it) and M doubles; if ρ ≥ η₂ = 0.9 (very successful) M is
    halved, down to ``M_min``. So f never increases, even with an M far below ρ. A step
    that the model says cannot decrease f (its decrease ≤ 0, possible only through the
    solver's tiny perturbation of g at a minimum) is not taken, and a step below the
    rounding of x is taken without a test. Every group holds the same M, updated in place.

    **Counters**: :attr:`iterations` (calls of :meth:`step`, accepted or not),
    :attr:`grad_evals` (closure calls for derivatives, including finite differences),
    :attr:`f_evals`, :attr:`hvps`, :attr:`rejections`; :attr:`last_step` holds the
    :class:`CubicStep` of the last step (its own HVPs, evaluations, ρ, M, acceptance).

    **Complex parameters** are refused by name (optimize ``torch.view_as_real(z)``).
    **torch.compile**: :meth:`step` runs eagerly (it solves the subproblem on the host,
    in NumPy and SciPy); ``torch.compile(opt.step)`` returns the eager result exactly.

    **No learning rate.** The Nesterov–Polyak step ``x ← x + argmin_s m(s)`` takes the
    model's minimizer whole; its length is set by ``M`` (and ‖∇f‖, the curvature), not by
    a step size. Its parameter groups therefore have no ``"lr"`` key and torch's
    learning-rate schedulers do not apply (constructing one raises ``KeyError``). To
    shorten steps, raise ``M`` between steps (``opt.param_groups[0]["M"] = ...``; every
    group must hold the same value) — the adaptive rule does this by itself.

    >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)   # exact saddle of
    >>> f = lambda: 0.5 * x[0] ** 2 + 0.25 * x[1] ** 4 - 0.5 * x[1] ** 2  # Lee et al.'s f
    >>> opt = CubicNewton([x], M=12.0, seed=0)
    >>> for _ in range(30):
    ...     _ = opt.step(f)
    >>> [round(abs(v), 6) for v in x.tolist()]    # a minimum (0, ±1)
    [0.0, 1.0]
    >>> opt.iterations, opt.grad_evals, opt.rejections, opt.hvps > 0
    (30, 30, 0, True)
    """

    requires_closure = True
    shared_hyperparameters = _HYPER
    #: the closure should return the loss *without* calling backward() (exact HVPs by
    #: double backward through its graph); drivers such as ``optim.run`` may check this
    closure_keeps_graph: ClassVar[bool] = True

    def __init__(
        self,
        params: ParamsT,
        M: float,
        *,
        subproblem: Solver = "krylov",
        subproblem_iters: int | None = None,
        subproblem_tol: float = 1e-8,
        perturbation: float = 1e-6,
        adaptive: bool = True,
        M_min: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        defaults = {
            "M": M,
            "subproblem": subproblem,
            "subproblem_iters": subproblem_iters,
            "subproblem_tol": subproblem_tol,
            "perturbation": perturbation,
            "adaptive": adaptive,
            "M_min": M_min,
        }
        self._hvps = 0
        self._f_evals = 0
        self._rejections = 0
        self.last_step: CubicStep | None = None
        super().__init__(params, defaults, batched=False, seed=seed, generator=generator)

    # ------------------------------------------------------------------ config
    def _validate_group(self, group: dict[str, Any]) -> None:
        group["M"] = check_hyper("M", group["M"])
        if group["subproblem"] not in ("krylov", "gd"):
            raise ConfigError(f"subproblem must be 'krylov' or 'gd', got {group['subproblem']!r}")
        if group["subproblem_iters"] is not None:
            group["subproblem_iters"] = check_hyper_int(
                "subproblem_iters", group["subproblem_iters"], minimum=1
            )
        group["subproblem_tol"] = check_hyper("subproblem_tol", group["subproblem_tol"])
        group["perturbation"] = check_hyper("perturbation", group["perturbation"], allow_zero=True)
        if not isinstance(group["adaptive"], bool):
            raise ConfigError(f"adaptive must be True or False, got {group['adaptive']!r}")
        if group["M_min"] is None:
            group["M_min"] = group["M"]
        group["M_min"] = check_hyper("M_min", group["M_min"])
        for p in group["params"]:
            if p.is_complex():
                raise ConfigError(
                    "CubicNewton does not support complex parameters (its Hessian-vector "
                    "products are real): optimize torch.view_as_real(z) as a real parameter"
                )

    # ------------------------------------------------------------------ counters
    @property
    def rejections(self) -> int:
        """Steps whose trial point failed the acceptance test (x did not move, M rose)."""
        return self._rejections

    @property
    def counters(self) -> dict[str, Any]:
        return {
            **super().counters,
            "hvps": self._hvps,
            "f_evals": self._f_evals,
            "rejections": self._rejections,
        }

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        return {"hvps": self._hvps, "f_evals": self._f_evals, "rejections": self._rejections}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        self._hvps = int(extra.get("hvps", 0))
        self._f_evals = int(extra.get("f_evals", 0))
        self._rejections = int(extra.get("rejections", 0))

    # ------------------------------------------------------------------ step
    @eager_step
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One cubic-Newton step; returns the loss at the point before the step."""
        closure = self._need_closure(closure)
        hp = self.param_groups[0]
        step_no = self._iterations
        evals0, f_evals0 = self._grad_evals, self._f_evals
        point = self._first_and_second_order(closure, step_no)
        if point.params is None:
            return self._nothing_to_do(point.loss.reshape(1))  # type: ignore[return-value]
        loss, grad, params = point.loss_tensor, point.grad, point.params
        counted_hvp = point.hvp

        n = grad.numel()
        iters = hp["subproblem_iters"]
        if iters is None:
            iters = min(n, 100) if hp["subproblem"] == "krylov" else 2000
        s, info = solve_cubic_subproblem(
            grad,
            counted_hvp,
            hp["M"],
            method=hp["subproblem"],
            max_iters=iters,
            tol=hp["subproblem_tol"],
            perturbation=hp["perturbation"],
            arc_stop=_ARC_STOP if hp["subproblem"] == "gd" else 0.0,
            generator=self.generator,
        )
        if not bool(torch.isfinite(s).all()):
            raise DivergenceError(f"CubicNewton: non-finite step at step {step_no}")
        evals = self._grad_evals - evals0
        accepted, ratio, M = True, float("nan"), hp["M"]
        adaptive = hp["adaptive"]
        if adaptive and info.model_decrease <= 0:
            # the (unperturbed) model predicts no decrease: s = 0 is as good, so x stays and
            # M is left alone (the solver's tiny perturbation of g moved it, at a minimum)
            accepted = False
        else:
            with torch.no_grad():
                old = [p.detach().clone() for p in params] if adaptive else []
                offset = 0
                for p in params:
                    k = p.numel()
                    p.add_(s[offset : offset + k].view_as(p).to(p.dtype))
                    offset += k
            x_norm = math.sqrt(sum(float(o.double().square().sum()) for o in old))
            eps = float(torch.finfo(params[0].dtype).eps)
            if adaptive and info.step_norm > 4 * eps * x_norm:  # else x + s rounds to x
                accepted, ratio = self._accept(
                    closure, float(loss.detach()), info.model_decrease, eps
                )
                if not accepted:  # back to x_k, and a larger M shortens the next step
                    with torch.no_grad():
                        for p, o in zip(params, old, strict=True):
                            p.copy_(o)
                    self._rejections += 1
                    new_m = GAMMA_M * M
                elif ratio >= ETA2:  # very successful: a smaller M allows a longer step
                    new_m = max(M / GAMMA_M, hp["M_min"])
                else:
                    new_m = M
                for group in self.param_groups:
                    group["M"] = new_m
        f_evals = self._f_evals - f_evals0
        self.last_step = dataclasses.replace(
            info, accepted=accepted, ratio=ratio, M=M, grad_evals=evals, f_evals=f_evals
        )
        self._iterations += 1
        return loss.detach()

    def _accept(
        self, closure: Closure, f0: float, predicted: float, eps: float
    ) -> tuple[bool, float]:
        """ARC's test (Cartis, Gould & Toint 2011, Alg. 2.1; Nesterov & Polyak 2006, §5.1):
        ρ = (f(x) − f(x + s))/(f(x) − m(s)), accept when ρ ≥ η₁. A change below the
        rounding of f (a step at a minimum) is accepted without touching M."""
        with torch.enable_grad():
            trial = closure()
        self._f_evals += 1
        f1 = float(trial.detach()) if isinstance(trial, torch.Tensor) else float(trial)
        if not math.isfinite(f1):
            return False, -math.inf
        actual = f0 - f1
        noise = 16 * eps * max(abs(f0), abs(f1))
        if predicted <= noise and abs(actual) <= noise:
            return True, float("nan")
        ratio = actual / predicted if predicted > 0 else -math.inf
        return ratio >= ETA1, ratio


# ---------------------------------------------------------------------- subproblem
def solve_cubic_subproblem(
    g: torch.Tensor,
    hvp: Callable[[torch.Tensor], torch.Tensor],
    M: float,
    *,
    method: Solver = "krylov",
    max_iters: int = 100,
    tol: float = 1e-8,
    perturbation: float = 1e-6,
    generator: torch.Generator | None = None,
    arc_stop: float = 0.0,
) -> tuple[torch.Tensor, CubicStep]:
    """Approximately minimize ``⟨g, s⟩ + ½⟨Hs, s⟩ + (M/6)‖s‖³`` given ``v ↦ Hv``.

    ``g`` is a flat tensor (computations in float64); returns ``(s, CubicStep)``. See the
    module docstring for the two methods and the perturbation.

    >>> H = torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    >>> s, info = solve_cubic_subproblem(torch.zeros(2, dtype=torch.float64), H.__matmul__, 1.0,
    ...                                  generator=torch.Generator().manual_seed(0))
    >>> round(abs(float(s[0])), 6), round(float(s[1]), 6)   # ‖s‖ = 2|λ_min|/M along e₁
    (2.0, 0.0)
    """
    M = check_positive("M", M)
    g = g.detach().reshape(-1).to(torch.float64)
    n = g.numel()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    u = torch.randn(n, generator=gen, dtype=torch.float64, device=gen.device).to(g.device)
    u = u / u.norm()
    gnorm = float(g.norm())
    if method == "krylov":
        # at g = 0 the model is solved exactly from a random start (pure hard case)
        b = g + (perturbation * gnorm) * u
        s, info = _krylov(b, gnorm, hvp, M, max_iters, tol, u)
    elif method == "gd":
        b = g + (perturbation * (gnorm if gnorm > 0 else 1.0)) * u
        s, info = _gradient_descent(b, gnorm, hvp, M, max_iters, tol, gen, arc_stop)
    else:
        raise ConfigError(f"subproblem must be 'krylov' or 'gd', got {method!r}")
    # the decrease of the unperturbed model: m_g(s) = m_b(s) − (b − g)ᵀs
    decrease = info.model_decrease + float((b - g) @ s)
    return s, dataclasses.replace(info, model_decrease=decrease)


def _krylov(
    b: torch.Tensor,
    gnorm: float,
    hvp: Callable[[torch.Tensor], torch.Tensor],
    M: float,
    max_iters: int,
    tol: float,
    fallback: torch.Tensor,
) -> tuple[torch.Tensor, CubicStep]:
    n = b.numel()
    bnorm = float(b.norm())
    start = b / bnorm if bnorm > 0 else fallback
    Q = torch.empty(min(max_iters, n), n, dtype=torch.float64, device=b.device)
    alpha: list[float] = []
    beta: list[float] = []
    q, q_prev, b_prev = start, torch.zeros_like(start), 0.0
    y = np.zeros(1)
    converged = False
    k = 0
    scale = 0.0
    for k in range(1, Q.shape[0] + 1):
        Q[k - 1] = q
        w = hvp(q)
        a = float(q @ w)
        w = w - a * q - b_prev * q_prev
        for _ in range(2):  # full reorthogonalization, twice
            w = w - Q[:k].T @ (Q[:k] @ w)
        bk = float(w.norm())
        alpha.append(a)
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        rhs = np.zeros(k)
        rhs[0] = bnorm
        lam, W = np.linalg.eigh(T)
        z, sig = _solve_diagonal(lam, W.T @ rhs, M)
        y = W @ z
        scale = max(scale, abs(a) + bk, float(np.abs(lam).max()))
        if bk <= 1e-14 * max(scale, 1e-300):  # the Krylov space is invariant: exact
            converged = True
            break
        # Stop when y is stationary for the full-space model (its gradient there is
        # β_k|y_k|) and the bottom Ritz pair (residual β_k|W_k1|) is accurate enough that
        # no eigenvalue of H near θ_1 lies below −σ, the global-optimality condition.
        model_grad = bk * abs(y[-1])
        ritz_res = bk * abs(W[-1, 0])
        ynorm = float(np.linalg.norm(y))
        if (
            k >= min(n, _MIN_KRYLOV)
            and model_grad <= tol * (bnorm + 0.5 * M * ynorm**2)
            and ritz_res <= max(lam[0] + sig, math.sqrt(tol) * scale)
        ):
            converged = True
            break
        if k == Q.shape[0]:
            break
        beta.append(bk)
        q_prev, q, b_prev = q, w / bk, bk
    s = Q[:k].T @ torch.as_tensor(y, dtype=torch.float64, device=b.device)
    T = np.diag(alpha) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    return s, _info(s, y, T, bnorm, M, gnorm, k, converged)


def _gradient_descent(
    b: torch.Tensor,
    gnorm: float,
    hvp: Callable[[torch.Tensor], torch.Tensor],
    M: float,
    max_iters: int,
    tol: float,
    gen: torch.Generator,
    arc_stop: float = 0.0,
) -> tuple[torch.Tensor, CubicStep]:
    n = b.numel()
    bnorm = float(b.norm())
    count = [0]

    def H(v: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        return hvp(v)

    if bnorm == 0.0:  # g = 0 and no perturbation: s = 0 is a stationary point of the model
        s = torch.zeros_like(b)
        return s, CubicStep(0.0, 0.0, float("nan"), float("nan"), gnorm, 0, 0, True)
    rho = M / 2  # Carmon & Duchi write the cubic term as (ρ/3)‖s‖³
    # β ≥ ‖H‖: max |Ritz value| of a 10-step Lanczos run, with a 10% margin
    probe = torch.randn(n, generator=gen, dtype=torch.float64, device=gen.device).to(b.device)
    _, est = _krylov(torch.zeros_like(b), 0.0, H, M, min(n, 10), 0.0, probe / probe.norm())
    beta_est = 1.1 * max(abs(est.lambda_min), abs(est.lambda_max), 1e-300)
    R = beta_est / rho + math.sqrt(bnorm / rho)
    eta = 1.0 / (4.0 * (beta_est + rho * R))
    Hb = H(b / bnorm)
    kappa = float((b / bnorm) @ Hb)
    r_c = -kappa / (2 * rho) + math.sqrt((kappa / (2 * rho)) ** 2 + bnorm / rho)
    s = -r_c * b / bnorm
    Hs = -r_c * Hb
    converged = False
    it = 0
    best: tuple[float, torch.Tensor] | None = None
    prev: tuple[torch.Tensor, torch.Tensor] | None = None  # s and ∇m(s) of the last step
    for it in range(1, max_iters + 1):  # noqa: B007
        sn = float(s.norm())
        h = max(sn, math.sqrt(bnorm))  # ARC's TC.s (h = ‖s‖) or TC.g (h = ‖g‖^½)
        grad = b + Hs + rho * sn * s
        value = float(b @ s) + 0.5 * float(s @ Hs) + (M / 6) * sn**3
        if best is None or value < best[0]:
            best = (value, s)
        gn = float(grad.norm())
        if gn <= tol * (bnorm + rho * sn**2) or gn <= arc_stop * min(1.0, h) * bnorm:
            converged = True
            break
        # Barzilai–Borwein step ‖Δs‖²/⟨Δs, Δ∇m⟩ where the model curves upwards along Δs,
        # never shorter than Carmon & Duchi's safe η; else η itself (negative curvature:
        # the fixed step grows the escape direction geometrically, as in their analysis).
        # A long step that leaves the ball ‖s‖ ≤ R, which holds the global minimizer, is
        # replaced by the safe one.
        new = s - eta * grad
        if prev is not None:
            ds, dg = s - prev[0], grad - prev[1]
            curv = float(ds @ dg)
            if curv > 0:
                step = min(float(ds @ ds) / curv, _BB_CAP * eta)
                if step > eta:
                    trial = s - step * grad
                    if float(trial.norm()) <= R:
                        new = trial
        prev = (s, grad)
        s = new
        Hs = H(s)
    else:  # budget spent: the iterate with the lowest model value (BB is not monotone)
        sn = float(s.norm())
        value = float(b @ s) + 0.5 * float(s @ Hs) + (M / 6) * sn**3
        if best is not None and best[0] < value:
            value, s = best
    sn = float(s.norm())
    return s, CubicStep(
        step_norm=sn,
        model_decrease=-value,
        lambda_min=est.lambda_min,
        lambda_max=est.lambda_max,
        grad_norm=gnorm,
        iterations=it,
        hvps=count[0],
        converged=converged,
    )


def _info(
    s: torch.Tensor,
    y: np.ndarray,
    T: np.ndarray,
    bnorm: float,
    M: float,
    gnorm: float,
    k: int,
    converged: bool,
) -> CubicStep:
    yn = float(np.linalg.norm(y))
    value = bnorm * y[0] + 0.5 * float(y @ T @ y) + (M / 6) * yn**3
    ritz = np.linalg.eigvalsh(T)
    return CubicStep(
        step_norm=float(s.norm()),
        model_decrease=-float(value),
        lambda_min=float(ritz[0]),
        lambda_max=float(ritz[-1]),
        grad_norm=gnorm,
        iterations=k,
        hvps=k,
        converged=converged,
    )


def _solve_small(P: np.ndarray, rhs: np.ndarray, M: float) -> tuple[np.ndarray, float]:
    """Global minimizer of ``rhsᵀy + ½yᵀPy + (M/6)‖y‖³`` for a small symmetric ``P``.

    Returns ``(y, σ)`` with ``(P + σI) y = −rhs``, ``σ = (M/2)‖y‖`` and ``P + σI ⪰ 0``.
    """
    lam, W = np.linalg.eigh(P)
    c = W.T @ rhs
    z, sigma = _solve_diagonal(lam, c, M)
    return W @ z, sigma


def _solve_diagonal(lam: np.ndarray, c: np.ndarray, M: float) -> tuple[np.ndarray, float]:
    """The cubic subproblem in the eigenbasis: minimize ``cᵀz + ½Σλ_i z_i² + (M/6)‖z‖³``
    (λ ascending) by the secular equation ``‖c/(λ + σ)‖ = 2σ/M``, hard case included."""
    lam1 = float(lam[0])
    span = max(float(np.abs(lam).max()), 1e-300)
    bottom = lam <= lam1 + 1e-12 * span
    cnorm = float(np.linalg.norm(c))
    lo = max(0.0, -lam1)
    if cnorm == 0.0:
        z = np.zeros_like(c)
        if lam1 < 0:
            z[0] = 2 * lo / M
        return z, lo

    live = c != 0
    cl, ll = c[live], lam[live]

    def phi(sig: float) -> float:
        d = ll + sig
        if d.min() <= 0:
            return math.inf
        return math.sqrt(float(np.dot(cl / d, cl / d))) - 2 * sig / M

    hi = lo + math.sqrt(M * cnorm / 2) * (1 + 1e-12) + 1e-300
    a = lo if lam1 > 0 else lo * (1 + 4e-16) + 1e-300
    if phi(a) <= 0:
        sigma = lo  # (near-)hard case: the pole is not reached
    else:
        sigma = brentq(phi, a, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    rest = ~bottom if lam1 < 0 else np.ones_like(bottom)
    z = np.zeros_like(c)
    z[rest] = -c[rest] / (lam[rest] + sigma)
    if lam1 < 0:
        r = 2 * sigma / M
        mag = math.sqrt(max(r * r - float(z[rest] @ z[rest]), 0.0))
        cb = c[bottom]
        nb = float(np.linalg.norm(cb))
        if nb > 0:
            z[bottom] = -mag * cb / nb
        else:
            z[np.flatnonzero(bottom)[0]] = mag
    return z, sigma
