"""The papers' claims: PGD's theory constants and ε-SOSP guarantee (Jin et al. 2017),
GD's exponential slowdown on the octopus and PGD's escape (Du et al. 2017), and an
ordinary training loop on the digits."""

import math

import pytest
import torch
from optim_helpers import make_closure

from saddlescape import optim, problems
from saddlescape.problems.networks import load_digits_tensors, make_loss, make_mlp


def test_from_theory_constants_match_algorithm_2():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ell, rho, eps, delta, f_gap, c = 2.0, 3.0, 0.05, 0.1, 4.0, 0.5
    opt = optim.PerturbedGD.from_theory([x], ell, rho, eps, delta=delta, f_gap=f_gap, c=c)
    chi = 3 * max(math.log(3 * ell * f_gap / (c * eps**2 * delta)), 4)
    th = opt.theory
    assert th.chi == pytest.approx(chi)
    g = opt.param_groups[0]
    assert g["lr"] == pytest.approx(c / ell)
    assert g["radius"] == pytest.approx(math.sqrt(c) / chi**2 * eps / ell)
    assert g["grad_threshold"] == pytest.approx(math.sqrt(c) / chi**2 * eps)
    assert g["f_threshold"] == pytest.approx(c / chi**3 * math.sqrt(eps**3 / rho))
    assert g["interval"] == math.ceil(chi / c**2 * ell / math.sqrt(rho * eps))
    assert th.iteration_bound >= f_gap * ell / eps**2  # at least GD's first-order bound
    opt21 = optim.PerturbedGD.from_theory([x], ell, rho, eps, f_gap=f_gap, variant="jin2021")
    iota = max(0.5 * math.log(3 * ell * f_gap / (rho * eps * 0.1)), 1.0)
    assert opt21.theory.chi == pytest.approx(iota)
    assert opt21.param_groups[0]["radius"] == pytest.approx(eps / (400 * iota**3))
    assert opt21.theory.iteration_bound == math.ceil(400 * iota**4 * ell * f_gap / eps**2)


@pytest.mark.parametrize("x0", [[0.0, 0.0], [0.7, -0.05]])
def test_from_theory_returns_an_eps_sosp_within_its_bound(x0):
    """Jin et al. 2017, Theorem 3 on lee-2d (ℓ = 11, ρ = 12 on its region): the returned x̃
    has ‖∇f‖ ≤ ε and λ_min(∇²f) ≥ −√(ρε) (dense Hessian), within the reported bound."""
    p = problems.get("lee-2d")
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    eps = 0.1
    f_gap = float(p.f(x.detach())) - p.f_min
    opt = optim.PerturbedGD.from_theory(
        [x], p.smoothness, p.hessian_lipschitz, eps, delta=0.1, f_gap=f_gap, seed=0
    )
    closure = make_closure(opt, p, x)
    while not opt.converged and opt.iterations <= opt.theory.iteration_bound:
        opt.step(closure)
    assert opt.converged and opt.iterations <= opt.theory.iteration_bound
    xt = x.detach()
    assert float(p.grad(xt).norm()) <= eps
    lam_min = float(torch.linalg.eigvalsh(p.hessian(xt))[0])
    assert lam_min >= -math.sqrt(p.hessian_lipschitz * eps)
    assert opt.perturbations >= 1
    assert float(p.f(xt)) == pytest.approx(p.f_min, abs=1e-6)  # left the saddle (0, 0)


def _octopus_arrival(d, method, steps, seeds=3, stop_at_fixed_point=False, **hyper):
    """Iterations until ‖|x| − 4τ𝟙‖ < 1e-2 for ``seeds`` runs (batched); -1: not arrived.

    With ``stop_at_fixed_point`` (GD only) the loop also ends at the first step that leaves
    every run's iterate bitwise unchanged; the step count is returned third."""
    p = problems.get("octopus", dim=d)
    X = p.sample_init(torch.Generator().manual_seed(d), batch=seeds).requires_grad_(True)
    opt = optim.make(method, [X], lr=1 / p.smoothness, batched=True, seed=d, **hyper)
    closure = make_closure(opt, p, X)
    arrived = torch.full((seeds,), -1)
    target = 4 * p.tau
    fixed_at = None
    for k in range(1, steps + 1):
        before = X.detach().clone() if stop_at_fixed_point else None
        opt.step(closure)
        near = (X.detach().abs() - target).norm(dim=1) < 1e-2
        arrived = torch.where(near & (arrived < 0), k, arrived)
        if bool((arrived > 0).all()):
            break
        if before is not None and torch.equal(before, X.detach()):
            fixed_at = k
            break
    return arrived, X.detach(), p, fixed_at


