"""stable-manifold: random starts avoid saddles, GD stays on the stable manifold, PGD
escapes; the basin map; the verdict can fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord, get

TINY = {"n_init": 200, "grid_size": 12, "manifold_starts": 5, "steps": 2000, "pgd_steps": 600}


def _record(problem, **overrides):
    exp = get("stable-manifold")
    config = exp.config(problem=problem, **{**TINY, **overrides})
    out = exp.run(config)
    return RunRecord(dataclasses.asdict(config), out.metrics, out.arrays)


@pytest.fixture(scope="module")
def lee():
    return _record("lee-2d")


@pytest.fixture(scope="module")
def himmelblau():
    return _record("himmelblau")


def test_lee_random_starts_reach_the_minima_by_the_sign_of_y(lee):
    m, a = lee.metrics, lee.arrays
    assert m["saddle_count"] == 0 and m["frac_minimum"] == 1.0
    # f = ½x² + ¼y⁴ − ½y²: GD keeps the sign of y, so the basin of (0, ±1) is the half
    # plane ±y > 0 (the x-axis between them is the saddle's stable manifold)
    basin = a["basin"]
    pts = a["critical_points"]
    g = basin.shape[0]
    upper = int(np.argmin(np.linalg.norm(pts - [0.0, 1.0], axis=1)))
    lower = int(np.argmin(np.linalg.norm(pts - [0.0, -1.0], axis=1)))
    assert (basin[g // 2 :] == upper).all() and (basin[: g // 2] == lower).all()


def test_gd_on_the_manifold_converges_to_the_saddle_and_pgd_escapes(lee):
    assert lee.metrics["n_manifold"] == 5
    assert lee.metrics["gd_to_saddle"] == 1.0
    assert lee.metrics["pgd_escaped"] == 1.0


def test_himmelblau_minima_only_and_no_exact_saddle(himmelblau):
    # the four minima each attract some random starts; no saddle, no maximum
    labels = himmelblau.arrays["random_labels"]
    kinds = himmelblau.arrays["critical_kinds"]
    assert (kinds[labels] == 0).all()
    assert set(labels.tolist()) == {i for i, k in enumerate(kinds) if k == 0}
    # float64 saddles of Himmelblau are not exact zeros of ∇f: no manifold starts there
    assert himmelblau.metrics["n_manifold"] == 0


def test_verdict_supported_and_basin_figure(lee, himmelblau):
    analysis = get("stable-manifold").analyze([lee, himmelblau])
    assert analysis.verdict.supported, analysis.verdict.summary
    assert analysis.verdict.numbers["to_saddle"] == 0
    assert list(analysis.figures) == ["basin map", "saddle slice with GD and PGD"]


@pytest.mark.parametrize(
    "change",
    [
        {"saddle_count": 3, "frac_saddle": 0.015, "frac_minimum": 0.985},
        {"gd_to_saddle": 0.5},
        {"pgd_escaped": 0.8},
        {"frac_minimum": 0.5, "frac_unconverged": 0.5},
    ],
)
def test_contradicting_records_are_not_supported(lee, himmelblau, change):
    bad = dataclasses.replace(lee, metrics={**lee.metrics, **change})
    assert not get("stable-manifold").analyze([bad, himmelblau]).verdict.supported


def test_without_manifold_starts_the_claim_is_not_tested(himmelblau):
    assert not get("stable-manifold").analyze([himmelblau]).verdict.supported


def test_bad_config():
    with pytest.raises(ConfigError, match="step_fraction"):
        get("stable-manifold").config(step_fraction=1.5)
    with pytest.raises(ConfigError, match="2-D problem"):
        get("stable-manifold").run(
            get("stable-manifold").config(problem="cubic-regularized-quadratic")
        )


def test_share_never_says_at_least_100_percent():
    from saddlescape.experiments.stable_manifold import _share

    assert _share(1.0) == "all"
    assert _share(0.99999) == "at least 99.9%"
    assert _share(0.5) == "at least 50.0%"


def test_saddle_slice_shows_gd_into_the_saddle_and_pgd_out(lee, himmelblau):
    """Issue 14 item 5: the eigen-plane through lee-2d's saddle with both trajectories."""
    fig = get("stable-manifold").analyze([lee, himmelblau]).figures["saddle slice with GD and PGD"]
    ax = fig.axes[0]
    assert "v_max" in ax.get_xlabel() and "v_min" in ax.get_ylabel()
    paths = {ln.get_label().split(" (")[0]: ln for ln in ax.lines if "steps" in ln.get_label()}
    assert set(paths) == {"GD", "PGD"}
    gd_end = np.array([paths["GD"].get_xdata()[-1], paths["GD"].get_ydata()[-1]])
    pgd_end = np.array([paths["PGD"].get_xdata()[-1], paths["PGD"].get_ydata()[-1]])
    assert np.linalg.norm(gd_end) < 1e-6  # GD on the stable manifold reaches the saddle
    assert abs(abs(pgd_end[1]) - 1.0) < 1e-3  # PGD leaves along v_min, to a minimum
