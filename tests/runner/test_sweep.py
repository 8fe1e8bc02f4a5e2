"""Sweep planning and the sequential sweep: grid expansion, validation, run keys, failed
runs, resume, and stored values checked against running the toy experiment directly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import runner_toys
from runner_toys import toys_registered  # noqa: F401

from saddlescape.errors import ConfigError, UnknownNameError
from saddlescape.experiments import get
from saddlescape.runner import Store, plan_sweep, run_key, run_sweep
from saddlescape.runner.worker import RunSpec, execute_run


def test_plan_expands_the_cartesian_product_in_grid_order():
    specs = plan_sweep(
        "toy_quadratic", overrides={"dim": "8"}, grid={"lr": [0.1, 0.2], "seed": [0, 1, 2]}
    )
    assert [(s.config["lr"], s.config["seed"]) for s in specs] == [
        (lr, seed) for lr in (0.1, 0.2) for seed in (0, 1, 2)
    ]
    assert all(s.config["dim"] == 8 and s.config["steps"] == 40 for s in specs)
    assert len({s.key for s in specs}) == 6
    assert all(s.key == run_key("toy_quadratic", s.config) for s in specs)


def test_default_and_quick_grids_and_overrides():
    assert [s.config["seed"] for s in plan_sweep("toy_quadratic")] == [0, 1]
    quick = plan_sweep("toy_quadratic", quick=True)
    assert [(s.config["seed"], s.config["steps"]) for s in quick] == [(0, 10)]
    # a fixed key removes its default axis; a given axis replaces it
    assert [s.config["seed"] for s in plan_sweep("toy_quadratic", overrides={"seed": 5})] == [5]
    assert [s.config["seed"] for s in plan_sweep("toy_quadratic", grid={"seed": range(3)})] == [
        0,
        1,
        2,
    ]


def test_run_key_is_stable_and_depends_on_every_config_value():
    a = plan_sweep("toy_quadratic", overrides={"seed": 0})[0]
    b = plan_sweep("toy_quadratic", overrides={"seed": "0", "lr": "0.1"})[0]
    c = plan_sweep("toy_quadratic", overrides={"seed": 0, "lr": 0.1000001})[0]
    assert a.key == b.key != c.key
    assert len(a.key) == 16 and int(a.key, 16) >= 0
    # duplicate points after conversion run once
    assert len(plan_sweep("toy_quadratic", grid={"lr": ["0.5", 0.5, "5e-1"], "seed": [0]})) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": {"dimm": 3}}, "unknown config key 'dimm'"),
        ({"grid": {"dim": [4, "x"]}}, "dim must be an integer, got 'x'"),
        ({"grid": {"dim": [0]}}, "dim must be >= 1"),
        ({"grid": {"seed": []}}, "grid axis 'seed' has no values"),
        ({"overrides": {"seed": 1}, "grid": {"seed": [1, 2]}}, "'seed' is both fixed"),
    ],
)
def test_bad_config_raises_config_error_naming_it_before_anything_runs(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_sweep("toy_quadratic", store=tmp_path, progress=False, **kwargs)
    assert not (tmp_path / "runs.sqlite").exists()


def test_unknown_experiment_suggests_names(tmp_path):
    with pytest.raises(UnknownNameError, match="toy_quadratic"):
        run_sweep("toy_quadratc", store=tmp_path, progress=False)


def _direct(config: dict) -> tuple[dict, dict]:
    """The toy run computed here, without the runner (1 thread, seeded global RNG)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config["seed"])
        x, losses = runner_toys.quadratic_descent(
            config["dim"], config["steps"], config["lr"], config["seed"]
        )
        draw = torch.rand(()).item()
    finally:
        torch.set_num_threads(threads)
    metrics = {
        "final_loss": losses[-1].item(),
        "x_norm": float(np.float32(torch.linalg.vector_norm(x).item())),
        "global_draw": draw,
    }
    return metrics, {"losses": torch.stack(losses).numpy(), "x": x.numpy()}


def test_sequential_sweep_stores_what_the_experiment_computes(tmp_path):
    summary = run_sweep(
        "toy_quadratic",
        overrides={"dim": 16, "steps": 20},
        grid={"seed": [3, 4, 5]},
        store=tmp_path,
        progress=False,
    )
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (3, 3, 0, 0)
    with Store(tmp_path) as store:
        records = {r.config["seed"]: r for r in store.records("toy_quadratic")}
        assert sorted(records) == [3, 4, 5]
        for seed, record in records.items():
            metrics, arrays = _direct(record.config)
            assert record.metrics == metrics, seed
            assert set(record.arrays) == {"losses", "x"}
            for name, array in arrays.items():
                np.testing.assert_array_equal(record.arrays[name], array)
                assert record.arrays[name].dtype == np.float32
            assert record.key in summary.keys and record.status == "ok" and record.seconds > 0
        # the runner restores the caller's thread count and global RNG
        row = store.rows()[0]
        assert set(row["versions"]) == {"saddlescape", "torch", "numpy", "python"}
        assert row["versions"]["torch"] == torch.__version__


