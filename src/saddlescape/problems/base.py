"""The :class:`Problem` interface: a function on ``R^d`` and what is known about it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import torch

from ..errors import ConfigError, check_int

Kind = Literal["minimum", "saddle", "maximum", "degenerate"]
KINDS: tuple[str, ...] = ("minimum", "saddle", "maximum", "degenerate")


@dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes, with its kind and function value.

    ``kind`` is one of ``"minimum"``, ``"saddle"`` (a strict saddle: λ_min(∇²f) < 0, Jin et
    al. 2017, and not a maximum), ``"maximum"`` or ``"degenerate"`` (the Hessian is singular
    and has no negative eigenvalue, so second-order information cannot classify the point).
    ``saddlescape certify`` reports the same kinds (a maximum whose Hessian is singular can
    be proven only a strict saddle by second-order information).
    """

    x: torch.Tensor
    kind: Kind
    value: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"critical point kind must be one of {KINDS}, got {self.kind!r}")


@dataclass
class Problem(abc.ABC):
    """A function ``f: R^d -> R`` on torch tensors, with what is known about it.

    Subclasses implement :meth:`_f` for an input of shape ``(..., d)`` returning shape
    ``(...)``; :meth:`f` (and calling the problem) accepts a single point ``(d,)`` or a
    batch ``(B, d)``. Problems compute in the dtype of their input (float64 recommended:
    saddle studies meet underflow and cancellation); :meth:`f`, :meth:`grad` and
    :meth:`hessian` take lists and integer or bool tensors as float64.

    Attributes known where the literature or a derivation gives them (``None`` otherwise):

    - ``smoothness`` ℓ: gradient-Lipschitz constant (``-ℓI ⪯ ∇²f ⪯ ℓI``) on the region
      where the problem is used (see each problem's docstring for the region);
    - ``hessian_lipschitz`` ρ: ``‖∇²f(x) − ∇²f(y)‖ ≤ ρ‖x − y‖`` on that region;
    - ``f_min``: the global minimum value (``-inf`` when unbounded below).
    """

    name: ClassVar[str] = "problem"
    #: The constructor parameter that sets the dimension (``--dim`` on the command line);
    #: ``None`` means ``"dim"`` if the problem has such a parameter, else a fixed dimension.
    dim_parameter: ClassVar[str | None] = None
    dim: int = field(init=False)

    # ------------------------------------------------------------------ interface
    @abc.abstractmethod
    def _f(self, x: torch.Tensor) -> torch.Tensor:
        """f on a tensor of shape ``(..., dim)``, returning shape ``(...)``."""

    @property
    def params(self) -> dict[str, Any]:
        """The constructor parameters that define this instance."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    @property
    def smoothness(self) -> float | None:
        return None

    @property
    def hessian_lipschitz(self) -> float | None:
        return None

    @property
    def f_min(self) -> float | None:
        return None

    @property
    def critical_points(self) -> list[CriticalPoint]:
        """The known critical points (possibly a representative subset: see docstring)."""
        return []

    def align(self, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """The copy of ``x`` under a symmetry of f nearest ``point`` (default: ``x``).

        Problems whose :attr:`critical_points` list one representative per symmetry orbit
        (e.g. only the all-positive copy when f is even in every coordinate) override this
        to map ``x`` (shape ``(dim,)``) to its symmetric image ``y`` (``f(y) = f(x)``)
        closest to the listed ``point``, so that ``‖align(x, c) − c‖`` is the distance
        from ``x`` to the *orbit* of ``c``. :func:`saddlescape.optim.nearest_critical_point`
        (and so ``saddlescape optimize``) measures distances this way.
        """
        return x

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """A random starting point as used in this problem's literature (float64).

        Default: standard normal. ``batch`` (an integer >= 1) gives shape ``(batch, dim)``.
        """
        shape = (self.dim,) if batch is None else (check_int("batch", batch, minimum=1), self.dim)
        return torch.randn(shape, generator=generator, dtype=torch.float64)

    # ------------------------------------------------------------------ helpers
    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``x`` of shape ``(dim,)`` (returns a scalar) or ``(B, dim)``."""
        x = _as_floating(x, self.name)
        if x.ndim not in (1, 2) or x.shape[-1] != self.dim:
            raise ConfigError(
                f"{self.name}: expected a point of shape ({self.dim},) or a batch "
                f"(B, {self.dim}), got shape {tuple(x.shape)}"
            )
        return self._f(x)

    __call__ = f

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇f at a single point ``x`` of shape ``(dim,)``, or row-wise for ``(B, dim)``."""
        x = _as_floating(x, self.name).detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.f(x).sum(), x)
        return g

    def hessian(self, x: torch.Tensor) -> torch.Tensor:
        """Dense ``(dim, dim)`` Hessian at a single point (for small ``dim``)."""
        return torch.func.hessian(self.f)(_as_floating(x, self.name).detach())

    def describe(self) -> str:
        """One line: name and parameters."""
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _as_floating(x: object, name: str) -> torch.Tensor:
    """``x`` as a tensor of a real floating dtype: non-tensors, integer and bool tensors
    become float64 (in the integer dtype, problem constants such as curvatures were
    truncated and results rounded to float32); complex tensors are refused."""
    if not isinstance(x, torch.Tensor):
        return torch.as_tensor(x, dtype=torch.float64)
    if x.is_complex():
        raise ConfigError(f"{name}: expected a real point, got a tensor of dtype {x.dtype}")
    return x if x.is_floating_point() else x.to(torch.float64)
