"""The papers' x is the whole parameter vector (issue 11): every decision of PerturbedGD,
NoisyGD and PerturbedAGD is made over all parameter groups together; PAGD's momentum
follows LR schedulers; f(x̃) is kept in float32 or wider; the Perturbed wrapper escapes a
strict saddle where the bare torch optimizers stay."""

import pytest
import torch

from saddlescape import optim, problems


def _closure(opt, f, params):
    def closure():
        opt.zero_grad()
        loss = f(*params)
        loss.backward()
        return loss

    return closure


# ---------------------------------------------------------------------- PAGD's NCE
A = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)  # a convex quadratic, ℓ = 1


def _convex(a, b):
    x = torch.cat([a, b])
    return 0.5 * (A * x * x).sum()


@pytest.mark.parametrize("split", ["two groups", "one group"])
def test_pagd_nce_never_fires_on_a_convex_function(split):
    """Jin, Netrapalli & Jordan 2018: on a convex f, f(x) ≥ f(y) + ⟨∇f(y), x − y⟩, so the
    NCE test (which needs f(x) below that by (γ/2)‖x − y‖²) never fires. The issue
    measured 54 firings with two groups (per-group test, global f) and f = 7.3e-4 where one
    group reaches 7.4e-13. The test is now on the whole vector: 0 firings, and the two
    runs are the same bits."""
    a = torch.ones(10, dtype=torch.float64, requires_grad=True)
    b = torch.ones(10, dtype=torch.float64, requires_grad=True)
    groups = [{"params": [a]}, {"params": [b]}] if split == "two groups" else [a, b]
    opt = optim.PerturbedAGD(
        groups, lr=0.25, theta=0.1, gamma=0.5, s=0.1, grad_threshold=0.0, interval=10**6, seed=0
    )
    closure = _closure(opt, _convex, (a, b))
    for _ in range(600):
        opt.step(closure)
    assert opt.nce_steps == 0 and opt.perturbations == 0
    assert float(_convex(a, b).detach()) < 1e-12
    ref_a = torch.ones(10, dtype=torch.float64, requires_grad=True)
    ref_b = torch.ones(10, dtype=torch.float64, requires_grad=True)
    ref = optim.PerturbedAGD(
        [ref_a, ref_b],
        lr=0.25,
        theta=0.1,
        gamma=0.5,
        s=0.1,
        grad_threshold=0.0,
        interval=10**6,
        seed=0,
    )
    rc = _closure(ref, _convex, (ref_a, ref_b))
    for _ in range(600):
        ref.step(rc)
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)


def _lee(a, b):
    return 0.5 * a.square().sum() + 0.25 * b.pow(4).sum() - 0.5 * b.square().sum()


def test_pagd_nce_fires_across_groups_and_is_invariant_to_a_constant_in_float64():
    """lee-2d split into two groups (x in one, y in the other), started near the saddle
    without perturbations: NCE fires (the negative curvature is in one group, the test is
    on both), and adding 10³ to f changes no decision in float64. (In float32 the guard
    against rounding, 8 ulp·(|f(x)| + |f(y)|), grows with the constant — there the loss
    itself has lost those digits; the guard is documented.)"""
    runs = []
    for const in (0.0, 1e3):
        a = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([1e-3], dtype=torch.float64, requires_grad=True)
        opt = optim.PerturbedAGD(
            [{"params": [a]}, {"params": [b]}],
            lr=0.1,
            theta=0.1,
            gamma=0.5,
            s=0.004,
            grad_threshold=0.0,
            interval=10**6,
            seed=0,
        )
        closure = _closure(opt, lambda a, b, c=const: _lee(a, b) + c, (a, b))
        for _ in range(200):
            opt.step(closure)
        runs.append((opt.nce_steps, float(b.detach())))
    assert runs[0][0] >= 2 and runs[0][0] == runs[1][0]
    assert abs(abs(runs[0][1]) - 1) < 1e-6 and abs(abs(runs[1][1]) - 1) < 1e-6


# ---------------------------------------------------------------------- PAGD + schedulers
def _quadratic(x):
    return 0.5 * (A * x * x).sum()