def test_the_latest_sweep_is_recorded_before_its_runs(tmp_path):
    with Store(tmp_path) as store:
        assert store.latest_sweep("toy_quadratic") is None
    first = run_sweep("toy_quadratic", grid={"seed": [0, 1]}, store=tmp_path, progress=False)
    second = run_sweep("toy_quadratic", grid={"seed": [1, 2, 3]}, store=tmp_path, progress=False)
    assert (second.ok, second.skipped) == (2, 1)
    with Store(tmp_path) as store:
        assert store.latest_sweep("toy_quadratic") == second.keys != first.keys
        assert store.count("toy_quadratic") == 4  # earlier runs are kept, not replaced


def test_runner_restores_thread_count_and_global_rng(tmp_path):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_sweep("toy_quadratic", grid={"seed": [0]}, store=tmp_path, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_failed_run_is_recorded_and_the_sweep_goes_on_then_retried(tmp_path):
    grid = {"seed": [0, 1, 2, 3]}
    calls = []
    summary = run_sweep(
        "toy_quadratic",
        overrides={"fail_seed": 2, "dim": 4},
        grid=grid,
        store=tmp_path,
        progress=lambda result, done, total: calls.append((result.key, done, total)),
    )
    assert (summary.ok, summary.failed) == (3, 1)
    assert [c[1:] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    ((failed_key, error),) = summary.failures
    assert error == "RuntimeError: boom on seed 2"
    with Store(tmp_path) as store:
        (record,) = store.records(status="failed")
        assert record.key == failed_key and record.error == error
        assert record.config["seed"] == 2 and record.metrics == {} and dict(record.arrays) == {}
        row = next(r for r in store.rows() if r["key"] == failed_key)
        assert 'raise RuntimeError(f"boom on seed' in row["traceback"]

    # rerun: ok runs skipped, the failed one retried (and fails again, replacing its row)
    again = run_sweep(
        "toy_quadratic",
        overrides={"fail_seed": 2, "dim": 4},
        grid=grid,
        store=tmp_path,
        progress=False,
    )
    assert (again.ok, again.failed, again.skipped) == (0, 1, 3)
    skip = run_sweep(
        "toy_quadratic",
        overrides={"fail_seed": 2, "dim": 4},
        grid=grid,
        store=tmp_path,
        progress=False,
        retry_failed=False,
    )
    assert (skip.ok, skip.failed, skip.skipped) == (0, 0, 4)
    with Store(tmp_path) as store:
        assert store.count() == 4 and store.count(status="failed") == 1


def test_metrics_must_be_json_able(tmp_path):
    summary = run_sweep("toy_bad_metrics", store=tmp_path, progress=False)
    assert summary.failed == 1
    ((_, error),) = summary.failures
    assert error.startswith("TypeError: metric 'vector' is a Tensor, not JSON-able")


def test_execute_run_never_raises_and_imports_the_defining_module():
    spec = RunSpec(
        "no_such_experiment", {"seed": 0}, "k", "no_such_module_xyz", "/nonexistent", None, "X"
    )
    result = execute_run(spec)
    assert result.status == "failed" and "no_such_module_xyz" in result.error
    good = plan_sweep("toy_quadratic", overrides={"seed": 0, "dim": 3})[0]
    assert (good.module, good.qualname) == ("runner_toys", "ToyQuadratic")
    assert Path(good.module_root) == Path(__file__).parent
    assert execute_run(good).status == "ok"


def test_unregistered_experiments_run_when_importable(tmp_path):
    summary = run_sweep(runner_toys.ToyUnregistered, grid={"seed": [0, 1]}, store=tmp_path,
                        progress=False)  # fmt: skip
    assert summary.ok == 2
    with Store(tmp_path) as store:
        assert {r.experiment for r in store.records()} == {"toy_unregistered"}

    class Local(runner_toys.ToyQuadratic):
        name = "local_toy"

    with pytest.raises(ConfigError, match="defined inside a function"):
        run_sweep(Local(), store=tmp_path, progress=False)
    summary = run_sweep(get("toy_quadratic"), grid={"seed": [0]}, store=tmp_path, progress=False)
    assert summary.ok == 1


def test_git_revision_marks_a_dirty_tree_and_ignores_site_packages(tmp_path):
    import shutil
    import subprocess

    from saddlescape.runner.sweep import git_revision

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pkg = tmp_path / "repo" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("x = 1\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"]}  # fmt: skip
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=pkg.parent, check=True, env=env)
    rev = git_revision(pkg)
    assert rev is not None and len(rev) == 40
    (pkg / "mod.py").write_text("x = 2\n")
    assert git_revision(pkg) == rev + "+dirty"
    (pkg / "untracked.py").write_text("")  # untracked files do not count
    (pkg / "mod.py").write_text("x = 1\n")
    assert git_revision(pkg) == rev
    site = tmp_path / "repo" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    assert git_revision(site) is None
    assert git_revision(tmp_path) is None  # not a checkout


