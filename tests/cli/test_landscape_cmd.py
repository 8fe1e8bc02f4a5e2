"""`saddlescape landscape` through the CLI entry point: zoo problems, the digits MLP (zoo
and --model), saved slices, and one-line refusals with exit status 2."""

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_curvature_cmd import row, run

from saddlescape.landscape import Landscape

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_bn.py"


def _png(path):
    data = path.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 10_000
    return data


def test_lee_2d_eigen_slice_at_a_critical_point(capsys, tmp_path):
    out, saved = tmp_path / "saddle.png", tmp_path / "saddle.npz"
    code, text, err = run(
        capsys, "landscape", "lee-2d", "--at-critical", "1", "--directions", "eigen",
        "--out", str(out), "--save", str(saved), "--resolution", "21",
    )  # fmt: skip
    assert code == 0, err
    _png(out)
    assert "critical point 1 (listed as minimum)" in row(text, "centre")
    # lee-2d's Hessian at the minimum (0, 1) is diag(1, 2)
    assert row(text, "direction 1") == "eigen: v_max (λ = 2)"
    assert row(text, "direction 2") == "eigen: v_min (λ = 1)"
    s = Landscape.load(saved)
    assert s.losses.shape == (21, 21) and s.center.tolist() == [0.0, 1.0]
    # along (y, x) from the minimum: f = ½a'² + ¼(1+b')⁴ − ½(1+b')², a' = β, b' = α
    B, A = torch.meshgrid(s.betas, s.alphas, indexing="ij")
    y = 1 + A
    assert torch.allclose(s.losses, 0.5 * B**2 + 0.25 * y**4 - 0.5 * y**2, atol=1e-12)
    assert int(row(text, "evaluations")) == 21 * 21 + 1


def test_the_saddle_with_a_trajectory_from_optimize(capsys, tmp_path):
    xs = np.array([[1.0, 0.001], [0.5, 0.01], [0.25, 0.1], [0.0, 0.9]])
    np.savez(tmp_path / "traj.npz", x=xs, f=np.zeros(4))
    out = tmp_path / "pca.svg"
    code, text, err = run(
        capsys, "landscape", "lee-2d", "--directions", "pca", "--trajectory",
        str(tmp_path / "traj.npz"), "--out", str(out), "--resolution", "11", "--plot", "contour",
    )  # fmt: skip
    assert code == 0, err
    assert "the trajectory's last point" in row(text, "centre")
    assert row(text, "direction 1").startswith("pca: PC1 (")
    assert float(row(text, "trajectory off the plane").split()[-1]) < 1e-12
    assert out.read_text().lstrip().startswith("<?xml")


