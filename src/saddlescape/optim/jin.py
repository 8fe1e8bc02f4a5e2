"""The perturbation rule of Jin, Ge, Netrapalli, Kakade, Jordan 2017 ("How to Escape
Saddle Points Efficiently", ICML, Algorithm 2) as one reusable piece of state::

    if ‖∇f(x_t)‖ ≤ g_thres and t − t_noise > t_thres:
        x̃ ← x_t, t_noise ← t, x_t ← x̃ + ξ,  ξ uniform in B(r)
    if t − t_noise = t_thres and f(x_t) − f(x̃) > −f_thres:  return x̃

x is the whole parameter vector (every parameter with a gradient, across all groups), so
there is one clock, one x̃ and one f(x̃) per run. f(x̃) is kept in float32 or wider (the
loss's own precision at least): with bfloat16 parameters and a float32 loss, storing it in
the parameter dtype would let rounding (2⁻⁸ relative) decide the stop test.

Used by :class:`~saddlescape.optim.PerturbedGD`, :class:`~saddlescape.optim.PerturbedAGD`
(the clock only; Jin, Netrapalli, Jordan 2018 perturb by the same rule) and the
:class:`~saddlescape.optim.Perturbed` wrapper.
"""

from __future__ import annotations

from typing import Any

import torch

from .perturbations import wide_dtype

__all__ = ["JinState"]


class JinState:
    """Clock ``t``, step of the last perturbation ``t_noise``, x̃, f(x̃), the stop flag and
    the perturbation count, for ``runs`` independent runs.

    ``x_tilde`` maps a parameter to its value at the last perturbation; ``restore`` puts
    those values back for the runs in a mask.
    """

    def __init__(self, runs: int, interval: int, device: torch.device) -> None:
        self.t = 0
        self.t_noise = torch.full((runs,), -int(interval) - 1, dtype=torch.long, device=device)
        self.count = torch.zeros(runs, dtype=torch.long, device=device)
        self.converged = torch.zeros(runs, dtype=torch.bool, device=device)
        self.any_converged = False
        self.f_tilde: torch.Tensor | None = None
        self.x_tilde: dict[torch.Tensor, torch.Tensor] = {}

    # ------------------------------------------------------------------ the two tests
    def perturb_due(
        self, sq_norm: torch.Tensor, grad_threshold: float, interval: int
    ) -> torch.Tensor:
        """Runs with ‖∇f‖² ≤ g_thres², more than t_thres steps since the last perturbation
        and not stopped."""
        since = self.t - self.t_noise
        due = (sq_norm <= float(grad_threshold) ** 2) & (since > interval)
        return due & ~self.converged if self.any_converged else due

    def stop_due(self, loss: torch.Tensor, f_threshold: float, interval: int) -> torch.Tensor:
        """Runs where t − t_noise = t_thres and f(x_t) − f(x̃) > −f_thres."""
        since = self.t - self.t_noise
        f_tilde = self.f_tilde if self.f_tilde is not None else torch.zeros_like(since)
        wide = torch.promote_types(wide_dtype(loss.dtype), f_tilde.dtype)
        gain = loss.to(wide) - f_tilde.to(wide)
        return (since == interval) & (gain > -float(f_threshold)) & ~self.converged

    # ------------------------------------------------------------------ updates
    def record(
        self,
        mask: torch.Tensor,
        *,
        params: list[torch.Tensor] | None = None,
        loss: torch.Tensor | None = None,
        batched: bool = False,
    ) -> None:
        """t_noise ← t and count += 1 for the runs in ``mask``; with ``params`` and ``loss``
        also x̃ ← x and f(x̃) ← f(x). Unbatched, x̃ is then exactly this x (a parameter
        that has no gradient now is not part of it)."""
        self.t_noise = torch.where(mask, self.t, self.t_noise)
        self.count += mask
        if params is None or loss is None:
            return
        if not batched:
            self.x_tilde = {p: p.detach().clone() for p in params}
        else:
            for p in params:
                m = mask.reshape([-1] + [1] * (p.ndim - 1))
                old = self.x_tilde.get(p)
                self.x_tilde[p] = p.detach().clone() if old is None else torch.where(m, p, old)
        wide = wide_dtype(loss.dtype)
        if self.f_tilde is None:
            self.f_tilde = torch.zeros(loss.shape, dtype=wide, device=loss.device)
        wide = torch.promote_types(wide, self.f_tilde.dtype)
        self.f_tilde = torch.where(mask, loss.to(wide), self.f_tilde.to(wide))

    def restore(self, mask: torch.Tensor, *, batched: bool = False) -> None:
        """x ← x̃ for the runs in ``mask`` and mark them stopped (unbatched, ``mask`` has
        one entry and is known to be set)."""
        for p, xt in self.x_tilde.items():
            if batched:
                p.copy_(torch.where(mask.reshape([-1] + [1] * (p.ndim - 1)), xt, p))
            else:
                p.copy_(xt)
        self.converged |= mask
        self.any_converged = True

    # ------------------------------------------------------------------ state dict
    def state(self, index: dict[int, int]) -> dict[str, Any]:
        """A picklable dict; x̃ keyed by the parameter's number in ``index``."""
        return {
            "t": self.t,
            "t_noise": self.t_noise,
            "count": self.count,
            "converged": self.converged,
            "any_converged": self.any_converged,
            "f_tilde": self.f_tilde,
            "x_tilde": {index[id(p)]: v for p, v in self.x_tilde.items() if id(p) in index},
        }

    def load(self, state: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Inverse of :meth:`state`; ``params[i]`` is parameter number i."""
        self.t = int(state["t"])
        self.t_noise = state["t_noise"]
        self.count = state["count"]
        self.converged = state["converged"]
        self.any_converged = bool(state["any_converged"])
        self.f_tilde = state["f_tilde"]
        self.x_tilde = {
            params[i]: v.to(device=params[i].device, dtype=params[i].dtype)
            for i, v in state["x_tilde"].items()
        }
