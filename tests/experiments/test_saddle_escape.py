"""saddle-escape (Du et al. 2017): hitting times on the octopus, censoring, verdict logic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saddlescape import experiments, problems
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.experiments.saddle_escape import SaddleEscapeConfig, _run_batched


@pytest.fixture(scope="module")
def exp():
    return experiments.get("saddle-escape")


def test_gd_hitting_times_match_a_plain_reference_loop(exp):
    cfg = exp.config(dim=2, optimizer="gd", n_inits=2, max_iter=1000, seed=1)
    out = exp.run(cfg)
    hits = out.arrays["iterations"]
    # reference: unbatched GD through problem.grad, same starts, same stopping rule
    p = problems.get("octopus", dim=2)
    x0 = p.sample_init(torch.Generator().manual_seed(1), batch=2)
    for i in range(2):
        x, steps = x0[i].clone(), 0
        while float(torch.linalg.vector_norm(x.abs() - 4 * p.tau)) > cfg.tol and steps < 1000:
            x, steps = x - p.grad(x) / p.smoothness, steps + 1
        assert hits[i] == steps
    # THEORY.md measured 229 at d = 2 (one seed)
    assert 100 < np.median(hits) < 500
    assert out.metrics["censored"] == 0 and out.metrics["median_iterations"] is not None


def test_pgd_arrives_and_is_deterministic(exp):
    cfg = exp.config(dim=3, optimizer="pgd", n_inits=3, max_iter=3000, seed=0)
    a, b = exp.run(cfg), exp.run(cfg)
    np.testing.assert_array_equal(a.arrays["iterations"], b.arrays["iterations"])
    assert (a.arrays["iterations"] > 0).all()
    assert (a.arrays["final_distance"] <= cfg.tol).all()
    assert 150 < a.metrics["median_iterations"] < 700  # THEORY.md: 350 at d = 3


def test_gd_started_on_a_saddle_freezes_and_is_censored():
    p = problems.get("octopus", dim=3)
    x0 = torch.zeros(2, 3, dtype=torch.float64)  # the strict saddle z_1 = 0, exactly
    hits, frozen, dist, counters = _run_batched(p, x0, SaddleEscapeConfig(dim=3, optimizer="gd"))
    assert (hits == -1).all() and frozen.all()
    assert counters["iterations"] == 1  # stopped after the first step left x unchanged
    np.testing.assert_allclose(dist, 4 * p.tau * math.sqrt(3))


@pytest.mark.parametrize(
    "key,value", [("optimizer", "adam"), ("n_inits", 0), ("tol", -1.0), ("dim", 0)]
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


def _records(times: dict[str, dict[int, list[int]]], cap: int = 10_000) -> list[RunRecord]:
    return [
        RunRecord(
            config={"optimizer": opt, "dim": d, "seed": 0, "max_iter": cap},
            metrics={},
            arrays={"iterations": np.array(h)},
        )
        for opt, by_dim in times.items()
        for d, h in by_dim.items()
    ]


def _like_theory() -> dict[str, dict[int, list[int]]]:
    return {
        "gd": {2: [229, 240], 3: [861, 900], 4: [3451, 3300], 5: [-1, -1], 6: [-1, -1]},
        "pgd": {2: [229, 220], 3: [350, 340], 4: [470, 480], 5: [589, 600], 6: [700, 690]},
    }


def test_analyze_supports_exponential_gd_and_polynomial_pgd(exp):
    a = exp.analyze(_records(_like_theory()))
    assert a.verdict.supported, a.verdict.summary
    assert 3.5 < a.verdict.numbers["gd factor per dim"] < 4.5
    assert a.verdict.numbers["pgd loglog slope"] < 1.5
    assert math.isinf(a.verdict.numbers["gd median d=5"])
    row = next(r for r in a.table if r["optimizer"] == "gd" and r["d"] == 5)
    assert row["median iterations"] == "> 10000" and row["censored"] == 2
    assert "iterations_vs_dim" in a.figures


def test_analyze_rejects_polynomial_gd(exp):
    t = _like_theory()
    t["gd"] = {d: [100 * d, 110 * d] for d in range(2, 7)}
    v = exp.analyze(_records(t)).verdict
    assert not v.supported and "GD's growth factor" in v.summary


def test_analyze_rejects_exponential_or_censored_pgd(exp):
    t = _like_theory()
    t["pgd"] = {d: [200 * 4 ** (d - 2)] * 2 for d in range(2, 6)}
    v = exp.analyze(_records(t, cap=10**6)).verdict
    assert not v.supported and "PGD's log-log slope" in v.summary
    t = _like_theory()
    t["pgd"][6] = [-1, -1]
    v = exp.analyze(_records(t)).verdict
    assert not v.supported and "PGD did not reach" in v.summary


def test_analyze_counts_failed_runs(exp):
    recs = [*_records(_like_theory()), RunRecord({"optimizer": "gd", "dim": 7}, {}, {}, "failed")]
    v = exp.analyze(recs).verdict
    assert not v.supported and "1 run(s) failed" in v.summary


@pytest.mark.slow
def test_tiny_sweep_supports_the_claim(exp):
    records = []
    for opt in ("gd", "pgd"):
        for d in (2, 3, 4):
            cfg = exp.config(dim=d, optimizer=opt, n_inits=3, max_iter=4500)
            out = exp.run(cfg)
            records.append(RunRecord(vars(cfg), out.metrics, out.arrays))
    a = exp.analyze(records)
    assert a.verdict.supported, a.verdict.summary


def test_analyze_pools_seeds_and_reports_runs_per_cell(exp):
    recs = [
        RunRecord({**r.config, "seed": seed}, r.metrics, r.arrays)
        for seed in (0, 1, 2)
        for r in _records(_like_theory())
    ]
    a = exp.analyze(recs)
    assert a.verdict.supported, a.verdict.summary
    assert {(row["seeds"], row["runs"]) for row in a.table} == {(3, 6)}
    assert a.verdict.numbers["runs per cell min"] == 6
    assert a.verdict.numbers["seeds per cell min"] == 3
    assert "Medians over 6 independent runs per (optimizer, d) (3 seed(s) pooled)" in (
        a.verdict.summary
    )


def test_default_sweep_has_many_runs_per_cell(exp):
    grid, cfg = exp.grid(), exp.config()
    assert len(grid["seed"]) * cfg.n_inits >= 16
    assert len(exp.grid(quick=True)["seed"]) >= 2


def test_figure_is_readable_integer_d_tolerance_and_an_evaluation_panel(exp):
    """Issue 14: integer ticks for d, the tolerance in the y label, no "THEORY.md" legend
    entry, and a second panel in gradient-or-HVP evaluations (cubic Newton's HVPs count)."""
    times = _like_theory()
    times["cubic"] = {d: [5, 6] for d in range(2, 7)}
    recs = _records(times)
    recs = [
        RunRecord(
            config={**r.config, "tol": 0.01},
            metrics={
                "iterations": 10,
                "grad_evals": 10,
                "hvps": 40 if "cubic" in str(r.config) else 0,
            },
            arrays=r.arrays,
        )
        for r in recs
    ]
    fig = exp.analyze(recs).figures["iterations_vs_dim"]
    fig.canvas.draw()
    it_ax, ev_ax = fig.axes[:2]
    for ax in (it_ax, ev_ax):
        ticks = [t for t in ax.get_xticks() if 2 <= t <= 6]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert "0.01" in it_ax.get_ylabel()
    assert "evaluations" in ev_ax.get_ylabel()
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels and not any("THEORY.md" in s for s in labels)
    # cubic Newton: 5 evaluations a iteration (1 gradient + 4 HVPs) → 5× its iterations
    line_it = next(c for c in it_ax.containers if c.get_label() == "cubic").lines[0]
    line_ev = next(c for c in ev_ax.containers if c.get_label() == "cubic").lines[0]
    np.testing.assert_allclose(
        np.asarray(line_ev.get_ydata(), float), 5 * np.asarray(line_it.get_ydata(), float)
    )


def test_verdict_names_its_deciding_numbers_with_plain_labels(exp):
    v = exp.analyze(_records(_like_theory())).verdict
    assert set(v.deciding) <= set(v.numbers) and 0 < len(v.deciding) <= 6
    assert all(" " in label and "_" not in label for label in v.deciding.values())


def test_saddle_slice_shows_gd_and_pgd_on_the_octopus(exp):
    """Issue 14 item 5: the eigen-plane through the octopus's saddle with GD and PGD."""
    fig = exp.analyze(_records(_like_theory())).figures["saddle slice with GD and PGD (d = 2)"]
    ax = fig.axes[0]
    assert "v_max" in ax.get_xlabel() and "v_min" in ax.get_ylabel()
    steps = {
        ln.get_label().split(" (")[0]: int(ln.get_label().split("(")[1].split()[0])
        for ln in ax.lines
        if "steps" in ln.get_label()
    }
    assert set(steps) == {"GD", "PGD"} and steps["PGD"] < steps["GD"]
