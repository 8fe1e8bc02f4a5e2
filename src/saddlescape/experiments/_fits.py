"""Small fitting helpers shared by the experiments' analyses (least squares in numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` over the positive finite pairs
    (NaN when fewer than two distinct x remain).

    >>> round(loglog_slope([1, 2, 4], [3, 12, 48]), 6)
    2.0
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() < 2 or np.ptp(np.log(xs[ok])) == 0:
        return float("nan")
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """``(intercept, slope, rms residual)`` of the least-squares line ``y ≈ a + b·x``.

    >>> a, b, r = linear_fit([0, 1, 2], [1, 3, 5])
    >>> round(a, 6), round(b, 6), round(r, 6)
    (1.0, 2.0, 0.0)
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) < 2 or np.ptp(xs) == 0:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(xs, ys, 1)
    resid = ys - (a + b * xs)
    return float(a), float(b), float(np.sqrt(np.mean(resid**2)))