def _pagd_reference(x0, lrs, theta, steps):
    """Float64 PAGD without perturbation or NCE (a convex f), the velocity in gradient
    units: y = x + (1 − θ)η_t u, u ← (1 − θ)u − ∇f(y), x ← x + η_t u."""
    x, u = x0.clone(), torch.zeros_like(x0)
    out = []
    for t in range(steps):
        y = x + (1 - theta) * lrs[t] * u
        u = (1 - theta) * u - A * y
        x = x + lrs[t] * u
        out.append(x.clone())
    return torch.stack(out)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[10, 25], gamma=0.1),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40),
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, base_lr=0.05, max_lr=0.5, step_size_up=5, cycle_momentum=False
        ),
    ],
    ids=["multistep", "cosine", "cyclic"],
)
def test_pagd_velocity_follows_every_lr_scheduler(make):
    """The issue: with MultiStepLR the loss rose 149 → 396 because the velocity was stored
    in parameter units, so cutting η did not damp it. It is now in gradient units (as in
    torch's SGD momentum): the trajectory equals the float64 reference that applies the
    current η to both the momentum and the gradient."""
    x0 = torch.linspace(-1, 1, 20, dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    opt = optim.PerturbedAGD([x], lr=0.5, theta=0.1, gamma=0.1, grad_threshold=0.0, seed=0)
    sched = make(opt)
    closure = _closure(opt, _quadratic, (x,))
    lrs, xs = [], []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(closure)
        sched.step()
        xs.append(x.detach().clone())
    assert opt.nce_steps == 0
    ref = _pagd_reference(x0, lrs, 0.1, 40)
    torch.testing.assert_close(torch.stack(xs), ref, rtol=1e-12, atol=1e-14)


def test_pagd_stops_when_the_lr_is_cut_to_almost_zero():
    x = torch.linspace(-1, 1, 20, dtype=torch.float64).requires_grad_(True)
    opt = optim.PerturbedAGD([x], lr=0.5, theta=0.05, grad_threshold=0.0, seed=0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 if t < 15 else 1e-12)
    closure = _closure(opt, _quadratic, (x,))
    for _ in range(16):
        opt.step(closure)
        sched.step()
    here = x.detach().clone()
    for _ in range(10):
        opt.step(closure)
    assert float((x.detach() - here).norm()) < 1e-10  # momentum does not carry it on


# ---------------------------------------------------------------------- PerturbedGD
def _split(a, b):  # ∇ in a is 0 at a = 0; b sits far from its minimum 5
    return 0.5 * a.square().sum() + 0.5 * (b - 5).square().sum()


def test_pgd_decides_on_the_whole_vector():
    """One group at its minimum (zero gradient), the other far from it: ‖∇f(x)‖ = 5√3 >
    g_thres, so Algorithm 2 does not perturb (the issue: per-group decisions perturbed the
    quiet group). Later, when the whole gradient is small, exactly one perturbation is
    made — one clock, one count."""
    a = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = optim.PerturbedGD(
        [{"params": [a]}, {"params": [b], "lr": 0.1}],
        lr=0.5,
        radius=1e-3,
        grad_threshold=1e-2,
        interval=10**6,
        seed=0,
    )
    closure = _closure(opt, _split, (a, b))
    opt.step(closure)
    assert opt.perturbations == 0 and torch.equal(a.detach(), torch.zeros(3, dtype=torch.float64))
    for _ in range(200):
        opt.step(closure)
    assert opt.perturbations == 1


def test_pgd_stop_test_restores_x_tilde_in_every_group():
    """At a minimum the perturbation does not pay off: after t_thres steps x̃ is returned —
    in both groups, bit for bit."""
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.full((2,), 5.0, dtype=torch.float64, requires_grad=True)
    opt = optim.PerturbedGD(
        [{"params": [a]}, {"params": [b]}],
        lr=0.5,
        radius=1e-2,
        grad_threshold=1e-3,
        interval=5,
        f_threshold=1e-6,
        seed=0,
    )
    closure = _closure(opt, _split, (a, b))
    for _ in range(10):
        opt.step(closure)
    assert opt.converged and opt.perturbations == 1
    assert torch.equal(a.detach(), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(b.detach(), torch.full((2,), 5.0, dtype=torch.float64))


def test_pgd_bf16_parameters_f_threshold_decided_in_float32():
    """The issue: f(x̃) was stored in the parameter dtype; with bf16 parameters and a
    float32 loss f ≈ 1, the decrease of 10⁻³ after a perturbation is below bf16's spacing
    at 1 (2⁻⁷), so rounding made the stop test fire. f(x̃) is now kept in float32."""
    x = torch.full((1,), 0.03125, dtype=torch.bfloat16, requires_grad=True)  # 2⁻⁵, exact

    def f(x):
        return 1.0 + x.float().square().sum()  # a float32 loss; f(x0) = 1 + 2⁻¹⁰

    opt = optim.PerturbedGD(
        [x], lr=0.25, radius=1e-4, grad_threshold=0.1, interval=5, f_threshold=1e-4, seed=0
    )
    closure = _closure(opt, f, (x,))
    for _ in range(6):  # perturbs at t = 0, stop test at t = 5
        opt.step(closure)
    assert opt.perturbations == 1
    assert not opt.converged  # f fell by ≈ 10⁻³ > f_thres: no stop
    jin = opt.state_dict()["saddlescape"]["jin"]
    assert jin["f_tilde"].dtype == torch.float32
    assert float(jin["f_tilde"]) == pytest.approx(1 + 2**-10, abs=2e-6)


# ---------------------------------------------------------------------- NoisyGD
@pytest.mark.parametrize("noise", ["sphere", "gaussian"])
def test_noisy_gd_draws_one_noise_for_the_whole_vector(noise):
    """Ge et al. 2015: n_t is uniform on the sphere of the whole space. Two groups used to
    draw one sphere each (norm radius·√2); now one draw: at a zero gradient the step is
    η·radius long. The Gaussian noise's clock is global too."""
    a = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    opt = optim.NoisyGD([{"params": [a]}, {"params": [b]}], lr=0.1, noise=noise, radius=0.5, seed=0)
    for _ in range(3):
        a.grad, b.grad = torch.zeros_like(a), torch.zeros_like(b)
        opt.step()
    if noise == "sphere":
        a.grad, b.grad = torch.zeros_like(a), torch.zeros_like(b)
        before = torch.cat([a, b]).detach().clone()
        opt.step()
        step = float((torch.cat([a, b]).detach() - before).norm())
        assert step == pytest.approx(0.1 * 0.5, rel=1e-12)
    else:
        assert opt.noise_std() == pytest.approx((0.01 / 4**0.55) ** 0.5, rel=1e-12)


# ---------------------------------------------------------------------- Perturbed wrapper
@pytest.mark.parametrize(
    "inner",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: torch.optim.Adam(ps, lr=0.02),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_perturbed_wrapper_escapes_the_strict_saddle_of_lee_2d(inner):
    """lee-2d, f = ½x² + ¼y⁴ − ½y², strict saddle (0, 0) (Hessian diag(1, −1)), minima
    (0, ±1). Started exactly at the saddle, SGD with momentum and Adam never move (a zero
    gradient gives a zero update); wrapped in Perturbed they leave it for a minimum."""
    p = problems.get("lee-2d")
    (saddle,) = [c for c in p.critical_points if c.kind == "saddle"]
    bare_x = saddle.x.clone().requires_grad_(True)
    bare = inner([bare_x])
    for _ in range(300):
        _closure(bare, p.f, (bare_x,))()
        bare.step()
    assert torch.equal(bare_x.detach(), saddle.x)  # stays, exactly
    x = saddle.x.clone().requires_grad_(True)
    opt = optim.Perturbed(inner([x]), radius=1e-2, grad_threshold=1e-3, interval=50, seed=0)
    closure = _closure(opt, p.f, (x,))
    for _ in range(300):
        opt.step(closure)
    cp, dist = optim.nearest_critical_point(p, x.detach())
    assert cp.kind == "minimum" and dist < 2e-2, (x, dist)
    assert float(p.f(x.detach())) < saddle.value - 0.24  # f* = −¼
    assert opt.perturbations >= 1


def test_perturbed_wrapper_stop_test_returns_x_tilde():
    p = problems.get("lee-2d")
    x0 = torch.tensor([0.0, 1.0], dtype=torch.float64)  # a minimum
    x = x0.clone().requires_grad_(True)
    opt = optim.Perturbed(
        torch.optim.SGD([x], lr=0.1, momentum=0.5),
        radius=1e-2,
        grad_threshold=1e-3,
        interval=10,
        f_threshold=1e-8,
        seed=0,
    )
    closure = _closure(opt, p.f, (x,))
    for _ in range(30):
        opt.step(closure)
    assert opt.converged and opt.perturbations == 1
    assert torch.equal(x.detach(), x0)


def test_perturbed_wrapper_refuses_closure_optimizers_and_bad_values_by_name():
    from saddlescape.errors import ConfigError

    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError, match="optimizer"):
        optim.Perturbed(torch.optim.LBFGS([x]))
    with pytest.raises(ConfigError, match="optimizer"):
        optim.Perturbed("sgd")  # type: ignore[arg-type]
    opt = optim.Perturbed(torch.optim.SGD([x], lr=0.1), f_threshold=1e-3)
    x.grad = torch.zeros_like(x)
    with pytest.raises(ConfigError, match="f_threshold"):
        opt.step()  # the stop test needs the loss


@pytest.mark.parametrize(
    ("cls", "base", "key", "other"),
    [
        (optim.PerturbedGD, {"lr": 0.1}, "grad_threshold", 0.5),
        (optim.PerturbedGD, {"lr": 0.1}, "interval", 7),
        (optim.PerturbedAGD, {"lr": 0.1}, "theta", 0.5),
        (optim.PerturbedAGD, {"lr": 0.1}, "s", 0.5),
        (optim.NoisyGD, {"lr": 0.1}, "noise", "gaussian"),
        (optim.CubicNewton, {"M": 1.0}, "M", 2.0),
    ],
)
def test_tests_on_the_whole_vector_need_one_value_in_every_group(cls, base, key, other):
    """A hyperparameter that is a test on the whole vector cannot differ between groups:
    refused by name; a per-group ``lr`` (or ``radius``) is fine."""
    from saddlescape.errors import ConfigError

    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ConfigError, match=key):
        cls([{"params": [a]}, {"params": [b], key: other}], **base)
    if "lr" in base:
        opt = cls([{"params": [a]}, {"params": [b], "lr": 0.01}], **base)
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
