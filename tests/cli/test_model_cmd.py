"""`saddlescape certify --model` and `spectrum --model`: a user's own model from the shell,
checked against a dense float64 Hessian of the loss written out by hand."""

import copy
import importlib.util
import math
import textwrap
from pathlib import Path

import pytest
import torch
from test_curvature_cmd import number, row, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_bn.py"


def _example():
    spec = importlib.util.spec_from_file_location("digits_bn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dense_spectrum(made, mode):
    """Eigenvalues of the Hessian of the whole-data loss, by double backward: the mean
    cross-entropy over all examples, each batch through BatchNorm with its own statistics
    (train) or the running ones (eval)."""
    model = copy.deepcopy(made["model"])
    model.train(mode == "train")
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    total = sum(len(y) for _, y in made["data"])

    def loss(flat):
        parts = torch.split(flat, [s.numel() for s in shapes])
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        value = 0.0
        for X, y in made["data"]:
            state = {**params, **{n: b.clone() for n, b in buffers.items()}}
            out = torch.func.functional_call(model, state, (X,))
            value = value + torch.nn.functional.cross_entropy(out, y, reduction="sum")
        return value / total

    H = torch.autograd.functional.hessian(loss, theta)
    assert torch.allclose(H, H.T, atol=1e-12)
    return torch.linalg.eigvalsh(H), float(loss(theta))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_spectrum_of_a_bn_model_matches_the_dense_hessian(capsys, tmp_path, mode):
    made = _example().make(n="128", batch_size="48")  # uneven batches: 48, 48, 32
    eigenvalues, _ = _dense_spectrum(made, mode)
    out_png = tmp_path / "bn.png"
    code, out, _ = run(
        capsys,
        "spectrum",
        "--model",
        f"{EXAMPLE}:make",
        "--model-arg",
        "n=128",
        "--model-arg",
        "batch_size=48",
        "--mode",
        mode,
        "--probes",
        "2",
        "--steps",
        "10",
        "--out",
        str(out_png),
        "--no-progress",
    )
    assert code == 0, out
    assert out_png.stat().st_size > 5000
    assert f"{mode} mode" in out
    assert "698 entries" in row(out, "point")
    scale = float(eigenvalues.abs().max())
    assert number(row(out, "λ_min")) == pytest.approx(float(eigenvalues[0]), abs=1e-7 * scale)
    assert number(row(out, "λ_max")) == pytest.approx(float(eigenvalues[-1]), abs=1e-7 * scale)


def test_certify_a_bn_model_in_both_modes(capsys):
    made = _example().make(n="128", batch_size="48")
    for mode in ("train", "eval"):
        eigenvalues, value = _dense_spectrum(made, mode)
        args = ["certify", "--model", str(EXAMPLE), "--model-arg", "n=128"]
        code, out, _ = run(capsys, *args, "--model-arg", "batch_size=48", "--mode", mode)
        assert code == 0, out
        assert number(row(out, "f")) == pytest.approx(value, rel=1e-9)
        assert row(out, "kind") == "not stationary"  # the initialization is not critical
        assert "ρ estimated" in row(out, "τ")
        # the Ritz values bound the spectrum from inside
        lmin = float(row(out, "λ_min").lstrip("≤ ").split()[0])
        lmax = float(row(out, "λ_max").lstrip("≥ ").split()[0])
        assert float(eigenvalues[0]) <= lmin + 1e-10 and lmax <= float(eigenvalues[-1]) + 1e-10


def test_a_checkpoint_through_model_arg(capsys, tmp_path):
    made = _example().make(n="64")
    model = made["model"]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # a zero network: every logit 0, the loss log(10) exactly
    torch.save(model.state_dict(), tmp_path / "zero.pt")
    args = ["certify", "--model", f"{EXAMPLE}:make", "--model-arg", "n=64", "--tau", "1e-3"]
    code, out, _ = run(capsys, *args, "--model-arg", f"checkpoint={tmp_path / 'zero.pt'}")
    assert code == 0, out
    assert number(row(out, "f")) == pytest.approx(math.log(10), rel=1e-9)


def test_tuple_contract_and_model_that_returns_its_loss(capsys, tmp_path):
    (tmp_path / "quad.py").write_text(
        textwrap.dedent(
            """
            import torch

            class Quadratic(torch.nn.Module):
                # f(w) = (w0^2 - w1^2) / 2 on every batch: a strict saddle at 0
                def __init__(self):
                    super().__init__()
                    self.w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

                def forward(self, scale):
                    return scale.mean() * (self.w[0] ** 2 - self.w[1] ** 2) / 2

            def make():
                return Quadratic(), None, torch.ones(3, dtype=torch.float64)

            def make_two():
                ones = torch.ones(3, dtype=torch.float64)
                return Quadratic(), None, [ones, ones]

            def make_dict(kind="saddle"):
                return {"model": Quadratic(), "data": torch.ones(4, dtype=torch.float64),
                        "reduction": "mean"}
            """
        )
    )
    code, out, _ = run(capsys, "certify", "--model", str(tmp_path / "quad.py"), "--tau", "0.1")
    assert code == 0, out
    assert row(out, "kind") == "saddle"
    assert number(row(out, "λ_min").lstrip("≤ ")) == pytest.approx(-1.0, abs=1e-8)
    assert "2 entries in 1 tensor" in row(out, "point")
    spec = f"{tmp_path / 'quad.py'}:make_dict"
    code, out, _ = run(capsys, "certify", "--model", spec, "--rho", "1", "--eps", "1e-4")
    assert code == 0, out
    assert row(out, "kind") == "saddle"
    # a loss the model computes itself, over two batches: the weighting must be said
    code, _, err = run(capsys, "certify", "--model", f"{tmp_path / 'quad.py'}:make_two")
    assert code == 2 and "reduction='mean'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certify"], "give a PROBLEM or --model"),
        (["certify", "lee-2d", "--model", "x.py"], "give a PROBLEM or --model"),
        (["certify", "--model", "nosuch.py"], "--model: no file 'nosuch.py'"),
        (["certify", "--model", "no/such/module"], "--model must be FILE.py"),
        (["certify", "--model", "{m}:nosuch"], "has no function 'nosuch'"),
        (["certify", "--model", "{m}:make", "--dim", "3"], "--dim only apply to a PROBLEM"),
        (["certify", "--model", "{m}", "--at", "0,0"], "--at only apply to a PROBLEM"),
        (["spectrum", "--model", "{m}", "--set", "a=1"], "--set only apply to a PROBLEM"),
        (["certify", "lee-2d", "--mode", "train"], "--mode only apply with --model"),
        (["spectrum", "lee-2d", "--layers"], "--layers needs --model"),
        (["certify", "--model", "{m}", "--mode", "test"], "--mode must be 'eval' or 'train'"),
        (["certify", "--model", "{m}:bad_return"], "must return (model, loss_fn, data)"),
        (["certify", "--model", "{m}:bad_keys"], "returned unknown keys ['loss']"),
        (["certify", "--model", "{m}:raises"], "raises() raised"),
        (["certify", "--model", "{m}:raises"], "ValueError: no checkpoint"),
        (["certify", "--model", "{m}", "--model-arg", "x"], "--model-arg must be key=value"),
        (["certify", "--model", "{m}", "--model-arg", "n=1"], "does not take these --model-arg"),
        (["certify", "--model", "{m}:dropout", "--mode", "train"], "Dropout"),
        (["certify", "--model", "{m}:nan_loss"], "error: the loss is not finite (nan)"),
        # the user's own code failing: one line naming its exception, no traceback
        (["certify", "--model", "{m}:exits"], "exits() raised SystemExit: bye"),
        (["certify", "--model", "{m}:multiline"], "raised RuntimeError: size mismatch: a b"),
        (["certify", "--model", "{m}:broken"], "data raised RuntimeError: forward failed"),
        (["spectrum", "--model", "{m}:broken"], "data raised RuntimeError: forward failed"),
        (["landscape", "--model", "{m}:broken"], "data raised RuntimeError: forward failed"),
        (["certify", "--model", "{m}:wide"], "data raised RuntimeError: mat1 and mat2"),
    ],
)
def test_model_errors_are_one_line(capsys, tmp_path, args, message):
    module = tmp_path / "user_model.py"
    module.write_text(
        textwrap.dedent(
            """
            import torch

            DATA = (torch.ones(3, 2), torch.ones(3, 1))

            def make():
                return torch.nn.Linear(2, 1), torch.nn.MSELoss(), DATA

            def bad_return():
                return [1, 2]

            def bad_keys():
                return {"model": torch.nn.Linear(2, 1), "data": None, "loss": None}

            def raises():
                raise ValueError("no checkpoint")

            def dropout():
                net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Dropout(0.5))
                return net, torch.nn.MSELoss(), DATA

            def nan_loss():
                nan = (torch.ones(3, 2), torch.full((3, 1), float("nan")))
                return torch.nn.Linear(2, 1), torch.nn.MSELoss(), nan

            def exits():
                raise SystemExit("bye")

            def multiline():
                raise RuntimeError("size mismatch:\\n\\ta\\n\\tb")

            class Broken(torch.nn.Linear):
                def forward(self, x):
                    raise RuntimeError("forward failed")

            def broken():
                return Broken(2, 1), torch.nn.MSELoss(), DATA

            def wide():
                return torch.nn.Linear(2, 1), torch.nn.MSELoss(), (torch.ones(3, 5), DATA[1])
            """
        )
    )
    code, _, err = run(capsys, *[a.replace("{m}", str(module)) for a in args])
    assert code == 2, err
    assert message in " ".join(err.split())
    assert "Traceback" not in err and err.strip().startswith("error:")
    assert len(err.strip().splitlines()) == 1, err


