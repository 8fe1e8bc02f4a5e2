"""Jin-style perturbations for *any* torch optimizer: :class:`Perturbed`.

``Perturbed(torch.optim.SGD(params, lr=0.1, momentum=0.9), radius=1e-2)`` runs the inner
optimizer unchanged and adds the perturbation rule and (optionally) the stop test of Jin,
Ge, Netrapalli, Kakade, Jordan 2017 ("How to Escape Saddle Points Efficiently", ICML,
Algorithm 2) on the whole parameter vector::

    if ‖∇f(x_t)‖ ≤ g_thres and t − t_noise > t_thres:
        x̃ ← x_t, t_noise ← t, x_t ← x̃ + ξ,  ξ uniform in B(r)
    if t − t_noise = t_thres and f(x_t) − f(x̃) > −f_thres:  return x̃
    x_{t+1} ← inner optimizer's step from x_t

This is the composition optax calls ``chain``: the noise is a small piece that any update
rule can carry. An optimizer whose update vanishes at a zero gradient (SGD with momentum,
Adam, ...) stays forever at an exact saddle; wrapped, it leaves it.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.optim import Optimizer

from ..errors import ConfigError, DivergenceError, check_int
from .base import Closure, _sq_norm, check_hyper, check_hyper_int, eager_step, real_view
from .jin import JinState
from .perturbations import uniform_ball

__all__ = ["Perturbed"]


class Perturbed(Optimizer):
    """Add Jin et al. 2017's perturbations and stop test to a torch optimizer.

    Args:
        optimizer: the inner optimizer (any :class:`torch.optim.Optimizer` whose ``step``
            works without a closure, i.e. not LBFGS). The wrapper shares its
            ``param_groups`` and ``state``, so LR schedulers, ``zero_grad`` and
            ``add_param_group`` act on the inner optimizer.
        radius: r, radius of the perturbation ball.
        grad_threshold: g_thres: perturb when ‖∇f‖ ≤ g_thres (norm over every parameter
            that has a gradient, all groups together, accumulated in float32 or wider) ...
        interval: t_thres: ... and no perturbation happened in the last t_thres steps.
        f_threshold: f_thres of the stop test (needs a closure that returns the loss), or
            None (default) for no stop test.
        seed, generator: the perturbations' own random stream (its state is in
            :meth:`state_dict`).

    ``step(closure)``: with a closure, the loss and gradient are evaluated first and, after
    a perturbation, once more at the perturbed point (as in Algorithm 2); the inner
    optimizer then steps from the gradients in ``.grad``. Without a closure the gradients
    already in ``.grad`` decide, and after a perturbation the inner step uses the gradient
    of the unperturbed point (x_{t+1} = x_t + ξ − update(∇f(x_t))). After the stop test
    fires the parameters stay at x̃ and :attr:`converged` is true.

    >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # the saddle of lee-2d
    >>> opt = Perturbed(torch.optim.Adam([x], lr=0.05), radius=1e-2, seed=0)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = 0.5 * x[0] ** 2 + 0.25 * x[1] ** 4 - 0.5 * x[1] ** 2
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(300):
    ...     _ = opt.step(closure)
    >>> round(abs(x[1].item()), 1), opt.perturbations >= 1  # the minimum (0, ±1)
    (1.0, True)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        radius: float = 1e-2,
        grad_threshold: float = 1e-3,
        interval: int = 50,
        f_threshold: float | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if isinstance(optimizer, torch.optim.LBFGS) or getattr(
            optimizer, "requires_closure", False
        ):
            raise ConfigError(
                f"optimizer: Perturbed steps the inner optimizer without a closure; "
                f"{type(optimizer).__name__} needs one"
            )
        self.radius = check_hyper("radius", radius)
        self.grad_threshold = check_hyper("grad_threshold", grad_threshold, allow_zero=True)
        self.interval = check_hyper_int("interval", interval, minimum=0)
        self.f_threshold = (
            None
            if f_threshold is None
            else check_hyper("f_threshold", f_threshold, allow_zero=True)
        )
        if generator is not None and seed is not None:
            raise ConfigError("give either seed or generator, not both")
        # torch's Optimizer machinery (hooks, profiling) on an empty group, then the inner
        # optimizer's groups and state in its place
        super().__init__([{"params": []}], {})
        self.optimizer = optimizer
        self._sync()
        device = self._device()
        if generator is None:
            if seed is None:
                seed = int(torch.randint(0, 2**62, (1,)).item())
            seed = check_int("seed", seed)
            generator = torch.Generator(device=device).manual_seed(seed)
        elif not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {generator!r}")
        self.seed = seed
        self.generator = generator
        self._jin = JinState(1, self.interval, device)
        self._grad_evals = 0

    def _sync(self) -> None:
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state
        self.defaults = self.optimizer.defaults

    def _device(self) -> torch.device:
        for group in self.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    def __repr__(self) -> str:
        f = "" if self.f_threshold is None else f", f_threshold={self.f_threshold}"
        return (
            f"Perturbed({self.optimizer!r}, radius={self.radius}, grad_threshold="
            f"{self.grad_threshold}, interval={self.interval}{f})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """Everything (inner optimizer, generator, clock, x̃) travels with deepcopy and
        pickle; hooks are left out, as torch does."""
        state = super().__getstate__()
        for key, value in self.__dict__.items():
            if not key.startswith("_optimizer_"):
                state.setdefault(key, value)
        return state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "optimizer"):  # torch's __init__ adding its empty group
            super().add_param_group(param_group)
            return
        self.optimizer.add_param_group(param_group)

    # ------------------------------------------------------------------ counters
    @property
    def perturbations(self) -> int:
        """Perturbations made."""
        return int(self._jin.count.sum())

    @property
    def converged(self) -> bool:
        """Whether the stop test returned x̃."""
        return bool(self._jin.converged.all())

    @property
    def iterations(self) -> int:
        """Steps taken (calls of :meth:`step` after which the inner optimizer stepped)."""
        return self._jin.t

    @property
    def grad_evals(self) -> int:
        """Closure calls made by :meth:`step`."""
        return self._grad_evals

    @property
    def counters(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "grad_evals": self.grad_evals,
            "perturbations": self.perturbations,
        }

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict plus ``"perturbed"``: RNG state, clock, x̃ and
        f(x̃), counters."""
        for pre in self._optimizer_state_dict_pre_hooks.values():  # the wrapper's own hooks
            pre(self)
        sd = self.optimizer.state_dict()
        params = [p for g in self.param_groups for p in g["params"]]
        index = {id(p): i for i, p in enumerate(params)}
        jin = {
            k: v.detach().clone() if isinstance(v, torch.Tensor) else v
            for k, v in self._jin.state(index).items()
        }
        jin["x_tilde"] = {i: v.detach().clone() for i, v in jin["x_tilde"].items()}
        sd["perturbed"] = {
            "rng_state": self.generator.get_state().clone(),
            "seed": self.seed,
            "grad_evals": self._grad_evals,
            "jin": jin,
        }
        for post in self._optimizer_state_dict_post_hooks.values():
            out = post(self, sd)
            sd = sd if out is None else out
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for pre in self._optimizer_load_state_dict_pre_hooks.values():
            out = pre(self, state_dict)
            state_dict = state_dict if out is None else out
        extra = state_dict.get("perturbed")
        self.optimizer.load_state_dict({k: v for k, v in state_dict.items() if k != "perturbed"})
        self._sync()  # torch replaces the inner optimizer's groups and state objects
        if extra is not None:
            self._load_own(extra)
        for post in self._optimizer_load_state_dict_post_hooks.values():
            post(self)

    def _load_own(self, extra: dict[str, Any]) -> None:
        self.generator.set_state(extra["rng_state"].clone())
        self.seed = extra["seed"]
        self._grad_evals = int(extra["grad_evals"])
        device = self._device()
        jin = {
            k: v.detach().clone().to(device) if isinstance(v, torch.Tensor) else v
            for k, v in extra["jin"].items()
        }
        jin["x_tilde"] = {i: v.detach().clone() for i, v in extra["jin"]["x_tilde"].items()}
        self._jin.load(jin, [p for g in self.param_groups for p in g["params"]])

    # ------------------------------------------------------------------ step
    def _evaluate(self, closure: Closure) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        self._grad_evals += 1
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ConfigError("the closure must return the scalar loss as a tensor")
        return loss.detach().reshape(1)

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """Read by ``torch.amp.GradScaler.step``: with a stop test the step needs a closure,
        whose gradients a scaler cannot unscale, so the scaler hands the step over (setting
        ``found_inf``) and :meth:`step` refuses it by name; without one the scaler unscales
        ``.grad`` and steps as for the inner optimizer."""
        return self.f_threshold is not None

    @eager_step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """Perturb if due (and re-evaluate), then one step of the inner optimizer; returns
        the loss at x_t before any perturbation (with a closure)."""
        if "found_inf" in self.__dict__:  # set by GradScaler.step just before calling step()
            self.__dict__.pop("found_inf")
            self.__dict__.pop("grad_scale", None)
            raise ConfigError(
                "f_threshold: Perturbed's stop test needs step(closure), and under "
                "torch.amp.GradScaler the closure's gradients stay multiplied by the scale; "
                "use f_threshold=None with a scaler, or call opt.step(closure) without one"
            )
        if self.f_threshold is not None and closure is None:
            raise ConfigError(
                "f_threshold: the stop test needs the loss; call step(closure) with a "
                "closure that returns it"
            )
        loss0 = loss = None if closure is None else self._evaluate(closure)
        jin = self._jin
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            warnings.warn(
                "Perturbed.step(): no parameter has a gradient (.grad is None everywhere), "
                "so the step did nothing",
                UserWarning,
                stacklevel=2,
            )
            return None if loss0 is None else loss0[0]
        if any(p.grad.is_sparse for p in params):  # type: ignore[union-attr]
            raise ConfigError("Perturbed does not support sparse gradients")
        sq = _sq_norm([real_view(p.grad) for p in params]).reshape(1)  # type: ignore[arg-type]
        perturb = jin.perturb_due(sq, self.grad_threshold, self.interval)
        stop = None
        finite = sq.isfinite().all()
        if self.f_threshold is not None and loss is not None:
            stop = jin.stop_due(loss, self.f_threshold, self.interval)
            perturb = perturb & ~stop
            finite = finite & loss.isfinite().all()
        flags = [finite, perturb.any()] + ([] if stop is None else [stop.any()])
        values = torch.stack(flags).tolist()
        if not values[0]:
            raise DivergenceError(
                f"Perturbed: non-finite loss or gradient (gradient norm {float(sq.sqrt())}) "
                f"at step {jin.t}"
            )
        if stop is not None and values[2]:
            jin.restore(stop)
        if jin.any_converged:  # stopped at x̃: nothing moves any more
            return None if loss0 is None else loss0[0]
        if values[1]:
            if loss is None:  # no stop test without a closure: f(x̃) is not needed
                loss = torch.zeros(1, device=sq.device)
            jin.record(perturb, params=params, loss=loss)
            xs = [real_view(p) for p in params]
            xi = uniform_ball(xs, self.radius, generator=self.generator)
            for x, e in zip(xs, xi, strict=True):
                x.add_(e)
            if closure is not None:  # the inner step uses ∇f at the perturbed point
                self._evaluate(closure)
        self.optimizer.step()
        jin.t += 1
        return None if loss0 is None else loss0[0]
