"""Random perturbations: uniform in a ball, uniform on a sphere, isotropic Gaussian.

A perturbation is drawn for a *list* of tensors (the parameters of a group) that together
form one vector per run: with ``runs = B`` the first dimension of every tensor indexes B
independent runs and each run gets its own draw over the concatenation of its slices.

The ball sampler draws a direction ``g/‖g‖`` with ``g`` standard normal and a radius
``r·U^{1/d}`` with ``U`` uniform on [0, 1]: the volume of the ball of radius ``ρ`` grows as
``ρ^d``, so ``P(‖ξ‖ ≤ ρ) = (ρ/r)^d`` exactly as for a uniform point (Jin et al. 2017,
Algorithm 2 asks for ξ uniform in B(r)). Drawing the radius as ``r·U`` would crowd the
samples near the centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["gaussian", "uniform_ball", "uniform_sphere"]


def _directions(
    like: Sequence[torch.Tensor], runs: int, batched: bool, generator: torch.Generator
) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    gs = [torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device) for t in like]
    sq = None
    dim = 0
    for g in gs:
        s = g.reshape(runs, -1).square().sum(1)
        sq = s if sq is None else sq + s
        dim += g.numel() // runs
    assert sq is not None
    return gs, sq, dim


def _scale(gs: list[torch.Tensor], scale: torch.Tensor, batched: bool) -> list[torch.Tensor]:
    out = []
    for g in gs:
        shape = [g.shape[0]] + [1] * (g.ndim - 1) if batched else [1] * g.ndim
        out.append(g.mul_(scale.reshape(shape)))
    return out


def uniform_sphere(
    like: Sequence[torch.Tensor],
    radius: float | torch.Tensor,
    *,
    generator: torch.Generator,
    batched: bool = False,
) -> list[torch.Tensor]:
    """Tensors shaped like ``like`` whose concatenation (per run) is uniform on the sphere
    of the given radius (Ge, Huang, Jin, Yuan 2015: noise uniform on the sphere)."""
    runs = like[0].shape[0] if batched else 1
    gs, sq, _ = _directions(like, runs, batched, generator)
    return _scale(gs, radius / sq.sqrt(), batched)


def uniform_ball(
    like: Sequence[torch.Tensor],
    radius: float | torch.Tensor,
    *,
    generator: torch.Generator,
    batched: bool = False,
) -> list[torch.Tensor]:
    """Tensors shaped like ``like`` whose concatenation (per run) is uniform in the ball of
    the given radius: direction uniform, radius ``r·U^{1/d}`` (Jin et al. 2017, Alg. 2).

    >>> g = torch.Generator().manual_seed(0)
    >>> (xi,) = uniform_ball([torch.zeros(10_000, 3)], 2.0, generator=g, batched=True)
    >>> norms = xi.norm(dim=1)
    >>> frac_inner = float((norms <= 1.0).double().mean())  # P(‖ξ‖ ≤ r/2) = 2^-d
    >>> bool(norms.max() <= 2.0), abs(frac_inner - 1 / 8) < 0.01
    (True, True)
    """
    runs = like[0].shape[0] if batched else 1
    gs, sq, dim = _directions(like, runs, batched, generator)
    u = torch.rand(runs, generator=generator, dtype=sq.dtype, device=sq.device)
    return _scale(gs, radius * u.pow(1.0 / dim) / sq.sqrt(), batched)


def gaussian(
    like: Sequence[torch.Tensor], std: float | torch.Tensor, *, generator: torch.Generator
) -> list[torch.Tensor]:
    """Independent N(0, std²) entries shaped like ``like`` (annealed noise, Neelakantan et
    al. 2015; perturbed SGD, Jin et al. 2021)."""
    return [
        torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device).mul_(std)
        for t in like
    ]