def test_spectrum_layers_of_a_model(capsys, tmp_path):
    out_png = tmp_path / "bn.png"
    args = ["spectrum", "--model", str(EXAMPLE), "--model-arg", "n=64", "--layers"]
    code, out, _ = run(capsys, *args, "--probes", "1", "--steps", "4", "--out", str(out_png))
    assert code == 0, out
    assert (tmp_path / "bn-layers.png").stat().st_size > 5000
    blocks = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") == 7]
    assert blocks == ["0", "1", "5"]  # conv, batch norm, linear: the modules with parameters


@pytest.mark.parametrize(
    ("command", "option", "name"),
    [
        ("landscape", "--out", "fig.png"),
        ("landscape", "--save", "s.npz"),
        ("spectrum", "--out", "s.png"),
    ],
)
def test_an_output_path_that_is_a_folder_is_refused_before_any_work(
    capsys, tmp_path, command, option, name
):
    # the model's forward raises: the folder must be refused before the model is evaluated
    (tmp_path / "broken.py").write_text(
        textwrap.dedent(
            """
            import torch

            class Broken(torch.nn.Linear):
                def forward(self, x):
                    raise RuntimeError("forward failed")

            def make():
                return Broken(2, 1), torch.nn.MSELoss(), (torch.ones(3, 2), torch.ones(3, 1))
            """
        )
    )
    (tmp_path / name).mkdir()
    args = [command, "--model", str(tmp_path / "broken.py"), option, str(tmp_path / name)]
    if option == "--save":
        args += ["--out", str(tmp_path / "fig.png")]
    code, _, err = run(capsys, *args)
    assert code == 2 and "is a folder, not a file" in err, err
    assert "forward failed" not in err and "Traceback" not in err


