"""gd-rate: runs end to end, respects the descent-lemma bound, and its verdict can fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord, get


def _record(exp, **overrides):
    config = exp.config(**overrides)
    out = exp.run(config)
    return RunRecord(dataclasses.asdict(config), out.metrics, out.arrays)


@pytest.fixture(scope="module")
def records():
    exp = get("gd-rate")
    tiny = {"problem": "himmelblau", "n_init": 4, "eps_min": 1e-2, "n_eps": 3}
    return [_record(exp, beta_factor=b, **tiny) for b in (1.0, 4.0)]


def test_every_run_within_the_descent_lemma_bound(records):
    for r in records:
        iters, bound = r.arrays["iterations"], r.arrays["bound"]
        assert r.metrics["violations"] == 0 and r.metrics["censored"] == 0
        assert np.all(iters <= bound)
        # the bound is recomputed from the stored f(x0): 2β(f(x0) − f*)/ε², f* = 0
        beta, eps = r.metrics["beta"], r.arrays["eps"]
        expected = np.ceil(2 * beta * r.arrays["f0"][:, None] / eps[None, :] ** 2)
        np.testing.assert_allclose(bound, expected)
        # a smaller ε never needs fewer iterations
        assert np.all(np.diff(iters, axis=1) >= 0)


def test_quick_config_gives_a_supported_verdict(records):
    analysis = get("gd-rate").analyze(records)
    v = analysis.verdict
    assert v.supported, v.summary
    assert v.numbers["violations"] == 0
    # GD iterations scale like β when the step is small (gradient-flow regime)
    assert 0.9 < v.numbers["max_slope_beta"] < 1.15
    assert set(analysis.figures) == {"iterations vs epsilon", "iterations vs beta"}
    assert len(analysis.table) == 2


def _tamper(r, *, iterations=None, violations=None):
    arrays = dict(r.arrays)
    metrics = dict(r.metrics)
    if iterations is not None:
        arrays["iterations"] = iterations
    if violations is not None:
        metrics["violations"] = violations
    return dataclasses.replace(r, arrays=arrays, metrics=metrics)


def test_verdict_fails_on_a_run_above_its_bound(records):
    bad = _tamper(records[0], violations=1)
    assert not get("gd-rate").analyze([bad, records[1]]).verdict.supported


def test_verdict_fails_when_iterations_grow_faster_than_beta(records):
    # iterations ∝ β² contradict the linear dependence of the bound
    fast = _tamper(records[1], iterations=records[0].arrays["iterations"] * 16.0)
    v = get("gd-rate").analyze([records[0], fast]).verdict
    assert not v.supported and v.numbers["max_slope_beta"] == pytest.approx(2.0, abs=0.05)


def test_verdict_fails_when_iterations_grow_faster_than_eps_to_minus_2(records):
    eps = records[0].arrays["eps"]
    steep = _tamper(records[0], iterations=np.tile(10 * eps[None, :] ** -3, (4, 1)))
    v = get("gd-rate").analyze([steep]).verdict
    assert not v.supported and v.numbers["min_slope_eps"] == pytest.approx(-3.0)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("beta_factor", 0.5, "beta_factor"), ("n_eps", "x", "n_eps"), ("nope", 1, "nope")],
)
def test_bad_config_names_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match) as info:
        get("gd-rate").config(**{key: value})
    assert "\n" not in str(info.value)


def test_problem_without_finite_minimum_is_rejected():
    with pytest.raises(ConfigError, match="finite f_min"):
        get("gd-rate").run(get("gd-rate").config(problem="monkey-saddle", max_iter=1))


def test_censored_pairs_are_not_violations_when_the_bound_is_beyond_max_iter():
    exp = get("gd-rate")
    r = _record(exp, problem="rosenbrock", n_init=2, eps_min=1e-2, n_eps=2, max_iter=50)
    assert r.metrics["censored"] > 0 and r.metrics["violations"] == 0
    assert np.isnan(r.arrays["iterations"]).any()


@pytest.fixture(scope="module")
def tail_record():
    exp = get("gd-rate")
    return _record(
        exp, problem="power-tail", n_init=2, eps_max=0.1, eps_min=0.01, n_eps=3, max_iter=5000
    )


def test_power_tail_nearly_attains_the_eps_exponent(tail_record):
    from saddlescape import problems

    p = problems.get("power-tail")
    r = tail_record
    assert r.metrics["violations"] == 0 and r.metrics["censored"] == 0
    assert r.metrics["eps_slope"] == pytest.approx(-(1 + 1 / p.p), abs=0.05)
    # the counts follow the closed-form estimate from the first point on the tail
    lr = 1 / r.metrics["beta"]
    for j, eps in enumerate(r.arrays["eps"]):
        estimate = p.gd_iterations(float(eps), lr)
        assert np.all(np.abs(r.arrays["iterations"][:, j] - estimate) <= 0.02 * estimate + 3)
    v = get("gd-rate").analyze([tail_record]).verdict
    assert v.supported, v.summary
    assert "Tightness: on power-tail" in v.summary
    assert v.numbers["tail_slope_eps_min"] == pytest.approx(r.metrics["eps_slope"])


def test_verdict_fails_when_power_tail_is_fast(tail_record):
    # iterations ∝ ε⁻¹ on power-tail: the bound's exponent would not be attained
    eps = tail_record.arrays["eps"]
    flat = _tamper(tail_record, iterations=np.tile(20 / eps[None, :], (2, 1)))
    v = get("gd-rate").analyze([flat]).verdict
    assert not v.supported and v.numbers["tail_slope_eps_max"] == pytest.approx(-1.0)


def test_figures_show_the_ratio_in_a_grid_and_keep_references_off_the_data(records):
    """Issue 14: panels in a grid (not a strip), iterations/bound ≤ 1 with the line at 1;
    the β plot's slope-1 references sit above the data and its legend outside the axes."""
    figs = get("gd-rate").analyze(records).figures
    fig = figs["iterations vs epsilon"]
    w, h = fig.get_size_inches()
    assert w <= 2.2 * max(h, 3.0) and w <= 9.5  # at most two panels a row
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax in axes:
        assert ax.get_ylabel() == "iterations / bound"
        ys = np.concatenate([ln.get_ydata() for ln in ax.lines if ln.get_marker() == "o"])
        assert np.nanmax(ys) <= 1.0
    beta = figs["iterations vs beta"]
    (ax,) = beta.axes
    data = [ln for ln in ax.lines if ln.get_marker() == "o"]
    refs = [ln for ln in ax.lines if ln.get_linestyle() == ":" and len(ln.get_xdata())]
    for d, r in zip(data, refs, strict=True):
        assert np.all(np.asarray(r.get_ydata()) >= 1.9 * np.asarray(d.get_ydata())[0])
    legend = ax.get_legend()
    beta.canvas.draw()
    lb = legend.get_window_extent()
    assert lb.x0 >= ax.get_window_extent().x1  # beside the axes, covering no line
