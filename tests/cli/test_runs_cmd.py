"""``saddlescape run`` and ``saddlescape runs`` through ``saddlescape.cli.main``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runner"))
from runner_toys import toys_registered  # noqa: F401

from saddlescape.cli import main
from saddlescape.runner import Store, load_runs


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_run_then_list_then_rerun(tmp_path, capsys):
    out = str(tmp_path / "res")
    rc, text, _ = _run(
        capsys, "run", "toy_quadratic", "--set", "dim=4", "--set", "steps=3",
        "--grid", "lr=0.1,0.2", "--seeds", "2", "--out", out, "--no-progress",
    )  # fmt: skip
    assert rc == 0
    assert "sweep of toy_quadratic" in text and "runs.sqlite" in text
    df = load_runs(out)
    assert sorted(zip(df["lr"], df["seed"], strict=True)) == [
        (0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)
    ]  # fmt: skip
    assert (df["dim"] == 4).all() and (df["status"] == "ok").all()

    rc, text, _ = _run(capsys, "runs", "--out", out, "--metrics", "1")
    assert rc == 0
    assert "4 runs in" in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for key in df["key"]:  # one line per run, named by the key's first 8 characters
        assert sum(key[:8] in ln for ln in lines) == 1 and key not in text
    assert "lr" in text and "final_loss" in text  # varying config key and metrics

    rc, text, _ = _run(capsys, "runs", "--out", out, "--where", "lr=0.2", "--where", "seed=1")
    (key,) = df[(df.lr == 0.2) & (df.seed == 1)]["key"]
    assert rc == 0 and "1 runs in" in text and key[:8] in text

    # rerun: everything skipped, nothing duplicated
    rc, text, _ = _run(
        capsys, "run", "toy_quadratic", "--set", "dim=4", "--set", "steps=3",
        "--grid", "lr=0.1,0.2", "--seeds", "2", "--out", out, "--no-progress",
    )  # fmt: skip
    assert rc == 0
    with Store(out) as store:
        assert store.count() == 4


def test_failed_runs_exit_1_and_show_their_error(tmp_path, capsys):
    out = str(tmp_path)
    rc, text, _ = _run(
        capsys, "run", "toy_quadratic", "--set", "fail_seed=1", "--set", "dim=3",
        "--seeds", "3", "--out", out, "--no-progress",
    )  # fmt: skip
    assert rc == 1
    assert "RuntimeError: boom on seed 1" in text
    rc, text, _ = _run(capsys, "runs", "--out", out, "--status", "failed")
    assert rc == 0 and "1 runs in" in text and "boom on seed 1" in text


def test_config_file(tmp_path, capsys):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('experiment = "toy_quadratic"\nseeds = 2\n[set]\ndim = 3\nsteps = 2\n')
    rc, _, _ = _run(capsys, "run", "--config", str(sweep), "--out", str(tmp_path), "--no-progress")
    assert rc == 0 and len(load_runs(tmp_path)) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "toy_quadratic", "--set", "dimm=3"], "--set: unknown config key 'dimm'"),
        (["run", "toy_quadratic", "--set", "dim=three"], "dim must be an integer, got 'three'"),
        (["run", "toy_quadratic", "--grid", "lr=0.1,x"], "lr must be a number, got 'x'"),
        (["run", "toy_quadratic", "--set", "dim"], "--set must look like key=value"),
        (["run", "toy_quadratic", "--executor", "dask"], "--executor must be one of"),
        (["run", "toy_quadratc"], "unknown experiment 'toy_quadratc'; did you mean"),
        (["run", "--config", "missing.toml"], "no such file"),
        (["runs", "--where", "dimm=1"], "no run has config key 'dimm'"),
        (["runs", "--status", "done"], "status must be 'ok' or 'failed'"),
    ],
)
def test_bad_input_is_one_line_naming_it_and_exit_2(tmp_path, capsys, argv, message):
    if argv[0] == "runs":  # a store to list
        setup = ["run", "toy_quadratic", "--set", "dim=2", "--set", "steps=1", "--no-progress"]
        main([*setup, "--out", str(tmp_path)])
        capsys.readouterr()
    rc, _, err = _run(capsys, *argv, "--out", str(tmp_path))
    assert rc == 2
    line = " ".join(err.split())  # rich wraps long lines at 80 columns
    assert line.startswith("error:") and message in line
    assert "Traceback" not in err


def test_runs_without_results(tmp_path, capsys):
    rc, _, err = _run(capsys, "runs", "--out", str(tmp_path / "none"))
    assert rc == 2 and "no results in" in err


def test_report_names_stored_runs_it_has_no_experiment_for_and_takes_module(
    tmp_path, capsys, monkeypatch
):
    """Runs of a user experiment (``run --module``) were left out of ``report`` without a
    word (every registered experiment read "no stored runs"), ``report`` had no --module to
    register it, and its table counted failed runs in one total with the analyzed ones."""
    from saddlescape.experiments import registry

    out = str(tmp_path / "res")
    argv = ("--set", "dim=4", "--set", "steps=3", "--set", "fail_seed=1", "--seeds", "3")
    rc, _, _ = _run(capsys, "run", "toy_quadratic", *argv, "--out", out, "--no-progress")
    assert rc == 1  # seed 1 failed
    monkeypatch.delitem(registry._REGISTRY, "toy_quadratic")  # a fresh process: not registered

    rc, _, err = _run(capsys, "report", "--out", out, "--to", str(tmp_path / "page"))
    assert rc == 0
    assert "3 stored run(s) of experiment 'toy_quadratic' are not in the report" in err
    assert "--module" in err

    (tmp_path / "report_module_toys.py").write_text(
        "import runner_toys\nrunner_toys.register_toys()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, text, err = _run(
        capsys, "report", "--out", out, "--to", str(tmp_path / "page"),
        "--module", "report_module_toys", "--only", "toy_quadratic",
    )  # fmt: skip
    assert rc == 0, err
    assert "toy_quadratic  2 (+1 failed)" in text


def test_report_warns_when_a_resumed_sweep_pools_runs_of_two_code_versions(
    tmp_path, capsys, monkeypatch
):
    """A sweep interrupted, then resumed after a code update keeps its earlier runs (same
    config, same key): the report pooled both versions' numbers without a word."""
    import saddlescape.runner.sweep as sweep_module

    out = str(tmp_path / "res")
    argv = ("run", "toy_quadratic", "--set", "dim=4", "--set", "steps=3", "--out", out)
    monkeypatch.setattr(sweep_module, "git_revision", lambda: "1111111")
    assert _run(capsys, *argv, "--seeds", "2", "--no-progress")[0] == 0  # "interrupted"
    monkeypatch.setattr(sweep_module, "git_revision", lambda: "2222222")
    assert _run(capsys, *argv, "--seeds", "3", "--no-progress")[0] == 0  # resumed: 1 new

    rc, _, err = _run(capsys, "report", "--out", out, "--only", "toy_quadratic")
    assert rc == 0
    assert "toy_quadratic: the analyzed runs were computed by 2 versions of the code" in err
    assert "2 run(s) by git 1111111" in err and "1 run(s) by git 2222222" in err
    # one version: no note
    rc, _, err = _run(capsys, *argv, "--seeds", "3", "--set", "lr=0.2", "--no-progress")
    rc, _, err = _run(capsys, "report", "--out", out, "--only", "toy_quadratic")
    assert rc == 0 and "versions of the code" not in err