def test_spectrum_shows_the_residual_that_bounds_each_extreme(capsys, tmp_path):
    # a linear model on data with two equal columns: H = 2/n XᵀX is singular, λ_min = 0,
    # which a Ritz value can only approach: the table must give its error bound with it
    (tmp_path / "flat.py").write_text(
        textwrap.dedent(
            """
            import torch

            def make():
                torch.manual_seed(0)
                x = torch.randn(20, 2, dtype=torch.float64)
                X = torch.cat([x, x[:, :1]], dim=1)
                model = torch.nn.Linear(3, 1, bias=False).double()
                return model, torch.nn.MSELoss(), (X, torch.randn(20, 1, dtype=torch.float64))
            """
        )
    )
    out_png = tmp_path / "flat.png"
    code, out, err = run(
        capsys, "spectrum", "--model", str(tmp_path / "flat.py"), "--out", str(out_png)
    )
    assert code == 0, err
    cell = row(out, "λ_min")
    residual = float(cell.split("residual")[1].strip(" )"))
    assert abs(number(cell.lstrip("≤ "))) <= residual + 1e-12  # the true λ_min is 0
    assert "residual" in row(out, "λ_max")


def test_a_loss_cut_off_from_the_parameters_is_refused_not_read_as_zero(capsys, tmp_path):
    # a detached loss (or one under no_grad, or rebuilt from .item()) has no gradient path:
    # it was certified as ‖∇f‖ = 0, λ = 0, "ε-SOSP yes" while its true gradient is not 0
    (tmp_path / "cut.py").write_text(
        textwrap.dedent(
            """
            import torch

            def make():
                torch.manual_seed(0)
                data = (torch.randn(4, 3), torch.randn(4, 1))
                loss = lambda out, y: ((out - y) ** 2).mean().detach()
                return torch.nn.Linear(3, 1), loss, data
            """
        )
    )
    for command in ("certify", "spectrum", "landscape"):
        code, _, err = run(
            capsys, command, "--model", str(tmp_path / "cut.py"), *(
                [] if command == "certify" else ["--out", str(tmp_path / "x.png")]
            ),
        )  # fmt: skip
        assert code == 2, (command, err)
        assert "does not depend on the parameters through autograd" in " ".join(err.split())
