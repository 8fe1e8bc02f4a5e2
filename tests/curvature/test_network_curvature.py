"""Curvature of a tiny tanh MLP's dataset loss: HVP-based trace and certificate against the
dense Hessian from torch.func.hessian."""

import pytest
import torch

from saddlescape.curvature import HessianOperator, certify_model, trace
from saddlescape.curvature.certify import classify

LOSS = torch.nn.functional.mse_loss


@pytest.fixture(scope="module")
def net():
    """A 3-4-2 tanh MLP (26 parameters, float64), its data and the dense Hessian."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    X = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randn(40, 2, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = flat[i : i + shape.numel()].reshape(shape)
            i += shape.numel()
        return LOSS(torch.func.functional_call(model, params, (X,)), y)

    H = torch.func.hessian(loss)(theta)
    assert H.shape == (26, 26)
    return model, (X, y), (H + H.T) / 2


def test_trace_matches_the_dense_hessian(net):
    model, data, H = net
    exact = float(torch.trace(H))
    op = HessianOperator.from_model(model, LOSS, data)
    # hutch++ with ⌊m/3⌋ ≥ 26: the sketch spans the parameter space, the trace is exact
    r = trace(op, "hutch++", num_matvecs=78, seed=0)
    assert r.std_error == 0.0 and r.hvps == 52
    assert r.estimate == pytest.approx(exact, rel=1e-9, abs=1e-12)
    # Hutchinson with many probes: within 4 of its standard errors
    h = trace(op, "hutchinson", num_matvecs=400, seed=1)
    assert abs(h.estimate - exact) <= 4 * h.std_error


def test_certify_model_matches_the_dense_hessian(net):
    model, data, H = net
    ev = torch.linalg.eigvalsh(H)
    lo, hi = float(ev[0]), float(ev[-1])
    assert lo < -1e-4 < 1e-4 < hi  # an indefinite Hessian at the random initialization
    # τ above ‖H‖: no early saddle decision, so both ends converge to the tolerance
    tau = 2 * max(abs(lo), abs(hi))
    c = certify_model(model, LOSS, data, eps=1e3, tau=tau, tol=1e-10)
    assert c.converged and c.kind == "degenerate" == classify(c.grad_norm, lo, hi, 1e3, tau)
    assert c.lambda_min == pytest.approx(lo, abs=1e-8 * hi)
    assert c.lambda_max == pytest.approx(hi, abs=1e-8 * hi)
    # a small τ: a strict saddle, proven early; the Ritz values bound the eigenvalues
    s = certify_model(model, LOSS, data, eps=1e3, tau=1e-4, tol=1e-10)
    assert s.kind == "saddle" and s.converged and not s.is_sosp
    slack = 1e-12 * hi
    assert lo - slack <= s.lambda_min < -1e-4 and 1e-4 < s.lambda_max <= hi + slack
    d = s.negative_curvature_direction
    assert d is not None and float(d @ H @ d) == pytest.approx(s.lambda_min, rel=1e-8)
    # the reported gradient norm and value are those of the dataset loss
    op = HessianOperator.from_model(model, LOSS, data)
    assert c.grad_norm == pytest.approx(float(op.gradient().norm()), rel=1e-12)