def test_report_warns_when_runs_differ_in_a_key_the_analysis_does_not_tell_apart(tmp_path, capsys):
    """toy_quadratic's analysis tells runs apart by seed (its grid axis) only: a sweep over
    two learning rates was judged on both pooled, without a word."""
    out = str(tmp_path / "res")
    argv = ("run", "toy_quadratic", "--set", "dim=4", "--set", "steps=3", "--out", out)
    assert _run(capsys, *argv, "--grid", "lr=0.1,0.2", "--seeds", "2", "--no-progress")[0] == 0
    rc, _, err = _run(capsys, "report", "--out", out, "--only", "toy_quadratic")
    assert rc == 0
    assert (
        "toy_quadratic: the analyzed runs differ in lr (lr = 0.1, 0.2), which its analysis "
        "does not tell apart (its axes: seed)"
    ) in err
    # the next sweep, one lr, is what the report judges: nothing pooled, no note
    assert _run(capsys, *argv, "--set", "lr=0.2", "--seeds", "2", "--no-progress")[0] == 0
    rc, _, err = _run(capsys, "report", "--out", out, "--only", "toy_quadratic")
    assert rc == 0 and "differ in" not in err
    rc, _, err = _run(capsys, "report", "--out", out, "--only", "toy_quadratic", "--all-runs")
    assert "differ in lr (lr = 0.1, 0.2)" in err  # pooling every run pools both again
