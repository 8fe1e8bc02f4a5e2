"""Optimizer overhead and batched-mode throughput, measured side by side.

1. One step (closure included) of PerturbedGD, GD and NoisyGD against torch.optim.SGD on
   the digits MLP (64-128-128-10, tanh, cross-entropy, full batch of 1,797, float32).
   Blocks of steps alternate between optimizers; we report the median per-step time.
   Target: PerturbedGD ≤ 1.15× SGD.
2. Batched PerturbedGD: 10,000 initializations of Himmelblau × 1,000 steps as one (B, 2)
   parameter, against a Python loop over the runs (measured on a subset and extrapolated,
   as stated in the output). Target: < 10 s on 2 cores and ≥ 50× faster than the loop.

Run: .venv/bin/python benchmarks/optimizers.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from saddlescape import optim, problems
from saddlescape.problems.networks import load_digits_tensors, make_loss, make_mlp


def step_costs(blocks: int, steps: int) -> dict[str, float]:
    X, y = load_digits_tensors()
    loss_fn = make_loss("cross-entropy")
    makers = {
        "torch.optim.SGD": lambda ps: torch.optim.SGD(ps, lr=0.1),
        "PerturbedGD": lambda ps: optim.PerturbedGD(
            ps, lr=0.1, radius=1e-2, grad_threshold=1e-3, interval=50, seed=0
        ),
        "GD": lambda ps: optim.GD(ps, lr=0.1, seed=0),
        "NoisyGD": lambda ps: optim.NoisyGD(ps, lr=0.1, radius=1e-2, seed=0),
    }
    runs = {}
    for name, make in makers.items():
        net = make_mlp((64, 128, 128, 10), seed=0)
        opt = make(net.parameters())

        def closure(net=net, opt=opt):
            opt.zero_grad()
            loss = loss_fn(net(X), y)
            loss.backward()
            return loss

        for _ in range(5):  # warm-up
            opt.step(closure)
        runs[name] = (opt, closure)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(blocks):
        for name, (opt, closure) in runs.items():
            t = time.perf_counter()
            for _ in range(steps):
                opt.step(closure)
            times[name].append((time.perf_counter() - t) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def batched_vs_loop(runs: int, steps: int, loop_runs: int) -> tuple[float, float, float]:
    p = problems.get("himmelblau")
    X0 = p.sample_init(torch.Generator().manual_seed(0), batch=runs)
    hyper = {"lr": 0.01, "radius": 1e-2, "grad_threshold": 1e-3, "interval": 50}

    X = X0.clone().requires_grad_(True)
    opt = optim.PerturbedGD([X], **hyper, batched=True, seed=0)

    def closure():
        opt.zero_grad()
        loss = p.f(X)
        loss.sum().backward()
        return loss

    t = time.perf_counter()
    for _ in range(steps):
        opt.step(closure)
    batched = time.perf_counter() - t
    arrived = sum(
        1 for x in X.detach()[:200] if optim.nearest_critical_point(p, x)[0].kind == "minimum"
    )

    t = time.perf_counter()
    for i in range(loop_runs):
        x = X0[i].clone().requires_grad_(True)
        o = optim.PerturbedGD([x], **hyper, seed=i)

        def c(x=x, o=o):
            o.zero_grad()
            loss = p.f(x)
            loss.backward()
            return loss

        for _ in range(steps):
            o.step(c)
    loop = (time.perf_counter() - t) / loop_runs * runs
    return batched, loop, arrived / min(200, runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%F')}")

    blocks, steps = (5, 10) if args.quick else (15, 20)
    med = step_costs(blocks, steps)
    base = med["torch.optim.SGD"]
    print("\nDigits MLP 64-128-128-10, full batch, one step incl. forward/backward")
    print(f"{'optimizer':<18}{'median ms/step':>16}{'× SGD':>8}")
    for name, v in med.items():
        print(f"{name:<18}{v * 1e3:>16.3f}{v / base:>8.3f}")

    runs, nsteps = 10_000, 1_000
    loop_runs = 5 if args.quick else 20
    batched, loop, ok = batched_vs_loop(runs, nsteps, loop_runs)
    print(f"\nBatched PerturbedGD, Himmelblau, {runs:,} runs × {nsteps:,} steps")
    print(f"{'mode':<44}{'seconds':>10}")
    print(f"{'batched (one (B, 2) parameter)':<44}{batched:>10.2f}")
    label = f"python loop (measured {loop_runs} runs, ×{runs // loop_runs})"
    print(f"{label:<44}{loop:>10.1f}")
    print(f"speed-up: {loop / batched:.0f}×; fraction of the first 200 runs at a minimum: {ok:.2f}")


if __name__ == "__main__":
    main()
