"""The optimizers inside ordinary PyTorch training loops, each checked against what torch's
own optimizers do in the same loop: state-dict hooks, models converted after the
optimizer was built, the user's global random stream, LR schedulers, GradScaler.

The generic torch.optim battery is in ``test_contract.py``; its cases are reused here."""

from __future__ import annotations

import pytest
import torch
from test_contract import CASES, NAMES, run, wb_loss, wbi

from saddlescape import optim
from saddlescape.errors import ConfigError


@pytest.mark.parametrize("key", NAMES)
def test_state_dict_hooks_see_the_whole_state(key):
    """torch runs a state-dict post-hook on the finished dict and a load post-hook once
    everything is loaded; the optimizer's own part (random stream, counters) included."""
    case = CASES[key]
    w, b, x = wbi()
    opt = case.build([w, b])
    run(case, opt, wb_loss(w, b, x), 3)
    own = "perturbed" if key.startswith("perturbed-") else "saddlescape"
    seen: dict[str, object] = {}

    def post(o, sd):
        seen["saved"] = sorted(sd)
        sd["note"] = "added by a hook"

    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert own in seen["saved"] and sd["note"] == "added by a hook"

    w2, b2, _ = wbi()
    fresh = case.build([w2, b2], seed=1)

    def load_pre(o, state):
        seen["loading"] = sorted(state)

    def load_post(o):
        seen["iterations"] = o.iterations
        seen["rng"] = o.generator.get_state().clone()

    fresh.register_load_state_dict_pre_hook(load_pre)
    fresh.register_load_state_dict_post_hook(load_post)
    fresh.load_state_dict(sd)
    assert own in seen["loading"]
    assert seen["iterations"] == opt.iterations == 3
    assert torch.equal(seen["rng"], opt.generator.get_state())


def test_load_pre_hook_may_replace_the_optimizers_own_part():
    """A pre-hook that returns a new dict (a migration) is what gets loaded, all of it."""
    case = CASES["noisy-sphere"]
    w, b, x = wbi()
    opt = case.build([w, b])
    run(case, opt, wb_loss(w, b, x), 2)
    sd = opt.state_dict()

    def migrate(o, state):
        state = dict(state)
        state["saddlescape"] = {**state["saddlescape"], "iterations": 40}
        return state

    fresh = case.build(list(wbi()[:2]))
    fresh.register_load_state_dict_pre_hook(migrate)
    fresh.load_state_dict(sd)
    assert fresh.iterations == 40


def test_model_converted_to_float64_after_pagd_was_built_keeps_float64():
    """``model.to(torch.float64)`` after the optimizer changes the parameters in place; SGD
    with momentum then keeps float64 parameters (its stale float32 buffer only rounds the
    update). PAGD's buffers follow the parameters, so x is not rounded to float32 at every
    step (it was: 9.6e-9 moved by three steps of length ~3e-10, float32's spacing at 1/3)."""
    moves = {}
    for name, make in {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-10, momentum=0.9),
        "pagd": lambda ps: optim.PerturbedAGD(ps, lr=1e-10, grad_threshold=0.0, seed=0),
    }.items():
        w = torch.nn.Parameter(torch.ones(3))
        opt = make([w])

        def closure(opt=opt, w=w):
            opt.zero_grad()
            loss = w.square().sum()
            loss.backward()
            return loss

        opt.step(closure)  # state created in float32
        w.data = w.data.double()  # what Module.to(torch.float64) does to each parameter
        with torch.no_grad():
            w.fill_(1 / 3)
        for _ in range(3):
            opt.step(closure)
        moves[name] = float((w.detach() - 1 / 3).abs().max())
    assert moves["sgd"] < 1e-9
    assert moves["pagd"] == pytest.approx(moves["sgd"], rel=1e-6)


