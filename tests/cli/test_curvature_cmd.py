"""`saddlescape certify` and `saddlescape spectrum` through the CLI entry point."""

import re

import pytest

from saddlescape.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def row(text, name):
    """The value cell of a table row (first line)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) >= 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in:\n{text}")


def number(cell):
    return float(re.match(r"[-+0-9.e]+", cell).group(0))


def test_certify_himmelblau_saddle(capsys):
    code, out, _ = run(capsys, "certify", "himmelblau", "--at-critical", "4")
    assert code == 0
    assert row(out, "kind").startswith("saddle")
    # Hessian at the saddle (0.086678, 2.884255): eigenvalues -31.7066, 75.5076 (dense)
    assert number(row(out, "λ_min")) == pytest.approx(-31.706622, abs=1e-4)
    assert number(row(out, "λ_max")) == pytest.approx(75.507609, abs=1e-4)
    assert number(row(out, "‖∇f‖")) < 1e-6
    assert "ρ = 120.2" in row(out, "τ")  # the problem's known ρ is the default
    assert row(out, "negative curvature") != "none"
    assert int(row(out, "HVPs")) > 0


def test_certify_at_point_with_tau_and_minimum(capsys):
    code, out, _ = run(capsys, "certify", "lee-2d", "--at", "0,1", "--tau", "0.1")
    assert code == 0
    assert row(out, "kind").startswith("minimum")
    assert row(out, "ε-SOSP") == "yes"
    assert row(out, "negative curvature") == "none"
    code, out, _ = run(capsys, "certify", "lee-2d", "--at", "0.5,0.5")
    assert code == 0 and row(out, "kind").startswith("not stationary")


def test_certify_budget_that_runs_out_is_undecided(capsys):
    # lee-2d's minimum (Hessian diag(1, 2)) after a single product: nothing is proven yet
    code, out, _ = run(capsys, "certify", "lee-2d", "--at-critical", "1", "--max-hvps", "1")
    assert code == 0
    assert row(out, "kind").startswith("undecided  (HVP budget ran out")
    assert row(out, "ε-SOSP") == "no"
    assert int(row(out, "HVPs")) == 1
    code, out, _ = run(capsys, "certify", "lee-2d", "--at-critical", "1", "--max-hvps", "50")
    assert code == 0 and row(out, "kind") == "minimum" and row(out, "ε-SOSP") == "yes"
    code, out, _ = run(capsys, "certify", "lee-2d", "--at", "0.5,0.5", "--max-hvps", "1")
    assert code == 0 and row(out, "kind").startswith("not stationary  (curvature undecided")


def test_certify_high_dimensional_default_point(capsys):
    code, out, _ = run(capsys, "certify", "quartic-saddle", "--dim", "300")
    assert code == 0
    assert row(out, "kind").startswith("saddle")
    n = 300  # eigenvalues (n ± √(n² + 4n))/2
    assert number(row(out, "λ_min")) == pytest.approx((n - (n * n + 4 * n) ** 0.5) / 2, rel=1e-5)
    assert number(row(out, "λ_max")) == pytest.approx((n + (n * n + 4 * n) ** 0.5) / 2, rel=1e-5)
    assert "d=301" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certify", "himmelblu"], "unknown problem 'himmelblu'"),
        (["certify", "lee-2d", "--at", "1,x"], "--at must be comma-separated"),
        (["certify", "lee-2d", "--at", "1,2,3"], "--at has 3 entries"),
        (["certify", "lee-2d", "--at-critical", "3"], "out of range"),
        (["certify", "lee-2d", "--at", "0,0", "--at-critical", "0"], "either --at or"),
        (["certify", "lee-2d", "--rho", "1", "--tau", "1"], "either --rho or --tau"),
        (["certify", "lee-2d", "--eps", "-1"], "eps"),
        (["certify", "himmelblau", "--tol", "-1"], "tol must be > 0"),
        (["certify", "himmelblau", "--tol", "0"], "tol must be > 0"),
        (["certify", "lee-2d", "--max-hvps", "0"], "max_hvps must be >= 1"),
        (["certify", "lee-2d", "--at", "nan,1"], "--at must hold finite numbers"),
        (["certify", "lee-2d", "--at", "0,inf"], "--at must hold finite numbers"),
        (["spectrum", "lee-2d", "--at", "nan,1"], "--at must hold finite numbers"),
        (["certify", "mlp-digits"], "lists no critical points"),
        (["spectrum", "lee-2d", "--out", "plot.txt"], "--out must end in"),
        (["spectrum", "lee-2d", "--at-critical", "-1"], "out of range"),
        (["spectrum", "lee-2d", "--probes", "0"], "--probes must be >= 1"),
        (["spectrum", "lee-2d", "--probes", "99999999999999999999"], "--probes must be <="),
        (["spectrum", "lee-2d", "--steps", "0"], "--steps must be >= 1"),
        (["spectrum", "quadratic-saddle", "--dim", "300000000"], "reduce --dim"),
        (["certify", "quadratic-saddle", "--dim", "300000000"], "of memory, more than"),
    ],
)
def test_errors_are_one_line(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err and err.strip().startswith("error:")


def test_spectrum_writes_plot_and_prints_extremes(capsys, tmp_path):
    target = tmp_path / "mf.png"
    code, out, _ = run(capsys, "spectrum", "matrix-factorization", "--out", str(target))
    assert code == 0
    assert target.exists() and target.stat().st_size > 5000
    joined = "".join(
        (line.split("│")[2].strip() if line.count("│") >= 3 else "") for line in out.splitlines()
    )
    assert str(target) in joined  # the full path, folded over lines, never cut
    # at U = 0 the Hessian of ‖UUᵀ − M‖² is −2·(I_r ⊗ (M + Mᵀ)): top eigenvalue of M,
    # λ_max = 0 from its null space (rank 3 < n = 5)
    lmin, lmax = number(row(out, "λ_min")), number(row(out, "λ_max"))
    assert lmax == pytest.approx(0.0, abs=1e-8)
    assert lmin < -1


def test_spectrum_default_output_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "spectrum", "lee-2d", "--at", "0,0", "--log")
    assert code == 0
    assert (tmp_path / "spectrum-lee-2d.png").exists()
    assert number(row(out, "λ_min")) == pytest.approx(-1.0, abs=1e-8)
    assert number(row(out, "λ_max")) == pytest.approx(1.0, abs=1e-8)
