"""Random Gaussian directions with filter normalization.

Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS), §4: a direction ``d`` drawn from N(0, I) is rescaled filter by filter,

    d_{i,j} ← d_{i,j} / ‖d_{i,j}‖ · ‖θ_{i,j}‖,

where ``d_{i,j}`` is the ``j``-th filter of layer ``i`` (the slice of the parameter tensor
along its first, output dimension: a row of a ``Linear`` weight, an output channel of a
``Conv`` kernel) and ``θ_{i,j}`` the matching filter of the weights at the centre. This
removes the scale invariance of ReLU networks (rescaling a layer's weights changes the
sharpness of the plot but not the function) so that slices of different networks compare.

**Biases and BatchNorm** (the paper's default, its code's ``ignore="biasbn"``): every
one-dimensional parameter — biases, BatchNorm's scale and shift — gets direction 0, so
the slice moves weights only. With ``ignore="none"`` a 1-D parameter's direction is the
parameter itself (its "filters" are single numbers, and filter-normalizing a one-number
filter gives ``±θ``; the paper's code copies ``θ``). BatchNorm's running mean and variance
are buffers, not parameters: they stay at the centre's values in every slice (in eval mode
the slice reads them; in train mode the batch statistics are used instead).

Other normalizations: ``"layer"`` (each parameter tensor scaled to the norm of the
weights' tensor), ``"unit"`` (each direction of norm 1: for problems that are not
networks) and ``"none"`` (the raw Gaussian draw).

>>> import torch
>>> theta = torch.tensor([3.0, 4.0, 0.0, 5.0, 7.0], dtype=torch.float64)  # W (2x2) + bias (1,)
>>> d = random_directions(theta, k=1, seed=0, shapes=[("w", (2, 2)), ("b", (1,))])
>>> d.vectors[0, :2].norm().item(), d.vectors[0, 2:4].norm().item(), d.vectors[0, 4].item()
(5.0, 5.0, 0.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from ..errors import ConfigError, check_int
from .directions import Directions

__all__ = ["NORMALIZATIONS", "random_directions"]

NORMALIZATIONS: tuple[str, ...] = ("filter", "layer", "unit", "none")


def _split(shapes: Sequence[tuple[str, Sequence[int]]] | None, n: int) -> list[tuple[int, int]]:
    """``[(offset, shape)]`` slices of the flat vector per parameter tensor."""
    if shapes is None:
        raise ConfigError(
            "filter and layer normalization need the parameter shapes (shapes=[(name, shape)], "
            "as LossTarget.shapes gives for a model); use normalization='unit' for a flat vector"
        )
    total = sum(math.prod(s) for _, s in shapes)
    if total != n:
        raise ConfigError(f"the shapes hold {total} entries but the centre has {n}")
    return [(name, tuple(int(x) for x in s)) for name, s in shapes]  # type: ignore[misc]


def random_directions(
    center: torch.Tensor,
    k: int = 2,
    *,
    seed: int = 0,
    normalization: str = "filter",
    shapes: Sequence[tuple[str, Sequence[int]]] | None = None,
    ignore: str = "biasbn",
) -> Directions:
    """``k`` random Gaussian directions at ``center`` (flat, ``(n,)``), normalized.

    ``normalization``: ``"filter"`` (Li et al. 2018 §4, needs ``shapes``: the
    ``[(name, shape)]`` of the parameter tensors in the order of the flat vector),
    ``"layer"``, ``"unit"`` or ``"none"``; ``ignore``: ``"biasbn"`` (1-D parameters get
    direction 0, the paper's choice) or ``"none"`` (their direction is the parameter
    itself). The draw is float64 from ``torch.Generator().manual_seed(seed)``: the same
    seed gives the same bits on every machine.
    """
    t0 = time.perf_counter()
    k = check_int("k", k, minimum=1)
    seed = check_int("seed", seed)
    if normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"
        )
    if ignore not in ("biasbn", "none"):
        raise ConfigError(f"ignore must be 'biasbn' or 'none', got {ignore!r}")
    theta = torch.as_tensor(center).detach().to("cpu", torch.float64).reshape(-1)
    n = theta.numel()
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn((k, n), generator=gen, dtype=torch.float64)
    if normalization == "none":
        vectors = raw
    elif normalization == "unit":
        vectors = raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True)
    else:
        parts = _split(shapes, n)
        vectors = torch.empty_like(raw)
        for i in range(k):
            vectors[i] = _normalize(raw[i], theta, parts, normalization, ignore)
    if not bool(vectors.abs().sum(dim=1).gt(0).all()):
        raise ConfigError(
            "a random direction is zero: every parameter was ignored (only 1-D parameters "
            "with ignore='biasbn') or the weights are zero; try ignore='none' or "
            "normalization='unit' (on the command line: --normalization unit)"
        )
    word = {"filter": "filter-normalized", "layer": "layer-normalized"}.get(normalization, "")
    labels = tuple(f"{word + ' ' if word else ''}random direction {i + 1}" for i in range(k))
    return Directions(
        vectors,
        "random",
        labels,
        seed=seed,
        normalization=normalization,
        seconds=time.perf_counter() - t0,
    )


def _normalize(
    d: torch.Tensor,
    theta: torch.Tensor,
    parts: list[tuple[str, tuple[int, ...]]],
    normalization: str,
    ignore: str,
) -> torch.Tensor:
    out = torch.empty_like(d)
    offset = 0
    for _name, shape in parts:
        size = math.prod(shape)
        dp, wp = d[offset : offset + size], theta[offset : offset + size]
        if len(shape) <= 1:  # biases and BatchNorm scale/shift
            out[offset : offset + size] = 0.0 if ignore == "biasbn" else wp
        elif normalization == "layer":
            out[offset : offset + size] = dp * (wp.norm() / dp.norm())
        else:  # one filter = one slice along the first (output) dimension
            df, wf = dp.view(shape[0], -1), wp.view(shape[0], -1)
            scale = wf.norm(dim=1, keepdim=True) / df.norm(dim=1, keepdim=True)
            out[offset : offset + size] = (df * scale).reshape(-1)
        offset += size
    return out
