"""Shared machinery of saddlescape's optimizers.

:class:`SaddleOptimizer` is a :class:`torch.optim.Optimizer` that adds what every
saddle-escaping method needs:

- a private random stream (a :class:`torch.Generator` seeded from ``seed``, or the user's
  ``generator``) whose state travels in :meth:`~SaddleOptimizer.state_dict`, so a run
  resumed from a checkpoint continues bit-identically;
- per-group state that is not tied to one parameter (the perturbation clock, the point
  x̃ before the last perturbation, the stop test) kept in ``self.group_states`` and saved
  with the state dict (``torch.optim`` would cast integer state to the parameter dtype);
- a *batched* mode: with ``batched=True`` every parameter of shape ``(B, ...)`` holds B
  independent runs; norms, clocks and stop tests are per run and fully vectorized. The
  closure must then call ``backward`` on the *sum* of the per-run losses and return the
  per-run losses, shape ``(B,)``;
- counters (:attr:`iterations`, :attr:`grad_evals`, :attr:`perturbations`) and a
  finiteness check that raises :class:`~saddlescape.errors.DivergenceError` naming the
  step and the value, with one host synchronization per step.

Subclasses implement :meth:`step` with the helpers below and :meth:`_validate_group`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from ..errors import ConfigError, DivergenceError, check_int, check_positive

Closure = Callable[[], torch.Tensor]
ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

__all__ = ["Closure", "ParamsT", "SaddleOptimizer", "check_hyper", "check_hyper_int"]


def check_hyper(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A real hyperparameter as a float (``> 0``, or ``>= 0`` with ``allow_zero``).

    Unlike a bare ``float(value)`` it rejects bools and strings (``lr=True`` or
    ``lr="0.1"`` are mistakes, not numbers), raising :class:`ConfigError` (a ValueError)
    naming ``name``. A one-element real tensor is read as its value.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()  # a complex value is then rejected below
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    return check_positive(name, value, allow_zero=allow_zero)


def check_hyper_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """An integer hyperparameter ``>= minimum``; rejects bools and strings like
    :func:`check_hyper` (a float with an integer value is accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return check_int(name, value, minimum=minimum)


def _theory_inputs(
    params: list[Any],
    batched: bool,
    smoothness: float,
    hessian_lipschitz: float,
    eps: float,
    delta: float,
    f_gap: float,
    c: float,
) -> tuple[int, float, float, float, float, float, float]:
    """Checked constants of a ``from_theory`` (ℓ, ρ, ε, δ ∈ (0, 1), Δf, c) and the problem
    dimension d: the number of parameters (per run when ``batched``)."""
    ell = check_hyper("smoothness", smoothness)
    rho = check_hyper("hessian_lipschitz", hessian_lipschitz)
    eps = check_hyper("eps", eps)
    delta = check_hyper("delta", delta)
    if delta >= 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
    f_gap = check_hyper("f_gap", f_gap)
    c = check_hyper("c", c)
    dim = 0
    for item in params:
        ps = item["params"] if isinstance(item, dict) else [item]
        ps = [ps] if isinstance(ps, torch.Tensor) else ps
        for p in ps:
            n = p.numel()
            dim += n // p.shape[0] if batched and p.ndim else n
    return dim, ell, rho, eps, delta, f_gap, c


class SaddleOptimizer(Optimizer):
    """Base class: RNG in the state dict, batched runs, counters, divergence checks.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer.
        defaults: default hyperparameters of a group.
        batched: if true, the first dimension of every parameter indexes independent runs
            (all parameters must share it); the closure returns per-run losses ``(B,)``.
        seed: seed of the optimizer's own :class:`torch.Generator` (default: drawn from
            torch's global generator, so ``torch.manual_seed`` makes runs repeatable).
        generator: use this generator instead (exclusive with ``seed``).
    """

    #: whether :meth:`step` needs a closure (it re-evaluates f, like LBFGS)
    requires_closure: ClassVar[bool] = False

    def __init__(
        self,
        params: ParamsT,
        defaults: dict[str, Any],
        *,
        batched: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.batched = bool(batched)
        self.runs: int | None = None
        super().__init__(params, defaults)
        device = self.param_groups[0]["params"][0].device
        if generator is not None and seed is not None:
            raise ConfigError("give either seed or generator, not both")
        if generator is None:
            if seed is None:
                seed = int(torch.randint(0, 2**62, (1,)).item())
            seed = check_int("seed", seed)
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        elif not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {generator!r}")
        self.seed = seed
        self.generator = generator
        self._iterations = 0
        self._grad_evals = 0
        self.group_states: list[dict[str, Any]] = [
            self._init_group_state(g) for g in self.param_groups
        ]

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._validate_group(group)
        for p in group["params"]:
            if self.batched:
                if p.ndim == 0:
                    raise ConfigError("batched=True needs parameters of shape (B, ...)")
                if self.runs is None:
                    self.runs = p.shape[0]
                elif p.shape[0] != self.runs:
                    raise ConfigError(
                        f"batched=True needs every parameter to share its first dimension "
                        f"(runs): got {p.shape[0]} and {self.runs}"
                    )
            else:
                self.runs = 1
        if hasattr(self, "group_states"):  # added after construction
            self.group_states.append(self._init_group_state(group))

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's hyperparameters and store them converted (floats, ints); raise
        ConfigError (a ValueError) naming the bad one."""
        group["lr"] = check_hyper("lr", group["lr"])

    def _init_group_state(self, group: dict[str, Any]) -> dict[str, Any]:
        """Per-group state (perturbation counts per run); subclasses extend it."""
        p = group["params"][0]
        return {"perturbations": torch.zeros(self.runs or 1, dtype=torch.long, device=p.device)}

    # ------------------------------------------------------------------ perturbation clock
    # Shared by the methods that perturb when ‖∇f‖ ≤ g_thres and no perturbation happened in
    # the last t_thres steps (Jin et al. 2017, Algorithm 2; Jin, Netrapalli, Jordan 2018).
    @staticmethod
    def _validate_perturbation(group: dict[str, Any]) -> None:
        """Check and store ``radius``, ``grad_threshold`` and ``interval`` (t_thres)."""
        group["radius"] = check_hyper("radius", group["radius"])
        group["grad_threshold"] = check_hyper(
            "grad_threshold", group["grad_threshold"], allow_zero=True
        )
        group["interval"] = check_hyper_int("interval", group["interval"], minimum=0)

    def _clock_state(self, group: dict[str, Any], clock: str) -> dict[str, Any]:
        """Step count ``t``, perturbation counts and the step of the last perturbation
        (key ``clock``), set to −t_thres − 1 so that the first test t − clock > t_thres
        passes."""
        p = group["params"][0]
        b = self.runs or 1
        return {
            "t": 0,
            "perturbations": torch.zeros(b, dtype=torch.long, device=p.device),
            clock: torch.full((b,), -int(group["interval"]) - 1, device=p.device),
        }

    @staticmethod
    def _perturb_due(group: dict[str, Any], sq: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        """Per-run mask of ‖∇f‖² ≤ g_thres² and ``since`` (steps since the last
        perturbation) > t_thres."""
        g_thres = float(group["grad_threshold"])
        return (sq <= g_thres * g_thres) & (since > group["interval"])

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Raise DivergenceError unless the loss and every group's gradient are finite."""
        sqs = [self._sq_norms(self._grads(g)) for g in self.param_groups]
        if not bool(torch.stack([s.sum() for s in sqs] + [loss.sum()]).isfinite().all()):
            self._raise_divergence(loss, sqs)

    # ------------------------------------------------------------------ counters
    @property
    def iterations(self) -> int:
        """Update steps taken (calls of :meth:`step` that moved the parameters)."""
        return self._iterations

    @property
    def grad_evals(self) -> int:
        """Closure calls (each one a loss and gradient evaluation)."""
        return self._grad_evals

    @property
    def perturbations(self) -> int | torch.Tensor:
        """Perturbations made: an int, or a ``(B,)`` tensor per run in batched mode."""
        total = sum(s["perturbations"] for s in self.group_states)
        return total.clone() if self.batched else int(total.sum())

    @property
    def counters(self) -> dict[str, Any]:
        """All counters in one dict (iterations, grad_evals, perturbations)."""
        return {
            "iterations": self.iterations,
            "grad_evals": self.grad_evals,
            "perturbations": self.perturbations,
        }

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """The usual optimizer state plus ``"saddlescape"``: the RNG state, counters and
        per-group state, so a loaded optimizer continues the same trajectory bit for bit."""
        sd = super().state_dict()
        sd["saddlescape"] = {
            "rng_state": self.generator.get_state().clone(),
            "seed": self.seed,
            "iterations": self._iterations,
            "grad_evals": self._grad_evals,
            "groups": [_clone_state(s) for s in self.group_states],
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        extra = state_dict.get("saddlescape")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "saddlescape"})
        if extra is None:
            return
        self.generator.set_state(extra["rng_state"].clone())
        self.seed = extra["seed"]
        self._iterations = int(extra["iterations"])
        self._grad_evals = int(extra["grad_evals"])
        if len(extra["groups"]) != len(self.param_groups):
            raise ConfigError("state dict has a different number of parameter groups")
        self.group_states = [
            _clone_state(s, device=g["params"][0].device)
            for s, g in zip(extra["groups"], self.param_groups, strict=True)
        ]

    # ------------------------------------------------------------------ helpers
    def _run_shape(self, p: torch.Tensor) -> list[int]:
        """Shape that broadcasts a per-run ``(B,)`` vector against parameter ``p``."""
        if self.batched:
            return [p.shape[0]] + [1] * (p.ndim - 1)
        return [1] * p.ndim

    def _per_run(self, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.reshape(self._run_shape(p))

    def _sq_norms(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-run squared Euclidean norm over all tensors, shape ``(B,)`` (B = 1 unbatched)."""
        if not self.batched:
            norms = torch._foreach_norm(list(tensors))
            return torch.stack(norms).square().sum().reshape(1)
        out = None
        for t in tensors:
            s = torch.linalg.vector_norm(t.reshape(self.runs, -1), dim=1).square()
            out = s if out is None else out + s
        assert out is not None
        return out

    def _add_ball_noise(
        self, params: Sequence[torch.Tensor], radius: float, mask: torch.Tensor
    ) -> None:
        """Add ξ uniform in the ball of ``radius`` to the runs in ``mask`` (batched: only
        those runs draw random numbers, so sparse perturbations stay cheap)."""
        from .perturbations import uniform_ball

        if not self.batched:
            for p, e in zip(
                params, uniform_ball(params, radius, generator=self.generator), strict=True
            ):
                p.add_(e)
            return
        idx = mask.nonzero().flatten()
        rows = [p.index_select(0, idx) for p in params]
        xi = uniform_ball(rows, radius, generator=self.generator, batched=True)
        for p, e in zip(params, xi, strict=True):
            p.index_add_(0, idx, e)

    @staticmethod
    def _grads(group: dict[str, Any]) -> list[torch.Tensor]:
        grads = []
        for p in group["params"]:
            if p.grad is None:
                raise ConfigError(
                    "a parameter has no gradient: the closure must call backward() "
                    "(in batched mode on the sum of the per-run losses)"
                )
            grads.append(p.grad)
        return grads

    def _need_closure(self, closure: Closure | None) -> Closure:
        if closure is None:
            raise ConfigError(
                f"{type(self).__name__}.step() needs a closure that zeroes the gradients, "
                "computes the loss, calls backward() and returns the loss (as for LBFGS)"
            )
        return closure

    def _evaluate(self, closure: Closure) -> torch.Tensor:
        """Call the closure with gradients enabled, count it, check the loss shape."""
        with torch.enable_grad():
            loss = closure()
        self._grad_evals += 1
        if not isinstance(loss, torch.Tensor):
            if loss is None:
                raise ConfigError("the closure must return the loss")
            loss = torch.as_tensor(loss)
        loss = loss.detach()
        if self.batched:
            if loss.shape != (self.runs,):
                raise ConfigError(
                    f"batched=True: the closure must return the per-run losses of shape "
                    f"({self.runs},), got shape {tuple(loss.shape)}"
                )
        elif loss.numel() != 1:
            raise ConfigError(
                f"the closure must return a scalar loss, got shape {tuple(loss.shape)} "
                "(for many independent runs use batched=True)"
            )
        return loss.reshape(-1)

    def _raise_divergence(
        self, loss: torch.Tensor | None, sq_norms: Sequence[torch.Tensor]
    ) -> None:
        """Raise DivergenceError naming the step, the run(s) and the bad value."""
        name, step = type(self).__name__, self._iterations
        where = ""
        if loss is not None and not bool(torch.isfinite(loss).all()):
            bad = (~torch.isfinite(loss)).nonzero().flatten()
            if self.batched:
                where = f" in run(s) {bad[:5].tolist()}"
            value = loss[bad[0]].item()
            raise DivergenceError(f"{name}: non-finite loss {value} at step {step}{where}")
        for sq in sq_norms:
            if not bool(torch.isfinite(sq).all()):
                bad = (~torch.isfinite(sq)).nonzero().flatten()
                if self.batched:
                    where = f" in run(s) {bad[:5].tolist()}"
                value = sq[bad[0]].sqrt().item()
                raise DivergenceError(
                    f"{name}: non-finite gradient (norm {value}) at step {step}{where}"
                )
        raise DivergenceError(f"{name}: non-finite value at step {step}")


def _clone_state(state: dict[str, Any], device: torch.device | None = None) -> dict[str, Any]:
    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().clone()
            if device is not None:
                v = v.to(device)
        out[k] = v
    return out
