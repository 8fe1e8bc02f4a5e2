"""Workarounds for torch operations whose second derivatives are wrong or missing, found by
``tests/curvature/test_layer_audit.py`` (torch 2.13)."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from typing import Any

import torch


def _weight_norm(v: torch.Tensor, g: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``torch._weight_norm`` by its formula, ``v · g / ‖v‖`` with the norm over every
    dimension but ``dim`` (over all of ``v`` for ``dim = -1``, torch's convention; a 1-d
    ``v`` normed per element, so ``g·sign(v)``), accumulated in float32 for half types as
    torch's kernel does."""
    if not -v.ndim <= dim < max(v.ndim, 1):
        raise IndexError(f"dim {dim} is out of range for a tensor of {v.ndim} dimensions")
    acc = torch.float32 if v.dtype in (torch.float16, torch.bfloat16) else None
    if dim == -1:
        norm = torch.linalg.vector_norm(v, dtype=acc)
    else:
        rest = [d for d in range(v.ndim) if d != dim % v.ndim]
        norm = torch.linalg.vector_norm(v, dim=rest, keepdim=True, dtype=acc) if rest else v.abs()
    return v * (g / norm.to(v.dtype))


# torch errors of a backward formula that has no derivative of its own (torch 2.13:
# EmbeddingBag's and MultiMarginLoss's backward) or a custom Function marked
# once-differentiable
_DOUBLE_BACKWARD_GAPS = (
    "is not implemented",
    "once_differentiable",
    "does not currently support double backward",  # a torch.compile(d) model (aot_autograd)
)


def graph_nodes(output: torch.Tensor) -> Iterator[Any]:
    """Every node of ``output``'s autograd graph, once each (depth first from its grad_fn)."""
    seen: set[int] = set()
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(n for n, _ in node.next_functions)


def once_differentiable_functions(output: torch.Tensor) -> list[str]:
    """The custom autograd Functions in ``output``'s graph whose backward is marked
    ``@once_differentiable``: torch leaves their second derivatives out *silently* (the
    backward's result carries no graph, and no error is raised), so no exact Hessian can
    pass through them."""
    found: set[str] = set()
    for node in graph_nodes(output):
        cls = getattr(node, "_forward_cls", None)
        code = getattr(getattr(cls, "backward", None), "__code__", None)
        if code is not None and code.co_name == "wrapper" and "autograd" in code.co_filename:
            if hasattr(cls.backward, "__wrapped__"):  # functools.wraps of once_differentiable
                found.add(cls.__name__)
    return sorted(found)


def missing_second_derivative(e: BaseException) -> bool:
    """Whether ``e`` is torch saying it cannot differentiate a backward formula again."""
    return isinstance(e, (NotImplementedError, RuntimeError)) and any(
        m in str(e) for m in _DOUBLE_BACKWARD_GAPS
    )


_EMBEDDING_BAG = torch.embedding_bag


def _embedding_bag(
    weight: torch.Tensor,
    indices: torch.Tensor,
    offsets: torch.Tensor,
    scale_grad_by_freq: bool,
    mode: int,
    sparse: bool,
    per_sample_weights: torch.Tensor | None,
    include_last_offset: bool,
    padding_idx: int | None,
) -> tuple[Any, ...]:
    """``torch.embedding_bag`` (as ``F.embedding_bag`` calls it: 1-d indices and offsets) by
    ops torch differentiates twice: rows gathered and summed into their bags (divided by
    the bag's size for ``mode="mean"``); for ``"max"`` the winning row of each feature,
    chosen by torch's own kernel, gathered. Padding entries are left out as torch does.
    Sparse or frequency-scaled gradients are torch's own business: those calls pass through."""
    if scale_grad_by_freq or sparse:
        return _EMBEDDING_BAG(weight, indices, offsets, scale_grad_by_freq, mode, sparse,
                              per_sample_weights, include_last_offset, padding_idx)  # fmt: skip
    with torch.no_grad():
        out = _EMBEDDING_BAG(
            weight.detach(), indices, offsets, False, mode, False,
            None if per_sample_weights is None else per_sample_weights.detach(),
            include_last_offset, padding_idx,
        )  # fmt: skip
    bags, dim = out[0].shape
    if mode == 2:  # max: each feature's winning row; an empty bag gives 0
        value = weight.gather(0, out[3].clamp(min=0))
        return (value * (out[2] > 0).unsqueeze(1), *out[1:])
    n = indices.numel()
    starts = offsets[:-1] if include_last_offset else offsets
    position = torch.arange(n, device=indices.device)
    bag = torch.searchsorted(starts.contiguous(), position, right=True) - 1
    keep = bag >= 0
    if include_last_offset:
        keep &= position < offsets[-1]
    if padding_idx is not None and padding_idx >= 0:
        keep &= indices != padding_idx
    rows = weight.index_select(0, indices[keep])
    if per_sample_weights is not None:
        rows = rows * per_sample_weights[keep].unsqueeze(1)
    value = weight.new_zeros(bags, dim).index_add(0, bag[keep], rows)
    if mode == 1:
        count = weight.new_zeros(bags).index_add(0, bag[keep], weight.new_ones(rows.shape[0]))
        value = value / count.clamp(min=1).unsqueeze(1)
    return (value, *out[1:])


