"""``saddlescape problems`` through ``saddlescape.cli.main``."""

from __future__ import annotations

import pytest

from saddlescape.cli import main


def run(capsys, *args):
    code = main(["problems", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_zoo_lists_every_problem(capsys):
    from saddlescape import problems

    code, out, _ = run(capsys)
    assert code == 0
    for name in ("octopus", "himmelblau", "lee-2d", "rosenbrock"):
        assert name in out
    assert "4/4/1/0" in out  # Himmelblau: 4 minima, 4 saddles, 1 maximum
    assert "6/7/2/0" in out  # six-hump camel
    assert "29.5562" in out  # octopus ℓ = 4e²
    assert len(problems.names()) >= 9


def test_octopus_critical_points(capsys):
    code, out, _ = run(capsys, "octopus", "--dim", "3")
    assert code == 0
    assert "dim=3" in out and "(10.8731, 10.8731, 10.8731)" in out
    assert out.count("saddle") >= 3 and "minimum" in out
    assert "-2" in out and "5.43656" in out  # λ_min at the saddles, 2L
    assert "dense Hessian" in out


def test_set_overrides(capsys):
    code, out, _ = run(capsys, "quadratic-saddle", "--dim", "4", "--set", "n_negative=4")
    assert code == 0 and "maximum" in out and "dim=4" in out


def test_large_dimension_uses_closed_form_or_skips(capsys):
    code, out, _ = run(capsys, "cubic-regularized-quadratic", "--dim", "5000")
    assert code == 0 and "closed-form" in out and "…" in out
    code, out, _ = run(capsys, "quadratic-saddle", "--dim", "300")
    assert code == 0 and "skipped" in out


def test_quartic_dim_sets_n(capsys):
    code, out, _ = run(capsys, "quartic-saddle", "--dim", "3")
    assert code == 0 and "n=3" in out and "dim=4" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["octopsu"], "did you mean 'octopus'"),
        (["lee-2d", "--dim", "3"], "fixed dimension"),
        (["octopus", "--set", "tau=-1"], "tau must be > 0"),
        (["octopus", "--set", "tau=abc"], "tau"),
        (["octopus", "--set", "foo=1"], "no parameter 'foo'"),
        (["octopus", "--set", "novalue"], "key=value"),
        (["--dim", "3"], "need a problem name"),
        (["quartic-saddle", "--dim", "3", "--set", "n=4"], "once"),
        (["octopus", "--dim", "100000000000"], "use dim <= 9999"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err and out == ""


def test_long_points_are_abbreviated_with_their_dimension(capsys):
    code, out, _ = run(capsys, "quadratic-saddle", "--dim", "10")
    assert code == 0
    assert "…" in out and "[d=10]" in out


def test_problem_without_critical_points_says_so(capsys):
    code, out, _ = run(capsys, "power-tail", "--set", "p=1.5")
    assert code == 0
    assert "ℓ=1.5" in out and "ρ=3.75" in out and "f_min=0" in out
    assert "power-tail lists no critical points" in out and "┏" not in out


def test_allocation_failure_is_a_one_line_error(capsys, monkeypatch):
    """Any problem too large to build or list gives a ConfigError, not a traceback."""
    from saddlescape.cli import problems_cmd

    def too_big(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")

    monkeypatch.setattr(problems_cmd, "build_problem", too_big)
    code, out, err = run(capsys, "quadratic-saddle", "--dim", "10")
    assert code == 2 and "too large" in err and "Traceback" not in err and out == ""
