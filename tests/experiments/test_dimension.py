"""dimension: escape time of PGD / noisy GD grows like log d; the verdict can fail."""

from __future__ import annotations

import dataclasses
import math

import pytest

from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord, get


def _record(**overrides):
    exp = get("dimension")
    config = exp.config(**overrides)
    out = exp.run(config)
    return RunRecord(dataclasses.asdict(config), out.metrics, out.arrays)


@pytest.fixture(scope="module")
def records():
    return [
        _record(optimizer=o, dim=d, seed=s)
        for o in ("pgd", "noisy")
        for d in (10, 100, 1000)
        for s in (0, 1)
    ]


def test_escape_counts_near_theory_md(records):
    # THEORY.md medians (3 seeds): PGD 36, 42, 49; noisy GD 41, 50, 49 for d = 10, 100, 1000
    reference = {"pgd": (36, 42, 49), "noisy": (41, 50, 49)}
    for r in records:
        assert r.metrics["escaped"] and r.metrics["final_f"] <= -0.6
        ref = dict(zip((10, 100, 1000), reference[r.config["optimizer"]], strict=True))
        assert 0.6 * ref[r.config["dim"]] <= r.metrics["iterations"] <= 1.5 * ref[r.config["dim"]]
        # escaped along e₁ towards a minimum ±2e₁
        assert r.metrics["final_abs_x1"] > 1.5
    pgd = [r for r in records if r.config["optimizer"] == "pgd"]
    assert all(r.metrics["perturbations"] == 1 for r in pgd)  # one perturbation at the saddle


def test_supported_verdict(records):
    analysis = get("dimension").analyze(records)
    v = analysis.verdict
    assert v.supported, v.summary
    assert 0 < v.numbers["pgd_exponent"] < 0.2 and 0 < v.numbers["noisy_exponent"] < 0.2
    assert list(analysis.figures) == ["escape time vs dimension"]


def _scaled(records, power):
    """Records whose iterations grow like d^power (a contradiction for power ≥ 0.25)."""
    out = []
    for r in records:
        it = 40 * (r.config["dim"] / 10) ** power
        out.append(dataclasses.replace(r, metrics={**r.metrics, "iterations": it}))
    return out


def test_sqrt_d_growth_is_not_supported(records):
    v = get("dimension").analyze(_scaled(records, 0.5)).verdict
    assert not v.supported
    assert v.numbers["pgd_exponent"] == pytest.approx(0.5)


def test_log_d_growth_is_supported(records):
    logs = [
        dataclasses.replace(
            r, metrics={**r.metrics, "iterations": 30 + 3 * math.log(r.config["dim"])}
        )
        for r in records
    ]
    assert get("dimension").analyze(logs).verdict.supported


def test_a_run_that_never_escapes_fails_the_verdict(records):
    stuck = dataclasses.replace(
        records[0], metrics={**records[0].metrics, "escaped": False, "iterations": math.nan}
    )
    assert not get("dimension").analyze([stuck, *records[1:]]).verdict.supported


def test_bad_config():
    with pytest.raises(ConfigError, match="optimizer"):
        get("dimension").config(optimizer="adam")
    with pytest.raises(ConfigError, match="target"):
        get("dimension").config(target=-1.0)
