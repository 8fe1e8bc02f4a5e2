"""``saddlescape experiments``, ``reproduce`` and ``report`` through ``saddlescape.cli.main``."""

from __future__ import annotations

import re

import pytest

from saddlescape.cli import main
from saddlescape.experiments import names
from saddlescape.runner import Store

TINY_GD_RATE = (
    "--set", "gd-rate.problem=himmelblau", "--set", "beta_factor=1", "--set", "n_init=2",
    "--set", "n_eps=2", "--set", "eps_min=0.01",
)  # fmt: skip


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_reproduce_only_gd_rate_then_rerun_and_report(tmp_path, capsys):
    out = tmp_path / "res"
    args = ("reproduce", "--only", "gd-rate", "--quick", "--out", str(out))
    rc, text, _ = _run(capsys, *args, *TINY_GD_RATE, "--executor", "sequential", "--no-progress")
    assert rc == 0, text
    assert "gd-rate" in text and "✓" in text and "1 new, 0 kept" in text
    assert "index.html" in text
    with Store(out, create=False) as store:
        (record,) = store.records(experiment="gd-rate")
    assert record.config["problem"] == "himmelblau" and record.config["n_init"] == 2
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "✓ supported" in page and "data:image/png;base64," in page
    assert page.count("not run") >= len(names()) - 1  # every other experiment is listed
    assert (out / "gd-rate-iterations-vs-epsilon.png").stat().st_size > 1000

    # rerunning skips the stored run
    rc, text, _ = _run(capsys, *args, *TINY_GD_RATE, "--executor", "sequential", "--no-progress")
    assert rc == 0 and "0 new, 1 kept" in text

    (out / "index.html").unlink()
    rc, text, _ = _run(capsys, "report", "--out", str(out))
    assert rc == 0 and (out / "index.html").exists()
    assert re.search(r"✓\s+gd-rate\s+1\b", text) and "✓ gd-rate: " in text
    # the environment table shows the git revision the store recorded (issue 14)
    with Store(out, create=False) as store:
        revs = {row["git"] for row in store.rows() if row["git"]}
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "git revision (store)" in page and all(r in page for r in revs)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (("--set", "gd-rate.nope=1"), "nope"),
        (("--set", "nope=1"), "nope"),
        (("--set", "gd-rate.beta_factor=0.5"), "beta_factor"),
        (("--set", "gd-rate.n_init=two"), "n_init"),
        (("--only", "gd-rat"), "did you mean 'gd-rate'"),
        (("--executor", "threads"), "--executor"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, capsys, argv, match):
    args = ["reproduce", "--out", str(tmp_path), "--executor", "sequential", "--no-progress"]
    if "--only" not in argv:
        args += ["--only", "gd-rate"]
    if "--executor" in argv:
        args = [a for a in args if a not in ("--executor", "sequential")]
    rc, _, err = _run(capsys, *args, *argv)
    assert rc == 2
    flat = " ".join(err.split())  # rich wraps the one-line message at the terminal width
    assert match in flat and flat.count("error:") == 1 and "Traceback" not in err, err


def test_report_of_missing_folder(tmp_path, capsys):
    rc, _, err = _run(capsys, "report", "--out", str(tmp_path / "nowhere"))
    assert rc == 2 and "no results" in err


def test_experiments_lists_claims(capsys):
    rc, text, _ = _run(capsys, "experiments", "--verbose")
    assert rc == 0
    for name in ("gd-rate", "step-size", "stable-manifold", "dimension"):
        assert name in text
    assert "Lee" in text  # sources shown with --verbose


def test_report_judges_the_latest_sweep_unless_all_runs(tmp_path, capsys):
    from saddlescape.report import build_sections

    out = tmp_path / "res"
    base = ("reproduce", "--only", "gd-rate", "--quick", "--out", str(out), *TINY_GD_RATE)
    base += ("--executor", "sequential", "--no-progress")
    assert _run(capsys, *base)[0] == 0
    other = tuple("n_init=3" if a == "n_init=2" else a for a in base)  # other settings
    rc, text, _ = _run(capsys, *other)
    assert rc == 0 and "1 new, 0 kept" in text
    with Store(out, create=False) as store:
        latest = store.latest_sweep("gd-rate")
        assert len(latest) == 1
        assert store.records(keys=latest)[0].config["n_init"] == 3
    (section,) = build_sections(out, ["gd-rate"])
    assert (section.n_ok, section.n_other) == (1, 1)
    (pooled,) = build_sections(out, ["gd-rate"], all_runs=True)
    assert (pooled.n_ok, pooled.n_other) == (2, 0)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "1 earlier stored runs with other settings are not included" in page
    rc, _, _ = _run(capsys, "report", "--out", str(out), "--all-runs")
    assert rc == 0 and "not included" not in (out / "index.html").read_text(encoding="utf-8")


def test_reproduce_passes_the_ray_address_through(tmp_path, capsys):
    # 'process' has no cluster: the address reaches make_executor, which names it
    args = ["reproduce", "--only", "gd-rate", "--out", str(tmp_path), "--no-progress"]
    rc, _, err = _run(capsys, *args, "--executor", "process", "--address", "auto")
    assert rc == 2 and "address" in err and "ray" in err


def test_usage_errors_and_bracketed_messages_are_one_line(tmp_path, capsys):
    rc, _, err = _run(capsys, "optimize", "lee-2d", "--steps", "abc")
    assert rc == 2 and err.count("\n") == 1 and "--steps" in err and "--help" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('experiment = "gd-rate"\n[grid]\nnope = [1, 2]\n')
    rc, _, err = _run(capsys, "run", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert rc == 2 and f"{bad} [grid]: unknown config key 'nope'" in " ".join(err.split())
