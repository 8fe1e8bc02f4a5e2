"""Every experiment config validates every field before a sweep is planned (names against
their registries, ranges), and integers are read as integers (issue 13, items 7 and 8)."""

from __future__ import annotations

import pytest

from saddlescape.errors import ConfigError, SaddlescapeError
from saddlescape.experiments import get, names
from saddlescape.experiments.base import coerce

BAD_FIELDS = [
    ("gd-rate", "problem", "nosuch", "unknown problem 'nosuch'"),
    ("gd-rate", "problem", "monkey-saddle", "finite f_min"),
    ("step-size", "problem", "nosuch", "unknown problem 'nosuch'"),
    ("stable-manifold", "problem", "nosuch", "unknown problem 'nosuch'"),
    ("stable-manifold", "problem", "quartic-saddle", "2-D problem"),
    ("edge-of-stability", "activation", "sigmoid", "activation must be one of tanh"),
    ("edge-of-stability", "loss", "hinge", "loss must be one of cross-entropy, mse"),
    ("edge-of-stability", "hidden", "1,,2", "hidden must be widths"),
    ("edge-of-stability", "hidden", "99999999", "hidden must be widths in [1, 10,000]"),
    ("edge-of-stability", "n_samples", 5000, "n_samples must be <= 1,797"),
    ("certify-network", "hidden", "1_0", "hidden must be widths"),
    ("dimension", "dim", 99999999999999999999999, "must lie in [-2**63, 2**63 - 1]"),
    ("dimension", "dim", 10**12, "dim must be <= 10,000,000"),
    ("step-size", "dim", 100_000, "dim must be <= 2,000"),
    ("saddle-escape", "dim", 5000, "dim must be <= 1,000"),
    ("stable-manifold", "grid_size", 10**6, "grid_size must be <= 3,000"),
    ("gd-rate", "max_iter", "1e30", "must lie in [-2**63, 2**63 - 1]"),
]


@pytest.mark.parametrize(("experiment", "key", "value", "message"), BAD_FIELDS)
def test_a_bad_field_is_refused_by_name(experiment, key, value, message):
    with pytest.raises(SaddlescapeError) as info:  # ConfigError, or UnknownNameError
        get(experiment).config(**{key: value})
    assert message in str(info.value) and (key in str(info.value) or repr(value) in str(info.value))


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("seed", [-1, -5, "9223372036854775808", "1e30"])
def test_every_experiment_refuses_a_bad_seed(name, seed):
    with pytest.raises(ConfigError, match="seed"):
        get(name).config(seed=seed)


@pytest.mark.parametrize("name", names())
def test_every_default_and_quick_config_validates(name):
    exp = get(name)
    exp.config()
    exp.config(quick=True)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9007199254740993", 9007199254740993),  # 2**53 + 1: float() would round it
        (" -7 ", -7),
        ("1e3", 1000),
        ("9223372036854775807", 2**63 - 1),
        (12.0, 12),
    ],
)
def test_integers_are_parsed_as_integers(text, value):
    got = coerce(text, int, "seed", "--set")
    assert got == value and type(got) is int


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999999999999999999999", "must lie in [-2**63, 2**63 - 1]"),
        ("9223372036854775808", "must lie in"),
        ("1e30", "must lie in"),
        ("1e17", "not exact in float notation"),
        ("1_0", "must be an integer"),
        ("2.5", "must be an integer"),
        ("inf", "must be an integer"),
        (True, "must be an integer"),
    ],
)
def test_bad_integers_are_refused_by_name(text, message):
    with pytest.raises(ConfigError, match="seed") as info:
        coerce(text, int, "seed", "--set")
    assert message in str(info.value)
