"""One shared suite over all optimizers (optax style): determinism, resuming, schedulers,
counters, validation and divergence."""

import copy

import pytest
import torch
from optim_helpers import make_closure

from saddlescape import optim, problems
from saddlescape.errors import ConfigError, DivergenceError, UnknownNameError

HYPER = {
    "gd": {"lr": 0.1},
    "pgd": {"lr": 0.1, "radius": 0.05, "grad_threshold": 0.05, "interval": 5, "f_threshold": 1e-6},
    "noisy": {"lr": 0.1, "radius": 0.05},
    "noisy-gauss": {"lr": 0.1, "noise": "gaussian", "eta0": 0.01, "gamma": 0.55},
    "pagd": {"lr": 0.05, "radius": 0.05, "grad_threshold": 0.05, "interval": 5},
    "pgd-2021": {
        "lr": 0.1,
        "radius": 0.5,
        "grad_threshold": 0.05,
        "interval": 5,
        "variant": "jin2021",
    },
}
NAMES = list(HYPER)


def build(key, x, **extra):
    name = key.split("-")[0]
    return optim.make(name, [x], **HYPER[key], **extra)


def trajectory(key, x0, steps, batched=False, seed=0, opt_state=None):
    p = problems.get("lee-2d")
    x = x0.clone().requires_grad_(True)
    opt = build(key, x, batched=batched, seed=seed)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    closure = make_closure(opt, p, x)
    xs = []
    for _ in range(steps):
        opt.step(closure)
        xs.append(x.detach().clone())
    return torch.stack(xs), opt, x


@pytest.mark.parametrize("key", NAMES)
@pytest.mark.parametrize("batched", [False, True])
def test_same_seed_same_bits_and_resume_from_state_dict(key, batched):
    x0 = torch.zeros(3, 2, dtype=torch.float64) if batched else torch.zeros(2, dtype=torch.float64)
    full, _, _ = trajectory(key, x0, 60, batched, seed=7)
    again, _, _ = trajectory(key, x0, 60, batched, seed=7)
    assert torch.equal(full, again)
    other, _, _ = trajectory(key, x0, 60, batched, seed=8)
    if key != "gd":
        assert not torch.equal(full, other)
    # stop at 25 steps, save, restore into a fresh optimizer (different seed), continue
    head, opt, x = trajectory(key, x0, 25, batched, seed=7)
    saved = copy.deepcopy(opt.state_dict())
    x_mid = x.detach().clone()
    tail, opt2, _ = trajectory(key, x_mid, 35, batched, seed=999, opt_state=saved)
    assert torch.equal(torch.cat([head, tail]), full)
    assert opt2.iterations == 60


@pytest.mark.parametrize("key", NAMES)
def test_counters(key):
    _, opt, _ = trajectory(key, torch.zeros(2, dtype=torch.float64), 40)
    assert opt.iterations == 40
    assert opt.grad_evals >= 40
    if key == "gd":
        assert opt.perturbations == 0 and opt.grad_evals == 40
    elif key.startswith("noisy"):
        assert opt.perturbations == 40
    else:
        assert opt.perturbations >= 1  # started at the saddle 0
    assert set(opt.counters) == {"iterations", "grad_evals", "perturbations"}


def test_batched_runs_have_their_own_clocks():
    """Run 0 starts at the saddle (perturbs at step 0), run 1 far away (never perturbs)."""
    X0 = torch.tensor([[0.0, 0.0], [3.0, 3.0]], dtype=torch.float64)
    _, opt, _ = trajectory("pgd", X0, 1, batched=True)
    assert opt.perturbations.tolist() == [1, 0]


def test_batched_gd_equals_separate_runs():
    X0 = torch.tensor([[0.3, 0.2], [-1.0, 0.5], [2.0, -1.5]], dtype=torch.float64)
    batch, _, _ = trajectory("gd", X0, 30, batched=True)
    for i in range(3):
        single, _, _ = trajectory("gd", X0[i], 30)
        assert torch.allclose(batch[:, i], single, rtol=0, atol=1e-15)


def test_pgd_stop_test_returns_x_tilde():
    """Jin et al. 2017, step 2: at a minimum the perturbation does not pay off, so after
    t_thres steps PGD restores x̃ (the point before the perturbation) and stops."""
    x0 = torch.tensor([0.0, 1.0], dtype=torch.float64)  # a minimum of lee-2d
    _, opt, x = trajectory("pgd", x0, 30)
    assert opt.converged is True and opt.perturbations == 1
    assert torch.equal(x.detach(), x0)  # x̃ exactly, not a gradient
    state = opt.state_dict()["saddlescape"]["jin"]
    assert bool(state["converged"].all())


def test_lr_scheduler_is_followed():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = optim.GD([x], lr=0.25)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    expected = 1.0
    for k in range(3):
        opt.zero_grad()
        (x**2).sum().backward()  # ∇ = 2x
        opt.step()
        expected *= 1 - 2 * 0.25 * 0.5**k
        sched.step()
        assert x.item() == pytest.approx(expected, rel=1e-14)


