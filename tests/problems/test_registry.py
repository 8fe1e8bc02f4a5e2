"""The registry, and one generic test over every registered problem.

``SMALL`` holds small parameters per problem name for the generic test; problems without
an entry are skipped (add yours).
"""

from __future__ import annotations

import math

import pytest
import torch
from _checks import check_critical_points

from saddlescape import problems
from saddlescape.errors import ConfigError, UnknownNameError

SMALL: dict[str, dict] = {
    "quadratic-saddle": dict(dim=4, n_negative=2),
    "lee-2d": {},
    "monkey-saddle": {},
    "rosenbrock": {},
    "himmelblau": {},
    "six-hump-camel": {},
    "octopus": dict(dim=3),
    "quartic-saddle": dict(n=4),
    "cubic-regularized-quadratic": dict(dim=6),
    "matrix-factorization": {},
    "phase-retrieval": {},
    "tensor-decomposition": {},
    "deep-linear": {},
    "mlp-digits": dict(hidden=(4,), n_samples=50),
    "power-tail": dict(dim=3),
}
# Minima on a continuum (rotations, rescalings) have singular Hessians.
NONSTRICT = {"matrix-factorization", "phase-retrieval", "tensor-decomposition", "deep-linear"}


@pytest.mark.parametrize("name", problems.names())
def test_every_problem(name):
    if name not in SMALL:
        pytest.skip(f"no small parameters for {name!r} in SMALL")
    p = problems.get(name, **SMALL[name])
    assert p.name == name
    check_critical_points(p, strict=name not in NONSTRICT)
    x = p.sample_init(torch.Generator().manual_seed(0), batch=4)
    assert x.shape == (4, p.dim) and x.dtype == torch.float64
    assert torch.equal(x, p.sample_init(torch.Generator().manual_seed(0), batch=4))
    values = p(x)
    assert values.shape == (4,) and torch.isfinite(values).all()
    assert torch.allclose(values, torch.stack([p(r) for r in x]), rtol=1e-12, atol=1e-12)
    if p.f_min is not None and math.isfinite(p.f_min):
        assert float(values.min()) >= p.f_min - 1e-9 * max(1.0, abs(p.f_min))
    for attr in ("smoothness", "hessian_lipschitz"):
        value = getattr(p, attr)
        assert value is None or value >= 0
    assert set(p.params) <= set(problems.parameters(name))
    assert problems.get(name, **p.params).describe() == p.describe()


def test_names_are_sorted_and_include_ours():
    names = problems.names()
    assert names == sorted(names)
    assert {"octopus", "lee-2d", "quartic-saddle", "cubic-regularized-quadratic"} <= set(names)


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean 'octopus'") as info:
        problems.get("octopsu")
    assert isinstance(info.value, KeyError)


def test_unknown_parameter_names_it():
    with pytest.raises(ConfigError, match=r"'himmelblau' has no parameter 'dim'"):
        problems.get("himmelblau", dim=3)


@pytest.mark.parametrize("name", [n for n in problems.names() if "seed" in problems.parameters(n)])
def test_seed_beyond_int64_names_seed(name):
    """A seed past 2**63 − 1 (what the results store keeps) is refused naming the seed; one
    past 2**64 raised torch's "Overflow when unpacking long long" with a C++ stack trace
    and no parameter name."""
    params = {**SMALL.get(name, {}), "seed": 2**64}
    with pytest.raises(ConfigError, match=rf"problem '{name}': seed must lie in"):
        problems.get(name, **params)
    params["seed"] = 2**63 - 1
    assert problems.get(name, **params).seed == 2**63 - 1


def test_bad_value_names_problem_and_parameter():
    with pytest.raises(ConfigError, match=r"problem 'octopus': tau must be > 0"):
        problems.get("octopus", tau=-1.0)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        problems.get("quadratic-saddle", dim="many")


def test_parameters_and_dimension_parameter():
    from saddlescape.problems.registry import dimension_parameter

    assert problems.parameters("octopus") == {
        "dim": 2,
        "L": math.e,
        "gamma": 1.0,
        "tau": math.e,
    }
    assert dimension_parameter("octopus") == "dim"
    assert dimension_parameter("quartic-saddle") == "n"
    assert dimension_parameter("six-hump-camel") is None


def test_params_round_trip_and_describe():
    p = problems.get("quadratic-saddle", dim=3, n_negative=1, curvature=2.0)
    assert p.params == dict(dim=3, n_negative=1, curvature=2.0, positive_curvature=1.0)
    assert p.describe().startswith("quadratic-saddle(dim=3")


def test_shape_errors_name_the_problem():
    with pytest.raises(ConfigError, match="lee-2d"):
        problems.get("lee-2d")(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("name", problems.names())
def test_integer_points_are_evaluated_in_float64(name):
    """An integer tensor is a float64 point: it was evaluated in the integer dtype, so
    constants were truncated and results rounded to float32 (matrix-factorization gave
    1600 for 1577.03 at U = 2·𝟙, deep-linear 3664 for 7698.3)."""
    p = problems.get(name, **SMALL.get(name, {}))
    x = torch.full((p.dim,), 2, dtype=torch.int64)
    ref = p.f(x.double())
    for point in (x, x.to(torch.int32), x.tolist()):
        value = p.f(point)
        assert value.dtype == torch.float64 and float(value) == float(ref), (point, value, ref)
    assert torch.equal(p.grad(x), p.grad(x.double()))
    if p.dim <= 25:
        assert torch.equal(p.hessian(x), p.hessian(x.double()))
    with pytest.raises(ConfigError, match=rf"{p.name}: expected a real point"):
        p.f(x.to(torch.complex128))


@pytest.mark.parametrize("name", problems.names())
def test_sample_init_refuses_a_bad_batch_naming_it(name):
    """batch = 0, -1, True or 1.5 is a ConfigError naming ``batch`` in every problem (10 of
    15 raised torch's RuntimeError or TypeError, or returned an empty batch for 0); an
    integral float or string is the integer, as for every integer parameter."""
    p = problems.get(name, **SMALL.get(name, {}))
    for bad in (0, -1, True, 1.5, "two"):
        with pytest.raises(ConfigError, match="batch"):
            p.sample_init(torch.Generator().manual_seed(0), batch=bad)
    for good in (2, 2.0, "2"):
        assert p.sample_init(torch.Generator().manual_seed(0), batch=good).shape == (2, p.dim)
