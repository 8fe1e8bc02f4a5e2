"""The arithmetic floor under issue 12's product targets: how many floating-point operations
and how many bytes of saved activations a Hessian-vector product needs, relative to a
gradient, on the models of ``benchmarks/scale.py`` — counted, not timed.

Counts are exact and machine-independent: ``torch.utils.flop_counter.FlopCounterMode`` sums
the matrix-multiply and convolution FLOPs of every kernel a computation runs (forward,
backward and double backward alike; elementwise ops are not counted, so the ratios are those
of the dense work that dominates a CPU's time), and ``saved_tensors_hooks`` sums the bytes
of distinct tensors autograd keeps for a later backward (the graph a product or a gradient
must hold at its peak; parameters and inputs excluded).

Printed per model, each for saddlescape's own ``HessianOperator`` (one batch, ``method``
"double_backward" and "forward_over_reverse"):

- one product / one gradient — issue 12 asks ≤ 2.0× in wall time;
- ``matmat`` of 4 columns / one product — issue 12 asks ≤ 2.5×;
- saved bytes of a product / of a gradient — issue 12 asks peak memory ≤ 1.5×.

Why a product cannot be cheaper, for a linear map ``y = W x`` (a convolution alike): the
gradient costs 3 matrix products (``Wx``; ``Wᵀ ∂y`` and ``∂y xᵀ``), the product adds their
directional derivatives along ``(ΔW, Δx)``: ``ΔW x + W Δx`` forward and ``ΔWᵀ ∂y + Wᵀ Δ∂y``,
``Δ∂y xᵀ + ∂y Δxᵀ`` backward — 6 more, ≈ 3× a gradient (the first layer saves the
``Δx = 0`` terms). A second column shares the primal 3 and adds 6: 4 columns ≈ (3 + 4·6) /
9 = 3× one. When time is arithmetic (a CPU, or a GPU kept busy), these ratios bound the wall
time from below whatever the automatic differentiation does.

The λ_min target (≥ 4× eigsh ``which="SA"``) meets a floor of another kind: products.
``--lmin`` trains the CNN ``--train-steps`` SGD steps (a trained point, |λ_min| ≪ λ_max),
runs saddlescape's Lanczos far past convergence (``tol`` 1e-7 relative to |λ_min|, the
reference) and prints, step by step, the Ritz value's true relative error, its residual
``‖Hy − θy‖/|θ|`` (the rule saddlescape and ARPACK stop on) and the Kato–Temple estimate
``‖r‖²/(δ̂·|θ|)``; then eigsh SA at tol 1e-3 on the same products. The Ritz value of the
Krylov space minimizes the Rayleigh quotient over it, so no method whose products start
from one vector is nearer λ_min after ``j`` products: the first ``j`` with a true error
≤ 1e-3 ("an oracle's stop") bounds every such method's speed-up over eigsh.

Run: ``.venv/bin/python benchmarks/floors.py`` (``--quick``: small models, seconds;
``--lmin``: the λ_min section too, about 3 minutes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from _tables import table
from saddlescape.curvature import HessianOperator
from scale import build


def flops(fn: Callable[[], Any]) -> int:
    """Matrix-multiply and convolution FLOPs of everything ``fn`` runs."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def saved_bytes(fn: Callable[[], Any], exclude: list[torch.Tensor]) -> int:
    """Bytes of distinct tensors autograd saves while ``fn`` runs (storage counted once;
    the tensors in ``exclude`` — parameters, inputs — not at all)."""
    seen = {t.untyped_storage().data_ptr() for t in exclude}
    alive: list[Any] = []  # held, so that a freed storage's address is not counted as seen
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            alive.append(storage)
            total += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def measure(kind: str, n: int, quick: bool) -> list[list[str]]:
    model, X, y = build(kind, 1.0, n, quick)
    loss = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    halves = [(X[: n // 2], y[: n // 2]), (X[n // 2 :], y[n // 2 :])]
    exclude = [*params, X, y, *(t for b in halves for t in b)]
    gen = torch.Generator().manual_seed(0)

    def gradient() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(loss(model(X), y), params)

    grad_flops, grad_bytes = flops(gradient), saved_bytes(gradient, exclude)
    rows = [
        [kind, "gradient (plain torch)", float(grad_flops), "1.00", grad_bytes / 2**20, "1.00", ""]
    ]

    def row(what: str, fl: int, held: int | None, note: str = "") -> None:
        rows.append(
            [
                kind,
                what,
                float(fl),
                f"{fl / grad_flops:.2f}",
                "—" if held is None else held / 2**20,
                "—" if held is None else f"{held / grad_bytes:.2f}",
                note,
            ]
        )

    for method in ("double_backward", "forward_over_reverse"):
        # two batches: every product rebuilds the graph, as on streamed data
        op = HessianOperator.from_model(model, loss, halves, method=method)
        v = torch.randn(op.shape[0], generator=gen)
        V = torch.randn(op.shape[0], 4, generator=gen)
        one, four = flops(partial(op.matvec, v)), flops(partial(op.matmat, V))
        row(f"one product, streamed ({method})", one, None, f"matmat of 4: {four / one:.2f}× one")
    # one batch: the first product builds the first backward's graph (held at the peak; torch.func
    # refuses saved-tensor hooks, so bytes for double backward only), later ones reuse it
    # (``at`` gives an operator at the same point that has built nothing yet: construction's
    # own checks, which run a forward pass of their own and free it, stay out of the count)
    op = HessianOperator.from_model(model, loss, (X, y), method="double_backward").at(
        torch.nn.utils.parameters_to_vector(params).detach()
    )
    v = torch.randn(op.shape[0], generator=gen)
    held = saved_bytes(partial(op.matvec, v), exclude)
    rows[1][4:6] = [held / 2**20, f"{held / grad_bytes:.2f}"]
    row("a later product, graph kept (double_backward)", flops(lambda: op.matvec(v)), None)
    return rows


def lmin_floor(train_steps: int, quick: bool) -> None:
    """Products Lanczos needs for λ_min to 1e-3 by each stop rule, and eigsh SA's."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh

    from saddlescape.curvature import lanczos

    model, X, y = build("cnn", 1.0, 64 if quick else 1024, quick, steps=train_steps)
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y))
    steps: list[tuple[float, float, float]] = []

    def record(theta: torch.Tensor, residuals: torch.Tensor, scale: float) -> bool:
        i = int(torch.argmin(theta))
        spread = torch.sort(theta).values
        gap = float(spread[1] - spread[0]) if len(spread) > 1 else float("nan")
        steps.append((float(theta[i]), float(residuals[i]), gap))
        return False

    budget = 40 if quick else 70
    ref = lanczos(
        op,
        which="smallest",
        tol=1e-7,
        relative_to="eigenvalue",
        max_hvps=budget,
        seed=0,
        stop=record,
    )
    lam = float(ref.eigenvalues[0])
    rows = []
    first: dict[str, int] = {}
    for j, (theta, res, gap) in enumerate(steps, start=1):
        error, resid, kato = (
            abs(theta - lam) / abs(lam),
            res / abs(theta),
            res * res / gap / abs(theta),
        )
        for name, value in (
            ("true error (an oracle's stop)", error),
            ("Kato–Temple estimate", kato),
            ("residual (saddlescape's and ARPACK's rule)", resid),
        ):
            if value <= 1e-3:
                first.setdefault(name, j)
        rows.append([j, theta, error, resid, kato])
    table(
        f"λ_min of the CNN after {train_steps} SGD steps, step by step (reference {lam:.8g} "
        f"after {ref.hvps} products, error bound {float(ref.error_bounds[0]):.1e})",
        ["products", "Ritz value", "true rel. error", "residual/|θ|", "Kato–Temple/|θ|"],
        rows,
    )
    counter = [0]

    def matvec(x: np.ndarray) -> np.ndarray:
        counter[0] += 1
        return op.to_scipy().matvec(x)

    A = LinearOperator(op.shape, matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(op.shape[0])
    (value,) = eigsh(A, k=1, which="SA", tol=1e-3, v0=v0, return_eigenvectors=False)
    rows = [[name, j, f"{counter[0] / j:.2f}×"] for name, j in first.items()]
    rows.append(["eigsh SA, tol 1e-3", counter[0], f"error {abs(value - lam) / abs(lam):.1e}"])
    table(
        "products to λ_min within 1e-3 (relative)",
        ["stop rule", "products", "eigsh's products ÷ these"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models and batch")
    parser.add_argument("--n", type=int, default=256, help="batch size (counts scale with it)")
    parser.add_argument("--lmin", action="store_true", help="also the λ_min floor (minutes)")
    parser.add_argument("--train-steps", type=int, default=300, help="SGD steps before λ_min")
    args = parser.parse_args()
    n = 16 if args.quick else args.n
    print(f"# floors — {datetime.date.today()} — torch {torch.__version__}")
    rows: list[list[str]] = []
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention has no double backward
        for kind in ("cnn", "transformer"):
            rows += measure(kind, n, args.quick)
    table(
        f"FLOPs and saved bytes relative to a gradient (batch {n})",
        [
            "model",
            "computation",
            "FLOPs",
            "× gradient",
            "saved MiB (1 batch)",
            "× gradient",
            "4 columns",
        ],
        rows,
    )
    if args.lmin:
        lmin_floor(args.train_steps, args.quick)


if __name__ == "__main__":
    main()
