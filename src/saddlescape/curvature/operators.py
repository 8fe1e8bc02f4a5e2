"""Symmetric linear operators: the Hessian of a function or of a model's loss on data.

An operator is anything with ``matvec(v)``, ``shape`` and ``dtype`` (``matmat``,
``device`` and ``hvps`` when available): :func:`~saddlescape.curvature.lanczos`,
:func:`~saddlescape.curvature.power_iteration` and the certificates read only that.

- :class:`HessianOperator` — ``∇²f(x)`` through Hessian-vector products (Pearlmutter
  1994), never formed; ``from_function`` for ``f`` of one flat tensor, ``from_model``
  for a model, a loss and data (the batch protocol of
  :mod:`~saddlescape.curvature._empirical_risk`: every reduction weighted exactly, eval or
  train mode, a snapshot of the model's state).
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

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import CurvatureError
from ._empirical_risk import EmpiricalRisk
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

    @property
    def passes(self) -> int:
        """Passes over data made so far (0 for an operator that holds no data)."""
        return 0

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


class HessianOperator(SymmetricOperator):
    """The Hessian ``∇²f(x)`` at a point, applied through Hessian-vector products.

    Build it with :meth:`from_function` or :meth:`from_model`. ``matvec``/``matmat``
    compute exact products (up to rounding; ``method="finite_difference"`` to an estimated
    error, refused above 1e-3 relative, see :attr:`error_estimate`) and count them in
    :attr:`hvps`; :meth:`gradient` and :meth:`loss` give ``∇f`` and ``f`` at the point
    (computed once). Attributes: ``method`` (the HVP method used), ``param_names`` (model
    parameters in vector order, or ``None``), :attr:`passes` (passes over the data).
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
        self.mode: str | None = None
        self.reduction: str | None = None
        self.num_batches = 1
        self.description = "a function of one flat tensor"

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
        model: torch.nn.Module | Callable[..., Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        data: Any = None,
        params: Any = None,
        method: str = "auto",
        *,
        mode: str = "eval",
        reduction: str | None = None,
        batch_size_fn: Callable[[Any], float] | None = None,
        batch_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
        cache: bool | None = None,
        distributed: Any = False,
    ) -> HessianOperator:
        """The Hessian of a model's loss on a dataset w.r.t. (a subset of) its parameters.

        The loss is the loss of one batch holding all of ``data``, exactly as ``loss_fn``
        means it: batches are combined by the loss's own reduction (``sum``: added; ``mean``:
        weighted by what each batch's mean divides by — examples, elements, non-ignored
        targets or class weights), read from torch's loss modules and
        ``torch.nn.functional`` losses; for any other loss over several batches say
        ``reduction="mean"`` or ``"sum"`` (and ``batch_size_fn`` when a mean is not over the
        batch's leading dimension). Where the weighting cannot be determined the
        construction fails and says how to fix it.

        - ``model``: a ``torch.nn.Module``, or a function ``model(params, inputs)`` of a dict
          of tensors (then ``params`` is that dict: the point).
        - ``data``: one batch or an iterable of batches (read once). With ``loss_fn``, a
          batch is ``(inputs, targets)``; ``inputs`` a tensor, a tuple (``model(*inputs)``)
          or a dict (``model(**inputs)``). With ``loss_fn=None`` the model returns the loss
          of a whole batch (a scalar, ``.loss`` or ``["loss"]``; dict batches are passed as
          keyword arguments); with ``batch_loss=fn`` the loss of a batch is
          ``fn(model, batch)``.
        - ``params``: parameters or names (default: all that require grad, in
          ``named_parameters()`` order); vectors are their flattened concatenation (see
          :attr:`param_names`, :meth:`unflatten`).
        - ``mode``: ``"eval"`` (dropout off, BatchNorm on running statistics) or
          ``"train"`` (BatchNorm on each batch's statistics — the loss training minimizes,
          so the batching defines it; running statistics are never updated; random layers
          are refused).
        - ``cache``: data that can be iterated again and is not a list or tuple (a
          ``DataLoader``) is *streamed* by default: read again at every pass, so memory
          stays that of one batch; each pass checks (by cheap fingerprints) that it yields
          the batches of the first, and a shuffling loader is refused. ``cache=True`` holds
          the first pass's batches instead (a fixed snapshot, as for a list).
          Batches are moved to the parameters' device.
        - ``distributed``: ``True`` (the default process group) or a
          ``torch.distributed`` group: each rank passes its own shard of the data, and the
          loss, gradient and every product are all-reduced with the weights of one process
          holding all shards (uneven shards included), so every rank gets the same bits
          and any algorithm run with the same seed agrees across ranks. Every rank needs
          at least one batch and the same parameters.

        Construction copies the parameters and buffers: later changes to the model change
        nothing here. The module docstring of :mod:`saddlescape.curvature._empirical_risk`
        has the details. Attributes: ``mode``, ``reduction``, ``num_batches`` and
        ``description`` (how the batches were combined).

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(3, 1).double()
        >>> X, y = torch.randn(10, 3).double(), torch.randn(10, 1).double()
        >>> loss = torch.nn.MSELoss(reduction="sum")
        >>> one = HessianOperator.from_model(model, loss, (X, y))
        >>> two = HessianOperator.from_model(model, loss, [(X[:3], y[:3]), (X[3:], y[3:])])
        >>> v = torch.randn(4).double()
        >>> torch.allclose(one @ v, two @ v), two.description
        (True, 'MSELoss, summed over 2 batches')
        """
        risk = EmpiricalRisk(
            model,
            loss_fn,
            data,
            params=params,
            mode=mode,
            reduction=reduction,
            batch_size_fn=batch_size_fn,
            batch_loss=batch_loss,
            cache=cache,
            distributed=distributed,
        )
        reduce = risk.all_reduce if distributed not in (False, None) else None
        engine = HVPEngine(risk.terms, risk.theta, method, context=risk.context, reduce=reduce)
        grad = engine.gradient()  # value and gradient now: a bad loss fails at construction
        if not engine.depends:  # else its gradient and Hessian would silently read 0
            raise CurvatureError(
                "the loss does not depend on the parameters through autograd (it does not "
                "require grad: computed under torch.no_grad(), detached, or rebuilt from "
                ".item()): its gradient and Hessian would read 0"
            )
        # an embedding's padding row gets no gradient from torch, so no optimizer moves it:
        # the Hessian holds it constant too (zero rows and columns by every method)
        constant = []
        for name, rows in risk.padding_rows:
            if grad[rows.to(grad.device)].any():
                raise CurvatureError(
                    f"the padding row of {name} is also read by another layer (tied "
                    "weights): torch gives its embedding lookups no gradient but the other "
                    "layer's, so torch's gradient is no function's gradient and its "
                    "Jacobian is not symmetric — there is no Hessian to take. Leave that "
                    "weight out (params=...), untie it, or set padding_idx=None if the "
                    "padding index never occurs in the data"
                )
            constant.append(rows)
        if constant:
            engine.hold_constant(torch.cat(constant))
        risk.check_deterministic()
        op = cls(engine, param_names=risk.names, param_shapes=risk.shapes)
        op.mode, op.reduction = risk.mode, risk.reduction
        op.num_batches, op.description = risk.num_batches, risk.description
        return op

    def at(self, point: torch.Tensor) -> HessianOperator:
        """The Hessian of the same loss (same data, snapshot, mode and method) at another
        flat ``point`` (e.g. to measure how the Hessian changes, see
        :func:`~saddlescape.curvature.hessian_lipschitz`)."""
        point = self._check(point, 1).detach()
        op = type(self)(
            self._engine.at(point), param_names=self.param_names, param_shapes=self._param_shapes
        )
        for name in ("mode", "reduction", "num_batches", "description"):
            setattr(op, name, getattr(self, name))
        return op

    # ---------------------------------------------------------------- products
    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._engine.hvp(v)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._engine.hvps(V)

    @property
    def passes(self) -> int:
        """Passes over the data so far (value/gradient included): a product on a single
        batch reuses its retained graph (0 passes), on several batches or by
        forward-over-reverse it takes 1, and ``matmat`` takes 1 for all its columns;
        finite differences take 4 per column."""
        return self._engine.passes

    @property
    def error_estimate(self) -> float:
        """The largest error estimated for a ``"finite_difference"`` product so far
        (Richardson, per unit direction), relative to the largest ``‖H u‖`` measured — an
        estimate of ``‖H‖``, what Lanczos' tolerance is relative to (products estimated
        worse than 1e-3 of their own size are refused); 0 for the exact methods."""
        return self._engine.fd_error

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
