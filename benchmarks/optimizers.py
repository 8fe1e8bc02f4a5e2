"""Optimizer overhead and batched-mode throughput, measured side by side.

1. One step (closure included) of PerturbedGD, GD and NoisyGD against torch.optim.SGD on
   the digits MLP (64-128-128-10, tanh, cross-entropy, full batch of 1,797, float32).
   Single steps alternate between optimizers (order rotated); we report the median
   per-step time, and separately each optimizer's own overhead (no forward/backward).
   Target: PerturbedGD ≤ 1.15× SGD.
   Also the Perturbed wrapper around torch.optim.SGD (issue 11).
2. Batched PerturbedGD: 10,000 initializations of Himmelblau × 1,000 steps as one (B, 2)
   parameter, against a Python loop over the runs (measured on a subset and extrapolated,
   as stated in the output). Target: < 10 s on 2 cores and ≥ 50× faster than the loop.
3. CubicNewton on Beale from (1, 1), 200 steps, gd and krylov sub-solvers (issue 11:
   the gd sub-solver took > 120 s; target < 5 s). Runs alternate, median of 3.

OMP_WAIT_POLICY=PASSIVE is set before torch loads (idle OpenMP threads do not spin on
the shared cores between the interleaved steps).

Run: .venv/bin/python benchmarks/optimizers.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics
import time

import torch

from saddlescape import optim, problems
from saddlescape.problems.networks import load_digits_tensors, make_loss, make_mlp


def step_costs(rounds: int) -> dict[str, float]:
    X, y = load_digits_tensors()
    loss_fn = make_loss("cross-entropy")
    makers = {
        "torch.optim.SGD": lambda ps: torch.optim.SGD(ps, lr=0.1),
        "PerturbedGD": lambda ps: optim.PerturbedGD(
            ps, lr=0.1, radius=1e-2, grad_threshold=1e-3, interval=50, seed=0
        ),
        "GD": lambda ps: optim.GD(ps, lr=0.1, seed=0),
        "NoisyGD": lambda ps: optim.NoisyGD(ps, lr=0.1, radius=1e-2, seed=0),
        "Perturbed(SGD)": lambda ps: optim.Perturbed(
            torch.optim.SGD(ps, lr=0.1), radius=1e-2, grad_threshold=1e-3, interval=50, seed=0
        ),
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
    order = list(runs)
    for r in range(rounds):  # one step each, order rotated every round
        for name in order[r % len(order) :] + order[: r % len(order)]:
            opt, closure = runs[name]
            t = time.perf_counter()
            opt.step(closure)
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def overheads(reps: int) -> dict[str, float]:
    """The optimizer's own cost per step: step() with gradients in place and a closure
    that returns a stored loss (no forward/backward)."""
    X, y = load_digits_tensors()
    net = make_mlp((64, 128, 128, 10), seed=0)
    loss = make_loss("cross-entropy")(net(X), y)
    loss.backward()
    loss = loss.detach()
    opts = {
        "torch.optim.SGD": torch.optim.SGD(net.parameters(), lr=0.0),
        "PerturbedGD": optim.PerturbedGD(net.parameters(), lr=1e-30, seed=0),
        "GD": optim.GD(net.parameters(), lr=1e-30),
        "NoisyGD": optim.NoisyGD(net.parameters(), lr=1e-30, seed=0),
        "Perturbed(SGD)": optim.Perturbed(torch.optim.SGD(net.parameters(), lr=0.0), seed=0),
    }
    times: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(reps):
        for name, opt in opts.items():
            t = time.perf_counter()
            for _ in range(50):
                opt.step(lambda: loss)
            times[name].append((time.perf_counter() - t) / 50)
    return {k: statistics.median(v) for k, v in times.items()}


def batched_vs_loop(runs: int, steps: int, loop_runs: int) -> tuple[float, float, float, float]:
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

    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        opt.step(closure)
    batched = time.perf_counter() - t
    cpu = time.process_time() - c
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
    return batched, cpu, loop, arrived / min(200, runs)


def _beale(z: torch.Tensor) -> torch.Tensor:
    x, y = z[0], z[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def cubic_beale(reps: int) -> dict[str, tuple[float, int, float]]:
    """Seconds (median of ``reps``), HVPs and the final distance to the minimum (3, 1/2)."""
    out: dict[str, list[float]] = {"gd": [], "krylov": []}
    info: dict[str, tuple[int, float]] = {}
    for _ in range(reps):
        for method in out:
            x = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
            opt = optim.CubicNewton([x], M=1.0, subproblem=method, seed=0)
            t = time.perf_counter()
            for _ in range(200):
                opt.step(lambda x=x: _beale(x))
            out[method].append(time.perf_counter() - t)
            dist = float((x.detach() - torch.tensor([3.0, 0.5], dtype=torch.float64)).norm())
            info[method] = (opt.hvps, dist)
    return {k: (statistics.median(v), *info[k]) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"{time.strftime('%F')}"
    )

    med = step_costs(30 if args.quick else 150)
    base = med["torch.optim.SGD"]
    over = overheads(5 if args.quick else 20)
    print("\nDigits MLP 64-128-128-10, full batch: one step incl. forward/backward (median of")
    print("single steps, optimizers interleaved), and the optimizer's own overhead per step")
    print(f"{'optimizer':<18}{'ms/step':>10}{'× SGD':>8}{'overhead µs':>14}")
    for name, v in med.items():
        print(f"{name:<18}{v * 1e3:>10.3f}{v / base:>8.3f}{over[name] * 1e6:>14.0f}")

    cubic = cubic_beale(3)
    print("\nCubicNewton, Beale from (1, 1), M = 1 (adaptive), 200 steps (median of 3)")
    print(f"{'sub-solver':<12}{'seconds':>10}{'HVPs':>10}{'|x - x*|':>12}")
    for name, (sec, hvps, dist) in cubic.items():
        print(f"{name:<12}{sec:>10.2f}{hvps:>10,}{dist:>12.1e}")

    runs, nsteps = 10_000, 1_000
    loop_runs = 5 if args.quick else 20
    batched, cpu, loop, ok = batched_vs_loop(runs, nsteps, loop_runs)
    print(f"\nBatched PerturbedGD, Himmelblau, {runs:,} runs × {nsteps:,} steps")
    print(f"{'mode':<44}{'seconds':>10}")
    print(f"{'batched (one (B, 2) parameter)':<44}{batched:>10.2f}")
    print(f"{'  its CPU time (all threads)':<44}{cpu:>10.2f}")
    label = f"python loop (measured {loop_runs} runs, ×{runs // loop_runs})"
    print(f"{label:<44}{loop:>10.1f}")
    print(f"speed-up: {loop / batched:.0f}×; fraction of the first 200 runs at a minimum: {ok:.2f}")


if __name__ == "__main__":
    main()
