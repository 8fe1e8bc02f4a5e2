"""Plain-text tables for the benchmark scripts (shared by curvature.py and scale.py)."""

from __future__ import annotations

import sys


def fmt(c: object) -> str:
    """A cell: floats to 4 significant digits (NaN as "-"), anything else as ``str``."""
    if isinstance(c, float):
        if c != c:
            return "-"
        return f"{c:.4g}" if abs(c) >= 1e-3 or c == 0 else f"{c:.2e}"
    return str(c)


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """Print a ``## title`` and the rows as aligned columns under a dashed header."""
    cells = [[str(h) for h in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()
