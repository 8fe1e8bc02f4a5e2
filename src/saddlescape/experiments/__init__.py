"""Experiments: each tests one claim of the theory (see :mod:`.base`)."""

from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict, make_config
from .registry import get, names, register

__all__ = [
    "Analysis",
    "Experiment",
    "RunOutput",
    "RunRecord",
    "Verdict",
    "get",
    "make_config",
    "names",
    "register",
]
