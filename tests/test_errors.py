"""The validators behind every "bad hyperparameter" message."""

from __future__ import annotations

import pytest

from saddlescape.errors import ConfigError, check_int, check_positive


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 2.5, "x", None, True])
def test_check_int_names_the_parameter(value):
    with pytest.raises(ConfigError, match=r"^steps must be an integer"):
        check_int("steps", value)


def test_check_int_accepts_integral_values_and_enforces_the_minimum():
    assert check_int("steps", 3.0) == 3 and check_int("steps", "7") == 7
    with pytest.raises(ConfigError, match=r"steps must be >= 1, got 0"):
        check_int("steps", 0, minimum=1)


@pytest.mark.parametrize(
    ("value", "message"),
    [(float("nan"), "finite"), (float("inf"), "finite"), (-1, "> 0"), (0, "> 0"), ("a", "number")],
)
def test_check_positive_names_the_parameter(value, message):
    with pytest.raises(ConfigError, match=rf"^lr must be .*{message}"):
        check_positive("lr", value)