def test_zoo_mlp_on_digits(capsys, tmp_path):
    out = tmp_path / "mlp.png"
    code, text, err = run(
        capsys, "landscape", "mlp-digits", "--set", "hidden=8", "--set", "n_samples=120",
        "--directions", "eigen", "--resolution", "5", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    _png(out)
    assert "the problem's initial point" in text
    assert row(text, "direction 2").startswith("eigen: v_min")
    assert int(row(text, "HVPs")) > 0


def test_random_filter_normalized_slice_of_the_zoo_mlp_is_reproducible(capsys, tmp_path):
    files = []
    for name in ("a", "b"):
        saved = tmp_path / f"{name}.npz"
        code, _, err = run(
            capsys, "landscape", "mlp-digits", "--set", "hidden=4", "--set", "n_samples=60",
            "--directions", "random", "--resolution", "4", "--dims", "1",
            "--out", str(tmp_path / f"{name}.png"), "--save", str(saved), "--seed", "3",
        )  # fmt: skip
        assert code == 0, err
        files.append(Landscape.load(saved))
    a, b = files
    assert a.directions.normalization == "filter" and a.ndim == 1
    assert torch.equal(a.losses, b.losses) and torch.equal(
        a.directions.vectors, b.directions.vectors
    )


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_user_model_bn_cnn_on_digits(capsys, tmp_path, mode):
    out, saved = tmp_path / "bn.png", tmp_path / "bn.npz"
    code, text, err = run(
        capsys, "landscape", "--model", f"{EXAMPLE}:make", "--model-arg", "n=96",
        "--model-arg", "batch_size=40", "--mode", mode, "--directions", "random",
        "--resolution", "4", "--span", "-0.5,0.5", "--out", str(out), "--save", str(saved),
    )  # fmt: skip
    assert code == 0, err
    _png(out)
    assert f"{mode} mode" in text
    assert int(row(text, "passes over the data")) >= 2
    s = Landscape.load(saved)
    assert s.alphas[0] == -0.5 and s.alphas[-1] == 0.5
    assert s.directions.labels[0] == "filter-normalized random direction 1"


def test_small_make_file_mlp_on_digits_with_eigen_directions(capsys, tmp_path):
    make = tmp_path / "mlp.py"
    make.write_text(
        textwrap.dedent(
            """
            import torch
            from sklearn.datasets import load_digits

            def make():
                torch.manual_seed(0)
                X, y = load_digits(return_X_y=True)
                X = torch.tensor(X[:80] / 16.0)
                y = torch.tensor(y[:80])
                model = torch.nn.Sequential(
                    torch.nn.Linear(64, 6), torch.nn.Tanh(), torch.nn.Linear(6, 10)
                ).double()
                return model, torch.nn.CrossEntropyLoss(), [(X[:50], y[:50]), (X[50:], y[50:])]
            """
        )
    )
    out = tmp_path / "eig.pdf"
    code, text, err = run(
        capsys, "landscape", "--model", str(make), "--directions", "eigen",
        "--resolution", "4", "--out", str(out), "--log",
    )  # fmt: skip
    assert code == 0, err
    assert out.read_bytes()[:4] == b"%PDF"
    assert row(text, "direction 1").startswith("eigen: v_max")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--span", "0"], "--span must be a positive finite number"),
        (["--span", "1,-1"], "finite lo < hi"),
        (["--span", "1,2,3"], "--span must be S"),
        (["--resolution", "1"], "resolution must be between 2 and"),
        (["--resolution", "100000"], "resolution must be between 2 and"),
        (["--resolution", "1500"], "over the limit"),
        (["--directions", "sideways"], "unknown direction kind 'sideways'"),
        (["--directions", "pca"], "--directions pca needs --trajectory"),
        (["--dims", "3"], "--dims must be 1 or 2"),
        (["--plot", "pie"], "--plot must be one of"),
        (["--out", "fig.jpg"], "--out must end in .png, .pdf, .svg"),
        (["--out", "no/such/folder/fig.png"], "directory 'no/such/folder' does not exist"),
        (["--save", "slice.csv"], "--save must end in .npz"),
        (["--normalization", "filter"], "--normalization applies to --directions random"),
        (["--at-critical", "7"], "--at-critical 7 is out of range"),
        (["--at", "1,2,3"], "--at has 3 entries"),
        (["--mode", "train"], "--mode only apply with --model"),
        (["--trajectory", "missing.npz"], "--trajectory: no file 'missing.npz'"),
    ],
)
def test_bad_input_is_one_line_and_status_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "landscape", "lee-2d", *args)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert not list(tmp_path.glob("*.png"))


def test_a_trajectory_of_the_wrong_dimension_is_refused(capsys, tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((3, 5)))
    code, _, err = run(
        capsys, "landscape", "lee-2d", "--trajectory", str(tmp_path / "t.npy"),
        "--out", str(tmp_path / "x.png"),
    )  # fmt: skip
    assert code == 2 and "dimension 5, the target 2" in err


def test_non_finite_grid_points_are_counted_not_hidden(capsys, tmp_path):
    # f = mean log(x·w) is nan where x·w ≤ 0: two of the five points of this line
    make = tmp_path / "logloss.py"
    make.write_text(
        textwrap.dedent(
            """
            import torch

            class M(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = torch.nn.Parameter(torch.tensor([0.5, 0.3], dtype=torch.float64))

                def forward(self, x):
                    return x @ self.w

            def make():
                X = torch.eye(2, dtype=torch.float64)
                loss = lambda out, y: torch.log(out).mean() + 0 * y.sum()
                return M(), loss, (X, torch.zeros(2, dtype=torch.float64))
            """
        )
    )
    code, text, err = run(
        capsys, "landscape", "--model", str(make), "--dims", "1", "--resolution", "5",
        "--span", "2", "--out", str(tmp_path / "f.png"), "--save", str(tmp_path / "s.npz"),
    )  # fmt: skip
    assert code == 0, err
    losses = np.load(tmp_path / "s.npz")["losses"]
    assert int((~np.isfinite(losses)).sum()) == 2
    assert row(text, "not finite").startswith("2 of 5 grid points")

    # its only parameter is 1-D: filter-normalized random directions are zero, and the
    # refusal names the option that works on the command line
    args = ["landscape", "--model", str(make), "--directions", "random"]
    args += ["--out", str(tmp_path / "r.png")]
    code, _, err = run(capsys, *args)
    assert code == 2 and "--normalization unit" in " ".join(err.split()), err
    code, _, err = run(capsys, *args, "--normalization", "unit", "--resolution", "3")
    assert code == 0, err