@pytest.mark.parametrize("key", NAMES)
def test_steps_never_touch_the_global_random_stream(key):
    """A training loop's shuffling and dropout draw from torch's global generator; the
    steps draw only from the optimizer's own, also while perturbing (every step perturbs
    below, where the method has a threshold)."""
    case = CASES[key]
    w, b, x = wbi()
    always = {"grad_threshold": 1e6, "interval": 0} if "grad_threshold" in case.hyper else {}
    torch.manual_seed(0)
    opt = case.build([w, b], **always)  # seed given: construction takes nothing either
    own = opt.generator.get_state().clone()
    before = torch.get_rng_state()
    run(case, opt, wb_loss(w, b, x), 5)
    assert torch.equal(torch.get_rng_state(), before)
    assert key == "gd" or not torch.equal(opt.generator.get_state(), own)  # it did draw


def test_gd_without_seed_leaves_the_global_stream_as_sgd_does():
    """GD draws no random numbers: swapping it for SGD must not change the user's data
    order (it took one global draw for an unused seed)."""
    states = []
    for make in (lambda ps: torch.optim.SGD(ps, lr=0.1), lambda ps: optim.GD(ps, lr=0.1)):
        torch.manual_seed(0)
        make([torch.zeros(2, requires_grad=True)])
        states.append(torch.get_rng_state())
    assert torch.equal(*states)


def test_an_unseeded_noisy_optimizer_takes_exactly_one_global_draw():
    """What the docstring promises: one draw at construction (so torch.manual_seed makes
    runs repeatable), none in the steps."""
    torch.manual_seed(0)
    torch.randint(0, 2**62, (1,))
    expected = torch.get_rng_state()
    torch.manual_seed(0)
    x = torch.zeros(3, requires_grad=True)
    opt = optim.NoisyGD([x], lr=0.1)
    x.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(torch.get_rng_state(), expected)


#: the cases whose step needs a closure
NEED_CLOSURE = [k for k in NAMES if k.startswith(("pgd", "pagd", "cubic", "sfn"))]


def _scaled_closure(opt, scaler, f):
    """The closure of an AMP training loop: gradients of the scaled loss."""

    def closure():
        opt.zero_grad()
        loss = f()
        scaler.scale(loss).backward()
        return loss

    return closure


@pytest.mark.parametrize("key", NEED_CLOSURE)
@pytest.mark.parametrize("with_closure", [False, True])
def test_closure_optimizers_refuse_grad_scaler_by_name(key, with_closure):
    """GradScaler.step(opt, closure) (closure positional: torch refuses only the keyword)
    unscaled the gradients in .grad and then let the closure recompute scaled ones: a
    PerturbedGD step was 65536× too long. The optimizers that need a closure now refuse
    the scaler by name, and are usable without it afterwards."""
    case = CASES[key]
    w, b, x = wbi()
    opt = case.build([w, b])
    scaler = torch.amp.GradScaler("cpu")
    f = wb_loss(w, b, x)
    closure = _scaled_closure(opt, scaler, f)
    closure()
    before = [w.detach().clone(), b.detach().clone()]
    args = (closure,) if with_closure else ()
    with pytest.raises(ConfigError, match=r"cannot run under torch\.amp\.GradScaler"):
        scaler.step(opt, *args)
    assert torch.equal(w, before[0]) and torch.equal(b, before[1])
    assert not hasattr(opt, "found_inf") and not hasattr(opt, "grad_scale")
    run(case, opt, f, 1)  # no scaler: an ordinary step
    assert opt.iterations == 1


@pytest.mark.parametrize("key", ["gd", "noisy-sphere", "perturbed-sgd-momentum"])
def test_grad_scaler_with_gradient_optimizers_equals_unscaled_steps(key):
    """GD, NoisyGD and the wrapper step from .grad, as SGD: scaler.step(opt) unscales first
    (by a power of two: exactly) and skips the step whose gradient overflowed."""
    case = CASES[key]
    results = []
    for scaled in (False, True):
        w, b, x = wbi()
        opt = case.build([w, b])
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=scaled)
        for i in range(4):
            opt.zero_grad()
            scaler.scale(wb_loss(w, b, x)()).backward()
            if i == 2:  # an overflow: the scaler skips this step; unscaled, skip it by hand
                if not scaled:
                    continue
                w.grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
        results.append((w.detach().clone(), b.detach().clone(), opt.iterations))
    (w0, b0, n0), (w1, b1, n1) = results
    assert n0 == n1 == 3
    assert torch.equal(w0, w1) and torch.equal(b0, b1)


