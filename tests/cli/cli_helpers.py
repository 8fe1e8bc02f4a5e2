"""Settings shared by the CLI tests (imported by path, like tests/runner/runner_toys.py)."""

TINY_GD_RATE = (
    "--set", "gd-rate.problem=himmelblau", "--set", "beta_factor=1", "--set", "n_init=2",
    "--set", "n_eps=2", "--set", "eps_min=0.01",
)  # fmt: skip
#: The same settings for ``run gd-rate`` (no experiment prefix).
TINY_RUN = tuple(a.replace("gd-rate.", "") for a in TINY_GD_RATE)
