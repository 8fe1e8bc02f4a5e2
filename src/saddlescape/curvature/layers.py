"""Per-layer (blockwise) curvature: λ_min, λ_max and the trace of each diagonal block of the
Hessian, one block per module or parameter group, in one call.

The block of parameters ``P`` is the Hessian of the loss restricted to ``P`` with every
other parameter held at the point: ``H_PP = E_Pᵀ H E_P``. Its products are those of the
whole operator on vectors supported on ``P`` (``E_P v``), read back on ``P``; so every
block shares the operator's snapshot, data, mode and method, and the products are exact.
Each block runs its own :func:`~saddlescape.curvature.lanczos` (both ends) and Hutch++
trace (:func:`~saddlescape.curvature.trace`, exact when the block is small enough for the
sketch to span it); a product costs what a product of the whole operator costs.

The blocks' spectra are not the spectrum of ``H``: by Cauchy interlacing
``λ_min(H) ≤ λ_min(H_PP)`` and ``λ_max(H_PP) ≤ λ_max(H)``, and the traces add up to
``tr(H)`` when the blocks cover every parameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, CurvatureError, check_int, check_positive
from ._progress import CurvatureProgress
from .lanczos import lanczos
from .operators import HessianOperator, SymmetricOperator
from .trace import trace

__all__ = ["LayerCurvature", "LayerSpectra", "layer_spectra", "plot_layer_spectra"]


@dataclass(frozen=True)
class LayerCurvature:
    """One diagonal block: its ``name``, the ``params`` it holds and their total ``size``;
    ``lambda_min``/``lambda_max`` with their Lanczos residuals; ``trace`` ± ``trace_error``
    (one standard error; 0 when exact); the ``hvps``, ``passes`` and ``seconds`` it cost."""

    name: str
    params: tuple[str, ...]
    size: int
    lambda_min: float
    lambda_max: float
    residual_min: float
    residual_max: float
    trace: float
    trace_error: float
    converged: bool
    hvps: int
    passes: int
    seconds: float


@dataclass(frozen=True)
class LayerSpectra:
    """The blocks in parameter order, with the total cost; ``by`` says how they were cut."""

    layers: tuple[LayerCurvature, ...]
    by: str
    hvps: int
    passes: int
    seconds: float

    def __getitem__(self, name: str) -> LayerCurvature:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no block named {name!r}; blocks: {[x.name for x in self.layers]}")

    def __len__(self) -> int:
        return len(self.layers)

    def table(self) -> str:
        """A plain-text table, one row per block."""
        rows = [("block", "size", "λ_min", "λ_max", "trace", "HVPs")]
        for x in self.layers:
            trace_text = f"{x.trace:.4g}" + (f" ± {x.trace_error:.1g}" if x.trace_error else "")
            rows.append(
                (x.name, str(x.size), f"{x.lambda_min:.4g}", f"{x.lambda_max:.4g}", trace_text,
                 str(x.hvps))
            )  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )


class _Block(SymmetricOperator):
    """``H_PP``: products of the whole operator on vectors supported on ``index``."""

    def __init__(self, op: HessianOperator, index: torch.Tensor) -> None:
        super().__init__(int(index.numel()), op.dtype, op.device)
        self._op, self._index = op, index.to(op.device)

    def _embed(self, V: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(self._op.shape[0], *V.shape[1:], dtype=V.dtype, device=V.device)
        full[self._index] = V
        return full

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._op.matvec(self._embed(v))[self._index]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._op.matmat(self._embed(V))[self._index]

    @property
    def passes(self) -> int:
        return self._op.passes


def _groups(op: HessianOperator, by: Any) -> tuple[str, dict[str, list[str]]]:
    names = op.param_names
    if not names:
        raise CurvatureError(
            "layer_spectra needs an operator of a model (HessianOperator.from_model)"
        )
    if isinstance(by, Mapping):
        groups: dict[str, list[str]] = {}
        seen: set[str] = set()
        for label, members in by.items():
            members = [members] if isinstance(members, str) else list(members)
            if not members:
                raise ConfigError(f"block {label!r} has no parameters")
            for m in members:
                if m not in names:
                    raise ConfigError(
                        f"block {label!r}: the operator has no parameter {m!r} (it has "
                        f"{names[:6]}{'…' if len(names) > 6 else ''})"
                    )
                if m in seen:
                    raise ConfigError(f"parameter {m!r} is in two blocks")
                seen.add(m)
            groups[str(label)] = members
        return "groups", groups
    if by == "parameter":
        return by, {n: [n] for n in names}
    if by == "module":
        groups = {}
        for n in names:
            module = n.rsplit(".", 1)[0] if "." in n else "(root)"
            groups.setdefault(module, []).append(n)
        return by, groups
    raise ConfigError(
        f"by must be 'module', 'parameter' or a dict of block name -> parameter names, got {by!r}"
    )


def layer_spectra(
    op: HessianOperator,
    by: str | Mapping[str, Sequence[str] | str] = "module",
    *,
    tol: float = 1e-3,
    max_hvps: int | None = None,
    trace_matvecs: int = 30,
    seed: int | None = 0,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> LayerSpectra:
    """λ_min, λ_max and the trace of each diagonal block of the Hessian ``op`` (built with
    :meth:`HessianOperator.from_model`), one block per module (``by="module"``: parameters
    grouped by the module that owns them), per parameter (``"parameter"``) or per named
    group (a dict ``{block name: [parameter names]}``).

    ``tol``, ``max_hvps``: as for :func:`~saddlescape.curvature.lanczos` (per block, both
    ends); ``trace_matvecs`` (≥ 4): products per block for Hutch++ (exact when the sketch
    spans the block, i.e. blocks of up to about ``trace_matvecs/3`` parameters);
    ``progress``/``callback``: as for ``lanczos``, once per block.

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    >>> X, y = torch.randn(16, 3).double(), torch.randint(0, 2, (16,))
    >>> op = HessianOperator.from_model(net, nn.CrossEntropyLoss(), (X, y))
    >>> spectra = layer_spectra(op, tol=1e-10, trace_matvecs=60)
    >>> [(x.name, x.size) for x in spectra.layers]
    [('0', 16), ('2', 10)]
    >>> H = torch.autograd.functional.hessian(
    ...     lambda t: nn.functional.cross_entropy(
    ...         torch.func.functional_call(net, op.unflatten(t), (X,)), y), op.point)
    >>> first = torch.linalg.eigvalsh(H[:16, :16])
    >>> abs(spectra["0"].lambda_max - first[-1].item()) < 1e-9
    True
    >>> abs(sum(x.trace for x in spectra.layers) - torch.trace(H).item()) < 1e-9
    True
    """
    if not isinstance(op, HessianOperator):
        raise CurvatureError(
            f"layer_spectra needs a HessianOperator of a model, got {type(op).__name__}"
        )
    check_positive("tol", tol)
    m = check_int("trace_matvecs", trace_matvecs, minimum=4)
    kind, groups = _groups(op, by)
    offsets: dict[str, int] = {}
    start = 0
    for name, size in zip(op.param_names, _sizes(op), strict=True):
        offsets[name] = start
        start += size
    sizes = dict(zip(op.param_names, _sizes(op), strict=True))
    t0, hvps0, passes0 = time.perf_counter(), op.hvps, op.passes
    layers = []
    for label, members in groups.items():
        t1, h1, p1 = time.perf_counter(), op.hvps, op.passes
        index = torch.cat(
            [torch.arange(offsets[n], offsets[n] + sizes[n], dtype=torch.long) for n in members]
        )
        block = _Block(op, index)
        ends = lanczos(
            block,
            k=1,
            which="both",
            tol=tol,
            max_hvps=max_hvps,
            seed=seed,
            progress=progress,
            callback=callback,
        )
        tr = trace(block, "hutch++", num_matvecs=min(m, max(4, 3 * block.shape[0])), seed=seed)
        layers.append(
            LayerCurvature(
                name=label,
                params=tuple(members),
                size=int(index.numel()),
                lambda_min=float(ends.eigenvalues[0]),
                lambda_max=float(ends.eigenvalues[-1]),
                residual_min=float(ends.residuals[0]),
                residual_max=float(ends.residuals[-1]),
                trace=tr.estimate,
                trace_error=tr.std_error,
                converged=ends.converged,
                hvps=op.hvps - h1,
                passes=op.passes - p1,
                seconds=time.perf_counter() - t1,
            )
        )
    return LayerSpectra(
        layers=tuple(layers),
        by=kind,
        hvps=op.hvps - hvps0,
        passes=op.passes - passes0,
        seconds=time.perf_counter() - t0,
    )


def _sizes(op: HessianOperator) -> list[int]:
    return [v.numel() for v in op.unflatten(torch.zeros(op.shape[0], dtype=op.dtype)).values()]


def plot_layer_spectra(spectra: LayerSpectra, *, log: bool = True) -> Any:
    """Each block's [λ_min, λ_max] as a bar from one end to the other (symmetric-log axis
    when ``log``, linear within 0.1 % of the largest eigenvalue), with its trace per
    parameter marked; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    n = len(spectra.layers)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * n + 2.5), 3.6), constrained_layout=True)
    xs = list(range(n))
    for x, layer in zip(xs, spectra.layers, strict=True):
        ax.plot([x, x], [layer.lambda_min, layer.lambda_max], color="#0072B2", lw=6,
                solid_capstyle="butt")  # fmt: skip
        ax.plot(x, layer.trace / layer.size, "o", color="#D55E00", ms=5)
    ax.plot([], [], color="#0072B2", lw=6, label="[λ_min, λ_max] of the block")
    ax.plot([], [], "o", color="#D55E00", label="trace / size (mean eigenvalue)")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(xs, [layer.name for layer in spectra.layers], rotation=45 if n > 6 else 0)
    ax.set_xlabel(f"block ({spectra.by})")
    ax.set_ylabel("Hessian eigenvalue of the block")
    if log:
        values = [abs(v) for x in spectra.layers for v in (x.lambda_min, x.lambda_max)]
        top = max(values, default=1.0) or 1.0
        ax.set_yscale("symlog", linthresh=1e-3 * top)  # linear within 0.1 % of the largest
        low = min(min(x.lambda_min for x in spectra.layers), 0.0)
        ax.set_ylim(low * 1.5 if low < 0 else -1e-3 * top, top * 1.5)
    ax.legend(fontsize="small", loc="best")
    return fig