@pytest.mark.slow
def test_octopus_gd_time_grows_exponentially_with_dimension():
    """Du et al. 2017: GD's iterations to arrive grow ≥ 3× per added dimension (THEORY.md:
    229, 861, 3451, 14090 for d = 2..5 with one seed).

    The claim is about the *typical* run: per seed the ratio from one dimension to the next
    varies (single seeds give 2.7–2.8× at times), so 7 seeds (each dimension its own draw
    from [−1, 1]^d) are run to arrival and both the geometric means and the medians (of an
    odd count: a true middle run) must grow ≥ 3× per dimension (measured: geometric means
    193, 681, 3743, 12821; medians 194, 654, 3857, 14030)."""
    geo, med = [], []
    for d in (2, 3, 4, 5):
        arrived, _, _, _ = _octopus_arrival(d, "gd", 60_000, seeds=7)
        assert bool((arrived > 0).all()), (d, arrived)
        geo.append(float(arrived.double().log().mean().exp()))
        med.append(float(arrived.double().median()))  # odd count: the middle run
    for k in range(1, len(geo)):
        assert geo[k] >= 3 * geo[k - 1], geo
        assert med[k] >= 3 * med[k - 1], med


@pytest.mark.slow
def test_octopus_gd_is_stuck_at_d8_pgd_arrives_at_d10():
    """GD has not arrived after 60,000 iterations at d = 8 (THEORY.md), for 5 seeds.

    The loop runs up to 60,000 batched GD steps but ends early, and exactly, at a fixed
    point: GD is a deterministic map of the iterate (no state, no randomness; the batched
    computation of each row depends only on the batch), so once one step returns every
    run's iterate bit for bit, all later steps do too and iteration 60,000 equals it. That
    happens after ~12,900 steps: the coordinates still to escape have underflowed to
    ±2 units of the least subnormal, where the in-tube growth x ← x(1 + 2ηγ) and decay
    x ← x(1 − 2ηL) both round back to x, and the escaped ones sit at the float nearest ±4τ.

    PGD (r = 0.1, g_thres = 1e-3, t_thres = 50) arrives at d = 10 within 2,000 iterations
    (THEORY.md: 1281), 3 seeds."""
    arrived, X, p, fixed_at = _octopus_arrival(8, "gd", 60_000, seeds=5, stop_at_fixed_point=True)
    assert bool((arrived < 0).all()), arrived
    if fixed_at is not None:  # else all 60,000 iterations ran
        assert fixed_at < 60_000
        eta = 1 / p.smoothness
        tail = X[:, 5:]
        assert bool((tail.abs() < 8 * 2.0**-1074).all()), tail  # ≤ 7 least subnormals
        for factor in (1 + 2 * eta * p.gamma, 1 - 2 * eta * p.L):
            assert torch.equal(tail * factor, tail)
    arrived, _, _, _ = _octopus_arrival(
        10, "pgd", 2000, seeds=3, radius=0.1, grad_threshold=1e-3, interval=50
    )
    assert bool((arrived > 0).all()), arrived


@pytest.mark.parametrize(
    ("name", "hyper"),
    [
        ("gd", {}),
        ("pgd", {"radius": 1e-2, "grad_threshold": 1e-3, "interval": 50}),
        ("noisy", {"radius": 1e-2}),
    ],
)
def test_digits_mlp_training_loop(name, hyper):
    """An ordinary full-batch loop (float32) reaches ≥ 95 % training accuracy."""
    X, y = load_digits_tensors()
    net = make_mlp((64, 32, 10), seed=0)
    loss_fn = make_loss("cross-entropy")
    opt = optim.make(name, net.parameters(), lr=0.5, seed=0, **hyper)

    def closure():
        opt.zero_grad()
        loss = loss_fn(net(X), y)
        loss.backward()
        return loss

    first = closure().item()
    for _ in range(200):
        loss = opt.step(closure)
    accuracy = float((net(X).argmax(1) == y).double().mean())
    assert accuracy >= 0.95 and float(loss) < first
    assert next(net.parameters()).dtype == torch.float32


