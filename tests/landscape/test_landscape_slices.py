"""Slices against closed forms, the model slice against a hand-written loss (both modes on a
BatchNorm net), the .npz round trip, reproducibility and refusals."""

import copy

import pytest
import torch
from torch import nn

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.landscape import (
    Landscape,
    LossTarget,
    eigen_directions,
    interpolate,
    random_directions,
    slice_1d,
    slice_2d,
    user_directions,
)


def test_quadratic_saddle_slice_along_top_and_bottom_eigenvectors_is_closed_form():
    p = problems.get("quadratic-saddle", dim=8, n_negative=3, curvature=0.7, positive_curvature=2.0)
    x = torch.zeros(8, dtype=torch.float64)
    s = slice_2d(p, eigen_directions(p, x), center=x, span=(-2.0, 1.5), resolution=23)
    lam1, lam2 = 2.0, -0.7
    B, A = torch.meshgrid(s.betas, s.alphas, indexing="ij")
    expected = 0.5 * (lam1 * A**2 + lam2 * B**2)
    assert s.losses.shape == (23, 23)
    assert float((s.losses - expected).abs().max()) < 1e-12
    assert s.evaluations == 23 * 23 + 1 and s.data_passes == 0 and s.hvps > 0
    assert s.critical_kinds == ("saddle",) and torch.equal(s.critical, torch.zeros(1, 2).double())


def test_slice_1d_and_interpolation_on_lee_2d():
    p = problems.get("lee-2d")
    saddle, up, down = (c.x for c in p.critical_points)
    line = slice_1d(p, user_directions(torch.tensor([0.0, 1.0])), center=saddle, span=2.0,
                    resolution=9)  # fmt: skip
    y = line.alphas
    assert torch.allclose(line.losses, 0.25 * y**4 - 0.5 * y**2, atol=1e-15, rtol=0)
    inter = interpolate(p, up, down, resolution=21)  # α in [-0.5, 1.5]
    a = inter.alphas
    v = (1 - a) * 1.0 + a * -1.0
    assert torch.allclose(inter.losses, 0.25 * v**4 - 0.5 * v**2, atol=1e-15, rtol=0)
    assert inter.directions.kind == "interpolation"
    assert inter.critical.shape == (3, 1)  # the three critical points lie on this line
    assert inter.critical[:, 0].tolist() == pytest.approx([0.5, 0.0, 1.0], abs=1e-14)


def test_trajectory_is_projected_and_curvature_recorded():
    p = problems.get("lee-2d")
    x = p.critical_points[0].x
    path = torch.tensor([[0.5, 0.01], [0.25, 0.1], [0.0, 0.9]], dtype=torch.float64)
    s = slice_2d(p, eigen_directions(p, x), center=x, span=1.0, resolution=5, trajectory=path,
                 curvature=True, curvature_tol=1e-10)  # fmt: skip
    assert torch.allclose(s.path.abs(), path.abs(), atol=1e-14)  # eigenbasis = ± the axes
    assert float(s.path_offplane.max()) < 1e-14
    # lee-2d's Hessian is diag(1, 3y² − 1): closed-form extreme eigenvalues at each grid point
    B = s.betas[:, None].expand(5, 5)
    h22 = 3 * B**2 - 1
    assert torch.allclose(s.lambda_min, torch.minimum(h22, torch.ones_like(h22)), atol=1e-9)
    assert torch.allclose(s.lambda_max, torch.maximum(h22, torch.ones_like(h22)), atol=1e-9)
    assert s.ratio.shape == (5, 5) and s.hvps > s.directions.hvps


