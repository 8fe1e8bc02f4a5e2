"""step-size: ηβ < 2 converges at rate max|1 − ηλ|, ηβ > 2 diverges; the verdict can fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord, get


def _record(**overrides):
    exp = get("step-size")
    config = exp.config(n_init=3, steps=250, **overrides)
    out = exp.run(config)
    return RunRecord(dataclasses.asdict(config), out.metrics, out.arrays)


@pytest.fixture(scope="module")
def records():
    return [
        _record(problem=p, lr_factor=h)
        for p in ("quadratic-saddle", "six-hump-camel")
        for h in (0.5, 1.5, 2.5)
    ]


def test_quadratic_matches_closed_form(records):
    for r in records:
        if r.config["problem"] != "quadratic-saddle":
            continue
        h = r.config["lr_factor"]
        # x ↦ (1 − ηβ)x: contraction |1 − ηβ|, decrease (1 − ηβ/2)η‖∇f‖² exactly
        assert r.metrics["rate"] == pytest.approx(abs(1 - h), rel=1e-9)
        assert r.metrics["decrease_min"] == pytest.approx(1 - h / 2, abs=1e-9)
        assert r.metrics["converged"] == (1.0 if h < 2 else 0.0)
        assert r.metrics["diverged"] == (1.0 if h > 2 else 0.0)


def test_nonconvex_rate_matches_linearization(records):
    import torch

    from saddlescape import problems

    p = problems.get("six-hump-camel")
    xstar = min((c for c in p.critical_points if c.kind == "minimum"), key=lambda c: c.value).x
    eig = torch.linalg.eigvalsh(p.hessian(xstar))  # independent of the experiment's code
    for r in records:
        if r.config["problem"] != "six-hump-camel":
            continue
        h = r.config["lr_factor"]
        q = float((1 - h / eig.max() * eig).abs().max())
        assert r.metrics["beta"] == pytest.approx(float(eig.max()))
        assert r.metrics["rate"] == pytest.approx(q, abs=0.1 * max(q, 1.0))
        assert r.metrics["converged"] == (1.0 if h < 2 else 0.0)


def test_supported_verdict_and_figure(records):
    analysis = get("step-size").analyze(records)
    assert analysis.verdict.supported, analysis.verdict.summary
    assert analysis.verdict.numbers["contradictions"] == 0
    assert list(analysis.figures) == ["step size"]


def _with(r, **metrics):
    return dataclasses.replace(r, metrics={**r.metrics, **metrics})


@pytest.mark.parametrize(
    ("index", "change"),
    [
        (2, {"converged": 1.0}),  # ηβ = 2.5 converging contradicts the claim
        (0, {"converged": 0.5}),  # ηβ = 0.5 not converging contradicts it
        (1, {"decrease_min": 0.1}),  # less decrease than the descent lemma's 1 − ηβ/2
        (2, {"diverged": 0.0}),  # the quadratic must blow up above 2
        (4, {"rate": 0.95}),  # contraction far from max|1 − ηλ|
    ],
)
def test_contradicting_records_are_not_supported(records, index, change):
    tampered = list(records)
    tampered[index] = _with(records[index], **change)
    assert not get("step-size").analyze(tampered).verdict.supported


def test_needs_both_sides_of_two(records):
    below = [r for r in records if r.config["lr_factor"] < 2]
    assert not get("step-size").analyze(below).verdict.supported


def test_bad_config():
    with pytest.raises(ConfigError, match="lr_factor"):
        get("step-size").config(lr_factor=-1)
    with pytest.raises(ConfigError, match=r"monkey-saddle.*lists no minimum"):
        get("step-size").config(problem="monkey-saddle")  # refused before any run


def test_decrease_panel_offsets_the_problems(records):
    """Issue 14: the problems' decrease points coincide; each is dodged sideways with its
    own marker so every colour shows."""
    fig = get("step-size").analyze(records).figures["step size"]
    ax = fig.axes[1]
    pts = [ln for ln in ax.lines if ln.get_label() in ("quadratic-saddle", "six-hump-camel")]
    assert len(pts) == 2
    xs = [np.asarray(ln.get_xdata()) for ln in pts]
    assert not np.allclose(xs[0], xs[1])
    assert len({ln.get_marker() for ln in pts}) == 2
