"""Perturbed gradient descent: Jin, Ge, Netrapalli, Kakade, Jordan 2017 (Algorithm 2) and
the simplified variant of Jin, Netrapalli, Ge, Kakade, Jordan 2021."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from ..errors import ConfigError
from .base import Closure, ParamsT, SaddleOptimizer, _theory_inputs, check_hyper, eager_step
from .jin import JinState

__all__ = ["PerturbedGD", "PerturbedGDTheory"]

Variant = Literal["jin2017", "jin2021"]


@dataclass(frozen=True)
class PerturbedGDTheory:
    """The constants of :meth:`PerturbedGD.from_theory` and the iteration bound they imply.

    ``chi`` is χ (Jin et al. 2017) or ι (Jin et al. 2021). ``iteration_bound``:

    - jin2017: ``⌈8·max(Δf·t_thres/f_thres, Δf/(η·g_thres²))⌉`` — the count in the proof
      of Theorem 3 (each gradient step with ‖∇f‖ > g_thres lowers f by ≥ η·g_thres²/2; each
      escape episode of t_thres steps lowers it by ≥ f_thres; the factor 8 is as restated
      in THEORY.md's source, unverified). With probability ≥ 1 − δ the returned x̃ is an
      ε-second-order stationary point within this many iterations.
    - jin2021: ``⌈400·ι⁴·ℓ·Δf/ε²⌉`` after which at least half the iterates are ε-SOSPs.
    """

    variant: str
    smoothness: float
    hessian_lipschitz: float
    eps: float
    delta: float
    f_gap: float
    c: float
    dim: int
    chi: float
    lr: float
    radius: float
    grad_threshold: float
    f_threshold: float | None
    interval: int
    iteration_bound: int


class PerturbedGD(SaddleOptimizer):
    """Perturbed gradient descent (PGD) — Jin et al. 2017, "How to Escape Saddle Points
    Efficiently", ICML, Algorithm 2 (``variant="jin2017"``, default)::

        if ‖∇f(x_t)‖ ≤ g_thres and t − t_noise > t_thres:
            x̃ ← x_t, t_noise ← t, x_t ← x̃ + ξ,  ξ uniform in the ball B(r)
        if t − t_noise = t_thres and f(x_t) − f(x̃) > −f_thres:  return x̃
        x_{t+1} ← x_t − η∇f(x_t)

    The paper's x is the whole parameter vector: the gradient norm, the clock, x̃ and f(x̃)
    and the stop test are global over all parameter groups (the parameters that have a
    gradient at this step), so ``grad_threshold``, ``interval`` and ``f_threshold`` must be
    the same in every group; ``lr`` and ``radius`` may differ per group (with different
    radii the draw is uniform in the unit ball, each group's block scaled by its radius).
    When the stop test fires the parameters are restored to x̃ and :attr:`converged`
    becomes true; later steps leave them there. ``f_threshold=None`` disables the test.
    f(x̃) is kept in float32 or wider, whatever the parameter dtype.

    ``variant="jin2021"`` is the simplified PGD of Jin, Netrapalli, Ge, Kakade, Jordan 2021
    ("On Nonconvex Optimization for Machine Learning", JACM): the perturbation is
    ``x_t ← x_t − η·ξ`` with ξ uniform in B(radius) and there is no stop test.

    :meth:`step` needs a closure (as for LBFGS): after a perturbation the gradient is
    re-evaluated at the perturbed point, so a perturbing step calls the closure twice.
    In batched mode every run has its own gradient norm, clock, x̃, stop test and
    perturbation count; the closure calls ``backward`` on the sum of the per-run losses
    and returns them, shape ``(B,)``.

    Args:
        params: parameters or groups.
        lr: step size η (read from the group at every step, so LR schedulers work). A
            scheduler changes η only: ``radius`` and the thresholds stay as built (also
            those :meth:`from_theory` derived from its η), except that jin2021's
            perturbation η·ξ follows the current η.
        radius: r, radius of the perturbation ball.
        grad_threshold: g_thres: perturb when ‖∇f‖ ≤ g_thres...
        interval: t_thres: ...and no perturbation happened in the last t_thres steps.
        f_threshold: f_thres of the stop test, or None for no stop test.
        variant: ``"jin2017"`` or ``"jin2021"``.
        batched, seed, generator: see :class:`~saddlescape.optim.base.SaddleOptimizer`.

    >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # saddle of x² − y²/2 + y⁴/4
    >>> opt = PerturbedGD(
    ...     [x], lr=0.2, radius=1e-3, grad_threshold=1e-4, interval=20, f_threshold=1e-8, seed=0
    ... )
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = x[0] ** 2 - x[1] ** 2 / 2 + x[1] ** 4 / 4
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(200):
    ...     _ = opt.step(closure)
    >>> opt.converged, opt.perturbations  # escaped; the 2nd perturbation found no decrease
    (True, 2)
    >>> round(abs(x[1].item()), 4)  # x̃ = the minimum (0, ±1)
    1.0
    """

    requires_closure = True
    shared_hyperparameters = ("grad_threshold", "interval", "f_threshold")
    #: Largest ``c`` of :meth:`from_theory` (jin2017) the theorem can cover: η = c/ℓ ≤ 1/ℓ.
    C_MAX: ClassVar[float] = 1.0

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        radius: float = 1e-2,
        grad_threshold: float = 1e-3,
        interval: int = 50,
        f_threshold: float | None = None,
        *,
        variant: Variant = "jin2017",
        batched: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if variant not in ("jin2017", "jin2021"):
            raise ConfigError(f"variant must be 'jin2017' or 'jin2021', got {variant!r}")
        if variant == "jin2021" and f_threshold is not None:
            raise ConfigError("f_threshold: the jin2021 variant has no stop test; pass None")
        self.variant = variant
        self.theory: PerturbedGDTheory | None = None
        defaults = {
            "lr": lr,
            "radius": radius,
            "grad_threshold": grad_threshold,
            "interval": interval,
            "f_threshold": f_threshold,
        }
        super().__init__(params, defaults, batched=batched, seed=seed, generator=generator)

    # ------------------------------------------------------------------ theory
    @classmethod
    def from_theory(
        cls,
        params: ParamsT,
        smoothness: float,
        hessian_lipschitz: float,
        eps: float,
        delta: float = 0.1,
        f_gap: float = 1.0,
        c: float = 0.5,
        *,
        variant: Variant = "jin2017",
        **kwargs: Any,
    ) -> PerturbedGD:
        """Hyperparameters from the paper's formulas.

        jin2017 (Jin et al. 2017, Algorithm 2), with d the number of parameters:
        χ = 3·max{ln(dℓΔf/(cε²δ)), 4}, η = c/ℓ, r = (√c/χ²)(ε/ℓ), g_thres = (√c/χ²)ε,
        f_thres = (c/χ³)√(ε³/ρ), t_thres = ⌈(χ/c²)·ℓ/√(ρε)⌉.

        jin2021 (Jin et al. 2021): ι = c·ln(dℓΔf/(ρεδ)) (at least 1), η = 1/ℓ,
        r = ε/(400ι³), g_thres = ε, 𝒯 = ⌈ℓι/√(ρε)⌉.

        Jin et al. 2017's Theorem 3 holds for ``c ≤ c_max`` and ε ≤ ℓ²/ρ, where c_max is an
        absolute constant the paper does not state. Its proof uses the descent lemma for
        the step η = c/ℓ, which needs η ≤ 1/ℓ, so c_max ≤ 1 (:attr:`C_MAX`): for jin2017
        a ``c`` above :attr:`C_MAX` gives a :class:`UserWarning` naming c and c_max (the
        optimizer is still built, for experiments beyond the theorem). In jin2021, c is a
        *large enough* constant in ι = c·log(...) and is not capped. The constants and the
        iteration bound are in :attr:`theory` (:class:`PerturbedGDTheory`).
        """
        params = list(params)
        dim, ell, rho, eps, delta, f_gap, c = _theory_inputs(
            params, bool(kwargs.get("batched")), smoothness, hessian_lipschitz, eps, delta, f_gap, c
        )
        if variant == "jin2017":
            if c > cls.C_MAX:
                warnings.warn(
                    f"PerturbedGD.from_theory: c = {c:g} exceeds c_max = {cls.C_MAX:g} "
                    f"(η = c/ℓ > 1/ℓ): Jin et al. 2017's Theorem 3 does not cover it",
                    UserWarning,
                    stacklevel=2,
                )
            chi = 3.0 * max(math.log(dim * ell * f_gap / (c * eps**2 * delta)), 4.0)
            lr = c / ell
            radius = math.sqrt(c) / chi**2 * eps / ell
            g_thres = math.sqrt(c) / chi**2 * eps
            f_thres: float | None = c / chi**3 * math.sqrt(eps**3 / rho)
            t_thres = math.ceil(chi / c**2 * ell / math.sqrt(rho * eps))
            assert f_thres is not None
            bound = math.ceil(8 * max(f_gap * t_thres / f_thres, f_gap / (lr * g_thres**2)))
        elif variant == "jin2021":
            chi = max(c * math.log(dim * ell * f_gap / (rho * eps * delta)), 1.0)
            lr = 1.0 / ell
            radius = eps / (400 * chi**3)
            g_thres = eps
            f_thres = None
            t_thres = math.ceil(ell * chi / math.sqrt(rho * eps))
            bound = math.ceil(400 * chi**4 * ell * f_gap / eps**2)
        else:
            raise ConfigError(f"variant must be 'jin2017' or 'jin2021', got {variant!r}")
        opt = cls(
            params,
            lr=lr,
            radius=radius,
            grad_threshold=g_thres,
            interval=t_thres,
            f_threshold=f_thres,
            variant=variant,
            **kwargs,
        )
        opt.theory = PerturbedGDTheory(
            variant=variant,
            smoothness=ell,
            hessian_lipschitz=rho,
            eps=eps,
            delta=delta,
            f_gap=f_gap,
            c=c,
            dim=dim,
            chi=chi,
            lr=lr,
            radius=radius,
            grad_threshold=g_thres,
            f_threshold=f_thres,
            interval=t_thres,
            iteration_bound=bound,
        )
        return opt

    # ------------------------------------------------------------------ state
    def _validate_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_hyper("lr", group["lr"])
        self._validate_perturbation(group)
        if group["f_threshold"] is not None:
            group["f_threshold"] = check_hyper("f_threshold", group["f_threshold"], allow_zero=True)

    def _init_state(self, device: torch.device) -> None:
        self._jin = JinState(self.runs or 1, self.param_groups[0]["interval"], device)

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        return {"jin": self._jin.state(index)}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        self._jin.load(extra["jin"], params)

    def _perturbation_counts(self) -> torch.Tensor:
        return self._jin.count

    @property
    def converged(self) -> bool | torch.Tensor:
        """Whether the stop test returned x̃: a bool, or a ``(B,)`` tensor in batched mode."""
        done = self._jin.converged
        return done.clone() if self.batched else bool(done.all())

    # ------------------------------------------------------------------ step
    @eager_step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One iteration of Algorithm 2 on the whole parameter vector; returns the loss at
        x_t before any perturbation.

        One host synchronization per step (two when a run perturbs)."""
        closure = self._need_closure(closure)
        loss0 = loss = self._evaluate(closure)
        live = self._live()
        if not live:
            return self._nothing_to_do(loss)
        hp, jin = self.param_groups[0], self._jin
        sq = self._sq_norm([g for lv in live for g in lv.grads])
        perturb = jin.perturb_due(sq, hp["grad_threshold"], hp["interval"])
        stop = None
        if hp["f_threshold"] is not None and self.variant == "jin2017":
            stop = jin.stop_due(loss, hp["f_threshold"], hp["interval"])
            perturb = perturb & ~stop
        any_perturb, any_stop = self._checked(loss, sq, perturb, stop)
        if any_stop:  # return x̃: the runs stop where they were before the perturbation
            assert stop is not None
            jin.restore(stop, batched=self.batched)
        if any_perturb:
            jin.record(
                perturb,
                params=[p for lv in live for p in lv.params],
                loss=loss,
                batched=self.batched,
            )
            radii = [float(lv.group["radius"]) for lv in live]
            if self.variant == "jin2021":  # x ← x − η·ξ, ξ ∈ B(r) (the sign is immaterial)
                radii = [r * float(lv.group["lr"]) for r, lv in zip(radii, live, strict=True)]
            self._add_ball(live, radii, perturb)
            loss = self._evaluate(closure)  # the gradient step uses ∇f at the perturbed x
            live = self._refresh(live)
            self._check_finite(loss, live)
        self._descend(live, ~jin.converged if jin.any_converged else None)
        jin.t += 1
        self._iterations += 1
        return self._result(loss0)
