"""Plumbing shared by the randomized estimators (trace, spectral density, smoothness).

Any *operator-like* object works: it needs ``matvec(v)`` for ``v`` of shape ``(n,)``,
``shape`` ``(n, n)`` and ``dtype``; ``matmat(V)`` and ``device`` are used when present.
A plain square :class:`torch.Tensor` is accepted too.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError


class _CountingOperator:
    """Wrap an operator-like object (or a square tensor), counting the products it makes.

    Our own count is authoritative for the ``hvps`` of results, whatever the wrapped
    operator's own counter says (it may be shared by several computations).
    """

    def __init__(self, op: Any, watch: Any = None):
        if isinstance(op, torch.Tensor):
            if op.ndim != 2 or op.shape[0] != op.shape[1]:
                raise ConfigError(f"operator must be a square matrix, got shape {tuple(op.shape)}")
            self._dense: torch.Tensor | None = op
            self.n = int(op.shape[0])
            self.dtype = op.dtype
            self.device = op.device
        else:
            if not hasattr(op, "matvec") or not hasattr(op, "shape"):
                raise ConfigError(
                    "operator must be a square tensor or an object with matvec(v) and shape, "
                    f"got {type(op).__name__}"
                )
            shape = tuple(op.shape)
            if len(shape) != 2 or shape[0] != shape[1]:
                raise ConfigError(f"operator must be square, got shape {shape}")
            self._dense = None
            self.n = int(shape[0])
            self.dtype = getattr(op, "dtype", torch.float64)
            self.device = torch.device(getattr(op, "device", "cpu"))
        self.op = op
        self.products = 0
        self._passes0 = int(getattr(op, "passes", 0))
        self._watch = watch  # a progress Watch told the product count after each call

    @property
    def passes(self) -> int:
        """Passes over the data the wrapped operator made since wrapping."""
        return int(getattr(self.op, "passes", 0)) - self._passes0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        out = self._dense @ v if self._dense is not None else self.op.matvec(v)
        self._report()
        return out

    def _report(self) -> None:
        if self._watch is not None:
            self._watch(self.products)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``A @ V`` for ``V`` of shape ``(n, k)``; uses the operator's ``matmat`` if any."""
        k = V.shape[1]
        if k == 0:
            return V.clone()
        self.products += k
        if self._dense is not None:
            out = self._dense @ V
        elif hasattr(self.op, "matmat"):
            out = self.op.matmat(V)
        else:
            out = torch.stack([self.op.matvec(V[:, j]) for j in range(k)], dim=1)
        self._report()
        return out


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU generator from a seed (``None``: fresh nondeterministic seed) or a generator.

    Random vectors are drawn on the CPU and moved to the operator's device, so the same
    seed gives the same probes on every device.
    """
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an int, a torch.Generator or None, got {seed!r}")
        g.manual_seed(seed)
    return g


def rademacher(
    shape: tuple[int, ...], gen: torch.Generator, like: _CountingOperator
) -> torch.Tensor:
    """Random ±1 entries of the operator's dtype and device."""
    z = torch.randint(0, 2, shape, generator=gen, dtype=torch.int8).to(like.dtype) * 2 - 1
    return z.to(like.device)