SCHEDULERS = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, 0.2, total_steps=12, cycle_momentum=False
    ),
    "plateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0),
    "sequential": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 4),
            torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e),
        ],
        [4],
    ),
}


@pytest.mark.parametrize("sched", list(SCHEDULERS))
@pytest.mark.parametrize("key", ["gd", "pgd-jin2017", "pgd-jin2021", "noisy-sphere", "pagd"])
def test_scheduled_lr_takes_effect_at_the_next_step_as_for_sgd(key, sched):
    """With its noise off, each method is SGD (PAGD with θ = 1: no momentum): under any
    scheduler the two agree bit for bit, so a changed group["lr"] is used at the next step."""
    quiet = {**CASES[key].quiet, **({"theta": 1.0, "gamma": 0.0} if key == "pagd" else {})}
    results = []
    for make in (lambda ps: torch.optim.SGD(ps, lr=0.02), lambda ps: CASES[key].build(ps, **quiet)):
        w, b, x = wbi()
        opt = make([w, b])
        scheduler = SCHEDULERS[sched](opt)
        for _ in range(12):
            run(CASES[key], opt, wb_loss(w, b, x), 1)
            scheduler.step(1.0) if sched == "plateau" else scheduler.step()
        results.append(torch.cat([w.detach().reshape(-1), b.detach()]))
    assert torch.equal(*results)


@pytest.mark.parametrize(("variant", "scales"), [("jin2017", False), ("jin2021", True)])
def test_perturbation_radius_and_the_scheduled_lr(variant, scales):
    """A scheduler changes η only: jin2017's ball B(r) stays as built, jin2021's
    perturbation η·ξ shrinks with the scheduled η (measured at a zero gradient)."""
    x = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    opt = optim.PerturbedGD(
        [x], lr=0.1, radius=1.0, grad_threshold=1.0, interval=0, variant=variant, seed=0
    )
    scheduler = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.01)

    def closure():
        opt.zero_grad()
        loss = 0 * x.sum()
        loss.backward()
        return loss

    lengths = []
    for _ in range(2):
        before = x.detach().clone()
        opt.step(closure)
        scheduler.step()
        lengths.append(float((x.detach() - before).norm()))
    # in 50 dimensions a uniform point of B(r) has a norm above 0.9·r with probability 0.995
    if scales:
        assert 0.09 < lengths[0] <= 0.1 and 0.0009 < lengths[1] <= 0.001
    else:
        assert 0.9 < lengths[0] <= 1.0 and 0.9 < lengths[1] <= 1.0


@pytest.mark.parametrize("with_closure", [False, True])
def test_wrapper_with_a_stop_test_refuses_grad_scaler_by_name(with_closure):
    """Perturbed(..., f_threshold=...) needs step(closure); through a scaler that closure's
    gradients stayed scaled (a step of 5913.75 instead of 0.0902)."""
    w, b, x = wbi()
    opt = optim.Perturbed(torch.optim.SGD([w, b], lr=0.01), f_threshold=1e-4, seed=0)
    scaler = torch.amp.GradScaler("cpu")
    closure = _scaled_closure(opt, scaler, wb_loss(w, b, x))
    closure()
    before = w.detach().clone()
    with pytest.raises(ConfigError, match=r"f_threshold: .*torch\.amp\.GradScaler"):
        scaler.step(opt, *((closure,) if with_closure else ()))
    assert torch.equal(w, before) and not hasattr(opt, "found_inf")