def _hardsigmoid(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``F.hardsigmoid`` as ``clamp(x/6 + 1/2, 0, 1)`` (torch 2.13 has no second derivative
    of its backward, nor a forward-mode one; ``inplace`` gives the same value, out of
    place)."""
    return (input / 6 + 0.5).clamp(0.0, 1.0)


_IMPOSSIBLE = -1e30  # log-probability of an alignment state no path reaches


def _ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: int = 1,
    zero_infinity: bool = False,
) -> torch.Tensor:
    """``torch.ctc_loss`` (as ``F.ctc_loss`` calls it; ``reduction`` 0 none, 1 mean, 2 sum)
    by the CTC forward recursion (Graves et al. 2006) in log space, ops torch
    differentiates twice. Targets padded ``(N, S)`` or concatenated; unreachable states
    carry a finite ``-1e30`` so that no gradient is 0·∞; an infeasible sample's loss is
    ``inf`` (0 with ``zero_infinity``), as torch's."""
    batched = log_probs.ndim == 3
    lp = log_probs if batched else log_probs.unsqueeze(1)
    T, N, _ = lp.shape
    dev = lp.device
    il = torch.as_tensor(input_lengths, device=dev).reshape(-1).long()
    tl = torch.as_tensor(target_lengths, device=dev).reshape(-1).long()
    S = max(int(tl.max()), 1)
    if targets.ndim == 2 or not batched:  # padded (or one unbatched sequence)
        tg = targets.reshape(N, -1)[:, :S].long()
    else:  # concatenated: sample n's labels start after the lengths before it
        at = (torch.cumsum(tl, 0) - tl).unsqueeze(1) + torch.arange(S, device=dev)
        tg = targets.long()[at.clamp(max=max(targets.numel() - 1, 0))]
    L = 2 * S + 1
    ext = torch.full((N, L), blank, dtype=torch.long, device=dev)
    ext[:, 1::2] = tg
    pos = torch.arange(L, device=dev)
    valid = pos.unsqueeze(0) < (2 * tl + 1).unsqueeze(1)
    skip = torch.zeros(N, L, dtype=torch.bool, device=dev)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    none = lp.new_tensor(_IMPOSSIBLE)
    emit = lp.gather(2, ext.unsqueeze(0).expand(T, N, L))
    alpha = torch.where((pos < 2).unsqueeze(0) & valid, emit[0], none)
    for t in range(1, T):
        one_back = torch.cat([none.expand(N, 1), alpha[:, :-1]], 1)
        two_back = torch.where(skip, torch.cat([none.expand(N, 2), alpha[:, :-2]], 1), none)
        step = torch.logsumexp(torch.stack([alpha, one_back, two_back]), 0) + emit[t]
        alpha = torch.where((t < il).unsqueeze(1), torch.where(valid, step, none), alpha)
    end = 2 * tl
    last = alpha.gather(1, end.unsqueeze(1)).squeeze(1)
    before = alpha.gather(1, (end - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    nll = -torch.logaddexp(last, torch.where(tl > 0, before, none))
    infeasible = nll > -_IMPOSSIBLE / 10
    nll = torch.where(
        infeasible, torch.zeros_like(nll) if zero_infinity else nll.new_tensor(float("inf")), nll
    )
    if reduction == 0:
        return nll if batched else nll[0]
    if reduction == 1:
        return (nll / tl.clamp(min=1).to(nll.dtype)).mean()
    return nll.sum()


def _multi_margin_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: torch.Tensor | None = None,
    reduction: int = 1,
) -> torch.Tensor:
    """``torch._C._nn.multi_margin_loss`` (as ``F.multi_margin_loss`` calls it) by its formula,
    ``Σ_{j≠y} w_y · max(0, margin − x_y + x_j)^p / C``: torch 2.13 has no second derivative
    of its backward, nor a forward-mode one."""
    x = input if input.ndim == 2 else input.reshape(1, -1)
    y = target.reshape(-1, 1).long()
    gap = (margin - x.gather(1, y) + x).clamp(min=0)
    term = gap * gap if p == 2 else gap
    if weight is not None:
        term = term * weight[y]
    term = term.scatter(1, y, torch.zeros_like(y, dtype=term.dtype))  # j ≠ y only
    loss = term.sum(1) / x.shape[1]
    if reduction == 0:
        return loss if input.ndim == 2 else loss.reshape(())
    return loss.mean() if reduction == 1 else loss.sum()


_CHECKPOINT = importlib.import_module("torch.utils.checkpoint")


class _PlainCheckpoint:
    """Stands in for ``torch.utils.checkpoint.CheckpointFunction``, the engine of
    ``checkpoint(..., use_reentrant=True)`` (torch 2.13's default, with a warning): runs the
    block plainly. The reentrant engine refuses ``autograd.grad`` when the block's input
    requires grad, and when it does not, the parameters inside get no gradient at all (torch
    warns "None of the inputs have requires_grad=True") — a Hessian with their rows zero."""

    @staticmethod
    def apply(function: Any, preserve_rng_state: bool, *args: Any) -> Any:
        return function(*args)


def _run_plainly(*args: Any, **kwargs: Any) -> Iterator[None]:
    """Stands in for the non-reentrant engine's generator: nothing before or after the block,
    which ``checkpoint`` then runs plainly. That engine recomputes the block's activations
    during the backward, reading the module's own parameters then — after saddlescape's
    evaluation at a point (``functional_call``) has returned: at any point other than the
    module's (finite differences, ``HessianOperator.at``) the recomputed activations were
    those of another point and the product silently wrong; under ``torch.func`` its
    saved-tensor hooks are refused."""
    yield


_PARAMETRIZE = importlib.import_module("torch.nn.utils.parametrize")

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: list[tuple[Any, str, Any]] = []


def _targets() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement): both weight-norm APIs call ``torch._weight_norm``
    (the legacy hook through its module's own binding); ``F.embedding_bag`` calls
    ``torch.embedding_bag``; ``nn.Hardsigmoid`` calls ``F.hardsigmoid``; ``F.ctc_loss``
    calls ``torch.ctc_loss``; ``F.multi_margin_loss`` calls
    ``torch._C._nn.multi_margin_loss``; ``parametrize.cached()`` is switched off."""
    legacy = importlib.import_module("torch.nn.utils.weight_norm")  # the module, not the function
    targets: list[tuple[Any, str, Any]] = [
        (torch, "_weight_norm", _weight_norm),
        (legacy, "_weight_norm", _weight_norm),
        (torch, "embedding_bag", _embedding_bag),
        (torch.nn.functional, "hardsigmoid", _hardsigmoid),
        (torch, "ctc_loss", _ctc_loss),
        (torch._C._nn, "multi_margin_loss", _multi_margin_loss),
    ]
    if hasattr(_PARAMETRIZE, "_cache_enabled"):  # a private name: torch may move it
        # ``parametrize.cached()`` keeps each parametrized weight from its first computation
        # (keyed by module), so every later evaluation, at any point, would reuse that
        # tensor; off inside saddlescape's evaluations, each computes its own
        targets.append((_PARAMETRIZE, "_cache_enabled", 0))
    engines = ("CheckpointFunction", "_checkpoint_without_reentrant_generator")
    if all(hasattr(_CHECKPOINT, name) for name in engines):  # private names: torch may move them
        targets += [
            (_CHECKPOINT, engines[0], _PlainCheckpoint),
            (_CHECKPOINT, engines[1], _run_plainly),
        ]
    return targets


@contextlib.contextmanager
def exact_second_derivatives() -> Iterator[None]:
    """Inside saddlescape's evaluations (the curvature operators, and the closures of the
    second-order optimizers), the torch functions whose second derivatives are wrong
    (``_weight_norm`` on the CPU: a Hessian ~50 % off, gradients right) or missing
    (``embedding_bag``, ``hardsigmoid``, ``ctc_loss``, ``multi_margin_loss``: neither
    double backward nor forward AD) run as the same functions composed of differentiable
    ops, ``torch.utils.checkpoint`` runs its blocks plainly, keeping their activations
    (neither engine gives exact curvature: see ``_PlainCheckpoint``, ``_run_plainly``), and
    a surrounding ``torch.nn.utils.parametrize.cached()`` caches nothing (its cache would
    hand every evaluation the weight of the first point).

    The replacement is process-wide while any thread is inside (reference-counted under a
    lock, undone when the last one leaves): another thread calling these functions
    meanwhile gets the same values through the composite ops."""
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            _SAVED[:] = [(owner, name, getattr(owner, name)) for owner, name, _ in _targets()]
            for owner, name, new in _targets():
                setattr(owner, name, new)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                for owner, name, old in _SAVED:
                    setattr(owner, name, old)
                _SAVED.clear()
