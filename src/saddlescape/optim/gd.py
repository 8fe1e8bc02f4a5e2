"""Full-gradient descent, the baseline every saddle-escaping method is compared with."""

from __future__ import annotations

import torch

from .base import Closure, ParamsT, SaddleOptimizer, eager_step

__all__ = ["GD"]


class GD(SaddleOptimizer):
    """Gradient descent x_{t+1} = x_t − η∇f(x_t).

    With η = 1/ℓ on an ℓ-smooth f, the descent lemma gives
    f(x_{t+1}) ≤ f(x_t) − ‖∇f(x_t)‖²/(2ℓ), hence an ε-first-order stationary point within
    ⌈2ℓ(f(x0) − f*)/ε²⌉ iterations (Nesterov 2004, §1.2.3). From a random start it converges
    to a local minimizer almost surely (Lee, Simchowitz, Jordan, Recht 2016), but it never
    leaves a point where the gradient is exactly zero, and near saddles it can take
    exponentially long (Du et al. 2017).

    The closure is optional: without it :meth:`step` uses the gradients already in ``.grad``
    (parameters whose ``.grad`` is None are skipped, as in ``torch.optim.SGD``). Each group
    has its own ``lr``. Non-finite gradients (or losses, with a closure) raise
    :class:`~saddlescape.errors.DivergenceError`.

    >>> x = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    >>> opt = GD([x], lr=0.25)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = x.square().sum()
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(3):
    ...     _ = opt.step(closure)
    >>> x.detach()  # each step multiplies x by 1 − 2η = 0.5
    tensor([ 0.3750, -0.5000], dtype=torch.float64)
    >>> opt.iterations, opt.grad_evals
    (3, 3)
    """

    #: GD draws no random numbers, so building it takes nothing from torch's global
    #: generator (swapping it for ``torch.optim.SGD`` changes no data order)
    draws_noise = False

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        *,
        batched: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(params, {"lr": lr}, batched=batched, seed=seed, generator=generator)

    @eager_step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One gradient step; returns the loss at the point before the step (if a closure)."""
        loss = self._evaluate(closure) if closure is not None else None
        live = self._live()
        if not live:
            return self._nothing_to_do(loss)
        self._checked(loss, self._sq_norm([g for lv in live for g in lv.grads]))
        self._descend(live)
        self._iterations += 1
        return None if loss is None else self._result(loss)
