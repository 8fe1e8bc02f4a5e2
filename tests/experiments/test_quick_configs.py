"""Every registered experiment's quick sweep — the very plan `saddlescape reproduce --quick`
runs — finishes and its verdict supports the claim.

The sweep is planned by the runner (:func:`~saddlescape.runner.plan_sweep` with
``quick=True``, no overrides, as ``reproduce --quick`` does), not copied here, so a change to
a quick config or grid is tested as it ships. One test per experiment, so pytest-xdist
spreads them over the workers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from saddlescape import experiments
from saddlescape.runner import Store, plan_sweep, run_sweep


@pytest.mark.slow
@pytest.mark.parametrize("name", experiments.names())
def test_quick_sweep_supports_the_claim(name, tmp_path):
    planned = [spec.key for spec in plan_sweep(name, quick=True)]
    summary = run_sweep(name, quick=True, store=tmp_path, executor="sequential", progress=False)
    assert list(summary.keys) == planned
    assert summary.failed == 0, summary.failures
    assert summary.ok == len(planned)
    with Store(tmp_path) as store:
        records = store.records(name, keys=summary.keys)
        assert [r.status for r in records] == ["ok"] * len(planned)
        analysis = experiments.get(name).analyze(records)
    try:
        verdict = analysis.verdict
        assert verdict.supported, verdict.summary
        assert analysis.table and analysis.figures
    finally:
        for fig in analysis.figures.values():
            plt.close(fig)
