"""SharpnessTracker against dense Hessians; warm starts save products."""

import pytest
import torch

from saddlescape.curvature.tracker import SharpnessRecord, SharpnessTracker
from saddlescape.errors import ConfigError


def mlp(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return model.to(dtype)


def data(dtype):
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 4, generator=g).to(dtype), torch.randn(64, 3, generator=g).to(dtype)


def dense_eigs(model, X, Y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    model64 = model.double()

    def loss(th):
        parts = torch.split(th, [s.numel() for s in shapes])
        ps = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        out = torch.func.functional_call(model64, ps, (X.double(),))
        return torch.nn.functional.mse_loss(out, Y.double())

    return torch.linalg.eigvalsh(torch.func.hessian(loss)(theta))


def test_matches_dense_hessian_and_schedules():
    model = mlp(torch.float64)
    X, Y = data(torch.float64)
    tr = SharpnessTracker(
        model, torch.nn.functional.mse_loss, (X, Y), every=5, lr=0.5, track_min=True, tol=1e-8
    )
    recs = [tr.step(t) for t in range(11)]
    assert [t for t, r in enumerate(recs) if r is not None] == [0, 5, 10]
    ev = dense_eigs(model, X, Y)
    rec = tr.history[0]
    assert isinstance(rec, SharpnessRecord)
    assert rec.lambda_max == pytest.approx(float(ev[-1]), rel=1e-7)
    assert rec.lambda_min == pytest.approx(float(ev[0]), rel=1e-6, abs=1e-8)
    assert rec.threshold == 4.0 and rec.ratio == pytest.approx(rec.lambda_max / 4.0)
    assert rec.converged and rec.hvps > 0
    df = tr.to_pandas()
    assert list(df["step"]) == [0, 5, 10]
    assert {"lambda_max", "lambda_min", "threshold", "hvps", "ratio"} <= set(df.columns)
    assert tr.total_hvps == int(df["hvps"].sum())


def test_warm_start_saves_hvps_on_unchanged_model():
    model = mlp(torch.float64)
    X, Y = data(torch.float64)
    tr = SharpnessTracker(model, torch.nn.functional.mse_loss, (X, Y), every=1, tol=1e-4)
    first = tr.update(0)
    second = tr.update(1)
    assert second.lambda_max == pytest.approx(first.lambda_max, rel=1e-4)
    assert second.hvps <= first.hvps / 4
    # after a small training step the warm start is still cheaper than a cold one
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(X), Y).backward()
    opt.step()
    warm = tr.update(2)
    cold = SharpnessTracker(model, torch.nn.functional.mse_loss, (X, Y), tol=1e-4).update(2)
    assert warm.lambda_max == pytest.approx(cold.lambda_max, rel=1e-3)
    assert warm.hvps < cold.hvps


def test_float32_model_and_no_lr():
    model = mlp(torch.float32)
    X, Y = data(torch.float32)
    tr = SharpnessTracker(model, torch.nn.functional.mse_loss, (X, Y), every=3, tol=1e-5)
    rec = tr.update()
    assert rec.step == 0 and rec.threshold is None and rec.ratio is None
    assert rec.lambda_min is None
    assert tr.update().step == 3
    ev = dense_eigs(model, X, Y)
    assert rec.lambda_max == pytest.approx(float(ev[-1]), rel=1e-4)


def test_bad_arguments():
    model = mlp(torch.float32)
    X, Y = data(torch.float32)
    with pytest.raises(ConfigError, match="every"):
        SharpnessTracker(model, torch.nn.functional.mse_loss, (X, Y), every=0)
    with pytest.raises(ConfigError, match="lr"):
        SharpnessTracker(model, torch.nn.functional.mse_loss, (X, Y), lr=-0.1)
    with pytest.raises(ConfigError, match="model"):
        SharpnessTracker(lambda x: x, torch.nn.functional.mse_loss, (X, Y))


def test_batchnorm_sharpness_in_train_and_eval_mode():
    """The user's measurement (issue 10): sharpness tracked during SGD on a BatchNorm net.
    Train mode must measure the Hessian of the loss training minimizes (each batch on its
    own statistics), eval mode the one on the running statistics; each against its dense
    float64 reference, and the two far apart."""
    from cases import batch_statistics, cnn, labels, randn

    from conftest import dense_hessian

    model = cnn(batchnorm=True)
    batches = [(randn(8, 1, 6, 6, seed=300 + i), labels((8,), 3, 310 + i)) for i in range(3)]
    loss = torch.nn.CrossEntropyLoss()
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    trackers = {
        mode: SharpnessTracker(model, loss, batches, every=100, lr=lr, tol=1e-8, mode=mode)
        for mode in ("train", "eval")
    }
    model.train()
    for step in range(201):
        for tr in trackers.values():
            tr.step(step)
        X, y = batches[step % 3]
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()
    # one more measurement of the final state, compared with dense references of that state
    lam = {mode: tr.update(201).lambda_max for mode, tr in trackers.items()}
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sizes = [p.numel() for p in model.parameters()]
    N = sum(len(yb) for _, yb in batches)

    def reference(m: torch.nn.Module) -> float:
        """λ_max of the mean over examples of the loss of ``m``, batch by batch."""

        def f(th):
            shaped = zip(m.named_parameters(), th.split(sizes), strict=True)
            p = {n: t.view_as(q) for (n, q), t in shaped}
            return sum(
                len(yb) / N * loss(torch.func.functional_call(m, p, (Xb,)), yb)
                for Xb, yb in batches
            )

        return float(torch.linalg.eigvalsh(dense_hessian(f, theta))[-1])

    exact = {"train": reference(batch_statistics(model).train()), "eval": reference(model.eval())}
    for mode in ("train", "eval"):
        assert lam[mode] == pytest.approx(exact[mode], rel=0.1)  # the bar
        assert lam[mode] == pytest.approx(exact[mode], rel=1e-6)  # what Lanczos delivers
    assert abs(lam["eval"] - lam["train"]) > 0.1 * lam["train"]
    assert [r.step for r in trackers["train"].history] == [0, 100, 200, 201]
