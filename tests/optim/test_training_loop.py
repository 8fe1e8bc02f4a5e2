"""The optimizers inside ordinary PyTorch training loops, each checked against what torch's
own optimizers do in the same loop: state-dict hooks, models converted after the
optimizer was built, the user's global random stream, LR schedulers, GradScaler.

The generic torch.optim battery is in ``test_contract.py``; its cases are reused here."""

from __future__ import annotations

import pytest
import torch
from test_contract import CASES, NAMES, run, wb_loss, wbi


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
