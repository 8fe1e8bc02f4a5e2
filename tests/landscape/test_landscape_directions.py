"""Directions: filter normalization (Li et al. 2018 §4), Lanczos eigenvectors, PCA of a
trajectory, user vectors; reproducible from a seed."""

import pytest
import torch
from torch import nn

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.landscape import (
    Directions,
    LossTarget,
    eigen_directions,
    pca_directions,
    random_directions,
    user_directions,
)


def _bn_cnn():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    ).double()


def _target(model):
    X = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (6,))
    return LossTarget.from_model(model, nn.CrossEntropyLoss(), (X, y))


@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_filter_normalization_matches_every_weight_filter(ignore):
    model = _bn_cnn()
    target = _target(model)
    d = random_directions(target.center, k=2, seed=3, shapes=target.shapes, ignore=ignore)
    assert d.kind == "random" and d.normalization == "filter" and d.seed == 3
    for row in d.vectors:
        sizes = [s.numel() for _, s in target.shapes]
        parts = dict(zip([n for n, _ in target.shapes], torch.split(row, sizes), strict=True))
        for name, p in model.named_parameters():
            p = p.detach()
            dp = parts[name].view(p.shape)
            if p.ndim == 1:  # biases, BatchNorm scale and shift
                expected = torch.zeros_like(p) if ignore == "biasbn" else p
                assert torch.equal(dp, expected), name
                continue
            for j in range(p.shape[0]):  # one filter: an output channel / a row
                assert float(dp[j].norm()) == pytest.approx(float(p[j].norm()), rel=1e-13)
                assert not torch.allclose(dp[j], p[j])  # a random direction, not θ
    # the two directions differ and the draw is the same bits for the same seed
    assert not torch.allclose(d.vectors[0], d.vectors[1])
    again = random_directions(target.center, k=2, seed=3, shapes=target.shapes, ignore=ignore)
    assert torch.equal(d.vectors, again.vectors)
    other = random_directions(target.center, k=2, seed=4, shapes=target.shapes, ignore=ignore)
    assert not torch.equal(d.vectors, other.vectors)


def test_filter_normalization_of_the_zoo_mlp_uses_its_layer_shapes():
    p = problems.get("mlp-digits", hidden="8", n_samples=50)
    target = LossTarget.from_problem(p)
    x = p.sample_init()
    d = random_directions(x, k=1, seed=0, shapes=target.shapes)
    W = p.unflatten(d.vectors[0])["0.weight"]
    W0 = p.unflatten(x)["0.weight"]
    assert torch.allclose(W.norm(dim=1), W0.norm(dim=1), rtol=1e-13)
    assert torch.equal(p.unflatten(d.vectors[0])["0.bias"], torch.zeros(8, dtype=torch.float64))


def test_layer_unit_and_none_normalizations():
    model = _bn_cnn()
    target = _target(model)
    layer = random_directions(target.center, k=1, normalization="layer", shapes=target.shapes)
    w = model[0].weight.detach().reshape(-1)
    assert float(layer.vectors[0, : w.numel()].norm()) == pytest.approx(float(w.norm()), rel=1e-13)
    unit = random_directions(torch.zeros(7, dtype=torch.float64), k=3, normalization="unit")
    assert torch.allclose(unit.vectors.norm(dim=1), torch.ones(3, dtype=torch.float64))
    raw = random_directions(torch.zeros(7, dtype=torch.float64), k=1, normalization="none", seed=5)
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(raw.vectors, torch.randn((1, 7), generator=gen, dtype=torch.float64))


def test_random_direction_refusals():
    x = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="need the parameter shapes"):
        random_directions(x, normalization="filter")
    with pytest.raises(ConfigError, match="normalization must be one of"):
        random_directions(x, normalization="sphere")
    with pytest.raises(ConfigError, match="hold 6 entries but the centre has 4"):
        random_directions(x, shapes=[("w", (2, 3))])
    with pytest.raises(ConfigError, match="is zero"):  # only a bias: every entry ignored
        random_directions(x, shapes=[("b", (4,))])


def test_eigen_directions_of_the_quadratic_saddle():
    p = problems.get("quadratic-saddle", dim=6, n_negative=2, curvature=1.5, positive_curvature=2.5)
    x = torch.zeros(6, dtype=torch.float64)
    d = eigen_directions(p, x)
    assert d.kind == "eigen" and d.hvps > 0
    assert d.values.tolist() == pytest.approx([2.5, -1.5], abs=1e-12)
    H = torch.diag(p.eigenvalues)
    for v, lam in zip(d.vectors, d.values, strict=True):
        assert float(v.norm()) == pytest.approx(1.0, abs=1e-14)
        assert torch.allclose(H @ v, lam * v, atol=1e-12)
    assert torch.equal(d.vectors, eigen_directions(p, x).vectors)  # same seed, same bits
    only = eigen_directions(p, x, which="smallest")
    assert only.k == 1 and only.labels[0].startswith("v_min")


def test_eigen_directions_need_a_point():
    with pytest.raises(ConfigError, match="center="):
        eigen_directions(problems.get("lee-2d"))
    with pytest.raises(ConfigError, match="which must be"):
        eigen_directions(problems.get("lee-2d"), torch.zeros(2), which="middle")


def test_pca_of_a_straight_line_explains_all_variance():
    gen = torch.Generator().manual_seed(0)
    start, end = torch.randn(50, generator=gen, dtype=torch.float64), torch.zeros(50)
    t = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None]
    line = (1 - t) * start + t * end.double()
    d = pca_directions(line, k=2)
    assert d.kind == "pca"
    assert float(d.values[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(d.values[1]) == pytest.approx(0.0, abs=1e-12)
    assert abs(float(d.vectors[0] @ start / start.norm())) == pytest.approx(1.0, abs=1e-12)
    assert "100.0 % of variance" in d.labels[0]


def test_pca_of_a_planar_path_spans_it():
    s = torch.linspace(0, 3, 40, dtype=torch.float64)
    a, b = torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    a[1], b[3] = 1.0, 1.0
    path = torch.cos(s)[:, None] * a + torch.sin(2 * s)[:, None] * b + 0.5
    d = pca_directions(path, k=2)
    assert float(d.values.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(d.residual(path, path[-1]).max()) < 1e-12  # the whole path is in the plane


def test_pca_refusals():
    with pytest.raises(ConfigError, match="T >= 2"):
        pca_directions(torch.zeros(1, 3))
    with pytest.raises(ConfigError, match="does not move"):
        pca_directions(torch.ones(4, 3))


def test_user_directions_and_bad_kinds():
    d = user_directions(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), labels=("x", "diag"))
    assert d.kind == "user" and d.labels == ("x", "diag") and d.vectors.dtype == torch.float64
    coords = d.project(torch.tensor([[3.0, 2.0]]), torch.zeros(2))
    assert torch.allclose(coords, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    with pytest.raises(ConfigError, match="unknown direction kind 'sideways'"):
        Directions(torch.eye(2, dtype=torch.float64), "sideways", ("a", "b"))
    with pytest.raises(ConfigError, match="zero or not finite"):
        user_directions(torch.zeros(3))
    with pytest.raises(ConfigError, match="differ in length"):
        user_directions(torch.ones(3), torch.ones(2))
