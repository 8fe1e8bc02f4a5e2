"""Perturbed accelerated gradient descent with negative-curvature exploitation:
Jin, Netrapalli, Jordan 2018, "Accelerated Gradient Descent Escapes Saddle Points Faster
than Gradient Descent", COLT (arXiv 1711.10456), Algorithms 2 and 3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from .base import (
    Closure,
    Live,
    ParamsT,
    SaddleOptimizer,
    _theory_inputs,
    check_hyper,
    eager_step,
    real_view,
)
from .jin import JinState
from .perturbations import wide_dtype

__all__ = ["PerturbedAGD", "PerturbedAGDTheory"]


@dataclass(frozen=True)
class PerturbedAGDTheory:
    """Constants of :meth:`PerturbedAGD.from_theory`.

    ``rate`` = √ℓ·ρ^{1/4}·Δf/ε^{7/4} is the paper's Õ(·) iteration count without its
    constant and log factors (Theorem 3; the log power is unverified), so it is a scale,
    not a bound.
    """

    smoothness: float
    hessian_lipschitz: float
    eps: float
    delta: float
    f_gap: float
    c: float
    dim: int
    kappa: float
    chi: float
    lr: float
    theta: float
    gamma: float
    s: float
    radius: float
    interval: int
    rate: float


class PerturbedAGD(SaddleOptimizer):
    """Perturbed AGD (PAGD) with negative-curvature exploitation (NCE) — Jin, Netrapalli,
    Jordan 2018, Algorithm 2 (PAGD) and Algorithm 3 (NCE)::

        if ‖∇f(x_t)‖ ≤ ε and no perturbation in the last 𝒯 steps: x_t ← x_t + ξ, ξ ∈ B(r)
        y_t = x_t + (1 − θ)v_t
        x_{t+1} = y_t − η∇f(y_t);  v_{t+1} = x_{t+1} − x_t
        if f(x_t) ≤ f(y_t) + ⟨∇f(y_t), x_t − y_t⟩ − (γ/2)‖x_t − y_t‖²:   (NCE)
            if ‖v_t‖ ≥ s: x_{t+1} = x_t
            else: δ = s·v_t/‖v_t‖, x_{t+1} = argmin f over {x_t + δ, x_t − δ}
            v_{t+1} = 0

    The paper's x is the whole parameter vector: ‖∇f‖, the perturbation clock, the NCE
    test and δ are global over all groups (the parameters that have a gradient at this
    step), so ``theta``, ``gamma``, ``s``, ``grad_threshold`` and ``interval`` must be the
    same in every group; ``lr`` and ``radius`` may differ.

    **Velocity and LR schedulers.** The velocity is kept in gradient units, u_t = v_t/η,
    as torch's SGD keeps its momentum buffer: y_t = x_t + (1 − θ)·η_t·u_t,
    u_{t+1} = (1 − θ)u_t − ∇f(y_t), x_{t+1} = x_t + η_t·u_{t+1}. With a constant η this is
    the paper's iteration exactly; when a scheduler changes η, the momentum's
    displacement scales with it (stored in parameter units, cutting η would not damp it).

    The NCE test is applied only where v_t ≠ 0 (at v_t = 0 it holds with equality and δ is
    undefined; the step is then a plain gradient step). Being a second-order difference it
    is decided by rounding when ‖x_t − y_t‖ ≤ √ulp·(1 + ‖x_t‖) or its margin is under a few
    ulps of |f|: there it is skipped (otherwise it fires near minima, where ‖v_t‖ → 0).
    That guard, 8·ulp·(|f(x_t)| + |f(y_t)|), is the rounding of the computed losses: adding
    a constant to f changes no decision in float64, but in float32 a constant of 10³ costs
    the loss itself the digits the test would need, and the test then fires less often.
    :meth:`step` needs a closure (as for LBFGS): it evaluates f and ∇f at x_t and at y_t
    (two closure calls per step, one while v = 0), once more after a perturbation, and twice
    more for an NCE with ‖v‖ < s. Batched mode: per-run norms, clocks, momentum and NCE;
    the closure returns the per-run losses.

    Args:
        lr: η. theta: θ (momentum 1 − θ). gamma: γ of the NCE test. s: NCE step length.
        radius: r. grad_threshold: ε of the perturbation test. interval: 𝒯.

    >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    >>> opt = PerturbedAGD([x], lr=0.1, theta=0.2, gamma=0.1, s=0.1, radius=1e-3, seed=0)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = x[0] ** 2 - x[1] ** 2 / 2 + x[1] ** 4 / 4
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(200):
    ...     _ = opt.step(closure)
    >>> round(abs(x[1].item()), 4)  # escaped the saddle 0 to a minimum (0, ±1)
    1.0
    """

    requires_closure = True
    shared_hyperparameters = ("theta", "gamma", "s", "grad_threshold", "interval")

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        theta: float = 0.1,
        gamma: float = 0.1,
        s: float = 0.1,
        radius: float = 1e-2,
        grad_threshold: float = 1e-3,
        interval: int = 50,
        *,
        batched: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.theory: PerturbedAGDTheory | None = None
        defaults = {
            "lr": lr,
            "theta": theta,
            "gamma": gamma,
            "s": s,
            "radius": radius,
            "grad_threshold": grad_threshold,
            "interval": interval,
        }
        super().__init__(params, defaults, batched=batched, seed=seed, generator=generator)

    @classmethod
    def from_theory(
        cls,
        params: ParamsT,
        smoothness: float,
        hessian_lipschitz: float,
        eps: float,
        delta: float = 0.1,
        f_gap: float = 1.0,
        c: float = 1.0,
        **kwargs: Any,
    ) -> PerturbedAGD:
        """Hyperparameters of Jin, Netrapalli, Jordan 2018 (Section 3):
        κ = ℓ/√(ρε), η = 1/(4ℓ), θ = 1/(4√κ), γ = θ²/η, s = γ/(4ρ); and (unverified
        restatement) χ = max{1, ln(dℓΔf/(ρεδ))}, 𝒯 = ⌈√κ·χ·c⌉, r = η·ε·χ^{-5}·c^{-8}."""
        params = list(params)
        dim, ell, rho, eps, delta, f_gap, c = _theory_inputs(
            params, bool(kwargs.get("batched")), smoothness, hessian_lipschitz, eps, delta, f_gap, c
        )
        kappa = ell / math.sqrt(rho * eps)
        lr = 1 / (4 * ell)
        theta = 1 / (4 * math.sqrt(kappa))
        gamma = theta**2 / lr
        s = gamma / (4 * rho)
        chi = max(1.0, math.log(dim * ell * f_gap / (rho * eps * delta)))
        interval = math.ceil(math.sqrt(kappa) * chi * c)
        radius = lr * eps * chi**-5 * c**-8
        opt = cls(
            params,
            lr=lr,
            theta=min(theta, 1.0),
            gamma=gamma,
            s=s,
            radius=radius,
            grad_threshold=eps,
            interval=interval,
            **kwargs,
        )
        opt.theory = PerturbedAGDTheory(
            smoothness=ell,
            hessian_lipschitz=rho,
            eps=eps,
            delta=delta,
            f_gap=f_gap,
            c=c,
            dim=dim,
            kappa=kappa,
            chi=chi,
            lr=lr,
            theta=theta,
            gamma=gamma,
            s=s,
            radius=radius,
            interval=interval,
            rate=math.sqrt(ell) * rho**0.25 * f_gap / eps**1.75,
        )
        return opt

    def _validate_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_hyper("lr", group["lr"])
        theta = group["theta"] = check_hyper("theta", group["theta"])
        if theta > 1:
            raise ConfigError(f"theta must be in (0, 1], got {theta!r}")
        group["gamma"] = check_hyper("gamma", group["gamma"], allow_zero=True)
        group["s"] = check_hyper("s", group["s"])
        self._validate_perturbation(group)

    def _init_state(self, device: torch.device) -> None:
        b = self.runs or 1
        self._jin = JinState(b, self.param_groups[0]["interval"], device)  # the clock only
        self._nce = torch.zeros(b, dtype=torch.long, device=device)
        self._v_zero = True

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        return {"jin": self._jin.state(index), "nce": self._nce, "v_zero": self._v_zero}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        self._jin.load(extra["jin"], params)
        self._nce = extra["nce"]
        self._v_zero = bool(extra["v_zero"])

    def _perturbation_counts(self) -> torch.Tensor:
        return self._jin.count

    @property
    def nce_steps(self) -> int | torch.Tensor:
        """How often negative-curvature exploitation fired (per run in batched mode)."""
        return self._nce.clone() if self.batched else int(self._nce.sum())

    def _buffers(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The velocity u (gradient units, real view) and the saved x_t of parameter p.

        They follow p's dtype and device: after ``model.to(torch.float64)`` (which changes
        the parameters in place, behind the optimizer's back) a float32 buffer for x_t would
        round x to float32 at every step."""
        state = self.state[p]
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["x"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for key in ("velocity", "x"):
            buf = state[key]
            if buf.dtype != p.dtype or buf.device != p.device:
                state[key] = buf.to(dtype=p.dtype, device=p.device)
        return real_view(state["velocity"]), real_view(state["x"])

    @eager_step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One PAGD iteration on the whole parameter vector; returns f(x_t) before any
        perturbation."""
        closure = self._need_closure(closure)
        loss0 = loss_x = self._evaluate(closure)
        live = self._live()
        if not live:
            return self._nothing_to_do(loss_x)
        hp, jin = self.param_groups[0], self._jin
        sq = self._sq_norm([g for lv in live for g in lv.grads])
        perturb = jin.perturb_due(sq, hp["grad_threshold"], hp["interval"])
        (any_perturb,) = self._checked(loss_x, sq, perturb)
        if any_perturb:
            jin.record(perturb)
            self._add_ball(live, [float(lv.group["radius"]) for lv in live], perturb)
            loss_x = self._evaluate(closure)
            live = self._refresh(live)
            self._check_finite(loss_x, live)
        one_m = 1.0 - hp["theta"]
        bufs = [[self._buffers(p) for p in lv.params] for lv in live]
        # x_t into the buffer; the parameters to y_t = x_t + (1 − θ)·η·u_t (v_t = η·u_t)
        need_y = not self._v_zero
        for lv, bs in zip(live, bufs, strict=True):
            for x, (u, xb) in zip(lv.xs, bs, strict=True):
                xb.copy_(x)
                if need_y:
                    x.add_(u, alpha=one_m * lv.group["lr"])
        nce = small = None
        if need_y:
            loss_y = self._evaluate(closure)
            live = self._refresh(live)
            self._check_finite(loss_y, live)
            # The NCE test on the whole vector, x_t − y_t = −(1 − θ)·v_t:
            # f(x_t) ≤ f(y_t) + ⟨∇f(y_t), x_t − y_t⟩ − (γ/2)‖x_t − y_t‖²
            # tensor by tensor, each scaled by its group's η (so that splitting x into
            # groups with equal hyperparameters changes no bit)
            inner = vsq = None
            for lv, bs in zip(live, bufs, strict=True):
                lr = lv.group["lr"]
                for g, (u, _) in zip(lv.grads, bs, strict=True):
                    i_t = self._dot([g], [u]) * lr
                    v_t = self._sq_norm([u]) * (lr * lr)
                    inner = i_t if inner is None else inner + i_t
                    vsq = v_t if vsq is None else vsq + v_t
            assert inner is not None and vsq is not None
            wide = torch.promote_types(wide_dtype(loss_x.dtype), vsq.dtype)
            fx, fy = loss_x.to(wide), loss_y.to(wide)
            rhs = fy - one_m * inner.to(wide) - hp["gamma"] / 2 * one_m**2 * vsq.to(wide)
            # Rounding decides the test when ‖x_t − y_t‖ is below √ulp of ‖x_t‖ or its margin
            # is below the rounding error of the computed losses (a few ulps of |f|).
            ulp = torch.finfo(loss_x.dtype).eps
            tol = 8 * ulp * (fx.abs() + fy.abs())
            xsq = self._sq_norm([xb for bs in bufs for _, xb in bs])
            resolved = one_m**2 * vsq > ulp * (1 + xsq)
            nce = (fx <= rhs - tol) & resolved
            small = nce & (vsq < hp["s"] ** 2)
            vnorm = vsq.sqrt()
        any_nce = any_small = every_nce = False
        if nce is not None:
            assert small is not None
            any_nce, any_small, some_plain = self._checked(None, sq, nce, small, ~nce)
            every_nce = not some_plain  # v_{t+1} = 0 in every run
        dirs = None
        if any_small:  # δ's direction v_t/‖v_t‖, v_t = η·u_t, before u changes
            scale = 1.0 / vnorm.clamp_min(torch.finfo(vnorm.dtype).tiny)
            dirs = [
                [u * self._per_run(scale * lv.group["lr"], u).to(u.dtype) for u, _ in bs]
                for lv, bs in zip(live, bufs, strict=True)
            ]
        # u_{t+1} = (1 − θ)u_t − ∇f(y_t);  x_{t+1} = x_t + η·u_{t+1} = y_t − η∇f(y_t)
        for lv, bs in zip(live, bufs, strict=True):
            lr = lv.group["lr"]
            for x, g, (u, xb) in zip(lv.xs, lv.grads, bs, strict=True):
                u.mul_(one_m).sub_(g)
                x.copy_(xb).add_(u, alpha=lr)
        if any_nce:  # NCE runs: v_{t+1} = 0 and x_{t+1} = x_t (‖v_t‖ ≥ s) ...
            assert nce is not None and small is not None
            self._nce += nce
            for bs, lv in zip(bufs, live, strict=True):
                for x, (u, xb) in zip(lv.xs, bs, strict=True):
                    m = self._per_run(nce, x)
                    x.copy_(torch.where(m, xb, x))
                    u.copy_(torch.where(m, torch.zeros_like(u), u))
            if any_small:  # ... or the better of x_t ± s·v_t/‖v_t‖ (‖v_t‖ < s)
                assert dirs is not None
                self._exploit(live, bufs, dirs, small, closure)
        self._v_zero = every_nce
        jin.t += 1
        self._iterations += 1
        return self._result(loss0)

    def _exploit(
        self,
        live: list[Live],
        bufs: list[list[tuple[torch.Tensor, torch.Tensor]]],
        dirs: list[list[torch.Tensor]],
        small: torch.Tensor,
        closure: Closure,
    ) -> None:
        """NCE with ‖v_t‖ < s: move the runs in ``small`` to the better of x_t ± s·v_t/‖v_t‖
        (Algorithm 3), two more closure calls."""
        s_len = float(self.param_groups[0]["s"])

        def place(sign: float) -> None:
            for lv, bs, ds in zip(live, bufs, dirs, strict=True):
                for x, (_, xb), d in zip(lv.xs, bs, ds, strict=True):
                    cand = xb + (sign * s_len) * d
                    x.copy_(torch.where(self._per_run(small, x), cand, x))

        place(1.0)
        f_plus = self._evaluate(closure)
        place(-1.0)
        f_minus = self._evaluate(closure)
        plus = small & (f_plus < f_minus)
        for lv, bs, ds in zip(live, bufs, dirs, strict=True):
            for x, (_, xb), d in zip(lv.xs, bs, ds, strict=True):
                x.copy_(torch.where(self._per_run(plus, x), xb + s_len * d, x))