def test_noisy_gaussian_schedule_matches_optax_formula():
    x = torch.zeros(50_000, dtype=torch.float64, requires_grad=True)
    opt = optim.NoisyGD([x], lr=1.0, noise="gaussian", eta0=0.04, gamma=0.55, seed=0)
    for t in range(3):
        before = x.detach().clone()
        x.grad = torch.zeros_like(x)
        assert opt.noise_std() == pytest.approx((0.04 / (1 + t) ** 0.55) ** 0.5)
        opt.step()
        step = (x.detach() - before).std()
        assert float(step) == pytest.approx((0.04 / (1 + t) ** 0.55) ** 0.5, rel=0.02)


@pytest.mark.parametrize(
    ("cls", "kwargs", "bad"),
    [
        (optim.GD, {"lr": -1.0}, "lr"),
        (optim.GD, {"lr": float("nan")}, "lr"),
        (optim.PerturbedGD, {"lr": 0.1, "radius": 0.0}, "radius"),
        (optim.PerturbedGD, {"lr": 0.1, "grad_threshold": -1}, "grad_threshold"),
        (optim.PerturbedGD, {"lr": 0.1, "interval": 2.5}, "interval"),
        (optim.PerturbedGD, {"lr": 0.1, "f_threshold": -1.0}, "f_threshold"),
        (optim.PerturbedGD, {"lr": 0.1, "variant": "jin2019"}, "variant"),
        (optim.PerturbedGD, {"lr": 0.1, "variant": "jin2021", "f_threshold": 1.0}, "f_threshold"),
        (optim.NoisyGD, {"lr": 0.1, "noise": "uniform"}, "noise"),
        (optim.NoisyGD, {"lr": 0.1, "gamma": -0.5}, "gamma"),
        (optim.PerturbedAGD, {"lr": 0.1, "theta": 1.5}, "theta"),
        (optim.PerturbedAGD, {"lr": 0.1, "s": 0}, "s"),
        (optim.GD, {"lr": 0.1, "seed": "x"}, "seed"),
    ],
)
def test_bad_hyperparameters_raise_config_error_naming_them(cls, kwargs, bad):
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError, match=bad):
        cls([x], **kwargs)


def test_registry_errors_and_from_theory_validation():
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(UnknownNameError, match="pgd"):
        optim.make("pgdd", [x], lr=0.1)
    with pytest.raises(ConfigError, match="radiuss"):
        optim.make("pgd", [x], lr=0.1, radiuss=1.0)
    with pytest.raises(ConfigError, match="eps"):
        optim.PerturbedGD.from_theory([x], smoothness=1.0, hessian_lipschitz=1.0, eps=0.0)
    with pytest.raises(ConfigError, match="delta"):
        optim.PerturbedGD.from_theory([x], 1.0, 1.0, eps=0.1, delta=1.5)
    with pytest.raises(ConfigError, match="closure"):
        optim.PerturbedGD([x], lr=0.1).step()
    with pytest.raises(ConfigError, match="batched"):
        optim.GD(
            [torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)],
            lr=0.1,
            batched=True,
        )


@pytest.mark.parametrize("key", NAMES)
def test_nan_loss_raises_divergence_error_with_step(key):
    x = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = build(key, x, seed=0)
    calls = {"n": 0}

    def closure():
        opt.zero_grad()
        calls["n"] += 1
        loss = (x**2).sum() * (float("nan") if calls["n"] > 3 else 1.0)
        loss.backward()
        return loss

    with pytest.raises(DivergenceError, match=r"non-finite .* at step \d"):
        for _ in range(10):
            opt.step(closure)


def test_diverging_gd_is_caught_not_continued():
    """η > 2/ℓ on a quadratic: the iterates blow up to inf and GD stops with the step."""
    x = torch.tensor([1.0], requires_grad=True)
    opt = optim.GD([x], lr=3.0)
    with pytest.raises(DivergenceError, match="step"):
        for _ in range(1000):
            opt.zero_grad()
            (x**2).sum().backward()
            opt.step()
    assert opt.iterations < 1000


def test_batched_divergence_names_the_run():
    X = torch.tensor([[1.0], [float("inf")]], requires_grad=True)
    opt = optim.GD([X], lr=0.1, batched=True)

    def closure():
        opt.zero_grad()
        loss = (X**2).sum(1)
        loss.sum().backward()
        return loss

    with pytest.raises(DivergenceError, match=r"run\(s\) \[1\]"):
        opt.step(closure)


def test_batched_closure_must_return_per_run_losses():
    X = torch.zeros(4, 2, requires_grad=True)
    opt = optim.PerturbedGD([X], lr=0.1, batched=True, seed=0)

    def closure():
        opt.zero_grad()
        loss = (X**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ConfigError, match=r"per-run losses of shape \(4,\)"):
        opt.step(closure)


