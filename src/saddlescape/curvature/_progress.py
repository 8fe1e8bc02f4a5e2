"""Progress of long curvature computations: a rich bar and a user callback.

Every curvature call that can take more than a second takes ``progress=True`` (a bar on
stderr: products done out of the budget, the current estimate, elapsed time) and
``callback=fn``, called after each step with a :class:`CurvatureProgress`. Raising from the
callback aborts the computation (the exception propagates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CurvatureProgress", "Watch"]


@dataclass(frozen=True)
class CurvatureProgress:
    """One step of a curvature computation: ``task`` (e.g. "lanczos"), ``hvps`` products
    so far out of ``budget`` (None if open), the current ``estimate`` (name → value, e.g.
    ``{"lambda_max": 3.1, "residual": 2e-4}``) and ``seconds`` since the start."""

    task: str
    hvps: int
    budget: int | None
    estimate: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class Watch:
    """Reports the steps of one task to a callback and, with ``progress=True``, to a bar.

    Use as a context manager; call it with the products so far and the estimates. An inner
    computation reports through :meth:`inner` with its products offset by ``offset``.
    """

    def __init__(
        self,
        task: str,
        progress: bool = False,
        callback: Callable[[CurvatureProgress], Any] | None = None,
        budget: int | None = None,
    ) -> None:
        if callback is not None and not callable(callback):
            from ..errors import ConfigError

            raise ConfigError(f"callback must be callable, got {type(callback).__name__}")
        self.task, self.budget = task, budget
        self._callback = callback
        self._want_bar = bool(progress)
        self._bar: Any = None
        self._id: Any = None
        self._t0 = time.perf_counter()

    @property
    def active(self) -> bool:
        return self._callback is not None or self._want_bar

    def __enter__(self) -> Watch:
        self._t0 = time.perf_counter()
        if self._want_bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("HVPs"),
                TextColumn("{task.fields[estimate]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._id = self._bar.add_task(self.task, total=self.budget, estimate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, hvps: int, **estimate: float) -> None:
        if not self.active:
            return
        info = CurvatureProgress(
            self.task, int(hvps), self.budget, dict(estimate), time.perf_counter() - self._t0
        )
        if self._bar is not None:
            text = "  ".join(f"{k} {v:.6g}" for k, v in estimate.items())
            self._bar.update(self._id, completed=hvps, estimate=text)
        if self._callback is not None:
            self._callback(info)

    def inner(self, offset: int = 0, **fixed: float) -> Callable[[CurvatureProgress], None] | None:
        """A callback for an inner computation: its products are added to ``offset`` and
        its estimates reported with ``fixed`` ones (None when nothing listens)."""
        if not self.active:
            return None

        def forward(p: CurvatureProgress) -> None:
            self(offset + p.hvps, **fixed, **p.estimate)

        return forward
