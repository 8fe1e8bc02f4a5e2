"""Noisy gradient descent: Ge, Huang, Jin, Yuan 2015 and annealed Gaussian noise."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from ..errors import ConfigError
from .base import Closure, ParamsT, SaddleOptimizer, check_hyper
from .perturbations import gaussian, uniform_sphere

__all__ = ["NoisyGD"]

Noise = Literal["sphere", "gaussian"]


class NoisyGD(SaddleOptimizer):
    """Gradient descent with noise added to every gradient: w_{t+1} = w_t − η(∇f(w_t) + n_t).

    - ``noise="sphere"`` (default): n_t uniform on the sphere of radius ``radius`` over the
      whole group (Ge, Huang, Jin, Yuan 2015, "Escaping From Saddle Points — Online
      Stochastic Gradient for Tensor Decomposition", COLT, Algorithm 1 with unit-sphere noise
      scaled by ``radius``).
    - ``noise="gaussian"``: n_t ~ N(0, σ_t² I) with the annealed variance
      σ_t² = η₀/(1 + t)^γ, t = 0, 1, … (Neelakantan et al. 2015, "Adding Gradient Noise
      Improves Learning for Very Deep Networks"; the schedule of ``optax.noisy_sgd``),
      defaults η₀ = ``eta0`` = 0.01, γ = ``gamma`` = 0.55.

    The gradient may be stochastic (a minibatch gradient): the closure is optional and
    :meth:`step` uses whatever is in ``.grad``. Every step counts as one perturbation.

    >>> x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    >>> opt = NoisyGD([x], lr=0.1, radius=0.5, seed=0)
    >>> x.grad = torch.zeros(3, dtype=torch.float64)  # at a critical point...
    >>> _ = opt.step()
    >>> round(float(x.detach().norm()), 6)  # ...the step is η·radius long
    0.05
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        noise: Noise = "sphere",
        radius: float = 1e-2,
        eta0: float = 0.01,
        gamma: float = 0.55,
        *,
        batched: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        defaults = {"lr": lr, "noise": noise, "radius": radius, "eta0": eta0, "gamma": gamma}
        super().__init__(params, defaults, batched=batched, seed=seed, generator=generator)

    def _validate_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_hyper("lr", group["lr"])
        if group["noise"] not in ("sphere", "gaussian"):
            raise ConfigError(f"noise must be 'sphere' or 'gaussian', got {group['noise']!r}")
        group["radius"] = check_hyper("radius", group["radius"], allow_zero=True)
        group["eta0"] = check_hyper("eta0", group["eta0"], allow_zero=True)
        group["gamma"] = check_hyper("gamma", group["gamma"], allow_zero=True)

    def _init_group_state(self, group: dict[str, Any]) -> dict[str, Any]:
        state = super()._init_group_state(group)
        state["t"] = 0
        return state

    def noise_std(self, group: int = 0) -> float:
        """The Gaussian noise's σ_t = √(η₀/(1 + t)^γ) for the next step of a group."""
        g, t = self.param_groups[group], self.group_states[group]["t"]
        return math.sqrt(g["eta0"] / (1 + t) ** g["gamma"])

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One noisy step; returns the loss before the step when a closure is given."""
        loss = self._evaluate(closure) if closure is not None else None
        sqs = [self._sq_norms(self._grads(g)) for g in self.param_groups]
        finite = torch.stack([s.sum() for s in sqs]).isfinite().all()
        if loss is not None:
            finite = finite & loss.isfinite().all()
        if not bool(finite):
            self._raise_divergence(loss, sqs)
        for k, (group, st) in enumerate(zip(self.param_groups, self.group_states, strict=True)):
            params, grads = group["params"], self._grads(group)
            if group["noise"] == "sphere":
                noise = uniform_sphere(
                    grads, group["radius"], generator=self.generator, batched=self.batched
                )
            else:
                noise = gaussian(grads, self.noise_std(k), generator=self.generator)
            torch._foreach_add_(noise, grads)
            torch._foreach_add_(params, noise, alpha=-group["lr"])
            st["t"] += 1
            st["perturbations"] += 1
        self._iterations += 1
        if loss is None:
            return None
        return loss if self.batched else loss[0]
