"""Directions to slice a loss along, and user-given ones.

A :class:`Directions` holds ``k`` flat vectors (float64, ``(k, n)``) with their kind
(``"random"``, ``"eigen"``, ``"pca"``, ``"user"``, ``"interpolation"``), one axis label
each, the numbers that go with them (eigenvalues, explained-variance ratios) and what they
cost. The algorithms that make them live one a file: :mod:`.random` (filter-normalized
Gaussian, Li et al. 2018), :mod:`.eigen` (Hessian eigenvectors by Lanczos), :mod:`.pca`
(principal components of a trajectory).

>>> import torch
>>> d = user_directions(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
>>> d.kind, d.k, d.labels
('user', 2, ('d1', 'd2'))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError

__all__ = ["KINDS", "Directions", "user_directions"]

KINDS: tuple[str, ...] = ("random", "eigen", "pca", "user", "interpolation")


@dataclass(frozen=True)
class Directions:
    """``k`` directions in parameter space.

    ``vectors``: float64 ``(k, n)``; ``kind``: one of :data:`KINDS`; ``labels``: an axis
    name per direction (e.g. ``"v_min (λ = -1)"``); ``values``: float64 ``(k,)`` eigenvalues
    (``eigen``), explained-variance ratios (``pca``) or None; ``seed`` of random ones;
    ``normalization`` of random ones (``"filter"``, ``"layer"``, ``"unit"``, ``"none"``);
    ``hvps`` and ``seconds``: their cost.
    """

    vectors: torch.Tensor
    kind: str
    labels: tuple[str, ...]
    values: torch.Tensor | None = None
    seed: int | None = None
    normalization: str | None = None
    hvps: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        v = self.vectors
        if not isinstance(v, torch.Tensor) or v.ndim != 2 or v.shape[0] < 1:
            raise ConfigError("directions must be a (k, n) tensor with k >= 1")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown direction kind {self.kind!r}: one of {', '.join(KINDS)}")
        if len(self.labels) != v.shape[0]:
            raise ConfigError(f"{v.shape[0]} directions need {v.shape[0]} labels")
        if not bool(torch.isfinite(v).all()):
            raise ConfigError("directions contain nan or inf")

    @property
    def k(self) -> int:
        """The number of directions."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """The dimension ``n`` of parameter space."""
        return int(self.vectors.shape[1])

    def __getitem__(self, index: int | slice) -> Directions:
        """A subset of the directions (same kind and cost)."""
        idx = [index] if isinstance(index, int) else list(range(self.k))[index]
        vals = None if self.values is None else self.values[idx]
        return Directions(
            self.vectors[idx],
            self.kind,
            tuple(self.labels[i] for i in idx),
            vals,
            self.seed,
            self.normalization,
            self.hvps,
            self.seconds,
        )

    def project(self, points: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """Coordinates ``(T, k)`` of ``points`` ``(T, n)`` in the plane ``center + span``:
        the least-squares ``c`` with ``center + cᵀ vectors ≈ point`` (exact for points in the
        plane; directions need not be orthogonal, as filter-normalized ones are not)."""
        pts = torch.as_tensor(points).to(torch.float64).reshape(-1, self.dim)
        diff = pts - torch.as_tensor(center).to(torch.float64)
        sol = torch.linalg.lstsq(self.vectors.T, diff.T, driver="gelsd")
        return sol.solution.T

    def residual(self, points: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """Distance ``(T,)`` of each point from the plane (0 for points on it)."""
        pts = torch.as_tensor(points).to(torch.float64).reshape(-1, self.dim)
        coords = self.project(pts, center)
        back = torch.as_tensor(center).to(torch.float64) + coords @ self.vectors
        return torch.linalg.vector_norm(pts - back, dim=1)


def user_directions(*vectors: torch.Tensor, labels: tuple[str, ...] | None = None) -> Directions:
    """Directions given by the user (any non-zero flat vectors of one length), kept as they
    are (not normalized: a slice coordinate 1 is one whole vector)."""
    if not vectors:
        raise ConfigError("give at least one direction vector")
    rows = [torch.as_tensor(v).detach().to(torch.float64).reshape(-1) for v in vectors]
    if len({r.numel() for r in rows}) != 1:
        raise ConfigError(f"direction vectors differ in length: {[r.numel() for r in rows]}")
    for i, r in enumerate(rows):
        if not bool(torch.isfinite(r).all()) or float(torch.linalg.vector_norm(r)) == 0.0:
            raise ConfigError(f"direction {i + 1} is zero or not finite")
    labels = labels or tuple(f"d{i + 1}" for i in range(len(rows)))
    return Directions(torch.stack(rows), "user", tuple(labels))


def fix_sign(v: torch.Tensor) -> torch.Tensor:
    """``v`` or ``-v``, whichever has its largest-magnitude entry positive (eigen- and
    singular vectors are defined up to sign; this makes them reproducible)."""
    i = int(torch.argmax(v.abs()))
    return -v if float(v[i]) < 0 else v
