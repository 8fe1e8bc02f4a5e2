"""mkdocs hooks: the API reference must cover every public name.

After each build, every name in ``saddlescape.__all__`` and in each subpackage's
``__all__`` must have its anchor (``id="saddlescape.sub.name"``) in the built API pages;
otherwise the build fails, naming what is missing. ``tests/test_docs.py`` uses the same
functions."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

PACKAGES = (
    "saddlescape",
    "saddlescape.problems",
    "saddlescape.optim",
    "saddlescape.curvature",
    "saddlescape.landscape",
    "saddlescape.experiments",
    "saddlescape.runner",
    "saddlescape.report",
)


def public_names() -> list[str]:
    """Every public name, fully qualified: each package of :data:`PACKAGES` and each name
    in its ``__all__`` (a package without ``__all__`` is an error)."""
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        names += [f"{package}.{name}" for name in module.__all__]
    return names


def documented_names(site_dir: str | Path) -> set[str]:
    """The anchors (``id="saddlescape..."``) of the built API reference."""
    ids: set[str] = set()
    for page in (Path(site_dir) / "api").glob("*.html"):
        ids |= set(re.findall(r'id="(saddlescape[\w.]*)"', page.read_text(encoding="utf-8")))
    return ids


def missing_api_entries(site_dir: str | Path) -> list[str]:
    documented = documented_names(site_dir)
    return [name for name in public_names() if name not in documented]


def on_post_build(config: Any, **kwargs: Any) -> None:
    from mkdocs.exceptions import PluginError

    missing = missing_api_entries(config["site_dir"])
    if missing:
        raise PluginError(
            f"the API reference lacks {len(missing)} public name(s): {', '.join(missing)}"
        )
