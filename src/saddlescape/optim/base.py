"""Shared machinery of saddlescape's optimizers.

:class:`SaddleOptimizer` is a :class:`torch.optim.Optimizer` that adds what every
saddle-escaping method needs, while keeping the whole ``torch.optim`` contract:

- **the paper's x is the whole parameter vector.** The parameters that have a gradient at
  this step, across *all* parameter groups, form x (Jin et al. 2017; Ge et al. 2015; Jin,
  Netrapalli, Jordan 2018): gradient norms, clocks, x̃ and f(x̃), stop tests and noise draws
  are global. Groups may still carry their own ``lr`` (and, where documented, ``radius``);
  the hyperparameters that are tests on the whole vector must be equal in every group
  (:attr:`SaddleOptimizer.shared_hyperparameters`). A parameter whose ``.grad`` is None is
  skipped, exactly as ``torch.optim`` skips it (frozen layers, unused heads,
  ``requires_grad=False`` tensors): it is not part of x for that step. A step in which no
  parameter has a gradient does nothing and warns;
- **precision**: norms, inner products, f values and thresholds accumulate in float32 or
  wider whatever the parameter dtype (a float16 gradient of norm 300 has a squared norm of
  9·10⁴ > 65504), and noise is drawn in float32 or wider (:mod:`.perturbations`);
- **complex parameters** are vectors of ℝ²ⁿ (their ``torch.view_as_real`` views), so a
  complex run equals the same run on the real views, bit for bit;
- a private random stream (a :class:`torch.Generator` seeded from ``seed``, or the user's
  ``generator``) whose state travels in :meth:`~SaddleOptimizer.state_dict`, ``deepcopy``
  and ``pickle``, with every clock, counter and buffer, so a resumed or copied optimizer
  continues bit-identically;
- a *batched* mode: with ``batched=True`` every parameter of shape ``(B, ...)`` holds B
  independent runs; norms, clocks and stop tests are per run and fully vectorized. The
  closure must then call ``backward`` on the *sum* of the per-run losses and return the
  per-run losses, shape ``(B,)``;
- counters (:attr:`iterations`, :attr:`grad_evals`, :attr:`perturbations`) and a
  finiteness check that raises :class:`~saddlescape.errors.DivergenceError` naming the
  step and the value, with one host synchronization per step;
- ``torch.compile``: :meth:`step` is excluded from compilation
  (:func:`torch.compiler.disable`). Every step makes data-dependent decisions (a
  perturbation, a stop test, the finiteness check) that need the values on the host, where
  dynamo would break the graph anyway (measured: 19 s to compile three GD steps, for no
  gain); so ``torch.compile(opt.step)`` runs the eager step and returns its result bit
  for bit. Compile the model instead.

Subclasses implement :meth:`step` with the helpers below and :meth:`_validate_group`.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch.optim import Optimizer

from ..errors import ConfigError, DivergenceError, check_int, check_positive
from .perturbations import uniform_ball, uniform_sphere, wide_dtype

Closure = Callable[[], torch.Tensor]
ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

__all__ = [
    "Closure",
    "Live",
    "ParamsT",
    "SaddleOptimizer",
    "check_hyper",
    "check_hyper_int",
    "eager_step",
    "real_view",
]

#: why step() is not compiled (see the module docstring)
COMPILE_REASON = (
    "saddlescape optimizers decide on host values every step (perturbation, stop test, "
    "finiteness): step() runs eagerly under torch.compile"
)


def eager_step(step: Callable[..., Any]) -> Callable[..., Any]:
    """Exclude an optimizer's ``step`` from ``torch.compile`` (see the module docstring:
    ``torch.compile(opt.step)`` then runs this eager step and equals it bit for bit)."""
    try:
        return torch.compiler.disable(step, reason=COMPILE_REASON)
    except TypeError:  # torch < 2.6 has no reason= argument
        return torch.compiler.disable(step)


def check_hyper(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A real hyperparameter as a float (``> 0``, or ``>= 0`` with ``allow_zero``).

    Unlike a bare ``float(value)`` it rejects bools and strings (``lr=True`` or
    ``lr="0.1"`` are mistakes, not numbers), raising :class:`ConfigError` (a ValueError)
    naming ``name``. A one-element real tensor is read as its value.
    """
    if isinstance(value, torch.Tensor) and value.dtype != torch.bool:
        if value.numel() != 1:
            raise ConfigError(f"{name}: a tensor {name} must have 1 element, got {value.numel()}")
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


