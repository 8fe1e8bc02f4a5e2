"""Curvature engine benchmark: saddlescape vs curvlinops (+ scipy ARPACK) vs hessian-eigenthings.

Setup (GitHub issue 4): tanh MLP 64-128-128-10 (26,122 parameters), cross-entropy on all
1,797 scikit-learn digits (pixels/16) as one batch, after 200 full-batch SGD steps at
lr 0.5 from seed 0. One torch thread for every contender. The reference extreme eigenvalues
come from scipy's ``eigsh`` (ARPACK) at tol 1e-10 on float64 Hessian-vector products.

Prints tables (method, HVPs, seconds, relative error, ratios) and PASS/FAIL per target;
never asserts. Run: ``.venv/bin/python benchmarks/curvature.py``.
"""

from __future__ import annotations

import copy
import datetime
import platform
import statistics
import time
import traceback
from collections.abc import Callable

import numpy as np
import scipy
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from _tables import table
from saddlescape.curvature import HessianOperator, has_negative_curvature, lanczos, power_iteration
from saddlescape.problems.networks import fit_full_batch, load_digits_tensors, make_loss, make_mlp

torch.set_num_threads(1)
TARGETS: list[tuple[str, bool, str]] = []


def target(name: str, ok: bool, detail: str) -> None:
    TARGETS.append((name, ok, detail))