def test_a_sweep_whose_executor_fails_to_start_keeps_the_latest_sweep(tmp_path):
    first = run_sweep("toy_quadratic", grid={"seed": [0, 1]}, store=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="address"):
        run_sweep("toy_quadratic", grid={"seed": [5]}, store=tmp_path, executor="process",
                  address="auto", progress=False)  # fmt: skip
    with Store(tmp_path) as store:
        assert store.latest_sweep("toy_quadratic") == first.keys  # the report still has it
    other = run_sweep("toy_quadratic", grid={"seed": [1]}, store=tmp_path, progress=False)
    assert (other.ok, other.skipped) == (0, 1)
    with Store(tmp_path) as store:  # a fully stored plan becomes the latest at once
        assert store.latest_sweep("toy_quadratic") == other.keys
        assert store.count("toy_quadratic") == 2


@pytest.mark.parametrize(
    ("executor", "workers", "message"),
    [
        ("process", 0, "workers must be >= 1, got 0"),
        ("process", -1, "workers must be >= 1, got -1"),
        ("ray", 0, "workers must be >= 1, got 0"),
        ("sequential", 4, "sequential executor runs one at a time, got 4"),
    ],
)
def test_bad_workers_are_refused_when_every_run_is_stored(tmp_path, executor, workers, message):
    """A rerun that has nothing left to run needs no executor; its bad --workers used to be
    accepted silently (exit 0), so the same command failed or not depending on the store."""
    sweep = {"overrides": {"dim": 4, "steps": 2}, "grid": {"seed": [0]}}
    run_sweep("toy_quadratic", store=tmp_path, progress=False, **sweep)
    with pytest.raises(ConfigError, match=message):
        run_sweep(
            "toy_quadratic",
            store=tmp_path,
            executor=executor,
            workers=workers,
            progress=False,
            **sweep,
        )


def test_a_run_that_calls_sys_exit_fails_alone_and_the_sweep_goes_on(tmp_path):
    """sys.exit(0) in one run used to end the whole sweep (the CLI with exit status 0, no
    summary): the runs after it never ran and nothing said so."""
    summary = run_sweep(
        runner_toys.ToyExit, grid={"seed": [0, 1, 2, 3]}, store=tmp_path, progress=False
    )
    assert (summary.ok, summary.failed) == (3, 1)
    [(key, error)] = summary.failures
    assert error == "SystemExit: the run called sys.exit(0)"
    with Store(tmp_path) as store:
        assert store.statuses("toy_exit")[key] == "failed"
        assert store.count("toy_exit", "ok") == 3


def test_a_run_too_large_to_store_fails_alone_and_the_sweep_goes_on(tmp_path):
    """A run whose arrays exceed SQLite's largest value (1 GB; lowered here) used to end the
    sweep with 'string or blob too big', and every rerun stopped at the same run."""
    import sqlite3

    with Store(tmp_path) as store:
        store._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_500)
        summary = run_sweep(
            "toy_quadratic",
            overrides={"dim": 4},
            grid={"steps": [5, 300], "seed": [0]},  # arrays of 0.6 kB and 1.8 kB
            store=store,
            progress=False,
        )
        assert (summary.ok, summary.failed) == (1, 1)
        [(key, error)] = summary.failures
        assert error.startswith(f"RunTooLargeError: run {key}: its arrays take ")
        assert "more than the 1,500 bytes one stored value may hold" in error
        [row] = store.rows("toy_quadratic", "failed")
        assert row["config"]["steps"] == 300 and row["metrics"] == {}
        assert store.arrays(key) == {}
