"""Perturbed accelerated gradient descent with negative-curvature exploitation:
Jin, Netrapalli, Jordan 2018, "Accelerated Gradient Descent Escapes Saddle Points Faster
than Gradient Descent", COLT (arXiv 1711.10456), Algorithms 2 and 3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from .base import Closure, ParamsT, SaddleOptimizer, _theory_inputs, check_hyper

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

    The NCE test is applied only where v_t ≠ 0 (at v_t = 0 it holds with equality and δ is
    undefined; the step is then a plain gradient step). Being a second-order difference it
    is decided by rounding when ‖x_t − y_t‖ ≤ √ulp·(1 + ‖x_t‖) or its margin is under a few
    ulps of |f|: there it is skipped (otherwise it fires near minima, where ‖v_t‖ → 0).
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

    def _init_group_state(self, group: dict[str, Any]) -> dict[str, Any]:
        p = group["params"][0]
        b = self.runs or 1
        return {
            **self._clock_state(group, "t_perturb"),
            "nce": torch.zeros(b, dtype=torch.long, device=p.device),
            "v_zero": True,
        }

    @property
    def nce_steps(self) -> int | torch.Tensor:
        """How often negative-curvature exploitation fired (per run in batched mode)."""
        total = sum(s["nce"] for s in self.group_states)
        return total.clone() if self.batched else int(total.sum())

    def _buffers(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.state[p]
        if "v" not in state:
            state["v"] = torch.zeros_like(p)
            state["x"] = torch.empty_like(p)
        return state["v"], state["x"]

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        """One PAGD iteration; returns f(x_t) before any perturbation."""
        closure = self._need_closure(closure)
        loss0 = loss_x = self._evaluate(closure)
        groups = list(zip(self.param_groups, self.group_states, strict=True))
        flags, sqs, masks = [loss_x.isfinite().all()], [], []
        for group, st in groups:
            sq = self._sq_norms(self._grads(group))
            mask = self._perturb_due(group, sq, st["t"] - st["t_perturb"])
            sqs.append(sq)
            masks.append(mask)
            flags += [sq.isfinite().all(), mask.any()]
        values = torch.stack(flags).tolist()
        if not (values[0] and all(values[1::2])):
            self._raise_divergence(loss_x, sqs)
        if any(values[2::2]):
            for k, (group, st) in enumerate(groups):
                if values[2 + 2 * k]:
                    mask = masks[k]
                    self._add_ball_noise(group["params"], float(group["radius"]), mask)
                    st["t_perturb"] = torch.where(mask, st["t"], st["t_perturb"])
                    st["perturbations"] += mask
            loss_x = self._evaluate(closure)
            self._check_finite(loss_x)
        # x_t into the buffer, parameters to y_t = x_t + (1 − θ)v_t
        need_y = not all(st["v_zero"] for st in self.group_states)
        for group in self.param_groups:
            for p in group["params"]:
                v, x = self._buffers(p)
                x.copy_(p)
                if need_y:
                    p.add_(v, alpha=1 - group["theta"])
        if need_y:
            loss_y = self._evaluate(closure)
            self._check_finite(loss_y)
        else:
            loss_y = loss_x
        # the NCE test, per run
        flags, nces, smalls, vnorms = [], [], [], []
        for group, _ in groups:
            params, grads = group["params"], self._grads(group)
            vs = [self.state[p]["v"] for p in params]
            b = self.runs if self.batched else 1
            inner = sum(
                (g.reshape(b, -1) * v.reshape(b, -1)).sum(1) for g, v in zip(grads, vs, strict=True)
            )
            vsq = self._sq_norms(vs)
            one_m = 1 - group["theta"]
            # x_t − y_t = −(1 − θ)v_t
            rhs = loss_y - one_m * inner - group["gamma"] / 2 * one_m**2 * vsq
            # The test is a second-order difference: rounding decides it when ‖x_t − y_t‖ is
            # below √ulp of ‖x_t‖ or its margin is below a few ulps of |f| (near a minimum).
            ulp = torch.finfo(loss_x.dtype).eps
            tol = 8 * ulp * (loss_x.abs() + loss_y.abs())
            xsq = self._sq_norms([self.state[p]["x"] for p in params])
            resolved = one_m**2 * vsq > ulp * (1 + xsq)
            nce = (loss_x <= rhs - tol) & resolved
            small = nce & (vsq < group["s"] ** 2)
            nces.append(nce)
            smalls.append(small)
            vnorms.append(vsq.sqrt())
            flags += [nce.any(), small.any(), nce.all()]  # v_{t+1} = 0 iff NCE
        values = torch.stack(flags).tolist()
        for k, (group, st) in enumerate(groups):
            nce, lr = nces[k], group["lr"]
            any_nce, all_zero = values[3 * k], values[3 * k + 2]
            for p, g in zip(group["params"], self._grads(group), strict=True):
                v, x = self._buffers(p)
                p.add_(g, alpha=-lr)  # x_{t+1} = y_t − η∇f(y_t)
                if any_nce:
                    m = self._per_run(nce, p)
                    if values[3 * k + 1]:  # keep the direction of v_t for δ
                        self.state[p]["nce_dir"] = v / self._per_run(vnorms[k], p).clamp_min(
                            torch.finfo(v.dtype).tiny
                        )
                    p.copy_(torch.where(m, x, p))
                    torch.sub(p, x, out=v)
                else:
                    torch.sub(p, x, out=v)  # v_{t+1} = x_{t+1} − x_t
            st["v_zero"] = bool(all_zero)
            st["nce"] += nce
            st["t"] += 1
        if any(values[1::3]):
            self._exploit(groups, smalls, [values[3 * k + 1] for k in range(len(groups))], closure)
        self._iterations += 1
        return loss0 if self.batched else loss0[0]

    def _exploit(
        self,
        groups: list[tuple[dict[str, Any], dict[str, Any]]],
        smalls: list[torch.Tensor],
        any_small: list[bool],
        closure: Closure,
    ) -> None:
        """NCE with ‖v_t‖ < s: move to the better of x_t ± s·v_t/‖v_t‖ (Algorithm 3)."""
        todo = [(g, m) for (g, _), m, a in zip(groups, smalls, any_small, strict=True) if a]
        for sign in (1.0, -1.0):
            for group, m in todo:
                for p in group["params"]:
                    x, d = self.state[p]["x"], self.state[p]["nce_dir"]
                    cand = x + (sign * group["s"]) * d
                    p.copy_(torch.where(self._per_run(m, p), cand, p))
            if sign > 0:
                f_plus = self._evaluate(closure)
        f_minus = self._evaluate(closure)
        better_plus = f_plus < f_minus
        for group, m in todo:
            for p in group["params"]:
                x, d = self.state[p]["x"], self.state[p]["nce_dir"]
                pick = self._per_run(m & better_plus, p)
                p.copy_(torch.where(pick, x + group["s"] * d, p))
                del self.state[p]["nce_dir"]
