"""What a landscape slices: a zoo problem, a function of one flat tensor, or a model's loss
on data (through the curvature package's batch protocol, the same loss the Hessian
operators differentiate).

>>> import torch
>>> from saddlescape import problems
>>> from saddlescape.landscape import LossTarget
>>> t = LossTarget.from_problem(problems.get("lee-2d"))
>>> t.loss(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)).tolist()
[-0.25, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import ConfigError
from ..problems import Problem

__all__ = ["LossTarget", "as_target"]


class LossTarget:
    """A loss ``f`` of a flat parameter vector that can be evaluated at many points.

    Build with :meth:`from_problem`, :meth:`from_function` or :meth:`from_model`.
    Attributes: ``dim``, ``dtype`` (the points are cast to it), ``center`` (the model's
    parameters for a model, else None), ``shapes`` (``[(name, shape)]`` of the parameters
    when known — filter normalization needs them — else None), ``problem`` (the zoo problem,
    if any), ``description`` and ``passes_per_call`` (1 for a model: every call reads the
    data once; 0 for a function).
    """

    def __init__(
        self,
        evaluate: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        dtype: torch.dtype,
        *,
        description: str,
        center: torch.Tensor | None = None,
        shapes: list[tuple[str, torch.Size]] | None = None,
        problem: Problem | None = None,
        hessian: Callable[[torch.Tensor], Any] | None = None,
        passes_per_call: int = 0,
    ) -> None:
        self._evaluate = evaluate
        self.dim, self.dtype = int(dim), dtype
        self.description = description
        self.center = center
        self.shapes = shapes
        self.problem = problem
        self._hessian = hessian
        self.passes_per_call = passes_per_call

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_problem(cls, problem: Problem) -> LossTarget:
        """A zoo problem; points are evaluated in float64, a batch at once (``problem.f``
        takes ``(B, d)``). Networks of the zoo with ``param_shapes`` expose their layer
        shapes for filter normalization."""
        if not isinstance(problem, Problem):
            raise ConfigError(f"expected a Problem, got {type(problem).__name__}")
        shapes = getattr(problem, "param_shapes", None)
        named = [(str(k), torch.Size(v)) for k, v in shapes.items()] if shapes else None

        def evaluate(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return problem.f(x)

        return cls(
            evaluate,
            problem.dim,
            torch.float64,
            description=problem.describe(),
            shapes=named,
            problem=problem,
            hessian=lambda x: _function_hessian(problem.f, x),
        )

    @classmethod
    def from_function(
        cls, f: Callable[[torch.Tensor], torch.Tensor], dim: int, *, batched: bool = False
    ) -> LossTarget:
        """A scalar function of one flat float64 tensor of length ``dim``; ``batched=True``
        when ``f`` also maps ``(B, dim)`` to ``(B,)`` (then a grid is one call)."""
        if not callable(f):
            raise ConfigError(f"f must be callable, got {type(f).__name__}")

        def evaluate(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                if batched or x.ndim == 1:
                    return torch.as_tensor(f(x))
                return torch.stack([torch.as_tensor(f(row)).reshape(()) for row in x])

        return cls(
            evaluate,
            dim,
            torch.float64,
            description=getattr(f, "__qualname__", "a function"),
            hessian=lambda x: _function_hessian(f, x),
        )

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module | Callable[..., Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        data: Any = None,
        params: Any = None,
        *,
        mode: str = "eval",
        reduction: str | None = None,
        batch_size_fn: Callable[[Any], float] | None = None,
        batch_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
        method: str = "auto",
    ) -> LossTarget:
        """A model's loss on data, with the arguments of
        :meth:`saddlescape.curvature.HessianOperator.from_model` (the same batch protocol:
        exact weighting over batches, ``mode="eval"`` or ``"train"``, a snapshot of the
        parameters and buffers). The centre is the model's current parameters; the loss at
        other points is :meth:`EmpiricalRisk.loss` (BatchNorm running statistics and other
        buffers stay those of the snapshot)."""
        from ..curvature import HessianOperator
        from ..curvature._empirical_risk import EmpiricalRisk

        kwargs: dict[str, Any] = {
            "params": params,
            "mode": mode,
            "reduction": reduction,
            "batch_size_fn": batch_size_fn,
            "batch_loss": batch_loss,
        }
        risk = EmpiricalRisk(model, loss_fn, data, **kwargs)
        risk.check_deterministic()
        cache: dict[str, Any] = {}

        def hessian(x: torch.Tensor) -> Any:
            if "op" not in cache:  # built on first use (certification of grid points)
                cache["op"] = HessianOperator.from_model(
                    model, loss_fn, data, method=method, **kwargs
                )
            return cache["op"].at(x.to(risk.theta.dtype))

        return cls(
            risk.loss,
            risk.theta.numel(),
            risk.theta.dtype,
            description=f"{risk.description}, {risk.mode} mode",
            center=risk.theta.clone(),
            shapes=list(zip(risk.names, risk.shapes, strict=True)),
            hessian=hessian,
            passes_per_call=1,
        )

    # ---------------------------------------------------------------- evaluation
    def loss(self, points: torch.Tensor) -> torch.Tensor:
        """``f`` at a point ``(n,)`` (0-d result) or at each row of ``(B, n)``; float64."""
        points = torch.as_tensor(points)
        if points.ndim not in (1, 2) or points.shape[-1] != self.dim:
            raise ConfigError(
                f"expected points of shape ({self.dim},) or (B, {self.dim}), "
                f"got {tuple(points.shape)}"
            )
        out = self._evaluate(points.to(self.dtype))
        return torch.as_tensor(out).detach().to(torch.float64).reshape(points.shape[:-1])

    def hessian(self, x: torch.Tensor) -> Any:
        """The :class:`~saddlescape.curvature.HessianOperator` of ``f`` at ``x``."""
        if self._hessian is None:
            raise ConfigError("this target has no Hessian")
        return self._hessian(torch.as_tensor(x).to(self.dtype))


def _function_hessian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Any:
    from ..curvature import HessianOperator

    return HessianOperator.from_function(f, x.to(torch.float64))


def as_target(target: Any) -> LossTarget:
    """A :class:`LossTarget` from a target or a :class:`~saddlescape.problems.Problem`."""
    if isinstance(target, LossTarget):
        return target
    if isinstance(target, Problem):
        return LossTarget.from_problem(target)
    raise ConfigError(
        "the landscape target must be a Problem or a LossTarget (LossTarget.from_function, "
        f"LossTarget.from_model), got {type(target).__name__}"
    )
