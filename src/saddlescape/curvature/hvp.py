"""Hessian-vector product methods for a loss written as a weighted sum of closures.

A loss is a list of terms ``[(w_b, loss_b)]`` with ``loss_b(theta) -> scalar`` for a flat
parameter tensor ``theta`` and weights ``w_b`` (for a dataset, ``w_b = n_b / N``, so the sum
is the exact dataset mean of a mean-reduction loss). Three ways to compute ``∇²f(θ) v``
(Pearlmutter 1994, "Fast exact multiplication by the Hessian"; Griewank & Walther 2008,
"Evaluating Derivatives", ch. 3):

- ``"double_backward"`` (reverse-over-reverse): build ``g = ∇f(θ)`` with ``create_graph``
  and differentiate ``⟨g, v⟩`` again. With a single term the graph of ``g`` is built
  once and reused by every product (``retain_graph``): each product then costs one extra
  backward pass. Several terms (mini-batches) rebuild their graphs per product, so
  memory stays that of one batch.
- ``"forward_over_reverse"``: ``torch.func.jvp`` of ``torch.func.grad`` — one forward-mode
  pass through the gradient computation per product, no graph kept between products.
- ``"finite_difference"``: central differences of gradients along the unit direction
  with steps ``h = ε_mach^{1/3}·max(1, rms(θ))`` and ``h/2``, combined by Richardson
  extrapolation (truncation error O(h⁴)); four gradients per product. The difference of the
  two estimates measures the error: a product estimated worse than ``FD_TOLERANCE``
  (1e-3 relative) is refused, and :attr:`HVPEngine.fd_error` keeps the largest estimate
  relative to the largest product measured.

``"auto"`` picks ``"double_backward"`` (and moves to ``"forward_over_reverse"`` for good
when torch cannot differentiate a backward formula of the loss, e.g. EmbeddingBag's, the
same Hessian by the other exact method): ``benchmarks/curvature.py`` (2026-11-28, CPU, one
thread; tanh MLP 64-128-128-10 on 1,797 digits) measured one product at 1.9× a gradient
with one batch (retained graph) vs 3.3× for forward-over-reverse, and 3.5× vs 7.0× with 8
batches, in float32 and float64 alike. Finite differences (then two gradients per product)
cost 1.8–2.8× but were accurate only to ~4e-5 relative in float32 on that MLP, and 84 % off
on a 300k-parameter CNN with the step then scaled by ``‖θ‖``, so ``"auto"`` never picks them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence

import torch

from .._torch_gaps import missing_second_derivative, once_differentiable_functions
from ..errors import ConfigError, CurvatureError, DivergenceError

METHODS: tuple[str, ...] = ("double_backward", "forward_over_reverse", "finite_difference")
# the relative error (estimated by Richardson) above which a finite-difference product is
# refused
FD_TOLERANCE = 1e-3
Term = tuple[float, Callable[[torch.Tensor], torch.Tensor]]
# torch errors of forward-mode AD through a backward formula it does not support (torch
# 2.13: mse_loss's backward builds an immutable ZeroTensor for a target without tangent;
# huber_loss_backward and _embedding_bag have no forward derivative; the fused weight norm
# of dim=None; an LSTM over packed sequences under torch.func)
_FORWARD_AD_GAPS = (
    "ZeroTensors are immutable",
    "Trying to use forward AD with",
    "Trying to set a forward gradient that has a different size",
    "Cannot access data pointer of Tensor that doesn't have storage",  # packed sequences
    "don't yet support saved tensor hooks",  # a user's saved_tensors_hooks (e.g. offloading)
    "must override the setup_context staticmethod",  # an old-style custom autograd.Function
)


# every flat leaf an evaluation has differentiated with respect to, by id (weakly): a later
# evaluation whose graph reaches one of them reads a tensor left over from an earlier one
_POINT_LEAVES: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()


def point_leaf(theta: torch.Tensor) -> torch.Tensor:
    """A fresh leaf holding ``theta`` to differentiate with respect to, remembered so that
    :func:`is_point_leaf` can recognize it in the graph of a later evaluation."""
    leaf = theta.detach().requires_grad_(True)
    _POINT_LEAVES[id(leaf)] = leaf
    return leaf


def is_point_leaf(t: torch.Tensor) -> bool:
    """Whether ``t`` is a leaf some evaluation made by :func:`point_leaf`."""
    return _POINT_LEAVES.get(id(t)) is t


def resolve_method(method: str) -> str:
    """The concrete method for ``method`` or a ConfigError; ``"auto"`` is double backward
    for one batch and for many alike (measured above)."""
    if method == "auto":
        return "double_backward"
    if method not in METHODS:
        raise ConfigError(f"unknown HVP method {method!r} (choose 'auto' or one of {METHODS})")
    return method


def _scalar(value: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CurvatureError(f"{where} must return a torch.Tensor, got {type(value).__name__}")
    if value.numel() != 1:
        raise CurvatureError(
            f"{where} must return a scalar loss, got shape {tuple(value.shape)} "
            "(use reduction='mean' or 'sum': both are weighted exactly over batches)"
        )
    return value.reshape(())


def _finite_loss(value: float, where: str) -> float:
    if not math.isfinite(value):
        subject = where if where.startswith("the loss") else f"the loss of {where}"
        raise DivergenceError(f"{subject} is not finite ({value})")
    return value


def _finite(t: torch.Tensor, what: str) -> torch.Tensor:
    if not bool(torch.isfinite(t).all()):
        raise DivergenceError(f"{what} is not finite (contains nan or inf)")
    return t


class HVPEngine:
    """Value, gradient and Hessian-vector products of ``f(θ) = Σ_b w_b loss_b(θ)`` at a
    fixed ``θ``. ``context`` is entered around every evaluation (e.g. eval mode)."""

    def __init__(
        self,
        terms: Sequence[Term],
        theta: torch.Tensor,
        method: str = "auto",
        context: Callable[[], object] | None = None,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        constant: torch.Tensor | None = None,
    ) -> None:
        if len(terms) == 0:
            raise CurvatureError("the loss has no terms (empty data)")
        self.terms = terms if not isinstance(terms, (list, tuple)) else list(terms)
        self._reduce = reduce  # the sum over processes of a data-parallel loss
        self.theta = theta.detach()
        self.method = resolve_method(method)
        self._auto = method == "auto"  # may leave double backward if torch cannot do it
        self._checked = False  # the graph searched for once-differentiable Functions
        self.depends = False  # whether any loss evaluated so far required grad (reached θ)
        # flat indices torch holds constant (an Embedding's padding row): zero rows and
        # columns of the Hessian whatever the method
        self._constant = (
            constant.to(theta.device) if constant is not None and constant.numel() else None
        )
        self._double_backward_gap: str | None = None  # why it left
        self._context = context
        self._value: float | None = None
        self._grad: torch.Tensor | None = None
        self._graph: tuple[torch.Tensor, torch.Tensor] | None = None  # (theta leaf, grad)
        # a vmapped second backward (is_grads_batched) for several columns on CUDA; on CPU
        # benchmarks/scale.py measured it slower than one backward per column (transformer:
        # 5 columns 5.7 s vs 3.8 s), so CPU loops; off for good once an op cannot be batched
        self._batched_backward = theta.is_cuda
        self.passes = 0  # passes over the data (forward passes through every batch)
        # finite differences: the largest error estimated along a unit direction, relative
        # to the largest ‖H u‖ measured (an estimate of ‖H‖, what Lanczos' tolerance is
        # relative to; a product that is zero within rounding does not make it 100 %)
        self.fd_error = 0.0
        self._fd_worst = self._fd_scale = 0.0

    # --------------------------------------------------------------- helpers
    def _where(self, i: int) -> str:
        return f"batch {i}" if len(self.terms) > 1 else "the loss"

    def at(self, theta: torch.Tensor) -> HVPEngine:
        """The same loss (terms, method, context) at another point ``theta``."""
        other = HVPEngine(
            self.terms, theta, self.method, self._context, self._reduce, self._constant
        )
        other._auto, other._double_backward_gap = self._auto, self._double_backward_gap
        return other

    def hold_constant(self, indices: torch.Tensor) -> None:
        """Hold the flat ``indices`` of θ constant: zero rows and columns of every product
        (an embedding's padding row, which torch gives no gradient)."""
        self._constant = indices.to(self.theta.device) if indices.numel() else None

    def _check_twice_differentiable(self, loss: torch.Tensor) -> None:
        """Refuse, once, a loss whose graph holds a custom Function torch differentiates
        only once: its second derivative would be left out without an error."""
        if self._checked or self.method == "finite_difference":
            return
        self._checked = True
        names = once_differentiable_functions(loss) if loss.grad_fn is not None else []
        if names:
            raise CurvatureError(
                f"the loss runs custom autograd Function(s) {', '.join(names)} whose backward "
                "is marked @once_differentiable: torch leaves their second derivatives out "
                "without an error, so every exact Hessian-vector product would be wrong; give "
                "them a differentiable backward, or use method='finite_difference' (gradients "
                "only)"
            )

    def _ctx(self):
        import contextlib

        return self._context() if self._context is not None else contextlib.nullcontext()

    def _value_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        self.passes += 1
        total = 0.0
        grad = torch.zeros_like(theta)
        with self._ctx(), torch.enable_grad():
            for i, (w, fn) in enumerate(self.terms):
                leaf = point_leaf(theta)
                where = self._where(i)
                loss = _scalar(fn(leaf), where)
                self._check_twice_differentiable(loss)
                self.depends = self.depends or loss.requires_grad
                if not loss.requires_grad:
                    g = torch.zeros_like(theta)
                else:
                    (g,) = torch.autograd.grad(
                        loss, leaf, allow_unused=True, materialize_grads=True
                    )
                total += w * _finite_loss(float(loss.detach()), where)
                grad.add_(g, alpha=w)
        if self._reduce is not None:
            packed = self._reduce(torch.cat([grad, grad.new_tensor([total])]))
            return float(packed[-1]), packed[:-1]
        return total, grad

    def _retained(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Single term: build ``g = ∇f`` with ``create_graph`` once and keep it."""
        if self._graph is None:
            self.passes += 1
            w, fn = next(iter(self.terms))
            with self._ctx(), torch.enable_grad():
                leaf = point_leaf(self.theta)
                loss = _scalar(fn(leaf), "loss")
                self._check_twice_differentiable(loss)
                self.depends = self.depends or loss.requires_grad
                if loss.requires_grad:
                    (g,) = torch.autograd.grad(
                        loss, leaf, create_graph=True, allow_unused=True, materialize_grads=True
                    )
                else:
                    g = torch.zeros_like(leaf)
                g = g * w if w != 1.0 else g
            self._graph = (leaf, g)
            if self._grad is None:
                value = w * _finite_loss(float(loss.detach()), "the loss")
                grad = g.detach().clone()
                if self._reduce is not None:
                    packed = self._reduce(torch.cat([grad, grad.new_tensor([value])]))
                    value, grad = float(packed[-1]), packed[:-1]
                self._value = _finite_loss(value, "the loss")
                self._grad = _finite(grad, "the gradient")
        return self._graph

    # --------------------------------------------------------------- public
    def value(self) -> float:
        if self._value is None:
            self.gradient()
        assert self._value is not None
        return self._value

    def gradient(self) -> torch.Tensor:
        if self._grad is None:
            if self.method == "double_backward" and len(self.terms) == 1:
                self._retained()
            else:
                v, g = self._value_and_grad(self.theta)
                self._value, self._grad = v, _finite(g, "the gradient")
        assert self._grad is not None
        return self._grad

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """``∇²f(θ) v`` for ``v`` of the shape and dtype of θ."""
        if self._constant is not None:
            v = v.index_fill(0, self._constant, 0.0)
        if self.method == "double_backward":
            try:
                out = self._summed(self._hvp_double_backward(v))
            except (NotImplementedError, RuntimeError) as e:
                self._leave_double_backward(e)
                return self.hvp(v)
        elif self.method == "forward_over_reverse":
            out = self._summed(self._hvp_forward_over_reverse(v))
        else:
            out = self._hvp_finite_difference(v)  # of gradients already summed
        if self._constant is not None:
            out = out.index_fill(0, self._constant, 0.0)
        return _finite(out, "a Hessian-vector product")

    def _summed(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t.contiguous()) if self._reduce is not None else t

    def hvps(self, V: torch.Tensor) -> torch.Tensor:
        """``∇²f(θ) V`` for ``V`` of shape ``(n, b)``, with one pass over the data for all
        ``b`` columns: each batch's forward pass and first backward are shared by the
        ``b`` products (``"double_backward"``: one graph of ``g`` per batch, ``b`` backward
        passes through it, vmapped on CUDA; ``"forward_over_reverse"``: ``vmap`` of the JVP over the
        columns). ``"finite_difference"`` takes two gradients per column."""
        if V.shape[1] == 1 or self.method == "finite_difference":
            cols = [self.hvp(V[:, j]) for j in range(V.shape[1])]
            return torch.stack(cols, dim=1)
        if self._constant is not None:
            V = V.index_fill(0, self._constant, 0.0)
        if self.method == "double_backward":
            try:
                out = self._block_double_backward(V)
            except (NotImplementedError, RuntimeError) as e:
                self._leave_double_backward(e)
                return self.hvps(V)
        else:
            out = self._block_forward_over_reverse(V)
        if self._constant is not None:
            out = out.index_fill(0, self._constant, 0.0)
        return _finite(self._summed(out), "a Hessian-vector product")

    def _leave_double_backward(self, e: Exception) -> None:
        """After torch failed to differentiate the gradient's graph: re-raise what is not a
        missing second derivative; with ``"auto"`` go on forward-over-reverse (the same
        Hessian, exactly); with ``"double_backward"`` asked for, refuse by name."""
        if not missing_second_derivative(e):
            raise e
        first = str(e).strip().splitlines()[0]
        if not self._auto:
            raise CurvatureError(
                f"method='double_backward' cannot differentiate this loss twice in torch "
                f"{torch.__version__} ({first}); try method='forward_over_reverse' (which "
                "'auto' moves to by itself) or 'finite_difference' (gradients only)"
            ) from e
        self.method, self._graph = "forward_over_reverse", None
        self._double_backward_gap = first

    def _columns(self, g: torch.Tensor, leaf: torch.Tensor, V: torch.Tensor, keep: bool):
        """``[∂⟨g, v_j⟩/∂leaf]_j`` through one graph of ``g`` (kept if ``keep``): one
        vmapped backward (``is_grads_batched``) where torch can batch every op of the
        graph, else one backward per column."""
        if self._batched_backward and V.shape[1] > 1:
            try:
                (hv,) = torch.autograd.grad(
                    g,
                    leaf,
                    V.T.contiguous(),
                    retain_graph=True,
                    is_grads_batched=True,
                    allow_unused=True,
                    materialize_grads=True,
                )
                return hv.T
            except (RuntimeError, NotImplementedError):
                self._batched_backward = False  # an op without a batching rule
        b = V.shape[1]
        cols = []
        for j in range(b):
            (hv,) = torch.autograd.grad(
                g,
                leaf,
                V[:, j],
                retain_graph=keep or j < b - 1,
                allow_unused=True,
                materialize_grads=True,
            )
            cols.append(hv)
        return torch.stack(cols, dim=1)

    def _block_double_backward(self, V: torch.Tensor) -> torch.Tensor:
        if len(self.terms) == 1:
            leaf, g = self._retained()
            if not g.requires_grad:
                return torch.zeros_like(V)
            with torch.enable_grad():
                return self._columns(g, leaf, V, keep=True)
        self.passes += 1
        out = torch.zeros_like(V)
        with self._ctx(), torch.enable_grad():
            for w, fn in self.terms:
                leaf = point_leaf(self.theta)
                loss = _scalar(fn(leaf), "loss term")
                if not loss.requires_grad:
                    continue
                (g,) = torch.autograd.grad(loss, leaf, create_graph=True)
                if not g.requires_grad:
                    continue
                out.add_(self._columns(g, leaf, V, keep=False), alpha=w)
        return out

    def _block_forward_over_reverse(self, V: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        out = torch.zeros_like(V)
        try:
            with self._ctx():
                for w, fn in self.terms:
                    grad_fn = torch.func.grad(fn)

                    def column(v: torch.Tensor, grad_fn=grad_fn) -> torch.Tensor:
                        return torch.func.jvp(grad_fn, (self.theta,), (v,))[1]

                    out.add_(torch.func.vmap(column, in_dims=1, out_dims=1)(V), alpha=w)
        except (RuntimeError, NotImplementedError, ValueError):
            # an op without a batching rule: one JVP per column (which also names the
            # forward-AD gaps of torch, see _hvp_forward_over_reverse)
            self.passes -= 1  # each column below takes its own pass
            cols = [self._hvp_forward_over_reverse(V[:, j]) for j in range(V.shape[1])]
            return torch.stack(cols, dim=1)
        return out

    def _hvp_double_backward(self, v: torch.Tensor) -> torch.Tensor:
        return self._block_double_backward(v.unsqueeze(1)).squeeze(1)

    def _hvp_forward_over_reverse(self, v: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        out = torch.zeros_like(v)
        with self._ctx():
            for w, fn in self.terms:
                try:
                    _, hv = torch.func.jvp(torch.func.grad(fn), (self.theta,), (v,))
                except (RuntimeError, NotImplementedError) as e:
                    came_from_double_backward = self._double_backward_gap is not None
                    if not came_from_double_backward and not any(
                        m in str(e) for m in _FORWARD_AD_GAPS
                    ):
                        raise
                    first = str(e).strip().splitlines()[0]
                    if came_from_double_backward:  # 'auto' came from there
                        raise CurvatureError(
                            f"torch {torch.__version__} can differentiate this loss twice "
                            f"neither by double backward ({self._double_backward_gap}) nor "
                            f"forward-over-reverse ({first}); method='finite_difference' "
                            "needs gradients only"
                        ) from e
                    raise CurvatureError(
                        f"method='forward_over_reverse' cannot differentiate this loss in torch "
                        f"{torch.__version__} ({first}); use method='double_backward' (what "
                        "'auto' picks)"
                    ) from e
                out.add_(hv, alpha=w)
        return out

    def _hvp_finite_difference(self, v: torch.Tensor) -> torch.Tensor:
        """Central differences of gradients along the unit direction ``u = v/‖v‖`` with
        steps ``h`` and ``h/2`` (``h = ε^{1/3}·max(1, rms(θ))``, a displacement relative to
        a typical parameter, not to ``‖θ‖``, which grows with the dimension), combined by
        Richardson extrapolation; ``(D(h) − D(h/2))/3`` estimates the error. A product
        whose estimated error exceeds :data:`FD_TOLERANCE` relative (above rounding noise)
        is refused: the loss is too curved at this scale for differences of gradients."""
        vnorm = float(torch.linalg.vector_norm(v))
        if vnorm == 0.0:
            return torch.zeros_like(v)
        u = v / vnorm
        theta = self.theta
        eps = torch.finfo(theta.dtype).eps
        rms = float(torch.linalg.vector_norm(theta)) / math.sqrt(theta.numel())
        h = eps ** (1.0 / 3.0) * max(1.0, rms)
        grads = [self._value_and_grad(theta + t * u)[1] for t in (h, -h, h / 2, -h / 2)]
        d_h = (grads[0] - grads[1]) / (2.0 * h)
        d_half = (grads[2] - grads[3]) / h
        richardson = (4.0 * d_half - d_h) / 3.0
        error = float(torch.linalg.vector_norm(d_h - d_half)) / 3.0
        size = float(torch.linalg.vector_norm(richardson))
        # rounding: of the gradients (divided by the step) and of the point θ ± t·u itself
        gmax = max(float(torch.linalg.vector_norm(g)) for g in grads)
        rounding = 2.0 * eps * (gmax + float(torch.linalg.vector_norm(theta)) * size) / (h / 2)
        # all four gradients exactly zero (a region where the loss does not move, e.g.
        # every ReLU dead): the product is exactly zero, and so is its error
        floor = max(size, rounding)
        relative = max(error, rounding) / floor if floor > 0 else 0.0
        self._fd_worst = max(self._fd_worst, max(error, rounding))
        self._fd_scale = max(self._fd_scale, size)
        if self._fd_scale > 0:
            self.fd_error = self._fd_worst / self._fd_scale
        else:  # every product so far is zero within rounding: nothing relative to say
            self.fd_error = 1.0 if self._fd_worst > 0 else 0.0
        if error > 5.0 * rounding and relative > FD_TOLERANCE:
            raise CurvatureError(
                f"method='finite_difference' reaches only ~{relative:.1e} relative accuracy "
                f"on this loss (step {h:.1e} along a unit direction; the tolerance is "
                f"{FD_TOLERANCE:g}): the Hessian changes too fast at that scale; use "
                "method='double_backward' (exact, what 'auto' picks)"
            )
        return richardson * vnorm