def test_npz_round_trip_is_bit_identical(tmp_path):
    p = problems.get("lee-2d")
    x = p.critical_points[0].x
    path = torch.tensor([[0.5, 0.01], [0.0, 0.9]], dtype=torch.float64)
    s = slice_2d(p, eigen_directions(p, x), center=x, resolution=7, trajectory=path,
                 curvature=True)  # fmt: skip
    back = Landscape.load(s.save(tmp_path / "s.npz"))
    assert back == s
    for name in ("alphas", "betas", "losses", "center", "lambda_min", "path", "critical"):
        a, b = getattr(s, name), getattr(back, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert back.directions.labels == s.directions.labels and back.seconds == s.seconds
    assert back.critical_kinds == ("saddle", "minimum", "minimum")
    line = slice_1d(p, user_directions(torch.tensor([1.0, 1.0])), center=x, resolution=4)
    assert Landscape.load(line.save(tmp_path / "l.npz")) == line
    assert line != s
    with pytest.raises(ConfigError, match=r"saved as \.npz"):
        s.save(tmp_path / "s.csv")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a landscape"):
        Landscape.load(tmp_path / "junk.npz")


def test_same_seed_same_bits():
    p = problems.get("mlp-digits", hidden="4", n_samples=40)
    target = LossTarget.from_problem(p)
    x = p.sample_init()

    def run(seed):
        d = random_directions(x, seed=seed, shapes=target.shapes)
        return slice_2d(target, d, center=x, span=0.5, resolution=4)

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.directions.vectors, b.directions.vectors)
    assert torch.equal(a.losses, b.losses)
    assert not torch.equal(a.losses, c.losses)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"span": 0.0}, "positive finite"),
        ({"span": (1.0, -1.0)}, "finite lo < hi"),
        ({"span": float("nan")}, "positive finite"),
        ({"span": "wide"}, "number s"),
        ({"resolution": 1}, "between 2 and"),
        ({"resolution": 10**6}, "between 2 and"),
        ({"resolution": 1000}, "over the limit"),
        ({"resolution": 2.5}, "must be an integer"),
    ],
)
def test_bad_grids_are_refused(kwargs, message):
    p = problems.get("lee-2d")
    d = user_directions(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ConfigError, match=message):
        slice_2d(p, d, center=torch.zeros(2), **kwargs)


def test_bad_targets_centres_and_directions_are_refused():
    p = problems.get("lee-2d")
    d = user_directions(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ConfigError, match="centre"):
        slice_2d(p, d)
    with pytest.raises(ConfigError, match="needs 2 directions"):
        slice_2d(p, d[:1], center=torch.zeros(2))
    with pytest.raises(ConfigError, match="length 3"):
        slice_1d(p, user_directions(torch.ones(3)), center=torch.zeros(2))
    with pytest.raises(ConfigError, match="must be a Problem or a LossTarget"):
        slice_1d(lambda x: x.sum(), d, center=torch.zeros(2))
    with pytest.raises(ConfigError, match="same point"):
        interpolate(p, torch.zeros(2), torch.zeros(2))


# ---------------------------------------------------------------------- models
def _bn_net_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(13, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (13,))
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(X * 2 + 1)
    batches = [(X[:5], y[:5]), (X[5:10], y[5:10]), (X[10:], y[10:])]  # uneven: 5, 5, 3
    return model, batches


def _by_hand(model, batches, theta, mode):
    """The mean cross-entropy over all 13 examples at parameters theta, each batch through
    BatchNorm on its own statistics (train) or the running ones (eval)."""
    m = copy.deepcopy(model)
    torch.nn.utils.vector_to_parameters(theta, m.parameters())
    m.train(mode == "train")
    total = 0.0
    with torch.no_grad():
        for X, y in batches:
            total += float(nn.functional.cross_entropy(m(X), y, reduction="sum"))
    return total / 13


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_model_slice_equals_the_loss_written_by_hand(mode):
    model, batches = _bn_net_and_data()
    before = copy.deepcopy(model.state_dict())
    target = LossTarget.from_model(model, nn.CrossEntropyLoss(), batches, mode=mode)
    d = random_directions(target.center, seed=1, shapes=target.shapes)
    s = slice_2d(target, d, span=0.8, resolution=4)
    theta = target.center
    for j, b in enumerate(s.betas):
        for i, a in enumerate(s.alphas):
            point = theta + a * d.vectors[0] + b * d.vectors[1]
            assert float(s.losses[j, i]) == pytest.approx(
                _by_hand(model, batches, point, mode), abs=1e-12
            )
    assert s.center_loss == pytest.approx(_by_hand(model, batches, theta, mode), abs=1e-12)
    assert s.data_passes >= 2 and s.evaluations == 17
    assert mode in s.target
    one_by_one = slice_2d(target, d, span=0.8, resolution=4, batch_points=1)  # no vmap
    assert torch.allclose(one_by_one.losses, s.losses, atol=1e-13, rtol=0)
    assert one_by_one.data_passes == 17
    for k, v in model.state_dict().items():  # the model is untouched
        assert torch.equal(v, before[k]), k