def median_time(fn: Callable[[], object], repeat: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_times(f: Callable[[], object], g: Callable[[], object], repeat: int = 25):
    """Median times of ``f`` and ``g`` measured alternately (fair under shared-CPU noise)."""
    f(), g()
    tf, tg = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t1 = time.perf_counter()
        g()
        tf.append(t1 - t0)
        tg.append(time.perf_counter() - t1)
    return statistics.median(tf), statistics.median(tg)


def counting_scipy(op_apply: Callable[[np.ndarray], np.ndarray], n: int):
    counter = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        counter[0] += 1
        return op_apply(x)

    return LinearOperator((n, n), matvec=mv, rmatvec=mv, dtype=np.float64), counter


def run_eigsh(A: LinearOperator, which: str, tol: float, seed: int = 0):
    v0 = np.random.default_rng(seed).standard_normal(A.shape[0])
    t0 = time.perf_counter()
    vals = eigsh(A, k=1, which=which, tol=tol, v0=v0, return_eigenvectors=False)
    return float(vals[0]), time.perf_counter() - t0


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def main() -> None:
    print(f"# saddlescape curvature benchmark — {datetime.date.today().isoformat()}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, scipy {scipy.__version__}"
        f", {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"
    )
    X, y = load_digits_tensors()
    model = make_mlp((64, 128, 128, 10), seed=0)
    fit_full_batch(model, X, y, loss="cross-entropy", lr=0.5, steps=200)
    loss = make_loss("cross-entropy")
    model64, X64 = copy.deepcopy(model).double(), X.double()
    n = sum(p.numel() for p in model.parameters())
    print(f"tanh MLP 64-128-128-10, {n} parameters, {len(X)} digits, one batch")

    # ---------------------------------------------------------------- reference (float64)
    op64 = HessianOperator.from_model(model64, loss, (X64, y))
    ref = {}
    rows = []
    for which in ("LA", "SA"):
        op64.reset_counter()
        val, sec = run_eigsh(op64.to_scipy(), which, tol=1e-10)
        ref[which] = val
        rows.append([f"eigsh {which} tol 1e-10 (float64 HVPs)", f"{val:.10g}", op64.hvps, sec])
    own = lanczos(op64, k=1, which="both", tol=1e-11, max_hvps=400, seed=1)
    rows.append(
        [
            "saddlescape lanczos both tol 1e-11 (float64)",
            f"{own.eigenvalues[0]:.10g} / {own.eigenvalues[1]:.10g}",
            own.hvps,
            own.seconds,
        ]
    )
    table("Reference", ["method", "eigenvalue", "HVPs", "seconds"], rows)
    lmax, lmin = ref["LA"], ref["SA"]
    print(f"reference λ_max = {lmax:.10g}, λ_min = {lmin:.10g}")

    # ---------------------------------------------------------------- HVP methods
    rows = []
    gen = torch.Generator().manual_seed(0)
    v64 = torch.randn(n, generator=gen, dtype=torch.float64)
    hv_ref = op64.matvec(v64)
    ratio_f32 = float("nan")
    for dtype, mdl, XX in ((torch.float32, model, X), (torch.float64, model64, X64)):
        params = list(mdl.parameters())

        def grad_once(mdl=mdl, XX=XX, params=params):
            return torch.autograd.grad(loss(mdl(XX), y), params)

        t_grad = median_time(grad_once)
        rows.append([str(dtype).removeprefix("torch."), "1 batch", "gradient", t_grad, 1.0, "-"])
        for batches in (1, 8):
            data = (XX, y) if batches == 1 else list(zip(XX.chunk(8), y.chunk(8), strict=True))
            for method in ("double_backward", "forward_over_reverse", "finite_difference"):
                op = HessianOperator.from_model(mdl, loss, data, method=method)
                v = v64.to(dtype)
                t = median_time(lambda op=op, v=v: op.matvec(v))
                err = float(torch.linalg.vector_norm(op.matvec(v).double() - hv_ref)) / float(
                    torch.linalg.vector_norm(hv_ref)
                )
                label = f"{batches} batch" + ("es" if batches > 1 else "")
                rows.append([str(dtype).removeprefix("torch."), label, method, t, t / t_grad, err])
                if dtype == torch.float32 and batches == 1 and method == "double_backward":
                    tg, th = paired_times(grad_once, lambda op=op, v=v: op.matvec(v))
                    ratio_f32 = th / tg
    table(
        "Hessian-vector product methods (median of 15; error vs float64 double backward)",
        ["dtype", "data", "method", "seconds", "× gradient", "rel. error"],
        rows,
    )
    target(
        "one HVP ≤ 2× one gradient (float32, retained graph, alternated median of 25)",
        ratio_f32 <= 2.0,
        f"{ratio_f32:.2f}×",
    )

    # ---------------------------------------------------------------- peers
    op32 = HessianOperator.from_model(model, loss, (X, y))
    peers: dict[str, object] = {}
    try:
        from curvlinops import HessianLinearOperator

        cl = HessianLinearOperator(
            model,
            torch.nn.CrossEntropyLoss(),
            [p for p in model.parameters() if p.requires_grad],
            [(X, y)],
            check_deterministic=False,
        ).to_scipy()
        peers["curvlinops"] = counting_scipy(lambda x: np.asarray(cl @ x, dtype=np.float64), n)
    except Exception as exc:
        print(f"curvlinops unavailable: {type(exc).__name__}: {exc}")
    try:
        import hessian_eigenthings as he

        he_op = he.HessianOperator(model, [(X, y)], he.supervised_loss(loss))
        peers["eigenthings"] = he
        peers["eigenthings_op"] = he_op
    except Exception as exc:
        print(f"hessian-eigenthings unavailable: {type(exc).__name__}: {exc}")
        traceback.print_exc()

    # ---------------------------------------------------------------- λ_max
    rows = []
    r = lanczos(op32, k=1, which="largest", tol=1e-3, seed=0)
    ours_max = r
    rows.append(
        ["saddlescape lanczos tol 1e-3", r.eigenvalue, r.hvps, r.seconds, rel(r.eigenvalue, lmax)]
    )
    p = power_iteration(op32, tol=1e-3, seed=0)
    rows.append(
        [
            "saddlescape power_iteration tol 1e-3",
            p.eigenvalue,
            p.hvps,
            p.seconds,
            rel(p.eigenvalue, lmax),
        ]
    )
    if "curvlinops" in peers:
        A, cnt = peers["curvlinops"]  # type: ignore[misc]
        val, sec = run_eigsh(A, "LA", tol=1e-3)
        rows.append(["curvlinops + eigsh LA tol 1e-3", val, cnt[0], sec, rel(val, lmax)])
    if "eigenthings" in peers:
        he, he_op = peers["eigenthings"], peers["eigenthings_op"]
        for steps in (15, 30):
            t0 = time.perf_counter()
            res = he.lanczos(he_op, k=1, max_iter=steps, which="LA", seed=0, tol=1e-3)
            val = float(res.eigenvalues[0])
            rows.append(
                [
                    f"eigenthings lanczos {steps} steps",
                    val,
                    steps,
                    time.perf_counter() - t0,
                    rel(val, lmax),
                ]
            )
        t0 = time.perf_counter()
        res = he.deflated_power_iteration(he_op, k=1, max_iter=100, tol=1e-3, seed=0)
        val = float(res.eigenvalues[0])
        its = int(np.asarray(res.iterations).reshape(-1)[0]) if res.iterations is not None else "?"
        rows.append(
            [
                "eigenthings power iteration tol 1e-3",
                val,
                its,
                time.perf_counter() - t0,
                rel(val, lmax),
            ]
        )
    table("λ_max (float32 model)", ["method", "λ_max", "HVPs", "seconds", "rel. error"], rows)
    target(
        "λ_max to 1e-3 relative in ≤ 15 HVPs",
        rel(ours_max.eigenvalue, lmax) <= 1e-3 and ours_max.hvps <= 15,
        f"{ours_max.hvps} HVPs, rel. error {rel(ours_max.eigenvalue, lmax):.1e}",
    )

    # ---------------------------------------------------------------- λ_min
    rows = []
    ours_min = lanczos(op32, k=1, which="smallest", tol=1e-3, relative_to="eigenvalue", seed=0)
    v = float(ours_min.eigenvalues[0])
    rows.append(
        [
            "saddlescape lanczos (float32 HVPs)",
            v,
            ours_min.hvps,
            ours_min.seconds,
            rel(v, lmin),
            1.0,
        ]
    )
    r64 = lanczos(op64, k=1, which="smallest", tol=1e-3, relative_to="eigenvalue", seed=0)
    v = float(r64.eigenvalues[0])
    rows.append(
        [
            "saddlescape lanczos (float64 HVPs)",
            v,
            r64.hvps,
            r64.seconds,
            rel(v, lmin),
            r64.seconds / ours_min.seconds,
        ]
    )
    cl_sec = float("nan")
    if "curvlinops" in peers:
        A, cnt = peers["curvlinops"]  # type: ignore[misc]
        cnt[0] = 0
        val, cl_sec = run_eigsh(A, "SA", tol=1e-3)
        rows.append(
            [
                "curvlinops + eigsh SA tol 1e-3",
                val,
                cnt[0],
                cl_sec,
                rel(val, lmin),
                cl_sec / ours_min.seconds,
            ]
        )
    if "eigenthings" in peers:
        he, he_op = peers["eigenthings"], peers["eigenthings_op"]
        for steps in (60, 120):
            t0 = time.perf_counter()
            res = he.lanczos(he_op, k=1, max_iter=steps, which="SA", seed=0, tol=1e-3)
            sec = time.perf_counter() - t0
            val = float(res.eigenvalues[0])
            rows.append(
                [
                    f"eigenthings lanczos {steps} steps",
                    val,
                    steps,
                    sec,
                    rel(val, lmin),
                    sec / ours_min.seconds,
                ]
            )
    table(
        "λ_min to 1e-3 relative (stop: residual ≤ 1e-3·|θ|)",
        ["method", "λ_min", "HVPs", "seconds", "rel. error", "time / ours"],
        rows,
    )
    ok = rel(float(ours_min.eigenvalues[0]), lmin) <= 1e-3 and ours_min.hvps <= 120
    target(
        "λ_min to 1e-3 relative in ≤ 120 HVPs",
        ok,
        f"{ours_min.hvps} HVPs, rel. error {rel(float(ours_min.eigenvalues[0]), lmin):.1e}",
    )
    target(
        "λ_min in ≤ 1/3 of curvlinops + eigsh wall time",
        ours_min.seconds <= cl_sec / 3,
        f"{ours_min.seconds:.2f} s vs {cl_sec:.2f} s ({cl_sec / ours_min.seconds:.1f}×)",
    )

    # ---------------------------------------------------------------- certificate
    tau = 1e-3 * ours_max.eigenvalue
    nc = has_negative_curvature(op32, tau=tau, seed=0)
    table(
        f"One-sided certificate: is λ_min < −τ, τ = 1e-3·λ_max = {tau:.3g}?",
        ["decision", "Ritz λ_min", "HVPs", "seconds", "HVPs incl. λ_max for τ"],
        [[nc.negative, nc.lambda_min, nc.hvps, nc.seconds, nc.hvps + ours_max.hvps]],
    )
    target(
        "certificate 'λ_min < −τ' decided in ≤ 60 HVPs",
        nc.negative is True and nc.hvps <= 60,
        f"{nc.hvps} HVPs",
    )

    print("\n## Targets")
    for name, ok, detail in TARGETS:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")


if __name__ == "__main__":
    main()
