"""Helpers shared by the optimizer tests (a plain module, not a conftest: tests/conftest.py
already owns that module name)."""

import torch

from saddlescape import optim

# hyperparameters per short name for 2-D / small problems (lr is set by each test)
ESCAPERS = {
    "pgd": {"radius": 1e-2, "grad_threshold": 1e-3, "interval": 50},
    "noisy": {"radius": 1e-2},
    "pagd": {"radius": 1e-2, "grad_threshold": 1e-3, "interval": 50},
}


def make_closure(opt, problem, x):
    def closure():
        opt.zero_grad()
        loss = problem.f(x)
        (loss.sum() if loss.ndim else loss).backward()
        return loss

    return closure


def descend(problem, name, x0, steps, lr, batched=False, seed=0, **hyper):
    """Run optimizer ``name`` from x0 (d,) or (B, d); return (x, optimizer)."""
    x = x0.detach().clone().requires_grad_(True)
    opt = optim.make(name, [x], lr=lr, batched=batched, seed=seed, **hyper)
    closure = make_closure(opt, problem, x)
    for _ in range(steps):
        opt.step(closure)
    return x.detach(), opt


def nearest_kind(problem, x):
    cp, dist = optim.nearest_critical_point(problem, x)
    return cp.kind, dist


__all__ = ["ESCAPERS", "descend", "make_closure", "nearest_kind", "torch"]