def test_model_eigen_directions_and_a_model_that_vmap_cannot_run():
    class ItemNet(nn.Module):  # .item() inside forward: vmap refuses, the loop runs it
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1).double()

        def forward(self, x):
            scale = 1.0 if self.lin.weight.sum().item() > -1e9 else 2.0
            return scale * self.lin(x)

    torch.manual_seed(0)
    net = ItemNet()
    X, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    target = LossTarget.from_model(net, nn.MSELoss(), (X, y))
    d = eigen_directions(target)
    assert d.kind == "eigen" and d.values[0] >= d.values[1]
    s = slice_1d(target, d, span=1.0, resolution=5)
    for a, value in zip(s.alphas, s.losses, strict=True):
        theta = target.center + a * d.vectors[0]
        W, b = theta[:2], theta[2]
        assert float(value) == pytest.approx(float(((X @ W + b - y[:, 0]) ** 2).mean()), abs=1e-13)


def test_empirical_risk_loss_matches_the_operator_value():
    from saddlescape.curvature import HessianOperator
    from saddlescape.curvature._empirical_risk import EmpiricalRisk

    model, batches = _bn_net_and_data()
    for mode in ("eval", "train"):
        risk = EmpiricalRisk(model, nn.CrossEntropyLoss(), batches, mode=mode)
        op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), batches, mode=mode)
        assert float(risk.loss(risk.theta)) == pytest.approx(op.loss(), abs=1e-14)
        rows = torch.stack([risk.theta, 2 * risk.theta])
        both = risk.loss(rows)
        assert both.shape == (2,)
        assert torch.allclose(both, risk.loss(rows, batched=False), atol=1e-14, rtol=0)
        assert float(both[1]) == pytest.approx(_by_hand(model, batches, 2 * risk.theta, mode))
    from saddlescape.errors import CurvatureError

    with pytest.raises(CurvatureError, match="entries"):
        risk.loss(torch.zeros(3, dtype=torch.float64))


def test_progress_callback_counts_grid_points_and_bar_runs():
    p = problems.get("lee-2d")
    d = user_directions(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    seen = []
    s = slice_2d(p, d, center=torch.zeros(2), resolution=6, batch_points=10, callback=seen.append)
    assert [e.hvps for e in seen] == [10, 20, 30, 36] and {e.budget for e in seen} == {36}
    assert {e.task for e in seen} == {"slice_2d"} and seen[-1].estimate["loss"] == float(
        s.losses[-1, -1]
    )
    again = slice_2d(p, d, center=torch.zeros(2), resolution=6, progress=True)  # a bar: same bits
    assert torch.equal(again.losses, s.losses)


def test_a_streamed_dataloader_gives_the_same_slice_as_its_batches():
    from torch.utils.data import DataLoader, TensorDataset

    model, batches = _bn_net_and_data()
    X = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    loader = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=False)
    streamed = LossTarget.from_model(model, nn.CrossEntropyLoss(), loader, mode="train")
    held = LossTarget.from_model(model, nn.CrossEntropyLoss(), batches, mode="train")
    d = random_directions(held.center, seed=2, shapes=held.shapes)
    a = slice_2d(streamed, d, span=0.5, resolution=3)
    b = slice_2d(held, d, span=0.5, resolution=3)
    assert torch.allclose(a.losses, b.losses, atol=1e-14, rtol=0)