def real_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a real tensor: ``torch.view_as_real(t)`` for a complex one (ℂⁿ ≅ ℝ²ⁿ)."""
    return torch.view_as_real(t) if t.is_complex() else t


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
    dimension d: the number of real parameters (per run when ``batched``)."""
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
            n = p.numel() * (2 if p.is_complex() else 1)
            dim += n // p.shape[0] if batched and p.ndim else n
    return dim, ell, rho, eps, delta, f_gap, c


class Live(NamedTuple):
    """The parameters of one group that have a gradient at this step: the tensors
    themselves (keys of ``optimizer.state``) and the real views of them and their
    gradients that every computation uses."""

    group: dict[str, Any]
    params: list[torch.Tensor]
    xs: list[torch.Tensor]
    grads: list[torch.Tensor]


class SaddleOptimizer(Optimizer):
    """Base class: global semantics, RNG in the state dict, batched runs, counters,
    divergence checks (see the module docstring).

    Args:
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer
            (empty groups and groups without some hyperparameter, which then get the
            constructor's value, are accepted as by torch).
        defaults: default hyperparameters of a group.
        batched: if true, the first dimension of every parameter indexes independent runs
            (all parameters must share it); the closure returns per-run losses ``(B,)``.
        seed: seed of the optimizer's own :class:`torch.Generator` (default: drawn from
            torch's global generator, so ``torch.manual_seed`` makes runs repeatable).
            That one draw, at construction, is the only use of the global generator:
            steps draw from the optimizer's own. It does shift whatever the program draws
            next (data shuffling, dropout, initialization) compared with a torch optimizer,
            which draws nothing; pass ``seed`` or ``generator`` to leave the global stream
            untouched. An optimizer that never draws random numbers (:attr:`draws_noise`
            false: ``GD``) does not take it.
        generator: use this generator instead (exclusive with ``seed``).
    """

    #: whether :meth:`step` needs a closure (it re-evaluates f, like LBFGS)
    requires_closure: ClassVar[bool] = False
    #: whether :meth:`step` ever draws from :attr:`generator`; one that does not leaves
    #: torch's global generator alone when no ``seed`` is given (seed 0)
    draws_noise: ClassVar[bool] = True
    #: group hyperparameters that are tests on the whole vector: equal in every group
    shared_hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: the key of this class's own part of :meth:`state_dict`
    _STATE_KEY: ClassVar[str] = "saddlescape"

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
        if self.runs is None:  # only empty groups
            self.runs = 1
        self._init_saddle(seed, generator)

    def _init_saddle(self, seed: int | None, generator: torch.Generator | None) -> None:
        """The random stream, the counters and the global state (:meth:`_init_state`)."""
        device = self._device()
        if generator is not None and seed is not None:
            raise ConfigError("give either seed or generator, not both")
        if generator is None:
            if seed is None:  # not drawn when unused: the user's global stream stays as it is
                seed = int(torch.randint(0, 2**62, (1,)).item()) if self.draws_noise else 0
            seed = check_int("seed", seed)
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        elif not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {generator!r}")
        self.seed = seed
        self.generator = generator
        self._iterations = 0
        self._grad_evals = 0
        self._init_state(device)

    def _init_state(self, device: torch.device) -> None:
        """Create the optimizer's global (not per-parameter) state; subclasses extend."""

    def _device(self) -> torch.device:
        for group in self.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ copy and pickle
    def __getstate__(self) -> dict[str, Any]:
        """torch keeps only ``defaults``, ``state`` and ``param_groups``; the generator,
        clocks and counters must travel too, or a copy cannot continue the run. Hooks are
        left out, as torch does (they may not be picklable)."""
        state = super().__getstate__()
        for key, value in self.__dict__.items():
            if not key.startswith("_optimizer_"):
                state.setdefault(key, value)
        return state

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._validate_group(group)
        if len(self.param_groups) > 1:
            first = self.param_groups[0]
            for key in self.shared_hyperparameters:
                if group[key] != first[key]:
                    raise ConfigError(
                        f"{key} must be the same in every parameter group (it is a test on "
                        f"the whole parameter vector): got {group[key]!r} and {first[key]!r}"
                    )
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

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's hyperparameters and store them converted (floats, ints); raise
        ConfigError (a ValueError) naming the bad one."""
        group["lr"] = check_hyper("lr", group["lr"])

    # ------------------------------------------------------------------ perturbation rule
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

    # ------------------------------------------------------------------ counters
    @property
    def iterations(self) -> int:
        """Update steps taken (calls of :meth:`step` that moved the parameters)."""
        return self._iterations

    @property
    def grad_evals(self) -> int:
        """Closure calls (each one a loss and gradient evaluation)."""
        return self._grad_evals

    def _perturbation_counts(self) -> torch.Tensor | None:
        """Per-run perturbation counts, or None for a method that never perturbs."""
        return None

    @property
    def perturbations(self) -> int | torch.Tensor:
        """Perturbations made: an int, or a ``(B,)`` tensor per run in batched mode."""
        counts = self._perturbation_counts()
        if counts is None:
            counts = torch.zeros(self.runs or 1, dtype=torch.long)
        return counts.clone() if self.batched else int(counts.sum())

    @property
    def counters(self) -> dict[str, Any]:
        """All counters in one dict (iterations, grad_evals, perturbations)."""
        return {
            "iterations": self.iterations,
            "grad_evals": self.grad_evals,
            "perturbations": self.perturbations,
        }

    # ------------------------------------------------------------------ state dict
    def _param_list(self) -> list[torch.Tensor]:
        """The parameters in ``state_dict`` order (torch numbers them this way)."""
        return [p for g in self.param_groups for p in g["params"]]

    def _saddle_state(self, index: dict[int, int]) -> dict[str, Any]:
        """The global state for :meth:`state_dict`; per-parameter tensors keyed by the
        parameter's number in ``index`` (``id(p) -> number``). Subclasses extend."""
        return {}

    def _load_saddle_state(self, extra: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Inverse of :meth:`_saddle_state` (``params[i]`` is parameter number i)."""

    def _base_state_dict(self) -> dict[str, Any]:
        with _torch_hooks_held(self):
            return Optimizer.state_dict(self)

    def _load_base_state_dict(self, state_dict: dict[str, Any]) -> None:
        with _torch_hooks_held(self):
            Optimizer.load_state_dict(self, state_dict)

    def state_dict(self) -> dict[str, Any]:
        """The usual optimizer state plus this class's own part (key ``"saddlescape"``):
        the RNG state, counters, clocks and x̃, so a loaded optimizer continues the same
        trajectory bit for bit.

        The hooks of :meth:`register_state_dict_pre_hook` and
        :meth:`register_state_dict_post_hook` run around the *whole* dict, as for a torch
        optimizer: a post-hook sees (and may change or replace) the ``"saddlescape"`` part
        too."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        sd = self._base_state_dict()
        params = self._param_list()
        index = {id(p): i for i, p in enumerate(params)}
        sd[self._STATE_KEY] = {
            "rng_state": self.generator.get_state().clone(),
            "seed": self.seed,
            "iterations": self._iterations,
            "grad_evals": self._grad_evals,
            **_clone(self._saddle_state(index)),
        }
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            replaced = post_hook(self, sd)
            sd = sd if replaced is None else replaced
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`. The hooks of
        :meth:`register_load_state_dict_pre_hook` see (and may replace) the whole dict,
        ``"saddlescape"`` part included, and those of
        :meth:`register_load_state_dict_post_hook` run once everything is loaded: the
        clocks, counters and random stream too, not only torch's part."""
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            replaced = pre_hook(self, state_dict)
            state_dict = state_dict if replaced is None else replaced
        self._load_all(state_dict)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _load_all(self, state_dict: dict[str, Any]) -> None:
        extra = state_dict.get(self._STATE_KEY)
        if extra is not None and "groups" in extra:
            raise ConfigError(
                "state_dict: written by an older saddlescape whose clocks were per parameter "
                "group; the clock, x̃ and f(x̃) are now global and cannot be resumed from it "
                "bit-identically (start a new optimizer)"
            )
        self._load_base_state_dict({k: v for k, v in state_dict.items() if k != self._STATE_KEY})
        if extra is None:
            return
        self.generator.set_state(extra["rng_state"].clone())
        self.seed = extra["seed"]
        self._iterations = int(extra["iterations"])
        self._grad_evals = int(extra["grad_evals"])
        self._load_saddle_state(_clone(extra, device=self._device()), self._param_list())

    # ------------------------------------------------------------------ x and its gradient
    def _live(self) -> list[Live]:
        """The parameters with a gradient, group by group (groups without any left out)."""
        out = []
        for group in self.param_groups:
            params, xs, grads = [], [], []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise ConfigError(f"{type(self).__name__} does not support sparse gradients")
                params.append(p)
                xs.append(real_view(p))
                grads.append(real_view(g))
            if params:
                out.append(Live(group, params, xs, grads))
        return out

    @staticmethod
    def _refresh(live: Sequence[Live]) -> list[Live]:
        """The same parameters with their current gradients, after another closure call
        (``zero_grad`` replaces the ``.grad`` tensors); a parameter whose ``.grad`` became
        None there has a zero gradient for the rest of the step."""
        out = []
        for lv in live:
            grads = [
                real_view(p.grad) if p.grad is not None else torch.zeros_like(x)
                for p, x in zip(lv.params, lv.xs, strict=True)
            ]
            out.append(Live(lv.group, lv.params, lv.xs, grads))
        return out

    def _nothing_to_do(self, loss: torch.Tensor | None) -> torch.Tensor | None:
        """The step with no gradient anywhere: a no-op with a warning (torch.optim skips a
        parameter whose .grad is None; here all of them are)."""
        warnings.warn(
            f"{type(self).__name__}.step(): no parameter has a gradient (.grad is None "
            "everywhere), so the step did nothing",
            UserWarning,
            stacklevel=3,
        )
        if loss is not None and not bool(torch.isfinite(loss).all()):
            self._raise_divergence(loss, [])
        return None if loss is None else self._result(loss)

    def _result(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.batched else loss[0]

    # ------------------------------------------------------------------ statistics
    def _run_shape(self, p: torch.Tensor) -> list[int]:
        """Shape that broadcasts a per-run ``(B,)`` vector against parameter ``p``."""
        if self.batched:
            return [p.shape[0]] + [1] * (p.ndim - 1)
        return [1] * p.ndim

    def _per_run(self, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.reshape(self._run_shape(p))

    def _sq_norm(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-run squared Euclidean norm over all tensors, shape ``(B,)`` (B = 1
        unbatched), accumulated in float32 or wider."""
        if not tensors:
            return torch.zeros(self.runs or 1, device=self._device())
        if not self.batched:
            return _sq_norm(tensors).reshape(1)
        out = None
        for t in tensors:
            s = torch.linalg.vector_norm(t.reshape(self.runs, -1), dim=1, dtype=wide_dtype(t.dtype))
            out = s.square() if out is None else out + s.square()
        assert out is not None
        return out

    def _dot(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-run inner product ⟨x, y⟩ over all tensors, shape ``(B,)``, in float32 or
        wider."""
        b = self.runs if self.batched else 1
        out = None
        for x, y in zip(xs, ys, strict=True):
            wide = wide_dtype(x.dtype)
            s = (x.reshape(b, -1).to(wide) * y.reshape(b, -1).to(wide)).sum(1)
            out = s if out is None else out + s
        if out is None:
            return torch.zeros(b, device=self._device())
        return out

    def _checked(
        self, loss: torch.Tensor | None, sq: torch.Tensor, *masks: torch.Tensor | None
    ) -> list[bool]:
        """One host synchronization: raise DivergenceError unless the loss and the squared
        gradient norm are finite, and return ``mask.any()`` for each mask (None: False)."""
        flags = [sq.isfinite().all()]
        if loss is not None:
            flags.append(loss.isfinite().all().to(sq.device))
        flags += [m.any() for m in masks if m is not None]
        values = torch.stack(flags).tolist()
        n_checks = 1 + (loss is not None)
        if not all(values[:n_checks]):
            self._raise_divergence(loss, [sq])
        it = iter(values[n_checks:])
        return [False if m is None else bool(next(it)) for m in masks]

    # ------------------------------------------------------------------ steps and noise
    def _descend(self, live: Sequence[Live], mask: torch.Tensor | None = None) -> None:
        """x ← x − η∇f(x) group by group (runs outside ``mask`` keep their x)."""
        for group, _, xs, grads in live:
            if mask is not None:
                grads = [g * self._per_run(mask.to(g.dtype), g) for g in grads]
            torch._foreach_add_(xs, grads, alpha=-group["lr"])

    def _draw(
        self,
        live: Sequence[Live],
        radii: Sequence[float],
        like: Sequence[torch.Tensor],
        *,
        sphere: bool = False,
    ) -> list[torch.Tensor]:
        """One draw ξ over the whole vector (``like``: its tensors in ``live`` order, per
        run when batched), uniform in the unit ball or on the unit sphere, each group's
        block scaled by its radius: equal radii give the ball B(r) of Jin et al. 2017 or
        the sphere of Ge et al. 2015 exactly."""
        r0 = radii[0]
        equal = all(r == r0 for r in radii)
        draw = uniform_sphere if sphere else uniform_ball
        xi = draw(like, r0 if equal else 1.0, generator=self.generator, batched=self.batched)
        if not equal:
            k = 0
            for lv, r in zip(live, radii, strict=True):
                for _ in lv.xs:
                    xi[k].mul_(r)
                    k += 1
        return xi

    def _add_ball(self, live: Sequence[Live], radii: Sequence[float], mask: torch.Tensor) -> None:
        """x ← x + ξ, ξ uniform in the ball (:meth:`_draw`); batched, only the runs in
        ``mask`` draw random numbers and move, so sparse perturbations stay cheap."""
        xs = [x for lv in live for x in lv.xs]
        if not self.batched:
            for x, e in zip(xs, self._draw(live, radii, xs), strict=True):
                x.add_(e)
            return
        idx = mask.nonzero().flatten()
        rows = [x.index_select(0, idx) for x in xs]
        for x, e in zip(xs, self._draw(live, radii, rows), strict=True):
            x.index_add_(0, idx, e.to(x.dtype))

    # ------------------------------------------------------------------ closures
    @property
    def _step_supports_amp_scaling(self) -> bool:
        """Read by ``torch.amp.GradScaler.step``: true for the optimizers that need a
        closure, so that the scaler hands them the step (setting ``found_inf`` and
        ``grad_scale`` on them) and :meth:`_need_closure` can refuse it by name. Otherwise
        the scaler would unscale only the gradients already in ``.grad`` and call
        ``step(closure)``, whose re-evaluated gradients are still multiplied by the scale
        (measured: a PerturbedGD step 65536× too long), or fail for want of a closure."""
        return self.requires_closure

    def _need_closure(self, closure: Closure | None) -> Closure:
        if "found_inf" in self.__dict__:  # set by GradScaler.step just before calling step()
            self.__dict__.pop("found_inf")
            self.__dict__.pop("grad_scale", None)
            raise ConfigError(
                f"{type(self).__name__}.step() cannot run under torch.amp.GradScaler: it "
                "re-evaluates the loss and gradient through its closure, and the scaler "
                "neither passes a closure nor unscales the gradients a closure computes. "
                "Call opt.step(closure) without a scaler (bfloat16 autocast needs none), or "
                "use GD, NoisyGD or Perturbed(torch.optim.SGD(...)), which step from .grad"
            )
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

    def _check_finite(self, loss: torch.Tensor, live: Sequence[Live]) -> None:
        """Raise DivergenceError unless the loss and the gradient are finite."""
        self._checked(loss, self._sq_norm([g for lv in live for g in lv.grads]))

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


def _sq_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared norm of the concatenation of ``tensors`` (a 0-d tensor) in float32 or
    wider: ``torch._foreach_norm`` per dtype (low precision upcast inside the kernel)."""
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, t in enumerate(tensors):
        by_dtype.setdefault(t.dtype, []).append(i)
    norms: list[torch.Tensor] = [torch.empty(0)] * len(tensors)
    wide = torch.float32
    for dtype, idx in by_dtype.items():
        w = wide_dtype(dtype)
        wide = torch.promote_types(wide, w)
        ts = [tensors[i] for i in idx]
        out = torch._foreach_norm(ts) if w == dtype else torch._foreach_norm(ts, 2, dtype=w)
        for i, n in zip(idx, out, strict=True):
            norms[i] = n
    if len(by_dtype) > 1:
        norms = [n.to(wide) for n in norms]
    return torch.stack(norms).square().sum()


#: the hook tables torch's ``Optimizer.state_dict``/``load_state_dict`` run by themselves
_STATE_DICT_HOOKS = (
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


@contextlib.contextmanager
def _torch_hooks_held(opt: Optimizer) -> Iterator[None]:
    """Hide the state-dict hooks from torch's ``state_dict``/``load_state_dict`` while they
    build or load torch's part: :class:`SaddleOptimizer` runs them itself around the whole
    dict (torch's post-hook would otherwise see no ``"saddlescape"`` part, and a
    load post-hook would run before the clocks and the random stream are loaded). The
    tables themselves are put back, so the handles that remove hooks stay valid."""
    held = {name: getattr(opt, name) for name in _STATE_DICT_HOOKS}
    for name in held:
        setattr(opt, name, OrderedDict())
    try:
        yield
    finally:
        for name, table in held.items():
            setattr(opt, name, table)


def _clone(state: dict[str, Any], device: torch.device | None = None) -> dict[str, Any]:
    """A copy of a (nested) state dict: tensors cloned (and moved to ``device``)."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().clone()
            if device is not None and k != "rng_state":
                v = v.to(device)
        elif isinstance(v, dict):
            v = _clone(v, device)
        out[k] = v
    return out