def test_pagd_from_theory_constants_and_escape():
    """Jin, Netrapalli, Jordan 2018: κ = ℓ/√(ρε), η = 1/(4ℓ), θ = 1/(4√κ), γ = θ²/η,
    s = γ/(4ρ); PAGD with them leaves lee-2d's saddle for a minimum."""
    p = problems.get("lee-2d")
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    ell, rho, eps = p.smoothness, p.hessian_lipschitz, 0.05
    opt = optim.PerturbedAGD.from_theory([x], ell, rho, eps, f_gap=0.25, seed=0)
    kappa = ell / math.sqrt(rho * eps)
    g = opt.param_groups[0]
    assert g["lr"] == pytest.approx(1 / (4 * ell))
    assert g["theta"] == pytest.approx(1 / (4 * math.sqrt(kappa)))
    assert g["gamma"] == pytest.approx(g["theta"] ** 2 / g["lr"])
    assert g["s"] == pytest.approx(g["gamma"] / (4 * rho))
    closure = make_closure(opt, p, x)
    for _ in range(1500):
        opt.step(closure)
    cp, dist = optim.nearest_critical_point(p, x.detach())
    assert cp.kind == "minimum" and dist < 1e-2 and opt.perturbations >= 1


def test_jin2021_variant_escapes_with_lr_scaled_ball():
    p = problems.get("lee-2d")
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = optim.PerturbedGD.from_theory(
        [x], p.smoothness, p.hessian_lipschitz, 0.05, f_gap=0.25, variant="jin2021", seed=0
    )
    closure = make_closure(opt, p, x)
    opt.step(closure)  # the first step perturbs by η·ξ, ‖ξ‖ ≤ r, then takes a gradient step
    assert opt.perturbations == 1
    for _ in range(1500):
        opt.step(closure)
    cp, dist = optim.nearest_critical_point(p, x.detach())
    assert cp.kind == "minimum" and dist < 1e-2


def test_pagd_negative_curvature_exploitation_fires_and_lowers_the_hamiltonian():
    """Jin, Netrapalli, Jordan 2018 (arXiv 1711.10456), Algorithm 3 and its lemma on
    negative-curvature exploitation: when the NCE test fires at step t, the Hamiltonian
    E_t = f(x_t) + ‖v_t‖²/(2η) drops by at least min(s²/(2η), (γ/2 − 4ρs)s²).

    Started next to lee-2d's strict saddle (curvature −1 along y) with no perturbations, the
    momentum v_t builds up along y, where f(x_t) lies below its linearization from y_t by
    more than (γ/2)‖x_t − y_t‖² (γ = 0.5 < 1): NCE must fire. Both branches are checked:
    ‖v_t‖ ≥ s (x_{t+1} = x_t, the kinetic energy is dropped) and ‖v_t‖ < s (x_{t+1} =
    x_t ± s·v_t/‖v_t‖, whichever has the smaller f, so f itself decreases). ρ = 12 is
    lee-2d's Hessian-Lipschitz constant on [−2, 2]², which holds every iterate.
    """
    p = problems.get("lee-2d")
    eta, gamma, s, rho = 0.1, 0.5, 0.004, p.hessian_lipschitz
    assert gamma / 2 - 4 * rho * s > 0  # the lemma's decrease is positive
    bound = min(s**2 / (2 * eta), (gamma / 2 - 4 * rho * s) * s**2)
    x = torch.tensor([0.3, 1e-3], dtype=torch.float64, requires_grad=True)
    opt = optim.PerturbedAGD(
        [x], lr=eta, theta=0.1, gamma=gamma, s=s, grad_threshold=0.0, interval=10**6, seed=0
    )
    closure = make_closure(opt, p, x)
    branches = {"small": 0, "large": 0}
    for _ in range(200):
        xt = x.detach().clone()
        # v_t = η·u_t: the optimizer keeps the velocity in gradient units (LR schedulers)
        v = eta * opt.state[x]["velocity"] if x in opt.state else torch.zeros_like(xt)
        energy = float(p.f(xt)) + float(v.square().sum()) / (2 * eta)
        fired = opt.nce_steps
        opt.step(closure)
        if opt.nce_steps == fired:
            continue
        x1, v1 = x.detach(), opt.state[x]["velocity"]
        assert bool((v1 == 0).all())  # v_{t+1} = 0
        assert energy - float(p.f(x1)) >= bound  # E_{t+1} = f(x_{t+1})
        assert bool((x1.abs() <= p.box).all())
        if float(v.norm()) >= s:
            branches["large"] += 1
            assert torch.equal(x1, xt)
        else:
            branches["small"] += 1
            step = s * v / v.norm()
            assert min(float((x1 - xt - step).norm()), float((x1 - xt + step).norm())) < 1e-15
            assert float(p.f(x1)) < float(p.f(xt))
    assert opt.nce_steps >= 2 and branches["small"] >= 1 and branches["large"] >= 1, branches
    assert opt.perturbations == 0
    cp, dist = optim.nearest_critical_point(p, x.detach())
    assert cp.kind == "minimum" and dist < 1e-6
