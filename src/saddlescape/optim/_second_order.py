"""What the second-order optimizers (:class:`~saddlescape.optim.CubicNewton`,
:class:`~saddlescape.optim.SaddleFreeNewton`) share: one evaluation of the closure giving
the loss, the flat gradient and counted, finiteness-checked Hessian-vector products —
exact by double backward when the closure leaves its graph, else central differences of
the closure's gradients."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._torch_gaps import (
    exact_second_derivatives,
    missing_second_derivative,
    once_differentiable_functions,
)
from ..errors import ConfigError, CurvatureError, DivergenceError
from .base import Closure, SaddleOptimizer


@dataclass
class _Point:
    """The closure evaluated at the current parameters: ``loss_tensor`` (as returned),
    ``loss`` (detached), ``grad`` (flat float64), ``hvp`` (counted and checked),
    ``params`` (the parameters x is made of; None when the loss reaches none) and
    ``gnorm``."""

    loss_tensor: torch.Tensor
    loss: torch.Tensor
    grad: torch.Tensor
    hvp: Callable[[torch.Tensor], torch.Tensor]
    params: list[torch.Tensor] | None
    gnorm: float


class SecondOrderOptimizer(SaddleOptimizer):
    """Base of the optimizers that use Hessian-vector products of the closure's loss
    (they keep ``_hvps`` and ``_f_evals`` counters)."""

    _hvps: int
    _f_evals: int

    @property
    def hvps(self) -> int:
        """Hessian-vector products made by all steps (each one counts once, also when
        computed by finite differences)."""
        return self._hvps

    @property
    def f_evals(self) -> int:
        """Closure calls made only to read f at trial points (the acceptance test of cubic
        Newton, the line search of saddle-free Newton)."""
        return self._f_evals

    def _first_and_second_order(self, closure: Closure, step_no: int) -> _Point:
        """Evaluate the closure once; refuse a non-scalar or non-finite loss or gradient
        by name."""
        name = type(self).__name__
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        with torch.enable_grad(), exact_second_derivatives():  # where torch's are not
            loss = closure()
        self._grad_evals += 1
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ConfigError("the closure must return the scalar loss as a tensor")
        if not bool(torch.isfinite(loss.detach()).all()):
            raise DivergenceError(f"{name}: non-finite loss {loss.item()} at step {step_no}")
        grad, hvp, params = self._derivatives(loss, params, closure)
        if not params:
            return _Point(loss, loss.detach(), grad, hvp, None, 0.0)
        gnorm = float(grad.norm())
        if not math.isfinite(gnorm):
            raise DivergenceError(f"{name}: non-finite gradient (norm {gnorm}) at step {step_no}")

        def counted_hvp(v: torch.Tensor) -> torch.Tensor:
            self._hvps += 1
            out = hvp(v)
            if not bool(torch.isfinite(out).all()):
                raise DivergenceError(
                    f"{name}: non-finite Hessian-vector product at step {step_no}"
                )
            return out

        return _Point(loss, loss.detach(), grad, counted_hvp, params, gnorm)

    def _derivatives(
        self, loss: torch.Tensor, params: list[torch.Tensor], closure: Closure
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], list[torch.Tensor]]:
        """``(∇f as a flat float64 tensor, v ↦ ∇²f v, the parameters x is made of)``: exact
        by double backward when the closure left its graph, else central differences of
        the closure's gradients. A parameter the loss does not reach (no gradient, as
        torch.optim skips it) is not part of x; with none left, x is empty."""
        grads = None
        if not params:
            return torch.zeros(0, dtype=torch.float64), lambda v: v, []
        if loss.requires_grad:
            try:
                grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            except RuntimeError as exc:  # the closure called backward(): graph freed
                if "second time" not in str(exc) and "freed" not in str(exc):
                    raise
        if grads is not None:
            names = once_differentiable_functions(loss)
            if names:  # torch would leave their second derivatives out without an error
                raise CurvatureError(
                    f"{type(self).__name__} needs Hessian-vector products and the loss runs "
                    f"custom autograd Function(s) {', '.join(names)} marked "
                    "@once_differentiable, whose second derivatives torch leaves out without "
                    "an error; call loss.backward() in the closure to use central differences "
                    "of gradients instead"
                )
            used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
            if not used:
                return torch.zeros(0, dtype=torch.float64), lambda v: v, []
            params = [p for p, _ in used]
            grads = [g for _, g in used]
            flat = torch.cat([g.reshape(-1) for g in grads])
            for p, g in zip(params, grads, strict=True):
                p.grad = g.detach().clone()
            differentiable = flat.requires_grad

            def hvp(v: torch.Tensor) -> torch.Tensor:
                if not differentiable:
                    return torch.zeros_like(v)
                try:
                    hv = torch.autograd.grad(
                        flat,
                        params,
                        grad_outputs=v.to(flat.dtype),
                        retain_graph=True,
                        allow_unused=True,
                    )
                except (NotImplementedError, RuntimeError) as e:
                    if not missing_second_derivative(e):
                        raise
                    first = str(e).strip().splitlines()[0]
                    raise CurvatureError(
                        f"{type(self).__name__} needs Hessian-vector products and torch "
                        f"{torch.__version__} cannot differentiate this loss twice ({first}); "
                        "call loss.backward() in the closure to use central differences of "
                        "gradients instead"
                    ) from e
                return torch.cat(
                    [
                        (torch.zeros_like(p) if h is None else h).reshape(-1)
                        for p, h in zip(params, hv, strict=True)
                    ]
                ).to(torch.float64)

            return flat.detach().to(torch.float64), hvp, params

        # finite differences through a closure that calls backward() itself
        params = [p for p in params if p.grad is not None]
        if not params:
            return torch.zeros(0, dtype=torch.float64), lambda v: v, []
        g0 = [p.grad.detach().clone() for p in params]
        theta = [p.detach().clone() for p in params]
        flat_g = torch.cat([g.reshape(-1) for g in g0]).to(torch.float64)
        eps = torch.finfo(params[0].dtype).eps
        scale = max(1.0, float(torch.cat([t.reshape(-1) for t in theta]).double().norm()))
        h = eps ** (1 / 3) * scale

        def grad_at(v: torch.Tensor, sign: float) -> torch.Tensor:
            with torch.no_grad():
                off = 0
                for p, t in zip(params, theta, strict=True):
                    k = p.numel()
                    p.copy_(t + sign * h * v[off : off + k].view_as(p).to(p.dtype))
                    off += k
            with torch.enable_grad():
                closure()
            self._grad_evals += 1
            return torch.cat(
                [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params]
            ).to(torch.float64)

        def hvp_fd(v: torch.Tensor) -> torch.Tensor:
            nv = float(v.norm())
            if nv == 0:
                return torch.zeros_like(v)
            u = v / nv
            out = (grad_at(u, 1.0) - grad_at(u, -1.0)) * (nv / (2 * h))
            with torch.no_grad():
                for p, t, g in zip(params, theta, g0, strict=True):
                    p.copy_(t)
                    p.grad = g.clone()
            return out

        return flat_g, hvp_fd, params
