"""Random perturbations: uniform in a ball, uniform on a sphere, isotropic Gaussian.

A perturbation is drawn for a *list* of tensors (the parameters of an optimizer) that
together form one vector per run: with ``batched=True`` the first dimension of every
tensor indexes B independent runs and each run gets its own draw over the concatenation of
its slices.

The ball sampler draws a direction ``g/‖g‖`` with ``g`` standard normal and a radius
``r·U^{1/d}`` with ``U`` uniform on [0, 1]: the volume of the ball of radius ``ρ`` grows as
``ρ^d``, so ``P(‖ξ‖ ≤ ρ) = (ρ/r)^d`` exactly as for a uniform point (Jin et al. 2017,
Algorithm 2 asks for ξ uniform in B(r)). Drawing the radius as ``r·U`` would crowd the
samples near the centre.

Precision and complex numbers:

- draws are made and returned in float32 or wider (float64 tensors get float64 draws,
  float16/bfloat16 tensors float32 ones): the squared norm of 10⁵ half-precision normals
  (≈ 10⁵) overflows float16 (max 65504), which would make the scale r/‖g‖ silently 0;
- a complex tensor of n entries is the real vector of its 2n real and imaginary parts
  (ℂⁿ ≅ ℝ²ⁿ, as ``torch.view_as_real`` lays it out): the draw has 2n real degrees of
  freedom and is returned as a complex tensor of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["gaussian", "uniform_ball", "uniform_sphere", "wide_dtype"]


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype, float32 or wider, in which statistics of ``dtype`` tensors (norms,
    draws, f values) are accumulated: float16/bfloat16 → float32, complex64 → float32."""
    if dtype.is_complex:
        dtype = dtype.to_real()
    if not dtype.is_floating_point:
        return torch.float64 if dtype == torch.int64 else torch.float32
    return torch.promote_types(dtype, torch.float32)


def _draw_normal(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normals shaped like ``t``'s real view, in its wide dtype."""
    shape = (*t.shape, 2) if t.is_complex() else t.shape
    return torch.randn(shape, generator=generator, dtype=wide_dtype(t.dtype), device=t.device)


def _directions(
    like: Sequence[torch.Tensor], runs: int, generator: torch.Generator
) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    gs = [_draw_normal(t, generator) for t in like]
    wide = gs[0].dtype
    for g in gs[1:]:
        wide = torch.promote_types(wide, g.dtype)
    sq = None
    dim = 0
    for g in gs:
        s = g.reshape(runs, -1).square().sum(1, dtype=wide)
        sq = s if sq is None else sq + s
        dim += g.numel() // runs
    assert sq is not None
    return gs, sq, dim


def _scale(
    gs: list[torch.Tensor], like: Sequence[torch.Tensor], scale: torch.Tensor, batched: bool
) -> list[torch.Tensor]:
    out = []
    for g, t in zip(gs, like, strict=True):
        shape = [g.shape[0]] + [1] * (g.ndim - 1) if batched else [1] * g.ndim
        g = g.mul_(scale.reshape(shape).to(g.dtype))
        out.append(torch.view_as_complex(g) if t.is_complex() else g)
    return out


def uniform_sphere(
    like: Sequence[torch.Tensor],
    radius: float | torch.Tensor,
    *,
    generator: torch.Generator,
    batched: bool = False,
) -> list[torch.Tensor]:
    """Tensors shaped like ``like`` whose concatenation (per run) is uniform on the sphere
    of the given radius (Ge, Huang, Jin, Yuan 2015: noise uniform on the sphere).

    >>> g = torch.Generator().manual_seed(0)
    >>> (z,) = uniform_sphere([torch.zeros(1000, dtype=torch.complex64)], 1.0, generator=g)
    >>> round(float(torch.view_as_real(z).norm()), 5)  # ℂ¹⁰⁰⁰ as ℝ²⁰⁰⁰
    1.0
    """
    runs = like[0].shape[0] if batched else 1
    gs, sq, _ = _directions(like, runs, generator)
    return _scale(gs, like, radius / sq.sqrt(), batched)


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
    gs, sq, dim = _directions(like, runs, generator)
    u = torch.rand(runs, generator=generator, dtype=sq.dtype, device=sq.device)
    return _scale(gs, like, radius * u.pow(1.0 / dim) / sq.sqrt(), batched)


def gaussian(
    like: Sequence[torch.Tensor], std: float | torch.Tensor, *, generator: torch.Generator
) -> list[torch.Tensor]:
    """Independent N(0, std²) real entries shaped like ``like`` (for a complex tensor, its
    real and imaginary parts each get N(0, std²)): annealed noise, Neelakantan et al.
    2015; perturbed SGD, Jin et al. 2021."""
    out = []
    for t in like:
        g = _draw_normal(t, generator).mul_(std)
        out.append(torch.view_as_complex(g) if t.is_complex() else g)
    return out
