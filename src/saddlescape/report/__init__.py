"""The HTML report: :func:`write_report` reads stored runs, analyzes each experiment and
writes a self-contained ``index.html`` with its figures (see :mod:`.html`); the shared plot
style is in :mod:`saddlescape.plotting`."""

from .html import (
    ExperimentSection,
    build_sections,
    mixed_code_notes,
    open_store,
    pooled_settings_notes,
    render_html,
    store_notes,
    unregistered_notes,
    write_report,
)

__all__ = [
    "ExperimentSection",
    "build_sections",
    "mixed_code_notes",
    "open_store",
    "pooled_settings_notes",
    "render_html",
    "store_notes",
    "unregistered_notes",
    "write_report",
]
