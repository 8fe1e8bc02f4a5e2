"""Curvature at scale (GitHub issue 12): saddlescape vs PyHessian vs curvlinops + scipy eigsh vs
hessian-eigenthings on a ResNet-style CNN with BatchNorm (~309k parameters; ``--width 1.8``
gives ~1.0M), on synthetic 3×32×32 images (N = 1,024), and on a small TransformerEncoder
classifier.

Tasks, each measured side by side in one run (contenders interleaved round by round, the
median of ``--repeat`` rounds reported):

- products: one Hessian-vector product vs one gradient (plain torch, same data), on one
  batch of 1,024 and streamed from a ``DataLoader`` (4 batches of 256); 4 products in one
  pass (``matmat``) vs one; peak memory of each (sampled RSS growth on the CPU,
  ``torch.cuda.max_memory_allocated`` growth on CUDA);
- λ_max to 1e-3 (accuracy verified against a reference, not the peers' own stop rules);
- top-5 to 1e-3 (saddlescape's default — one vector plus a search for copies —, block
  Lanczos with ``block_size=5``, and ``block_size=1``; eigsh on saddlescape's own products);
- λ_min to 1e-3 of |λ_min| (saddlescape vs eigsh ``which="SA"`` on the same products);
- ``--ranks 2``: products on 2 gloo ranks (one torch thread each, half the data each) vs one
  process over all the data.

The reference eigenvalues come from a tight saddlescape Lanczos run on the same operator
(``--ref-tol``, residual-based error bounds printed). On the CPU it uses float32 products:
float64 convolution products cost 15–25× float32 ones on this machine (no oneDNN float64
kernels), and float32 products carry ~1e-7·‖H‖ of noise, far below the 1e-3 targets. With
``--ref-float64`` (the default on CUDA) the reference is a float64 copy of the model at tol
1e-10.

Peers that are not installed (``make bench-install``) or fail on a model are skipped with the
reason printed. All models are evaluated in eval mode (BatchNorm on running statistics):
PyHessian forces it. Attention runs on the math kernel for every contender.

``OMP_WAIT_POLICY=PASSIVE`` is set before torch is imported (unless already set): with the
default active waiting, OpenMP threads spin between the many small kernels of a product and
steal the CPU from the other rank or from the other jobs of a shared machine. Torch threads:
2 (``--threads``), 1 per rank with ``--ranks 2``.

Prints tables and PASS/FAIL per target; never asserts. Run:
``.venv/bin/python benchmarks/scale.py`` (``--quick`` for a smoke run of a few seconds).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import copy
import ctypes
import datetime
import gc
import platform
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn

from _tables import table
from saddlescape.curvature import HessianOperator, lanczos

# PyHessian's loss.backward(create_graph=True) warns of a reference cycle (it is cleared)
warnings.filterwarnings("ignore", message="Using backward.. with create_graph=True")
TARGETS: list[tuple[str, bool | None, str]] = []
NUM_CLASSES = 10


# ---------------------------------------------------------------------- printing
def target(name: str, ok: bool | None, detail: str) -> None:
    TARGETS.append((name, ok, detail))


def skip(name: str, reason: str) -> None:
    print(f"[skip] {name}: {reason}")


# ---------------------------------------------------------------------- models and data
class Block(nn.Module):
    """A basic residual block (He et al. 2016): two 3×3 convolutions with BatchNorm."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def make_cnn(width: float) -> nn.Module:
    """ResNet-style: a stride-2 stem and a max-pool (32→8 pixels, as ResNet's stem), then
    one residual block per stage at 8, 4 and 2 pixels with c, 2c, 4c channels (c = 32·width:
    308,650 parameters at width 1, 1,008,804 at width 1.8), global average pool, linear."""
    c = max(4, round(32 * width))
    return nn.Sequential(
        nn.Conv2d(3, c, 3, 2, 1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.MaxPool2d(2),
        Block(c, c, 1),
        Block(c, 2 * c, 2),
        Block(2 * c, 4 * c, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * c, NUM_CLASSES),
    )


class TransformerClassifier(nn.Module):
    """Sequences (B, T, features) → linear embedding → TransformerEncoder → mean pool →
    linear classifier. No dropout (eval mode anyway)."""

    def __init__(self, features: int = 16, d_model: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 4 * d_model, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def make_data(kind: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic inputs whose class shifts their mean (learnable but not separable)."""
    g = torch.Generator().manual_seed(seed)
    shape = (3, 32, 32) if kind == "cnn" else (32, 16)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    protos = torch.randn(NUM_CLASSES, *shape, generator=g)
    X = torch.randn(n, *shape, generator=g) + 0.5 * protos[y]
    return X, y


def build(
    kind: str, width: float, n: int, quick: bool, steps: int = 20
) -> tuple[nn.Module, torch.Tensor, Any]:
    """The model after ``steps`` SGD steps (batch 128, lr 0.05, momentum 0.9, train mode:
    BatchNorm's running statistics are those of the data), in eval mode, and its data.
    More steps give a trained point where |λ_min| ≪ λ_max (the hard λ_min)."""
    torch.manual_seed(0)
    if kind == "cnn":
        model = make_cnn(width)
    else:
        model = TransformerClassifier(d_model=16 if quick else 64, layers=1 if quick else 2)
    X, y = make_data(kind, n, seed=1)
    loss = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(2)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (min(128, n),), generator=g)
        opt.zero_grad()
        loss(model(X[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model, X, y


# ---------------------------------------------------------------------- timing and memory
class Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


def interleaved(
    clock: Clock, contenders: dict[str, Callable[[], Any]], repeat: int, warm: bool = True
) -> dict[str, tuple[float, Any, list[float]]]:
    """Run the contenders round by round (the start rotating each round), ``repeat`` rounds;
    name -> (median seconds, last result, all seconds)."""
    names = list(contenders)
    if warm:
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {k: [] for k in names}
    last: dict[str, Any] = {}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sec, last[name] = clock(contenders[name])
            times[name].append(sec)
    return {k: (statistics.median(times[k]), last[k], times[k]) for k in names}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_memory(device: torch.device, fn: Callable[[], Any]) -> float:
    """Peak memory growth (MB) while ``fn`` runs: on CUDA ``max_memory_allocated`` above what
    was allocated before; on the CPU the resident set sampled every millisecond above its
    size before (freed heap returned to the system first with ``malloc_trim``)."""
    _trim()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak / 2**20
    base = _rss()
    top = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            top[0] = max(top[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out = fn()
        top[0] = max(top[0], _rss())
    finally:
        done.set()
        th.join()
    del out
    return (top[0] - base) / 2**20


# ---------------------------------------------------------------------- contenders
def counting(apply: Callable[[np.ndarray], np.ndarray], n: int) -> tuple[LinearOperator, list]:
    counter = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        counter[0] += 1
        return apply(x)

    return LinearOperator((n, n), matvec=mv, rmatvec=mv, dtype=np.float64), counter


def plain_gradient(model: nn.Module, loss: nn.Module, batches: Any, n_total: int) -> Callable:
    """One gradient of the mean loss over all batches, the way a training loop takes it."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> list[torch.Tensor]:
        grads = [torch.zeros_like(p) for p in params]
        for xb, yb in batches:
            gs = torch.autograd.grad(loss(model(xb), yb) * (len(yb) / n_total), params)
            for acc, gb in zip(grads, gs, strict=True):
                acc.add_(gb)
        return grads

    return run


class Peers:
    """The peers that import, with the reason for each that does not."""

    def __init__(self, wanted: set[str]) -> None:
        self.mods: dict[str, Any] = {}
        for name, module in (
            ("pyhessian", "pyhessian"),
            ("curvlinops", "curvlinops"),
            ("eigenthings", "hessian_eigenthings"),
        ):
            if name not in wanted:
                skip(name, "not requested (--peers)")
                continue
            try:
                self.mods[name] = __import__(module)
            except Exception as exc:  # ImportError, or a broken install
                skip(
                    name,
                    f"cannot import {module} ({type(exc).__name__}: {exc}); "
                    "install with `make bench-install`",
                )

    def __contains__(self, name: str) -> bool:
        return name in self.mods


_PYHESSIAN_HVP: dict[str, Callable[..., Any]] = {}


def pyhessian_counted(model: nn.Module, loss: nn.Module, data: Any, device: torch.device):
    """A PyHessian ``hessian`` object whose products are counted (``obj.hvps``)."""
    ph = sys.modules["pyhessian.hessian"]  # the package's `hessian` is the class

    counter = [0]
    original = _PYHESSIAN_HVP.setdefault("hvp", ph.hessian_vector_product)

    def counted(gradsH, params, v):
        counter[0] += 1
        return original(gradsH, params, v)

    ph.hessian_vector_product = counted  # PyHessian calls the module-level name
    kwargs = {"dataloader": data} if not isinstance(data, tuple) else {"data": data}
    obj = ph.hessian(model, loss, cuda=device.type == "cuda", **kwargs)
    model.zero_grad(set_to_none=True)  # PyHessian's backward(create_graph=True) filled .grad
    obj.counter = counter
    return obj


# ---------------------------------------------------------------------- the benchmark
class Bench:
    def __init__(
        self, args: argparse.Namespace, name: str, kind: str, width: float, peers: Peers
    ) -> None:
        self.args, self.kind, self.peers = args, name, peers
        self.device = torch.device(args.device)
        self.dtype = getattr(torch, args.dtype)
        self.clock = Clock(self.device)
        model, X, y = build(kind, width, args.n, args.quick, args.train_steps)
        self.model = model.to(self.device, self.dtype)
        self.X, self.y = X.to(self.device, self.dtype), y.to(self.device)
        self.loss = nn.CrossEntropyLoss()
        self.n = sum(p.numel() for p in model.parameters())
        self.batch = (self.X, self.y)
        bs = max(1, args.n // 4)
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(self.X, self.y), batch_size=bs, shuffle=False
        )
        self.batches = list(self.loader)
        name = "ResNet-style CNN" if kind == "cnn" else "TransformerEncoder classifier"
        self.title = f"{name}, {self.n:,} parameters"
        print(
            f"\n# {self.title} ({kind}, width {width:g}), N = {args.n}, {args.dtype}, "
            f"{self.device.type}"
        )
        self.v = torch.randn(self.n, generator=torch.Generator().manual_seed(5)).to(
            self.device, self.dtype
        )
        self.ref: dict[str, Any] = {}

    def op(self, data: Any = None, **kw: Any) -> HessianOperator:
        return HessianOperator.from_model(
            self.model, self.loss, self.batch if data is None else data, **kw
        )

    def math_attention(self) -> contextlib.AbstractContextManager[Any]:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)

    # ------------------------------------------------------------------ products
    def products(self) -> None:
        with self.math_attention():  # peers build their graphs here too
            self._products()

    def _products(self) -> None:
        a, clock = self.args, self.clock
        gen = torch.Generator().manual_seed(6)
        V4 = torch.randn(self.n, 4, generator=gen).to(self.device, self.dtype)
        grad_one = plain_gradient(self.model, self.loss, [self.batch], a.n)
        grad_stream = plain_gradient(self.model, self.loss, self.loader, a.n)
        one = self.op()
        stream = self.op(self.loader)
        one.matvec(self.v)  # builds the retained graph once
        c: dict[str, Callable[[], Any]] = {
            "gradient, 1 batch (torch)": grad_one,
            "gradient, 4 streamed batches (torch)": grad_stream,
            "saddlescape HVP, 1 batch (retained graph)": lambda: one.matvec(self.v),
            "saddlescape HVP, 4 streamed batches": lambda: stream.matvec(self.v),
            "saddlescape 4 HVPs (matmat), 4 streamed batches": lambda: stream.matmat(V4),
        }
        fresh = {
            "gradient, 4 streamed batches (torch)": grad_stream,
            "saddlescape HVP, 4 streamed batches": lambda: self.op(self.loader).matvec(self.v),
            "saddlescape HVP, 1 batch (new operator)": lambda: self.op().matvec(self.v),
            "gradient, 1 batch (torch)": grad_one,
        }
        if "pyhessian" in self.peers:
            try:
                ph_one = pyhessian_counted(self.model, self.loss, self.batch, self.device)
                ph_stream = pyhessian_counted(self.model, self.loss, self.loader, self.device)
                vs = [
                    t.view_as(p)
                    for t, p in zip(
                        self.v.split([p.numel() for p in ph_one.params]), ph_one.params, strict=True
                    )
                ]
                ph = sys.modules["pyhessian.hessian"]

                c["PyHessian HVP, 1 batch (retained graph)"] = lambda: ph.hessian_vector_product(
                    ph_one.gradsH, ph_one.params, vs
                )
                c["PyHessian HVP, 4 streamed batches"] = lambda: ph_stream.dataloader_hv_product(vs)
                fresh["PyHessian HVP, 1 batch (new object)"] = lambda: ph.hessian_vector_product(
                    (o := pyhessian_counted(self.model, self.loss, self.batch, self.device)).gradsH,
                    o.params,
                    vs,
                )
            except Exception as exc:
                skip("PyHessian products", f"{type(exc).__name__}: {exc}")
        if "curvlinops" in self.peers:
            try:
                from curvlinops import HessianLinearOperator

                params = [p for p in self.model.parameters() if p.requires_grad]
                cl = HessianLinearOperator(
                    self.model, self.loss, params, self.batches, check_deterministic=False
                )
                c["curvlinops HVP, 4 batches"] = lambda: cl @ self.v
                c["curvlinops 4 HVPs (vmap), 4 batches"] = lambda: cl @ V4
                fresh["curvlinops HVP, 4 batches"] = lambda: cl @ self.v
            except Exception as exc:
                skip("curvlinops products", f"{type(exc).__name__}: {exc}")
        if "eigenthings" in self.peers:
            try:
                he = self.peers.mods["eigenthings"]
                he_op = he.HessianOperator(self.model, self.loader, he.supervised_loss(self.loss))
                c["eigenthings HVP, 4 streamed batches"] = lambda: he_op.matvec(self.v)
            except Exception as exc:
                skip("eigenthings products", f"{type(exc).__name__}: {exc}")
        ref = stream.matvec(self.v).double()
        with self.math_attention():
            res = interleaved(clock, self._guard(c), a.repeat)
            mem = {k: peak_memory(self.device, fn) for k, fn in self._guard(fresh).items()}
        t = {k: v[0] for k, v in res.items()}
        rows = []
        base = {k: t[k] for k in t if k.startswith("gradient")}
        for k, (sec, out, _) in res.items():
            gname = (
                "gradient, 1 batch (torch)"
                if "1 batch" in k
                else ("gradient, 4 streamed batches (torch)")
            )
            err = float("nan")
            if not k.startswith("gradient") and out is not None and "4 HVPs" not in k:
                if isinstance(out, tuple) and isinstance(out[0], float):
                    out = out[1]  # PyHessian's dataloader product: (vᵀHv, Hv)
                vec = (
                    out
                    if isinstance(out, torch.Tensor)
                    else torch.cat([o.reshape(-1) for o in out])
                )
                vec = vec.double().reshape(-1)
                err = float(torch.linalg.vector_norm(vec - ref) / torch.linalg.vector_norm(ref))
            rows.append([k, sec, sec / base[gname] if gname in base else float("nan"), err])
        mem_rows = [[k, v] for k, v in mem.items()]
        kind = "max_memory_allocated growth" if self.device.type == "cuda" else "RSS growth"
        table(
            f"{self.title}: products (median of {a.repeat} interleaved rounds; error vs "
            "saddlescape streamed, float64 norms)",
            ["contender", "seconds", "× gradient (same data)", "rel. diff"],
            rows,
        )
        table(
            f"{self.title}: peak memory of one call from a fresh start ({kind}, MB)",
            ["call", "peak MB"],
            mem_rows,
        )
        gs = t.get("gradient, 4 streamed batches (torch)")
        ps = t.get("saddlescape HVP, 4 streamed batches")
        p4 = t.get("saddlescape 4 HVPs (matmat), 4 streamed batches")
        if gs and ps:
            target(
                f"{self.kind}: one product on streamed batches ≤ 2.0× one gradient",
                ps / gs <= 2.0,
                f"{ps:.3f} s / {gs:.3f} s = {ps / gs:.2f}×",
            )
        mg = mem.get("gradient, 4 streamed batches (torch)")
        mp_ = mem.get("saddlescape HVP, 4 streamed batches")
        if mg and mp_:
            target(
                f"{self.kind}: peak memory of a streamed product ≤ 1.5× a gradient's",
                mp_ / mg <= 1.5,
                f"{mp_:.0f} MB / {mg:.0f} MB = {mp_ / mg:.2f}×",
            )
        if ps and p4:
            target(
                f"{self.kind}: 4 products in one pass ≤ 2.5× one product",
                p4 / ps <= 2.5,
                f"{p4:.3f} s / {ps:.3f} s = {p4 / ps:.2f}×",
            )
        pph = t.get("PyHessian HVP, 4 streamed batches")
        if ps and pph:
            print(
                f"streamed product: saddlescape {ps:.3f} s vs PyHessian {pph:.3f} s "
                f"({ps / pph:.2f}×)"
            )

    def _guard(self, c: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
        """Contenders that fail on a first try are dropped with the reason."""
        ok = {}
        for name, fn in c.items():
            try:
                fn()
                ok[name] = fn
            except Exception as exc:
                skip(name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        return ok

    # ------------------------------------------------------------------ reference
    def reference(self, which: str) -> float | torch.Tensor:
        a = self.args
        if which in self.ref:
            return self.ref[which]
        model, X = self.model, self.X
        dtype = "float64" if a.ref_float64 else a.dtype
        if a.ref_float64:
            model, X = copy.deepcopy(self.model).double(), self.X.double()
        tol = 1e-10 if a.ref_float64 else a.ref_tol
        rtol = 1e-10 if a.ref_float64 else a.ref_tol_min
        op = HessianOperator.from_model(model, self.loss, (X, self.y))
        with self.math_attention():
            if which == "top":
                r = lanczos(op, k=5, which="largest", tol=tol, max_hvps=400, seed=123)
            else:
                r = lanczos(
                    op,
                    k=1,
                    which="smallest",
                    tol=rtol,
                    relative_to="eigenvalue",
                    max_hvps=a.ref_max_hvps,
                    seed=123,
                )
        vals = r.eigenvalues
        bound = (r.error_bounds / vals.abs()).max()
        print(
            f"reference {which}: lanczos tol {tol if which == 'top' else rtol:g} on "
            f"{dtype} products, {r.hvps} HVPs, {r.seconds:.1f} s, converged {r.converged}, "
            f"values {[f'{x:.8g}' for x in vals.tolist()]}, relative error bound "
            f"≤ {float(bound):.1e}"
        )
        self.ref[which] = vals.flip(0) if which == "top" else float(vals[0])
        return self.ref[which]

    # ------------------------------------------------------------------ eigenvalues
    def _eig_contenders(self, task: str) -> dict[str, Callable[[], dict[str, Any]]]:
        """Each call builds its operator (the first gradient graph is part of the cost) and
        solves; returns values (descending for top-k), HVPs, passes."""
        c: dict[str, Callable[[], dict[str, Any]]] = {}

        def ours(**kw: Any) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                op = self.op()
                r = lanczos(op, seed=0, **kw)
                vals = r.eigenvalues.flip(0) if kw.get("which") == "largest" else r.eigenvalues
                return {"values": vals.tolist(), "hvps": r.hvps, "passes": op.passes}

            return run

        def scipy_eigsh(k: int, which: str) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                op = self.op()
                A, cnt = counting(op.to_scipy().matvec, self.n)
                v0 = np.random.default_rng(0).standard_normal(self.n)
                vals = eigsh(A, k=k, which=which, tol=1e-3, v0=v0, return_eigenvectors=False)
                vals = np.sort(vals)[::-1] if which == "LA" else np.sort(vals)
                return {"values": vals.tolist(), "hvps": cnt[0], "passes": op.passes}

            return run

        if task == "lmax":
            c["saddlescape lanczos tol 1e-3"] = ours(k=1, which="largest", tol=1e-3)
            c["eigsh LA tol 1e-3 (saddlescape products)"] = scipy_eigsh(1, "LA")
            if "pyhessian" in self.peers and "pyhessian" in self.args.eig_peers:
                for tol in self.args.pyhessian_tols:
                    c[f"PyHessian power iteration tol {tol:g}"] = self._pyhessian(tol, 1)
            if "curvlinops" in self.peers and "curvlinops" in self.args.eig_peers:
                c["curvlinops + eigsh LA tol 1e-3"] = self._curvlinops_eigsh(1, "LA")
            if "eigenthings" in self.peers and "eigenthings" in self.args.eig_peers:
                c["eigenthings lanczos 15 steps"] = self._eigenthings(1, 15, "LA")
        elif task == "top5":
            c["saddlescape lanczos k=5 default"] = ours(k=5, which="largest", tol=1e-3)
            c["saddlescape lanczos k=5 block 5"] = ours(
                k=5, which="largest", tol=1e-3, block_size=5
            )
            c["saddlescape lanczos k=5 block 1"] = ours(
                k=5, which="largest", tol=1e-3, block_size=1
            )
            c["eigsh k=5 LA tol 1e-3 (saddlescape products)"] = scipy_eigsh(5, "LA")
            if "eigenthings" in self.peers and "eigenthings-top5" in self.args.eig_peers:
                c["eigenthings lanczos k=5, 30 steps"] = self._eigenthings(5, 30, "LA")
        else:
            c["saddlescape lanczos smallest tol 1e-3 (rel. to λ)"] = ours(
                k=1, which="smallest", tol=1e-3, relative_to="eigenvalue"
            )
            c["eigsh SA tol 1e-3 (saddlescape products)"] = scipy_eigsh(1, "SA")
            if "lobpcg" in self.args.eig_peers:
                for block in (1, 4):
                    c[f"scipy lobpcg block {block} (saddlescape products)"] = self._lobpcg(block)
            if "shifted-power" in self.args.eig_peers:
                c["shifted power iteration (Neon2-style)"] = self._shifted_power()
            skip(
                "PyHessian λ_min",
                "its power iteration finds the largest-magnitude eigenvalues only",
            )
        return c

    def _lobpcg(self, block: int) -> Callable[[], dict[str, Any]]:
        """scipy's LOBPCG (Knyazev 2001) for λ_min, on saddlescape's products. Its stop
        rule is an absolute residual norm; it gets ``1e-3·|λ_min|`` from the reference (the
        residual saddlescape's relative rule ends with), which favours it."""
        from scipy.sparse.linalg import lobpcg

        def run() -> dict[str, Any]:
            op = self.op()
            A, cnt = counting(op.to_scipy().matvec, self.n)
            X = np.random.default_rng(0).standard_normal((self.n, block))
            tol = 1e-3 * abs(float(self.ref["min"]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "did not converge": the error column says
                vals, _ = lobpcg(
                    A, X, largest=False, tol=tol, maxiter=self.args.ref_max_hvps // block
                )
            return {"values": sorted(np.atleast_1d(vals).tolist()), "hvps": cnt[0],
                    "passes": op.passes}  # fmt: skip

        return run

    def _shifted_power(self) -> Callable[[], dict[str, Any]]:
        """λ_min as the top eigenvalue of ``c·I − H`` (``c`` = saddlescape's λ_max, its
        products counted), by power iteration until ``‖Hv − θv‖ ≤ 1e-3·|θ|`` (the rule
        saddlescape's λ_min stops on) or ``--ref-max-hvps`` products: the negative-curvature
        search of Neon2 (Allen-Zhu & Li 2018) without its Chebyshev acceleration."""

        def run() -> dict[str, Any]:
            op = self.op()
            top = lanczos(op, which="largest", tol=1e-3, seed=0)
            c, hvps = 1.001 * float(top.eigenvalues[-1]), top.hvps
            gen = torch.Generator().manual_seed(0)
            v = torch.randn(self.n, generator=gen, dtype=torch.float64)
            v /= torch.linalg.vector_norm(v)
            theta = 0.0
            while hvps < self.args.ref_max_hvps:
                hv = op.matvec(v).to(torch.float64)
                hvps += 1
                theta = float(v @ hv)
                if float(torch.linalg.vector_norm(hv - theta * v)) <= 1e-3 * abs(theta):
                    break
                w = c * v - hv
                v = w / torch.linalg.vector_norm(w)
            return {"values": [theta], "hvps": hvps, "passes": op.passes}

        return run

    def _pyhessian(self, tol: float, top_n: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            torch.manual_seed(0)
            obj = pyhessian_counted(self.model, self.loss, self.batch, self.device)
            vals, _ = obj.eigenvalues(maxIter=200, tol=tol, top_n=top_n)
            return {"values": sorted(vals, reverse=True), "hvps": obj.counter[0], "passes": 1}

        return run

    def _curvlinops_eigsh(self, k: int, which: str) -> Callable[[], dict[str, Any]]:
        from curvlinops import HessianLinearOperator

        def run() -> dict[str, Any]:
            params = [p for p in self.model.parameters() if p.requires_grad]
            cl = HessianLinearOperator(
                self.model, self.loss, params, [self.batch], check_deterministic=False
            ).to_scipy()
            A, cnt = counting(lambda x: np.asarray(cl @ x, dtype=np.float64), self.n)
            v0 = np.random.default_rng(0).standard_normal(self.n)
            vals = eigsh(A, k=k, which=which, tol=1e-3, v0=v0, return_eigenvectors=False)
            return {"values": sorted(vals.tolist(), reverse=True), "hvps": cnt[0], "passes": cnt[0]}

        return run

    def _eigenthings(self, k: int, steps: int, which: str) -> Callable[[], dict[str, Any]]:
        he = self.peers.mods["eigenthings"]

        def run() -> dict[str, Any]:
            op = he.HessianOperator(self.model, [self.batch], he.supervised_loss(self.loss))
            res = he.lanczos(op, k=k, max_iter=steps, which=which, seed=0, tol=1e-3)
            vals = sorted(np.asarray(res.eigenvalues, dtype=float).tolist(), reverse=True)
            return {"values": vals, "hvps": steps, "passes": steps}

        return run

    def eigen(self, task: str) -> None:
        a = self.args
        ref = self.reference("min" if task == "lmin" else "top")
        with self.math_attention():
            c = self._guard_timed(self._eig_contenders(task))
            repeat = a.repeat if task != "lmin" else a.repeat_lmin
            res = interleaved(self.clock, c, repeat, warm=False)

        def err(vals: list[float]) -> float:
            if task == "lmin":
                return abs(vals[0] - ref) / abs(ref)
            k = 1 if task == "lmax" else 5
            r = ref[:k].tolist()
            if len(vals) < k:
                return float("inf")
            return max(abs(x - y) / abs(y) for x, y in zip(vals[:k], r, strict=True))

        rows, summary = [], {}
        for name, (sec, out, times) in res.items():
            e = err(out["values"])
            summary[name] = (sec, e, out)
            shown = (
                out["values"][0]
                if task != "top5"
                else "; ".join(f"{x:.5g}" for x in out["values"][:5])
            )
            rows.append(
                [
                    name,
                    shown,
                    out["hvps"],
                    out["passes"],
                    sec,
                    e,
                    " ".join(f"{t:.2f}" for t in times),
                ]
            )
        title = {
            "lmax": "λ_max to 1e-3",
            "top5": "top-5 eigenvalues to 1e-3",
            "lmin": "λ_min to 1e-3 of |λ_min|",
        }[task]
        table(
            f"{self.title}: {title} (median of {len(next(iter(res.values()))[2])} "
            "interleaved rounds; each run builds its operator)",
            ["method", "value(s)", "HVPs", "passes", "seconds", "rel. error", "all seconds"],
            rows,
        )
        verified = {k: v for k, v in summary.items() if v[1] <= 1e-3}
        ours = [k for k in summary if k.startswith("saddlescape")]
        peers = {k: v for k, v in verified.items() if not k.startswith("saddlescape")}
        for k in ours:
            sec, e, out = summary[k]
            if peers:
                best = min(peers, key=lambda j: peers[j][0])
                print(
                    f"{k}: {sec:.2f} s, {sec / peers[best][0]:.2f}× the best verified peer "
                    f"({best}, {peers[best][0]:.2f} s)"
                )
        if task == "lmax":
            ph = {k: v for k, v in summary.items() if k.startswith("PyHessian")}
            ph_ok = {k: v for k, v in ph.items() if v[1] <= 1e-3}
            s = summary.get("saddlescape lanczos tol 1e-3")
            if s and ph_ok:
                best = min(ph_ok, key=lambda j: ph_ok[j][0])
                ok = s[1] <= 1e-3 and s[0] <= 0.8 * ph_ok[best][0]
                target(
                    f"{self.kind}: λ_max to a verified 1e-3 in ≤ 0.8× PyHessian's wall",
                    ok,
                    f"{s[0]:.2f} s ({s[2]['hvps']} HVPs, error {s[1]:.1e}) vs "
                    f"{best} {ph_ok[best][0]:.2f} s ({ph_ok[best][2]['hvps']} HVPs, error "
                    f"{ph_ok[best][1]:.1e}): {s[0] / ph_ok[best][0]:.2f}×",
                )
            elif s:
                target(
                    f"{self.kind}: λ_max to a verified 1e-3 in ≤ 0.8× PyHessian's wall",
                    None,
                    "no PyHessian run reached a verified 1e-3 (or PyHessian not installed)",
                )
            for k, v in ph.items():
                if s:
                    print(f"vs {k} (its own stop rule, error {v[1]:.1e}): {s[0] / v[0]:.2f}×")
        elif task == "top5":
            e = summary.get("eigsh k=5 LA tol 1e-3 (saddlescape products)")
            for k in (
                "saddlescape lanczos k=5 default",
                "saddlescape lanczos k=5 block 5",
                "saddlescape lanczos k=5 block 1",
            ):
                s = summary.get(k)
                if s and e:
                    target(
                        f"{self.kind}: top-5 to 1e-3 ({k.split('k=5 ')[1]}) ≤ 0.6× eigsh's wall",
                        s[1] <= 1e-3 and s[0] <= 0.6 * e[0],
                        f"{s[0]:.2f} s ({s[2]['hvps']} HVPs, {s[2]['passes']} passes, error "
                        f"{s[1]:.1e}) vs {e[0]:.2f} s ({e[2]['hvps']} HVPs, error "
                        f"{e[1]:.1e}): {s[0] / e[0]:.2f}×",
                    )
        else:
            s = summary.get("saddlescape lanczos smallest tol 1e-3 (rel. to λ)")
            e = summary.get("eigsh SA tol 1e-3 (saddlescape products)")
            if s and e:
                target(
                    f"{self.kind}: λ_min to 1e-3 of |λ_min| ≥ 4× faster than eigsh SA",
                    s[1] <= 1e-3 and e[0] / s[0] >= 4.0,
                    f"{s[0]:.1f} s ({s[2]['hvps']} HVPs, error {s[1]:.1e}) vs {e[0]:.1f} s "
                    f"({e[2]['hvps']} HVPs, error {e[1]:.1e}): {e[0] / s[0]:.2f}× faster",
                )

    def _guard_timed(self, c: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
        """Like _guard, but keeps the first run as the first round's result (runs are
        expensive); a contender that raises is dropped with the reason."""
        return {k: self._safe(k, fn) for k, fn in c.items()}

    def _safe(self, name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        failed: list[str] = []

        def run() -> Any:
            if failed:
                return {"values": [float("nan")] * 5, "hvps": 0, "passes": 0}
            try:
                return fn()
            except Exception as exc:
                failed.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                skip(name, failed[0])
                return {"values": [float("nan")] * 5, "hvps": 0, "passes": 0}

        return run

    def profile(self) -> None:
        import cProfile
        import pstats

        for label, kw in (("λ_max", {"k": 1}), ("top-5", {"k": 5})):
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            op = self.op()
            r = lanczos(op, which="largest", tol=1e-3, seed=0, **kw)
            prof.disable()
            total = time.perf_counter() - t0
            print(
                f"\n## cProfile of saddlescape {label} ({r.hvps} HVPs, {op.passes} passes, "
                f"{total:.2f} s)"
            )
            st = pstats.Stats(prof)
            st.sort_stats("tottime").print_stats(10)


# ---------------------------------------------------------------------- distributed
def _rank_main(
    rank: int, args: argparse.Namespace, kind: str, width: float, init: str, out: str
) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    try:
        model, X, y = build(kind, width, args.n, args.quick, args.train_steps)
        loss = nn.CrossEntropyLoss()
        batches = list(zip(X.chunk(4), y.chunk(4), strict=True))
        op = HessianOperator.from_model(model, loss, batches[rank::2], distributed=True)
        v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(5))
        for _ in range(1 + args.ranks_warmup):  # a fresh process: warm its allocator
            hv = op.matvec(v)
        times = []
        for _ in range(args.ranks_products):
            dist.barrier()
            t0 = time.perf_counter()
            hv = op.matvec(v)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            torch.save({"times": times, "hv": hv}, out)
        dist.barrier()  # no rank tears the file store down while another still reads it
    finally:
        dist.destroy_process_group()
    # torch 2.13's gloo backend can abort at interpreter exit ("terminate called without an
    # active exception") once its work is done: leave without running C++ destructors
    os._exit(0)


def distributed(args: argparse.Namespace, kind: str, width: float) -> None:
    import torch.multiprocessing as mp

    model, X, y = build(kind, width, args.n, args.quick, args.train_steps)
    loss = nn.CrossEntropyLoss()
    batches = list(zip(X.chunk(4), y.chunk(4), strict=True))
    op = HessianOperator.from_model(model, loss, batches)
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(5))
    hv_one = op.matvec(v)
    n = op.shape[0]
    print(
        f"\n# {kind}, {n:,} parameters, N = {args.n} in 4 batches: 2 gloo ranks (2 batches "
        "each, 1 thread each) vs one process"
    )
    t_ranks: list[float] = []
    t_one: dict[int, list[float]] = {1: [], 2: []}
    diff = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            init, out = f"{tmp}/init{r}", f"{tmp}/out{r}.pt"
            mp.spawn(_rank_main, args=(args, kind, width, init, out), nprocs=2, join=True)
            got = torch.load(out)
            t_ranks += got["times"]
            diff = float(
                torch.linalg.vector_norm(got["hv"] - hv_one) / torch.linalg.vector_norm(hv_one)
            )
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for _ in range(args.ranks_warmup):  # as many untimed products as a rank
                    op.matvec(v)
                for _ in range(args.ranks_products):
                    t0 = time.perf_counter()
                    op.matvec(v)
                    t_one[threads].append(time.perf_counter() - t0)
    torch.set_num_threads(args.threads)
    med = statistics.median(t_ranks)
    m1, m2 = statistics.median(t_one[1]), statistics.median(t_one[2])
    table(
        f"{kind}: one product, streamed over 4 batches (median of {len(t_ranks)})",
        ["setup", "seconds", "speed-up vs 1 process × 1 thread", "vs 1 process × 2 threads"],
        [
            ["1 process, 1 thread", m1, 1.0, m2 / m1],
            ["1 process, 2 threads", m2, m1 / m2, 1.0],
            ["2 gloo ranks, 1 thread each", med, m1 / med, m2 / med],
        ],
    )
    print(f"2 ranks vs 1 process: relative difference of the products {diff:.1e}")
    target(
        f"{kind}: 2 gloo ranks ≥ 1.7× one process on products (both 1 thread a process)",
        m1 / med >= 1.7,
        f"{med:.3f} s vs {m1:.3f} s: {m1 / med:.2f}×",
    )
    target(
        f"{kind}: 2 gloo ranks ≥ 1.7× one process with 2 threads (same cores)",
        m2 / med >= 1.7,
        f"{med:.3f} s vs {m2:.3f} s: {m2 / med:.2f}×",
    )


# ---------------------------------------------------------------------- main
MODELS = {"cnn": ("cnn", None), "wide": ("cnn", 1.8), "transformer": ("transformer", 1.0)}
DEFAULT_TASKS = {
    "cnn": "products,lmax,top5,lmin",
    "wide": "products,lmax",
    "transformer": "products,lmax,top5",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models, N = 64")
    p.add_argument(
        "--ranks",
        type=int,
        default=1,
        choices=(1, 2),
        help="2: products on 2 gloo ranks vs one process (CPU only)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--width", type=float, default=1.0, help="CNN width (1: ~309k parameters)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    p.add_argument(
        "--repeat-lmin", type=int, default=1, help="rounds for λ_min (hundreds of products each)"
    )
    p.add_argument("--n", type=int, default=1024, help="number of examples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--models",
        default="cnn,wide,transformer",
        help="comma-separated: cnn (--width), wide (width 1.8), transformer",
    )
    p.add_argument(
        "--tasks", default=None, help="comma-separated products,lmax,top5,lmin (default: per model)"
    )
    p.add_argument(
        "--peers",
        default="pyhessian,curvlinops,eigenthings",
        help="comma-separated peers to run ('' for none)",
    )
    p.add_argument(
        "--pyhessian-tols",
        default="1e-3,1e-4",
        help="PyHessian stop tolerances to run (its rule is not an accuracy)",
    )
    p.add_argument(
        "--ref-tol",
        type=float,
        default=1e-6,
        help="reference Lanczos tolerance for the largest eigenvalues (relative to ‖H‖)",
    )
    p.add_argument(
        "--ref-tol-min",
        type=float,
        default=1e-4,
        help="reference tolerance for λ_min, relative to |λ_min|",
    )
    p.add_argument(
        "--eig-peers",
        default="pyhessian,eigenthings,lobpcg",
        help="peers in the eigenvalue tasks (products use all of --peers); add curvlinops "
        "(+ eigsh, slow products) or eigenthings-top5 (30 steps); lobpcg: scipy's LOBPCG "
        "(blocks 1 and 4) for λ_min; shifted-power: power iteration on c·I − H for λ_min "
        "(up to --ref-max-hvps products)",
    )
    p.add_argument("--ref-max-hvps", type=int, default=600)
    p.add_argument(
        "--train-steps", type=int, default=20, help="SGD steps before measuring (default 20)"
    )
    p.add_argument(
        "--ref-float64",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reference on a float64 copy at tol 1e-10 (default: on CUDA)",
    )
    p.add_argument("--ranks-products", type=int, default=5, help="products per rank round")
    p.add_argument(
        "--ranks-warmup",
        type=int,
        default=2,
        help="untimed products before each rank round and each one-process setting (a "
        "freshly spawned rank's first products are slower: its allocator is cold)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile saddlescape λ_max, top-5")
    args = p.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 64)
        args.width = min(args.width, 0.25)
        args.repeat = min(args.repeat, 1)
        args.ref_tol = max(args.ref_tol, 1e-5)
        if args.models == "cnn,wide,transformer":
            args.models = "cnn,transformer"
        args.ranks_products = min(args.ranks_products, 2)
        args.ranks_warmup = min(args.ranks_warmup, 1)
        args.ref_max_hvps = min(args.ref_max_hvps, 300)
    if args.ref_float64 is None:
        args.ref_float64 = args.device == "cuda"
    args.pyhessian_tols = [float(t) for t in args.pyhessian_tols.split(",") if t]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    threads = 1 if args.ranks == 2 else args.threads
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: nothing to measure")
        return
    load = os.getloadavg()
    print(
        f"# saddlescape scale benchmark — {datetime.datetime.now().isoformat(timespec='minutes')}"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, scipy "
        f"{scipy.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"CPUs, torch threads {threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}")
    peers: Peers | None = None
    for name in [m for m in args.models.split(",") if m]:
        kind, w = MODELS[name]
        width = args.width if w is None else w
        if args.quick and name == "wide":
            width = 0.45
        if args.ranks == 2:
            if args.device == "cuda":
                skip("--ranks 2", "runs on the CPU with gloo (NCCL needs one GPU per rank)")
            distributed(args, kind, width)
            continue
        if peers is None:
            peers = Peers({p for p in args.peers.split(",") if p})
        bench = Bench(args, name, kind, width, peers)
        tasks = (args.tasks or DEFAULT_TASKS[name]).split(",")
        for task in tasks:
            t0 = time.perf_counter()
            if task == "products":
                bench.products()
            else:
                bench.eigen(task)
            print(
                f"({task}: {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.2f})"
            )
        if args.profile and name == "cnn":
            bench.profile()

    print("\n## Targets (issue 12)")
    for name, ok, detail in TARGETS:
        flag = "N/A " if ok is None else ("PASS" if ok else "FAIL")
        print(f"{flag}  {name}: {detail}")


if __name__ == "__main__":
    main()
