"""Workarounds for torch operations whose derivatives are wrong or missing, found by
``tests/curvature/test_layer_audit.py`` (torch 2.13)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def _weight_norm(v: torch.Tensor, g: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``torch._weight_norm`` by its formula, ``v · g / ‖v‖`` with the norm over every
    dimension but ``dim`` (over all of ``v`` for ``dim = -1``, as torch's convention)."""
    if dim == -1:
        return v * (g / torch.linalg.vector_norm(v))
    dim %= v.ndim
    rest = [d for d in range(v.ndim) if d != dim]
    return v * (g / torch.linalg.vector_norm(v, dim=rest, keepdim=True))


@contextlib.contextmanager
def composite_weight_norm() -> Iterator[None]:
    """Both weight-norm APIs evaluate through ``torch._weight_norm``, whose second
    derivative is wrong on the CPU in torch 2.13 (a Hessian 50 % off; gradients are right;
    ``tests/curvature/test_layer_audit.py``): inside saddlescape's evaluations (the
    curvature operators, and the closures of the second-order optimizers) they run the
    same formula, composed of differentiable ops, instead."""
    import importlib

    legacy = importlib.import_module("torch.nn.utils.weight_norm")  # the module, not the function
    saved = torch._weight_norm, legacy._weight_norm
    torch._weight_norm = legacy._weight_norm = _weight_norm  # type: ignore[assignment]
    try:
        yield
    finally:
        torch._weight_norm, legacy._weight_norm = saved  # type: ignore[assignment]


# torch errors of a backward formula that has no derivative of its own (torch 2.13:
# EmbeddingBag's and MultiMarginLoss's backward) or a custom Function marked
# once-differentiable
_DOUBLE_BACKWARD_GAPS = ("is not implemented", "once_differentiable")


def missing_second_derivative(e: BaseException) -> bool:
    """Whether ``e`` is torch saying it cannot differentiate a backward formula again."""
    return isinstance(e, (NotImplementedError, RuntimeError)) and any(
        m in str(e) for m in _DOUBLE_BACKWARD_GAPS
    )
