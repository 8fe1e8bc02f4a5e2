"""``saddlescape optimize``: one trajectory, a summary table, one-line errors."""

import numpy as np
import pytest

from saddlescape.cli import main


def test_pgd_from_the_saddle_reports_a_minimum(capsys):
    rc = main(
        [
            "optimize",
            "lee-2d",
            "--optimizer",
            "pgd",
            "--init",
            "0,0",
            "--steps",
            "300",
            "--lr",
            "0.2",
            "--seed",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "minimum at (0, " in out and "perturbations" in out
    assert "iterations" in out and "300" in out


def test_gd_stays_at_the_saddle_and_writes_csv(tmp_path, capsys):
    path = tmp_path / "traj.csv"
    rc = main(
        ["optimize", "lee-2d", "-o", "gd", "--init", "0,0", "--steps", "20", "--out", str(path)]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "saddle at (0, 0)" in out
    rows = path.read_text().splitlines()
    assert rows[0].split(",")[:3] == ["step", "f", "grad_norm"] and len(rows) == 22


def test_npz_output_default_lr_and_params(tmp_path, capsys):
    path = tmp_path / "traj.npz"
    rc = main(
        [
            "optimize",
            "himmelblau",
            "-o",
            "noisy",
            "--steps",
            "50",
            "-p",
            "radius=0.05",
            "--out",
            str(path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "radius=0.05" in out and "lr=0.00306" in out  # 1/ℓ with ℓ = 326.79
    data = np.load(path)
    assert data["x"].shape == (51, 2) and data["perturbed"][:50].all()  # noise every step
    assert data["f"][-1] < data["f"][0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optimize", "lee-2d", "-o", "pgdd"], "unknown optimizer 'pgdd'"),
        (["optimize", "lee-2dd"], "unknown problem"),
        (["optimize", "lee-2d", "--init", "1,2,3"], "--init needs 2 numbers"),
        (["optimize", "lee-2d", "--init", "a,b"], "--init must be comma-separated"),
        (["optimize", "lee-2d", "-p", "radius=-1"], "radius must be > 0"),
        (["optimize", "lee-2d", "-p", "radiuss=1"], "no parameter 'radiuss'"),
        (["optimize", "lee-2d", "--steps", "-3"], "--steps must be >= 0"),
        (["optimize", "lee-2d", "--out", "x.txt"], "--out must end in .csv or .npz"),
        (["optimize", "lee-2d", "-p", "lr=0.1"], "use --lr"),
        (["optimize", "lee-2d", "-p", "seed=3"], "use --seed"),
        (["optimize", "lee-2d", "--seed", "99999999999999999999999"], "--seed must be in"),
        (["optimize", "lee-2d", "--seed", "-1"], "--seed must be in"),
        (["optimize", "lee-2d", "--out", "/nonexistent/dir/t.csv"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(argv, message, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2 and message in err and "Traceback" not in err
    assert captured.out == ""  # no empty line left behind by the progress bar


def test_out_directory_is_checked_before_the_run(capsys, monkeypatch):
    import saddlescape.cli.optimize_cmd as cmd

    def fail(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(cmd, "run", fail)
    rc = main(["optimize", "lee-2d", "--steps", "5", "--out", "/nonexistent/dir/t.csv"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def _row(out: str, label: str) -> str:
    """The text of a summary-table row, its wrapped continuation lines joined."""
    lines = [line.strip().split("│")[1:-1] for line in out.splitlines() if "│" in line]
    text, inside = [], False
    for cells in lines:
        head, rest = cells[0].strip(), "│".join(cells[1:]).strip()
        if head == label:
            inside = True
        elif head:
            inside = False
        if inside:
            text.append(rest)
    return " ".join(text)


def _numbers(text: str) -> list[float]:
    inner = text[text.index("(") + 1 : text.index(")")]
    return [float(v) for v in inner.split(",") if v.strip() not in ("…", "")]


@pytest.mark.parametrize(("optimizer", "kind"), [("gd", "saddle"), ("pgd", "minimum")])
def test_octopus_names_the_critical_point_in_the_orbit_it_reached(capsys, optimizer, kind):
    """Issue 13: the point reached has sign-flipped coordinates (−10.87); the nearest
    critical point is shown as the copy in the same symmetry orbit, not the listed
    representative with +10.87 everywhere."""
    rc = main(["optimize", "octopus", "--dim", "5", "-o", optimizer])
    out = capsys.readouterr().out
    assert rc == 0 and not out.startswith("\n")
    nearest, final = _row(out, "nearest critical point"), _row(out, "final x")
    assert nearest.startswith(f"{kind} at (")
    shown, reached = _numbers(nearest), _numbers(final)
    assert len(shown) == len(reached) == 5
    assert shown == pytest.approx(reached, abs=1e-2)
    if optimizer == "gd":
        assert any(v < -10 for v in shown)
