"""Symmetric linear operators: the Hessian of a function or of a model's loss on data.

An operator is anything with ``matvec(v)``, ``shape`` and ``dtype`` (``matmat``,
``device`` and ``hvps`` when available): :func:`~saddlescape.curvature.lanczos`,
:func:`~saddlescape.curvature.power_iteration` and the certificates read only that.

- :class:`HessianOperator` — ``∇²f(x)`` through Hessian-vector products (Pearlmutter
  1994), never formed; ``from_function`` for ``f`` of one flat tensor, ``from_model``
  for a ``torch.nn.Module``, a mean-reduction loss and a dataset.
- :class:`DenseOperator` — a dense symmetric matrix behind the same interface (tests,
  small problems, users' own matrices).

>>> import torch
>>> from saddlescape.curvature import HessianOperator
>>> f = lambda x: x[0] ** 2 - 3 * x[0] * x[1] ** 2      # Hessian at (1, 1): [[2, -6], [-6, -6]]
>>> H = HessianOperator.from_function(f, torch.tensor([1.0, 1.0], dtype=torch.float64))
>>> H.matvec(torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist(), H.hvps
([2.0, -6.0], 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import CurvatureError
from .hvp import HVPEngine

__all__ = ["DenseOperator", "HessianOperator", "SymmetricOperator"]


class SymmetricOperator:
    """Base class: a symmetric ``n × n`` linear operator on torch vectors that counts its
    products. Subclasses implement ``_matvec`` (and optionally ``_matmat``)."""

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        self.shape = (int(n), int(n))
        self.dtype = dtype
        self.device = torch.device(device)
        self.hvps = 0

    # ---------------------------------------------------------------- subclass API
    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    # ---------------------------------------------------------------- public API
    def _check(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(np.asarray(v))
        n = self.shape[0]
        if v.ndim != ndim or v.shape[0] != n:
            want = f"({n},)" if ndim == 1 else f"({n}, k)"
            raise CurvatureError(
                f"expected a {'vector' if ndim == 1 else 'matrix'} of shape {want}, "
                f"got shape {tuple(v.shape)}"
            )
        return v.to(dtype=self.dtype, device=self.device)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for ``v`` of shape ``(n,)`` (cast to this operator's dtype and device)."""
        v = self._check(v, 1)
        out = self._matvec(v)
        self.hvps += 1
        return out

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H V`` for ``V`` of shape ``(n, k)``; counts ``k`` products."""
        V = self._check(V, 2)
        out = self._matmat(V) if V.shape[1] else torch.empty_like(V)
        self.hvps += V.shape[1]
        return out

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    def reset_counter(self) -> None:
        """Set :attr:`hvps` back to 0."""
        self.hvps = 0

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` on float64 numpy arrays (products are
        counted in :attr:`hvps`), e.g. for ``scipy.sparse.linalg.eigsh``."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
            return self.matvec(t).detach().to("cpu", torch.float64).numpy()

        def mm(X: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
            return self.matmat(t).detach().to("cpu", torch.float64).numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, matmat=mm, dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.shape[0]}, dtype={self.dtype}, hvps={self.hvps})"


class DenseOperator(SymmetricOperator):
    """A dense symmetric matrix as an operator (its products are counted as HVPs).

    >>> import torch
    >>> op = DenseOperator(torch.diag(torch.tensor([1.0, -2.0, 3.0])))
    >>> op.matvec(torch.ones(3)).tolist(), op.shape, op.hvps
    ([1.0, -2.0, 3.0], (3, 3), 1)
    """

    def __init__(self, matrix: torch.Tensor | np.ndarray, *, check_symmetric: bool = True):
        M = torch.as_tensor(matrix)
        if not M.is_floating_point():
            M = M.to(torch.get_default_dtype())
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise CurvatureError(f"expected a square matrix, got shape {tuple(M.shape)}")
        if not bool(torch.isfinite(M).all()):
            raise CurvatureError("the matrix contains nan or inf")
        if check_symmetric:
            scale = float(M.abs().max()) if M.numel() else 0.0
            tol = 100 * torch.finfo(M.dtype).eps * max(scale, 1e-300)
            if M.numel() and float((M - M.T).abs().max()) > tol:
                raise CurvatureError("the matrix is not symmetric")
        super().__init__(M.shape[0], M.dtype, M.device)
        self.matrix = M

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V


# ------------------------------------------------------------------ model helpers
@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own flag."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _is_batch(obj: Any) -> bool:
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and isinstance(obj[1], torch.Tensor)
        and (isinstance(obj[0], torch.Tensor) or _is_tensor_tuple(obj[0]))
    )


def _is_tensor_tuple(obj: Any) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) > 0 and isinstance(obj[0], torch.Tensor)


def _batch_size(inputs: Any) -> int:
    t = inputs if isinstance(inputs, torch.Tensor) else inputs[0]
    return int(t.shape[0]) if t.ndim > 0 else 1


def _batches(data: Any) -> list[tuple[Any, torch.Tensor]]:
    """``(inputs, targets)`` or an iterable of such pairs → a list of pairs."""
    if _is_batch(data):
        return [(data[0], data[1])]
    if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise CurvatureError(
            "data must be an (inputs, targets) pair or an iterable of such batches, "
            f"got {type(data).__name__}"
        )
    out = []
    for i, b in enumerate(data):
        if not _is_batch(b):
            raise CurvatureError(
                f"batch {i} is not an (inputs, targets) pair of tensors (got {type(b).__name__})"
            )
        out.append((b[0], b[1]))
    return out


def _select_params(
    model: torch.nn.Module, params: Sequence[torch.nn.Parameter | str] | None
) -> tuple[list[str], list[torch.Tensor]]:
    named = dict(model.named_parameters())
    if params is None:
        chosen = [(n, p) for n, p in named.items() if p.requires_grad]
        if not chosen:
            raise CurvatureError("the model has no parameter that requires grad")
        return [n for n, _ in chosen], [p for _, p in chosen]
    by_id = {id(p): n for n, p in named.items()}
    names: list[str] = []
    for p in params:
        if isinstance(p, str):
            if p not in named:
                raise CurvatureError(f"the model has no parameter named {p!r}")
            name = p
        elif isinstance(p, torch.Tensor):
            if id(p) not in by_id:
                raise CurvatureError(
                    f"a parameter of shape {tuple(p.shape)} does not belong to the model"
                )
            name = by_id[id(p)]
        else:
            raise CurvatureError(f"params must be parameters or names, got {type(p).__name__}")
        if not named[name].requires_grad:
            raise CurvatureError(f"parameter {name!r} does not require grad")
        if name in names:
            raise CurvatureError(f"parameter {name!r} is listed twice")
        names.append(name)
    if not names:
        raise CurvatureError("params is empty: choose at least one parameter")
    return names, [named[n] for n in names]


class HessianOperator(SymmetricOperator):
    """The Hessian ``∇²f(x)`` at a point, applied through Hessian-vector products.

    Build it with :meth:`from_function` or :meth:`from_model`. ``matvec``/``matmat``
    compute exact products (up to rounding; ``method="finite_difference"`` to about
    ``ε_mach^{2/3}``) and count them in :attr:`hvps`; :meth:`gradient` and :meth:`loss`
    give ``∇f`` and ``f`` at the point (computed once). Attributes: ``method`` (the HVP
    method used), ``param_names`` (model parameters in vector order, or ``None``).
    """

    def __init__(
        self,
        engine: HVPEngine,
        *,
        param_names: list[str] | None = None,
        param_shapes: list[torch.Size] | None = None,
    ) -> None:
        theta = engine.theta
        super().__init__(theta.numel(), theta.dtype, theta.device)
        self._engine = engine
        self.method = engine.method
        self.param_names = param_names
        self._param_shapes = param_shapes

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_function(
        cls, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, method: str = "auto"
    ) -> HessianOperator:
        """The Hessian of a scalar function ``f`` of one flat tensor, at ``x`` (shape ``(n,)``).

        ``method``: ``"auto"``, ``"double_backward"``, ``"forward_over_reverse"`` or
        ``"finite_difference"`` (see :mod:`saddlescape.curvature.hvp`). The dtype is
        ``x``'s (float64 recommended for problems).
        """
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float64)
        if not x.is_floating_point():
            x = x.to(torch.float64)
        if x.ndim != 1:
            raise CurvatureError(f"x must be a flat vector of shape (n,), got {tuple(x.shape)}")
        if x.numel() == 0:
            raise CurvatureError("x is empty")
        engine = HVPEngine([(1.0, f)], x.detach(), method)
        engine.gradient()  # validates f (scalar, finite) now rather than at the first product
        return cls(engine)

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        params: Sequence[torch.nn.Parameter | str] | None = None,
        method: str = "auto",
    ) -> HessianOperator:
        """The Hessian of the dataset loss of ``model`` w.r.t. (a subset of) its parameters.

        The loss is ``L(θ) = Σ_b n_b · loss_fn(model(x_b), y_b) / N`` over the batches of
        ``data`` — the exact full-dataset mean for a mean-reduction ``loss_fn`` even when the
        last batch is smaller. ``data`` is an ``(inputs, targets)`` pair or an iterable of
        such batches (``inputs`` a tensor, or a tuple of tensors passed as ``model(*inputs)``;
        iterables are read once into a list). The model is evaluated in eval mode (dropout
        off, batch norm on running statistics) and every module's mode is restored after
        each evaluation. ``params``: parameters or names (default: all parameters that
        require grad, in ``named_parameters()`` order); vectors are the concatenation of the
        flattened parameters in that order (see :attr:`param_names`, :meth:`unflatten`).
        """
        if not isinstance(model, torch.nn.Module):
            raise CurvatureError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        names, tensors = _select_params(model, params)
        batches = _batches(data)
        sizes = [_batch_size(inp) for inp, _ in batches]
        total = sum(sizes)
        if not batches or total == 0:
            raise CurvatureError("data is empty: the Hessian of a loss needs at least one example")
        shapes = [t.shape for t in tensors]
        numels = [t.numel() for t in tensors]
        theta = torch.cat([t.detach().reshape(-1) for t in tensors])

        def unflat(th: torch.Tensor) -> dict[str, torch.Tensor]:
            parts = torch.split(th, numels)
            return {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}

        def make_term(inputs: Any, targets: torch.Tensor):
            args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)

            def term(th: torch.Tensor) -> torch.Tensor:
                out = torch.func.functional_call(model, unflat(th), args)
                return loss_fn(out, targets)

            return term

        terms = [
            (n_b / total, make_term(inp, tgt))
            for (inp, tgt), n_b in zip(batches, sizes, strict=True)
        ]
        engine = HVPEngine(terms, theta, method, context=lambda: _eval_mode(model))
        engine.gradient()
        return cls(engine, param_names=names, param_shapes=shapes)

    # ---------------------------------------------------------------- products
    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._engine.hvp(v)

    # ---------------------------------------------------------------- the point
    def gradient(self) -> torch.Tensor:
        """``∇f`` at the point (flat, computed once and cached)."""
        return self._engine.gradient()

    def loss(self) -> float:
        """``f`` at the point."""
        return self._engine.value()

    @property
    def value(self) -> float:
        """``f`` at the point (same as :meth:`loss`)."""
        return self._engine.value()

    @property
    def point(self) -> torch.Tensor:
        """The flat point (``x`` or the concatenated parameters) the Hessian is taken at."""
        return self._engine.theta

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector into ``{parameter name: tensor of that parameter's shape}``
        (models only)."""
        if self.param_names is None or self._param_shapes is None:
            raise CurvatureError("unflatten needs an operator built with from_model")
        v = self._check(v, 1)
        parts = torch.split(v, [int(np.prod(s)) for s in self._param_shapes])
        return {
            n: p.view(s)
            for n, p, s in zip(self.param_names, parts, self._param_shapes, strict=True)
        }
