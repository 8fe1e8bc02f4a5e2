"""Noisy gradient descent: Ge, Huang, Jin, Yuan 2015 and annealed Gaussian noise."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from ..errors import ConfigError
from .base import Closure, ParamsT, SaddleOptimizer, check_hyper, eager_step
from .perturbations import gaussian

__all__ = ["NoisyGD"]

Noise = Literal["sphere", "gaussian"]


class NoisyGD(SaddleOptimizer):
    """Gradient descent with noise added to every gradient: w_{t+1} = w_t − η(∇f(w_t) + n_t).

    - ``noise="sphere"`` (default): n_t uniform on the sphere of radius ``radius`` over the
      whole parameter vector, all groups together (Ge, Huang, Jin, Yuan 2015, "Escaping From
      Saddle Points — Online Stochastic Gradient for Tensor Decomposition", COLT,
      Algorithm 1). The paper uses the *unit* sphere; the default ``radius`` here is 1e-2
      (noise of norm 0.01, the size THEORY.md's dimension study uses), because a unit-norm
      kick at every step dominates the gradient of most networks' losses; pass
      ``radius=1.0`` for the paper's noise. Groups may carry their own ``radius``: the
      draw is then uniform on the unit sphere, each group's block scaled by its radius.
    - ``noise="gaussian"``: n_t ~ N(0, σ_t² I) with the annealed variance
      σ_t² = η₀/(1 + t)^γ, t = 0, 1, … (Neelakantan et al. 2015, "Adding Gradient Noise
      Improves Learning for Very Deep Networks"; the schedule of ``optax.noisy_sgd``),
      defaults η₀ = ``eta0`` = 0.01, γ = ``gamma`` = 0.55.

    The gradient may be stochastic (a minibatch gradient): the closure is optional and
    :meth:`step` uses whatever is in ``.grad`` (parameters whose ``.grad`` is None are
    skipped and get no noise). Every step counts as one perturbation. ``noise``, ``eta0``
    and ``gamma`` must be the same in every group; noise is drawn in float32 or wider.

    >>> x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    >>> opt = NoisyGD([x], lr=0.1, radius=0.5, seed=0)
    >>> x.grad = torch.zeros(3, dtype=torch.float64)  # at a critical point...
    >>> _ = opt.step()
    >>> round(float(x.detach().norm()), 6)  # ...the step is η·radius long
    0.05
    """

    shared_hyperparameters = ("noise", "eta0", "gamma")

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

    def _init_state(self, device: torch.device) -> None:
        self._t = 0
        self._count = torch.zeros(self.runs or 1, dtype=torch.long, device=device)

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        return {"t": self._t, "count": self._count}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        self._t = int(extra["t"])
        self._count = extra["count"]

    def _perturbation_counts(self) -> torch.Tensor:
        return self._count

    def noise_std(self, group: int = 0) -> float:
        """The Gaussian noise's σ_t = √(η₀/(1 + t)^γ) for the next step (t is the global
        step count; η₀ and γ are the same in every group)."""
        g = self.param_groups[group]
        return math.sqrt(g["eta0"] / (1 + self._t) ** g["gamma"])

    @eager_step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One noisy step; returns the loss before the step when a closure is given."""
        loss = self._evaluate(closure) if closure is not None else None
        live = self._live()
        if not live:
            return self._nothing_to_do(loss)
        grads = [g for lv in live for g in lv.grads]
        self._checked(loss, self._sq_norm(grads))
        hp = self.param_groups[0]
        if hp["noise"] == "sphere":  # one draw over the whole vector
            radii = [float(lv.group["radius"]) for lv in live]
            noise = self._draw(live, radii, grads, sphere=True)
        else:
            noise = gaussian(grads, self.noise_std(), generator=self.generator)
        k = 0
        for lv in live:
            for x, g in zip(lv.xs, lv.grads, strict=True):
                n = noise[k]  # float32 or wider: g + n is formed there, rounded once
                x.add_(n.add_(g), alpha=-lv.group["lr"])
                k += 1
        self._t += 1
        self._count += 1
        self._iterations += 1
        return None if loss is None else self._result(loss)
