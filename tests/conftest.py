"""Shared test settings: one torch thread per worker (the suite runs with pytest-xdist on
2 cores), float64 problems, and hypothesis profiles (derandomized by default)."""

import os

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

# "dev" (make test) and "ci" draw the same examples on every run, so that a run passes or
# fails reproducibly; HYPOTHESIS_PROFILE=explore searches afresh with many more examples (a
# case it finds becomes an explicit regression test, as in tests/curvature/test_lanczos.py)
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=15, deadline=None, derandomize=True)
settings.register_profile(
    "explore", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
