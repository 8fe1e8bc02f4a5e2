"""The result of a slice: grid, losses, directions, centre and cost; saved as ``.npz``.

>>> import torch, tempfile, pathlib
>>> from saddlescape import problems
>>> from saddlescape.landscape import Landscape, eigen_directions, slice_2d
>>> p = problems.get("lee-2d")
>>> x = p.critical_points[0].x
>>> s = slice_2d(p, eigen_directions(p, x), center=x, span=1.0, resolution=5)
>>> path = s.save(pathlib.Path(tempfile.mkdtemp()) / "saddle.npz")
>>> Landscape.load(path) == s
True
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .directions import Directions

__all__ = ["Landscape"]

_FORMAT = 1


@dataclass(frozen=True, eq=False)
class Landscape:
    """A 1-D or 2-D slice of a loss: ``f(center + α d₁ [+ β d₂])`` on a grid.

    - ``alphas`` ``(na,)``, ``betas`` ``(nb,)`` or None (1-D): the grid coordinates, in
      units of the directions (coordinate 1 = one whole direction vector);
    - ``losses``: float64 ``(na,)`` or ``(nb, na)`` (``losses[j, i]`` at ``(alphas[i],
      betas[j])``, matplotlib's layout);
    - ``center`` (float64 ``(n,)``) and ``center_loss``; ``directions`` (:class:`Directions`:
      the vectors, their kind, axis labels, eigenvalues or explained variance, seed);
    - ``target``: what was sliced (problem or loss description, with the mode for models);
    - ``lambda_min``/``lambda_max``: the Hessian's extreme eigenvalues at every grid point
      when asked (``curvature=True``; Li et al. 2018 Fig. 7), else None;
    - ``path``: a trajectory's coordinates ``(T, k)`` in the slice (least-squares
      projection), ``path_offplane`` ``(T,)`` its distance from the plane;
    - ``critical``: known critical points of a zoo problem projected as ``(m, k)``
      coordinates, ``critical_offplane`` ``(m,)``, ``critical_kinds``;
    - cost: ``evaluations`` (loss evaluations: the grid and the centre), ``data_passes``
      (passes over a model's data; 0 for a function), ``hvps`` (Hessian-vector products: the
      directions' and the curvature's) and ``seconds`` (wall time, directions included).

    Two landscapes are ``==`` when every field holds the same bits.
    """

    alphas: torch.Tensor
    betas: torch.Tensor | None
    losses: torch.Tensor
    center: torch.Tensor
    center_loss: float
    directions: Directions
    target: str
    evaluations: int
    data_passes: int
    hvps: int
    seconds: float
    lambda_min: torch.Tensor | None = None
    lambda_max: torch.Tensor | None = None
    path: torch.Tensor | None = None
    path_offplane: torch.Tensor | None = None
    critical: torch.Tensor | None = None
    critical_offplane: torch.Tensor | None = None
    critical_kinds: tuple[str, ...] = ()

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return 1 if self.betas is None else 2

    @property
    def ratio(self) -> torch.Tensor | None:
        """``|λ_min / λ_max|`` at every grid point (Li et al. 2018 Fig. 7: near 0 where the
        surface is locally convex, large where negative curvature dominates), or None."""
        if self.lambda_min is None or self.lambda_max is None:
            return None
        return (self.lambda_min / self.lambda_max).abs()

    @property
    def minimum(self) -> tuple[float, ...]:
        """The grid coordinates of the lowest loss."""
        i = int(torch.argmin(torch.nan_to_num(self.losses, nan=float("inf"))))
        if self.betas is None:
            return (float(self.alphas[i]),)
        j, i = divmod(i, self.alphas.numel())
        return float(self.alphas[i]), float(self.betas[j])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Landscape):
            return NotImplemented
        a, b = _arrays(self), _arrays(other)
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)

    __hash__ = None  # type: ignore[assignment]

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write every field to ``path`` (``.npz``, numpy arrays only: no pickle)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ConfigError(f"a landscape is saved as .npz, got {str(path)!r}")
        if path.parent != Path() and not path.parent.is_dir():
            raise ConfigError(f"directory {str(path.parent)!r} does not exist")
        from ..fileio import atomic_path

        arrays = {k: v for k, v in _arrays(self).items() if v is not None}
        with atomic_path(path) as tmp, tmp.open("wb") as fh:  # all or nothing, like the plots
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(cls, path: str | Path) -> Landscape:
        """Read a landscape written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no landscape file {str(path)!r}")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{str(path)!r} is not a landscape .npz file ({exc})") from None
        if int(data.get("format", -1)) != _FORMAT:
            raise ConfigError(f"{str(path)!r} is not a landscape .npz file (format)")

        def t(key: str) -> torch.Tensor | None:
            return torch.from_numpy(data[key].copy()) if key in data else None

        def s(key: str) -> str | None:
            return str(data[key]) if key in data else None

        values = t("direction_values")
        directions = Directions(
            t("directions"),  # type: ignore[arg-type]
            str(data["direction_kind"]),
            tuple(str(x) for x in data["direction_labels"]),
            values,
            None if "direction_seed" not in data else int(data["direction_seed"]),
            s("direction_normalization"),
            int(data["direction_hvps"]),
            float(data["direction_seconds"]),
        )
        kinds = tuple(str(x) for x in data["critical_kinds"]) if "critical_kinds" in data else ()
        return cls(
            alphas=t("alphas"),  # type: ignore[arg-type]
            betas=t("betas"),
            losses=t("losses"),  # type: ignore[arg-type]
            center=t("center"),  # type: ignore[arg-type]
            center_loss=float(data["center_loss"]),
            directions=directions,
            target=str(data["target"]),
            evaluations=int(data["evaluations"]),
            data_passes=int(data["data_passes"]),
            hvps=int(data["hvps"]),
            seconds=float(data["seconds"]),
            lambda_min=t("lambda_min"),
            lambda_max=t("lambda_max"),
            path=t("path"),
            path_offplane=t("path_offplane"),
            critical=t("critical"),
            critical_offplane=t("critical_offplane"),
            critical_kinds=kinds,
        )


def _np(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _arrays(s: Landscape) -> dict[str, Any]:
    """Every field as numpy (for files and bitwise comparison)."""
    d = s.directions
    out: dict[str, Any] = {"format": np.asarray(_FORMAT)}
    for f in fields(s):
        if f.name in ("directions", "critical_kinds"):
            continue
        out[f.name] = _np(getattr(s, f.name))
    out["critical_kinds"] = np.asarray(s.critical_kinds, dtype=str) if s.critical_kinds else None
    out.update(
        directions=_np(d.vectors),
        direction_kind=np.asarray(d.kind),
        direction_labels=np.asarray(d.labels, dtype=str),
        direction_values=_np(d.values),
        direction_seed=None if d.seed is None else np.asarray(d.seed),
        direction_normalization=None if d.normalization is None else np.asarray(d.normalization),
        direction_hvps=np.asarray(d.hvps),
        direction_seconds=np.asarray(d.seconds, dtype=np.float64),
    )
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