def test_param_groups_and_float32():
    """Two groups with their own lr; float32 parameters stay float32, same seed same bits."""
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = optim.NoisyGD(
        [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.0001}], lr=1.0, radius=0.0, seed=0
    )
    opt.zero_grad()
    ((a**2).sum() + (b**2).sum()).backward()
    opt.step()
    assert a.dtype == torch.float32
    assert torch.allclose(a.detach(), torch.full((3,), 0.8))
    assert torch.allclose(b.detach(), torch.full((2,), 1 - 0.0002))


# ---------------------------------------------------------------- LR schedulers on every lr
# Perturbations off (grad_threshold = 0, radius = 0, θ = 1: no momentum), so on
# f = ½‖x‖² every step is x ← (1 − η_k)x and the learning rate actually used is visible.
SCHEDULED = {
    "gd": {},
    "pgd": {"grad_threshold": 0.0, "interval": 10**6},
    "pgd-2021": {"grad_threshold": 0.0, "interval": 10**6, "variant": "jin2021"},
    "noisy": {"radius": 0.0},
    "pagd": {"theta": 1.0, "grad_threshold": 0.0, "interval": 10**6},
}
SCHEDULERS = {
    "step": (lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), 0.5),
    "lambda": (lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k)), None),
}


@pytest.mark.parametrize("key", list(SCHEDULED))
@pytest.mark.parametrize("which", list(SCHEDULERS))
def test_lr_schedulers_drive_every_optimizer_with_a_learning_rate(key, which):
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optim.make(key.split("-")[0], [x], lr=0.4, seed=0, **SCHEDULED[key])
    sched = SCHEDULERS[which][0](opt)

    def closure():
        opt.zero_grad()
        loss = 0.5 * x.square().sum()
        loss.backward()
        return loss

    used = []
    for _ in range(4):
        before = x.detach().clone()
        opt.step(closure)
        used.append(float(1 - x.detach()[0] / before[0]))  # the η of this step
        assert torch.allclose(x.detach(), before * (1 - used[-1]), rtol=1e-14, atol=0)
        sched.step()
    expected = (
        [0.4 * 0.5**k for k in range(4)] if which == "step" else [0.4 / (1 + k) for k in range(4)]
    )
    assert used == pytest.approx(expected, rel=1e-12)


def test_lr_schedulers_do_not_apply_to_cubic_newton():
    """Nesterov–Polyak's cubic step has no learning rate (its scale is set by M), so
    CubicNewton's groups have no 'lr' key and torch's schedulers refuse it (documented)."""
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = optim.CubicNewton([x], M=1.0, seed=0)
    assert "lr" not in opt.param_groups[0]
    assert "learning-rate schedulers do not apply" in " ".join(optim.CubicNewton.__doc__.split())
    with pytest.raises(KeyError):
        torch.optim.lr_scheduler.StepLR(opt, step_size=1)


# ---------------------------------------------------------------- hyperparameter types
@pytest.mark.parametrize(
    ("key", "name", "bad"),
    [
        (key, name, bad)
        for key, names in {
            "gd": ["lr"],
            "pgd": ["lr", "radius", "grad_threshold", "interval", "f_threshold"],
            "noisy": ["lr", "radius", "eta0", "gamma"],
            "pagd": ["lr", "theta", "gamma", "s", "radius", "grad_threshold", "interval"],
            "cubic": ["M", "subproblem_iters", "subproblem_tol", "perturbation"],
        }.items()
        for name in names
        for bad in ("0.1", True)
    ],
)
def test_string_and_bool_hyperparameters_are_rejected(key, name, bad):
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    kwargs = {"M": 1.0} if key == "cubic" else {"lr": 0.1}
    kwargs[name] = bad
    with pytest.raises(ValueError, match=name):
        optim.make(key, [x], **kwargs)


def test_validated_hyperparameters_are_stored_converted():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    import numpy as np

    opt = optim.PerturbedGD([x], lr=np.float32(0.25), radius=1, interval=3.0, f_threshold=0)
    g = opt.param_groups[0]
    assert type(g["lr"]) is float and g["lr"] == 0.25
    assert type(g["radius"]) is float and type(g["f_threshold"]) is float
    assert type(g["interval"]) is int and g["interval"] == 3
    opt = optim.PerturbedAGD([x], lr=torch.tensor(0.5), theta=1)
    assert type(opt.param_groups[0]["lr"]) is float and type(opt.param_groups[0]["theta"]) is float


def test_from_theory_warns_when_c_exceeds_c_max():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match=r"c = 10.*c_max"):
        optim.PerturbedGD.from_theory([x], smoothness=1.0, hessian_lipschitz=1.0, eps=0.1, c=10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.PerturbedGD.from_theory([x], 1.0, 1.0, eps=0.1, c=optim.PerturbedGD.C_MAX)
        # jin2021's c is a lower-bound constant (ι = c·log(...), c large enough): no cap
        optim.PerturbedGD.from_theory([x], 1.0, 1.0, eps=0.1, c=10, variant="jin2021")
