"""The batch protocol: a model, a loss and data become one exactly weighted empirical risk.

Every operator that reads data goes through :class:`EmpiricalRisk` (the one data loop of
the curvature package, in the spirit of curvlinops' ``_empirical_risk.py``). It defines

    f(θ) = Σ_b c_b · ℓ_b(θ)

where ``ℓ_b`` is the loss of batch ``b`` exactly as the user's loss computes it, and the
coefficients ``c_b`` make ``f`` the loss of *one* batch holding all the data:

- ``reduction="sum"``: ``c_b = 1``;
- ``reduction="mean"``: ``c_b = D_b / Σ_b' D_b'`` where ``D_b`` is what the batch's mean
  divides by — the element count for ``MSELoss``/``BCEWithLogitsLoss``/…, the number of
  non-ignored targets or the total class weight ``Σ_i w[y_i]`` for
  ``CrossEntropyLoss``/``NLLLoss`` with ``weight``/``ignore_index``, the batch size for
  ``KLDivLoss(reduction="batchmean")``, and ``batch_size_fn(batch)`` for any other loss;
- a single batch: ``c = 1`` whatever the reduction.

A batch whose ``D_b`` is 0 (every target ignored) contributes nothing and is skipped; a
total of 0 is an error. Where the weighting cannot be determined (a plain function over
several batches without ``reduction=``, ``reduction="none"``, an unknown loss module's mean
without ``batch_size_fn``) construction fails with an error that names the fix.

**Forms of batches** (``data`` is one batch, or an iterable of batches read once):

1. ``loss_fn(outputs, targets)`` with batches ``(inputs, targets)``: ``inputs`` a tensor
   (``model(inputs)``), a tuple/list (``model(*inputs)``) or a mapping (``model(**inputs)``
   when the forward accepts its keys, else ``model(inputs)``); ``targets`` a tensor or
   anything ``loss_fn`` takes.
2. ``loss_fn=None``: the model computes the loss from the whole batch (the Hugging Face
   convention ``model(**batch).loss``): a mapping is passed as keyword arguments, a
   tuple/list as positional ones, anything else as one argument; the model returns a
   scalar tensor, an object with ``.loss`` or a mapping with ``"loss"``.
3. ``batch_loss(model, batch) -> scalar`` for any batch (hessian-eigenthings' form).

``model`` is a ``torch.nn.Module`` or a function ``model(params, inputs)`` of a dict of
tensors (``params=`` is then that dict, curvlinops' ``model_func`` convention).

**The state.** Construction copies every parameter and buffer the loss reads; every
evaluation uses that snapshot, so changing the model afterwards (its parameters, BatchNorm
statistics, train/eval flags) changes nothing. ``mode="eval"`` evaluates with every module
in eval mode (BatchNorm on its running statistics, dropout off); ``mode="train"`` in train
mode with BatchNorm on each batch's own statistics — the loss that training minimizes —
without ever updating running statistics; stochastic layers (dropout with ``p > 0``,
RReLU) are refused in train mode, and at construction the first batch's loss is computed
twice and must agree, which catches randomness the module check cannot see. Attention
(``scaled_dot_product_attention``) runs on its math kernel, the one whose derivatives are
twice differentiable.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._torch_gaps import exact_second_derivatives, graph_nodes
from ..errors import ConfigError, CurvatureError
from .hvp import is_point_leaf, point_leaf

__all__ = ["MODES", "REDUCTIONS", "EmpiricalRisk"]

MODES: tuple[str, ...] = ("eval", "train")
REDUCTIONS: tuple[str, ...] = ("mean", "sum")

Term = tuple[float, Callable[[torch.Tensor], torch.Tensor]]


# ---------------------------------------------------------------------- the loss's weighting
@dataclass(frozen=True)
class LossSpec:
    """What is known about how a loss reduces a batch.

    ``reduction``: "mean", "sum", "batchmean", "none" or None (unknown); ``kind``: how the
    mean's denominator follows from the targets ("numel", "class", "rows", "batch") or None;
    ``weight``/``ignore_index``: the class weighting of "class" losses; ``name`` for messages.
    """

    name: str
    reduction: str | None
    kind: str | None = None
    weight: torch.Tensor | None = None
    ignore_index: int = -100


_NUMEL_MODULES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.SoftMarginLoss,
    nn.PoissonNLLLoss,
)
_CLASS_MODULES = (nn.CrossEntropyLoss, nn.NLLLoss)
_FUNCTIONAL: dict[Callable[..., Any], str] = {
    F.mse_loss: "numel",
    F.l1_loss: "numel",
    F.smooth_l1_loss: "numel",
    F.huber_loss: "numel",
    F.binary_cross_entropy: "numel",
    F.binary_cross_entropy_with_logits: "numel",
    F.soft_margin_loss: "numel",
    F.poisson_nll_loss: "numel",
    F.cross_entropy: "class",
    F.nll_loss: "class",
    F.kl_div: "kl",
    F.multilabel_soft_margin_loss: "rows",
}


def loss_spec(loss_fn: Any) -> LossSpec:
    """Read the reduction (and class weighting) of a torch loss module, of a
    ``torch.nn.functional`` loss, or of a ``functools.partial`` of one with keyword
    arguments; anything else is an unknown callable (``reduction=None``)."""
    if isinstance(loss_fn, nn.Module):
        name = type(loss_fn).__name__
        red = getattr(loss_fn, "reduction", None)
        if isinstance(loss_fn, _NUMEL_MODULES):
            return LossSpec(name, red, "numel")
        if isinstance(loss_fn, _CLASS_MODULES):
            return LossSpec(name, red, "class", loss_fn.weight, int(loss_fn.ignore_index))
        if isinstance(loss_fn, nn.KLDivLoss):
            return LossSpec(name, red, "batch" if red == "batchmean" else "numel")
        if isinstance(loss_fn, nn.MultiLabelSoftMarginLoss):
            return LossSpec(name, red, "rows")
        return LossSpec(name, red if isinstance(red, str) else None)
    func, kwargs = loss_fn, {}
    if isinstance(loss_fn, functools.partial):
        func, kwargs = loss_fn.func, dict(loss_fn.keywords)
        if loss_fn.args or {"size_average", "reduce"} & kwargs.keys():
            return LossSpec(_name(loss_fn), None)
    kind = _FUNCTIONAL.get(func)
    if kind is None:
        return LossSpec(_name(loss_fn), None)
    red = kwargs.get("reduction", "mean")
    if kind == "kl":
        kind = "batch" if red == "batchmean" else "numel"
    if kind == "class":
        return LossSpec(
            _name(loss_fn), red, kind, kwargs.get("weight"), int(kwargs.get("ignore_index", -100))
        )
    return LossSpec(_name(loss_fn), red, kind)


def _name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return f"partial({_name(fn.func)})"
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _denominator(spec: LossSpec, targets: Any) -> float | None:
    """``D_b`` of a mean-reduced known loss, from the targets alone (None if unknown)."""
    if spec.kind is None or not isinstance(targets, torch.Tensor):
        return None
    t = targets
    if spec.kind == "numel":
        return float(t.numel())
    if spec.kind == "batch":
        return float(t.shape[0]) if t.ndim else 1.0
    if spec.kind == "rows":
        return float(t.shape[0]) if t.ndim == 2 else 1.0
    # "class": probabilities (soft labels) average over examples; class indices over the
    # non-ignored targets, each counted with its class weight
    if t.is_floating_point():
        return float(t.numel() // t.shape[1]) if t.ndim >= 2 else 1.0
    keep = t != spec.ignore_index
    if spec.weight is None:
        return float(keep.sum())
    return float(spec.weight.to(t.device)[t[keep]].sum(dtype=torch.float64))


def _check_outputs(spec: LossSpec, outputs: Any, targets: Any, denominator: float) -> None:
    """An element-wise mean divides by the *broadcast* size: refuse a broadcast that makes
    it differ from the targets' size (torch warns about it too)."""
    if spec.kind != "numel" or not isinstance(outputs, torch.Tensor):
        return
    if outputs.shape == targets.shape:
        return
    size = torch.broadcast_shapes(outputs.shape, targets.shape).numel()
    if size != denominator:
        raise CurvatureError(
            f"{spec.name}: outputs of shape {tuple(outputs.shape)} and targets of shape "
            f"{tuple(targets.shape)} broadcast to {size} elements, so the batch mean's "
            "weight is ambiguous; give targets the outputs' shape"
        )


# ---------------------------------------------------------------------- batches
def _leaves(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _leaves(v)


def leading_dim(obj: Any, what: str = "inputs") -> int:
    """The leading dimension shared by every tensor in ``obj`` (the default batch size)."""
    sizes = {int(t.shape[0]) if t.ndim else 1 for t in _leaves(obj)}
    if len(sizes) != 1:
        found = "no tensor" if not sizes else f"leading dimensions {sorted(sizes)}"
        raise CurvatureError(
            f"cannot tell the batch size of the {what} ({found}): pass batch_size_fn="
        )
    return sizes.pop()


def _is_leaf(obj: Any) -> bool:
    return isinstance(obj, (torch.Tensor, Mapping)) or (
        isinstance(obj, (tuple, list))
        and len(obj) > 0
        and all(isinstance(t, torch.Tensor) for t in obj)
    )


def _is_pair(obj: Any) -> bool:
    """``(inputs, targets)`` with tensor-like parts (not a list of two batches)."""
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and _is_leaf(obj[0])
        and isinstance(obj[1], (torch.Tensor, Mapping))
    )


def _check_iterable(data: Any, pairs: bool) -> bool:
    """Is ``data`` one batch (True) or an iterable of batches (False)? Refuses anything
    else by name."""
    if data is None:
        raise CurvatureError("data is missing: give a batch or an iterable of batches")
    if (pairs and _is_pair(data)) or (not pairs and isinstance(data, (torch.Tensor, Mapping))):
        return True
    if isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable):
        want = "an (inputs, targets) pair" if pairs else "a batch"
        raise CurvatureError(
            f"data must be {want} or an iterable of such batches, got {type(data).__name__}"
        )
    return False


def _validated(batches: Iterable[Any], pairs: bool, device: torch.device) -> Iterator[Any]:
    """The batches, each checked for its form and moved to ``device``."""
    for i, b in enumerate(batches):
        if pairs and not _is_pair(b):
            raise CurvatureError(
                f"batch {i} is not an (inputs, targets) pair of tensors (got "
                f"{type(b).__name__}); for other batches pass loss_fn=None (the model "
                "returns the loss) or batch_loss=fn(model, batch)"
            )
        yield _to_device(b, device)


def _to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor on ``device`` (no copy when it is there already)."""
    if isinstance(obj, torch.Tensor):
        if obj.device == device:
            return obj
        return obj.to(device, non_blocking=obj.is_pinned())
    if isinstance(obj, Mapping):
        return type(obj)({k: _to_device(v, device) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(_to_device(v, device) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _fingerprint(batch: Any) -> tuple[Any, ...]:
    """What identifies a batch cheaply: every tensor's shape and float64 sums of its
    values and squares (a reshuffled loader changes them almost surely)."""
    out: list[Any] = []
    for t in _leaves(batch):
        x = t.detach()
        if not (x.is_floating_point() or x.is_complex()):
            x = x.to(torch.float64)
        x = x.to(torch.float64) if not x.is_complex() else x.abs().to(torch.float64)
        out.append((tuple(t.shape), float(x.sum()), float((x * x).sum())))
    return tuple(out)


def _streamable(data: Any) -> bool:
    """Data that can be iterated again (a DataLoader or any re-iterable that is not
    already a list or tuple in memory)."""
    return not isinstance(data, (list, tuple, Iterator))


# ---------------------------------------------------------------------- evaluation context
_STOCHASTIC = (nn.modules.dropout._DropoutNd, nn.RReLU)


def _stochastic_in_train_mode(model: nn.Module) -> list[str]:
    found = []
    for name, m in model.named_modules():
        if isinstance(m, _STOCHASTIC) and (isinstance(m, nn.RReLU) or m.p > 0):
            found.append(f"{name or 'the model'} ({m})")
        elif isinstance(m, nn.MultiheadAttention) and m.dropout > 0:
            found.append(f"{name or 'the model'} (MultiheadAttention(dropout={m.dropout}))")
    return found


@contextlib.contextmanager
def _evaluation(modules: Sequence[nn.Module], mode: str, rnn_on_cuda: bool) -> Iterator[None]:
    """Every module in ``mode``; norm layers never touch their running statistics in train
    mode (``track_running_stats`` off: batch statistics, no update), nor spectral norms
    their power-iteration estimates; attention on the math kernel; each module's own flags
    restored afterwards."""
    saved = [(m, m.training) for m in modules]
    norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._NormBase)]
    tracked = [(m, m.track_running_stats) for m in norms]
    # in eval mode a BatchNorm with running statistics is a per-channel affine map: evaluate
    # it as one, whose second derivatives are far cheaper than batch_norm's general double
    # backward (31 % of a CNN's product in benchmarks/scale.py); only torch's own classes,
    # so that a subclass's forward is never bypassed
    folded = [
        m
        for m in norms
        if mode == "eval"
        and type(m) in _PLAIN_BATCH_NORMS
        and m.track_running_stats
        and m.running_mean is not None
        and "forward" not in vars(m)
    ]
    # spectral norm's power iteration updates its u, v estimates in place in train mode:
    # the snapshot's buffers would drift with every evaluation (successive products at one
    # point 0.035 apart); held at the snapshot's estimates, sigma = uᵀWv as in eval mode
    powers = _spectral_norms(modules)
    try:
        for m in modules:
            m.training = mode == "train"
        if mode == "train":
            for m in norms:
                m.track_running_stats = False
        for owner, _ in powers:
            owner.n_power_iterations = 0
        for m in folded:
            m.forward = types.MethodType(_affine_batch_norm, m)
        with contextlib.ExitStack() as stack:
            stack.enter_context(_math_attention())
            stack.enter_context(exact_second_derivatives())
            if rnn_on_cuda:  # cuDNN's RNN kernels have no double backward
                stack.enter_context(torch.backends.cudnn.flags(enabled=False))
            yield
    finally:
        for m, flag in saved:
            m.training = flag
        for m, flag in tracked:
            m.track_running_stats = flag
        for m in folded:
            vars(m).pop("forward", None)
        for owner, steps in powers:
            owner.n_power_iterations = steps


def _spectral_norms(modules: Sequence[nn.Module]) -> list[tuple[Any, int]]:
    """``(owner, n_power_iterations)`` of every spectral norm on ``modules``: the
    parametrization of ``nn.utils.parametrizations.spectral_norm`` (a module) and the
    forward pre-hook of the older ``nn.utils.spectral_norm``."""
    from torch.nn.utils.parametrizations import _SpectralNorm
    from torch.nn.utils.spectral_norm import SpectralNorm

    found: list[tuple[Any, int]] = []
    for m in modules:
        if isinstance(m, _SpectralNorm):
            found.append((m, m.n_power_iterations))
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                found.append((hook, hook.n_power_iterations))
    return found


_PLAIN_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _padding_rows(
    model: nn.Module | None, tensors: Sequence[torch.Tensor]
) -> list[tuple[str, torch.Tensor]]:
    """``(module name, flat indices of θ)`` of the ``padding_idx`` row of every Embedding
    and EmbeddingBag whose weight is in θ: rows torch's autograd holds constant (no gradient
    reaches them through the embedding) — unless another layer reads the same weight, which
    :meth:`HessianOperator.from_model` tells from a gradient that is not zero there."""
    if model is None:
        return []
    offsets, start = {}, 0
    for t in tensors:
        offsets[id(t)] = start
        start += t.numel()
    rows: dict[int, tuple[str, torch.Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.padding_idx is not None:
            if id(m.weight) in offsets:
                first = offsets[id(m.weight)] + m.padding_idx * m.embedding_dim
                label = f"{name or 'the model'} ({type(m).__name__}, padding_idx={m.padding_idx})"
                rows.setdefault(first, (label, torch.arange(first, first + m.embedding_dim)))
    return [rows[k] for k in sorted(rows)]


def _affine_batch_norm(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode batch norm as the affine map it is:
    ``(x − running_mean) · weight / √(running_var + eps) + bias`` per channel (dim 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = torch.rsqrt(self.running_var + self.eps)
    if self.weight is not None:
        scale = scale * self.weight
    y = (x - self.running_mean.view(shape)) * scale.view(shape)
    return y + self.bias.view(shape) if self.bias is not None else y


def _math_attention() -> contextlib.AbstractContextManager[Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


# ---------------------------------------------------------------------- the risk
class EmpiricalRisk:
    """``f(θ) = Σ_b c_b ℓ_b(θ)`` over the batches of ``data`` at a snapshot of the model
    (see the module docstring). Attributes: ``theta`` (the flat point), ``names`` and
    ``shapes`` (its parameters), ``terms`` (``[(c_b, ℓ_b)]``), ``mode``, ``reduction``,
    ``num_batches``, ``total`` (``Σ D_b`` for a mean, else None) and ``description``."""

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        loss_fn: Callable[..., torch.Tensor] | None,
        data: Any,
        *,
        params: Any = None,
        mode: str = "eval",
        reduction: str | None = None,
        batch_size_fn: Callable[[Any], float] | None = None,
        batch_loss: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        cache: bool | None = None,
        distributed: Any = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be 'eval' or 'train', got {mode!r}")
        if reduction is not None and reduction not in REDUCTIONS:
            raise ConfigError(
                f"reduction must be 'mean' or 'sum', got {reduction!r} (a loss with "
                "reduction='none' gives one value per example: reduce it)"
            )
        if batch_size_fn is not None and not callable(batch_size_fn):
            raise ConfigError("batch_size_fn must be a function of a batch")
        if batch_loss is not None:
            if loss_fn is not None:
                raise ConfigError("give loss_fn or batch_loss, not both")
            if not callable(batch_loss):
                raise ConfigError("batch_loss must be a function batch_loss(model, batch)")
        elif loss_fn is not None and not callable(loss_fn):
            raise ConfigError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.mode = mode
        self._batch_size_fn = batch_size_fn
        self._model = model
        self._module = model if isinstance(model, nn.Module) else None
        if self._module is None and not callable(model):
            raise CurvatureError(
                f"model must be a torch.nn.Module or a function model(params, inputs), "
                f"got {type(model).__name__}"
            )
        if self._module is None and batch_loss is not None:
            raise ConfigError("batch_loss(model, batch) needs a torch.nn.Module model")
        _check_substitutable(self._module)
        self.names, tensors = self._select(model, params)
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) > 1:
            raise CurvatureError(
                f"the parameters have different dtypes ({', '.join(sorted(map(str, dtypes)))}): "
                "the Hessian needs one dtype (convert the model, e.g. model.double())"
            )
        not_real = [
            f"{n!r} ({t.dtype})"
            for n, t in zip(self.names, tensors, strict=True)
            if not t.is_floating_point()
        ]
        if not_real:
            raise CurvatureError(
                f"the parameters must be real floating-point tensors, and {not_real[0]} is "
                "not: the Hessian here is over real parameters (keep a complex weight as two "
                "real parameters, its real and imaginary parts, or leave it out with params=)"
            )
        self.shapes = [t.shape for t in tensors]
        self._numels = [t.numel() for t in tensors]
        self.theta = torch.cat([t.detach().reshape(-1) for t in tensors])  # a copy
        self._frozen = self._snapshot(model)
        # version counters of the snapshot's tensors: an evaluation that updates one in
        # place (a running statistic of a custom layer) changes the state it is taken at
        self._versions = {n: t._version for n, t in self._frozen.items()}
        self._modules = list(self._module.modules()) if self._module is not None else []
        self.padding_rows = _padding_rows(self._module, tensors)
        self._rnn_on_cuda = self.theta.is_cuda and any(
            isinstance(m, nn.RNNBase) for m in self._modules
        )
        if mode == "train" and self._module is not None:
            found = _stochastic_in_train_mode(self._module)
            if found:
                raise CurvatureError(
                    "mode='train' would sample random masks in "
                    + ", ".join(found)
                    + ": the Hessian of a random loss is undefined; use mode='eval' or set "
                    "their p to 0"
                )

        # the form of the batches and how each batch's loss is computed
        self._loss_fn, self._batch_loss = loss_fn, batch_loss
        if batch_loss is not None:
            self._wrapped = (
                _BatchLoss(self._module, batch_loss),  # type: ignore[arg-type]
                {f"model.{k}": v for k, v in self._frozen.items()},
            )
        pairs = loss_fn is not None
        single = _check_iterable(data, pairs)
        if cache is not None and not isinstance(cache, bool):
            raise ConfigError(f"cache must be True, False or None, got {cache!r}")
        if cache is False and not single and not isinstance(data, (list, tuple)):
            if not _streamable(data):
                raise ConfigError(
                    "cache=False needs data that can be iterated again (a DataLoader, a "
                    "dataset); a one-shot iterator or generator is read once: pass a list, "
                    "or cache=True"
                )
        self.streamed = not single and cache is not True and _streamable(data)
        self._first: Callable[[torch.Tensor], Any] | None = None
        self._group = _process_group(distributed)
        spec = loss_spec(loss_fn) if pairs else LossSpec("the model's loss", None)
        if batch_loss is not None:
            spec = LossSpec(_name(batch_loss), None)
        self._spec = spec

        # the first pass: each batch's weight and fingerprint (batches held unless streamed)
        device = self.theta.device
        infos: list[tuple[float | None, int | Exception, tuple[Any, ...]]] = []
        batches: list[Any] = []
        first: tuple[int, Any] | None = None
        nonempty = False
        for i, b in enumerate(_validated([data] if single else data, pairs, device)):
            infos.append(self._batch_info(spec, b, i))
            nonempty = nonempty or any(t.numel() > 0 for t in _leaves(b))
            if not self.streamed:
                batches.append(b)
            elif first is None and infos[-1][0] != 0:
                first = (i, b)  # one batch held, for check_deterministic
        local_count = len(infos)
        if self._group is not None and local_count == 0:
            raise CurvatureError(
                f"rank {_rank(self._group)} has no data: every rank needs at least one batch"
            )
        count = int(self._all_sum([float(local_count)])[0])
        if count == 0:
            raise CurvatureError("data is empty: the Hessian of a loss needs at least one batch")
        if not self._all_sum([float(nonempty)])[0]:
            raise CurvatureError("data is empty: every batch has 0 examples")
        self.reduction = self._resolve_reduction(spec, reduction, count)
        denominators = self._denominators(spec, infos, count)
        self.num_batches = count
        self.total: float | None = None
        if count == 1:
            if denominators[0] == 0:
                raise CurvatureError(self._zero_weight_message(spec))
            coefs = [1.0]
        elif self.reduction == "sum":
            coefs = [1.0] * local_count
        else:
            total = self._all_sum([math.fsum(denominators)])[0]  # type: ignore[arg-type]
            if not total > 0:
                raise CurvatureError(self._zero_weight_message(spec))
            self.total = total
            coefs = [d / total for d in denominators]  # type: ignore[operator]
        # a batch that the mean gives weight 0 (all targets ignored) contributes nothing:
        # its own loss is 0/0
        self.terms: Sequence[Term]
        if self.streamed:
            prints = [f for _, _, f in infos]
            self.terms = _StreamedTerms(self, data, pairs, coefs, denominators, prints)
            if first is not None:
                self._first = self._term(first[1], denominators[first[0]])
        else:
            self.terms = [
                (c, self._term(b, d))
                for c, b, d in zip(coefs, batches, denominators, strict=True)
                if d != 0
            ]
        # the version counters of the batches held (a streamed loader yields new tensors at
        # every pass): a model that modifies its inputs in place changes them
        held = ([first[1]] if first is not None else []) if self.streamed else batches
        self._data_versions = [(t, t._version) for b in held for t in _leaves(b)]
        total_weight = self.total if self.reduction == "mean" and count > 1 else None
        self.description = self._describe(spec, count, total_weight)
        if self._group is not None:
            self.description += f", on {_world(self._group)} ranks"
            self._check_same_point()

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _select(model: Any, params: Any) -> tuple[list[str], list[torch.Tensor]]:
        if not isinstance(model, nn.Module):
            if not isinstance(params, Mapping) or not params:
                raise CurvatureError(
                    "a function model(params, inputs) needs params= a non-empty dict of "
                    "tensors (the point to take the Hessian at)"
                )
            for k, v in params.items():
                if not isinstance(v, torch.Tensor):
                    raise CurvatureError(f"params[{k!r}] is not a tensor")
            return list(params), list(params.values())
        named = dict(model.named_parameters())
        if params is None:
            chosen = [(n, p) for n, p in named.items() if p.requires_grad]
            if not chosen:
                raise CurvatureError("the model has no parameter that requires grad")
            return [n for n, _ in chosen], [p for _, p in chosen]
        if isinstance(params, (torch.Tensor, str, Mapping)):
            params = [params] if not isinstance(params, Mapping) else list(params)
        by_id = {id(p): n for n, p in named.items()}
        names: list[str] = []
        for p in params:
            if isinstance(p, str):
                if p not in named:
                    raise CurvatureError(f"the model has no parameter named {p!r}")
                name = p
            elif isinstance(p, torch.Tensor):
                if id(p) not in by_id:
                    raise CurvatureError(
                        f"a parameter of shape {tuple(p.shape)} does not belong to the model"
                    )
                name = by_id[id(p)]
            else:
                raise CurvatureError(f"params must be parameters or names, got {type(p).__name__}")
            if not named[name].requires_grad:
                raise CurvatureError(f"parameter {name!r} does not require grad")
            if name in names:
                raise CurvatureError(f"parameter {name!r} is listed twice")
            names.append(name)
        if not names:
            raise CurvatureError("params is empty: choose at least one parameter")
        return names, [named[n] for n in names]

    def _snapshot(self, model: Any) -> dict[str, torch.Tensor]:
        """Copies of every parameter outside θ and every buffer."""
        if not isinstance(model, nn.Module):
            return {}
        chosen = set(self.names)
        out = {n: p.detach().clone() for n, p in model.named_parameters() if n not in chosen}
        out.update({n: b.detach().clone() for n, b in model.named_buffers()})
        return out

    def _resolve_reduction(self, spec: LossSpec, given: str | None, num_batches: int) -> str:
        own = spec.reduction
        if own is not None and own not in ("mean", "sum", "batchmean"):
            raise CurvatureError(
                f"{spec.name} has reduction={own!r}: it returns one loss per element; use "
                "reduction='mean' or 'sum' (both are weighted exactly over batches)"
            )
        own_norm = "mean" if own == "batchmean" else own
        if given is not None and own_norm is not None and given != own_norm:
            raise ConfigError(
                f"reduction={given!r} contradicts {spec.name}'s own reduction {own!r}"
            )
        red = own_norm or given
        if red is None:
            if num_batches == 1:
                return "mean"  # one batch: the weighting does not matter
            raise CurvatureError(
                f"cannot weight {spec.name} over {num_batches} batches: say how it reduces "
                "a batch with reduction='mean' (an average over batch_size_fn(batch) terms, "
                "default the batch's leading dimension) or reduction='sum'"
            )
        return red

    def _batch_info(
        self, spec: LossSpec, batch: Any, i: int
    ) -> tuple[float | None, int | Exception, tuple[Any, ...]]:
        """``(D_b or None, leading dimension or why there is none, fingerprint)``."""
        d: float | None = None
        if self._batch_size_fn is not None:
            try:
                d = float(self._batch_size_fn(batch))
            except Exception as e:  # a user function: name it and the batch
                raise CurvatureError(f"batch_size_fn failed on batch {i}: {e}") from e
            if not (math.isfinite(d) and d >= 0):
                raise CurvatureError(
                    f"batch_size_fn returned {d} for batch {i}: need a finite count >= 0"
                )
        elif spec.kind is not None and self._loss_fn is not None:
            d = _denominator(spec, batch[1])
        inputs = batch[0] if self._loss_fn is not None else batch
        lead: int | Exception
        try:
            lead = leading_dim(inputs, f"inputs of batch {i}")
        except CurvatureError as e:
            lead = e
        return d, lead, _fingerprint(batch)

    def _denominators(
        self, spec: LossSpec, infos: list[tuple[float | None, int | Exception, Any]], count: int
    ) -> list[float | None]:
        """``D_b`` per (local) batch for a mean (None for a sum); ``count``: all batches."""
        if self.reduction == "sum":
            return [None] * len(infos)
        out: list[float | None] = []
        for d, lead, _ in infos:
            if d is None:
                if count == 1:
                    return [1.0]
                if spec.reduction is not None:  # a torch loss whose mean we cannot count
                    raise CurvatureError(
                        f"cannot weight the mean of {spec.name} over {count} batches: "
                        "pass batch_size_fn=(what each batch's mean divides by), or use "
                        "reduction='sum'"
                    )
                if isinstance(lead, Exception):
                    raise lead
                d = float(lead)
            out.append(d)
        return out

    # ------------------------------------------------------------------ distributed
    def _all_sum(self, values: list[float]) -> list[float]:
        """``values`` summed over the ranks (as they are without a process group)."""
        if self._group is None:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device(self._group))
        torch.distributed.all_reduce(t, group=self._group)
        return t.tolist()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over the ranks, in place (identity without a process group)."""
        if self._group is not None:
            torch.distributed.all_reduce(t, group=self._group)
        return t

    def _check_same_point(self) -> None:
        first = self.theta.clone()
        torch.distributed.broadcast(first, src=_global_rank(self._group, 0), group=self._group)
        same = torch.tensor([float(torch.equal(first, self.theta))], dtype=torch.float64)
        if not self._all_sum(same.tolist())[0] == _world(self._group):
            raise CurvatureError(
                "the model's parameters differ between ranks: every rank must hold the same "
                "point (broadcast them from rank 0, as DistributedDataParallel does)"
            )

    @staticmethod
    def _zero_weight_message(spec: LossSpec) -> str:
        if spec.kind == "class":
            return (
                f"{spec.name}: every target is ignored (ignore_index={spec.ignore_index}) or "
                "has class weight 0, so the mean loss is 0/0"
            )
        return "the total weight of the data is 0 (batch_size_fn), so the mean loss is 0/0"

    def _describe(self, spec: LossSpec, nb: int, total: float | None) -> str:
        where = f"{nb} batch{'es' if nb != 1 else ''}"
        if nb == 1:
            return f"{spec.name} on one batch"
        if self.reduction == "sum":
            return f"{spec.name}, summed over {where}"
        unit = {"class": "targets", "numel": "elements"}.get(spec.kind or "", "terms")
        if spec.kind == "class" and spec.weight is not None:
            unit = "units of class weight"
        return f"{spec.name}, mean over {total:g} {unit} in {where}"

    # ------------------------------------------------------------------ evaluation
    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self._numels)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """The context every evaluation runs in (mode, norm layers, attention kernel)."""
        return _evaluation(self._modules, self.mode, self._rnn_on_cuda)

    def _call(self, theta: torch.Tensor, inputs: Any) -> Any:
        """The model at ``theta`` on ``inputs``."""
        params = self.unflatten(theta)
        if self._module is None:
            return self._model(params, inputs)
        state = {**self._frozen, **params}
        args, kwargs = _arguments(self._module, inputs)
        return torch.func.functional_call(self._module, state, args, kwargs)

    def _term(self, batch: Any, denominator: float | None) -> Callable[[torch.Tensor], Any]:
        spec = self._spec
        if self._batch_loss is not None:
            module, frozen = self._wrapped

            def term(theta: torch.Tensor) -> Any:
                params = {f"model.{k}": v for k, v in self.unflatten(theta).items()}
                return torch.func.functional_call(module, {**frozen, **params}, (batch,))

            return term
        if self._loss_fn is None:

            def term(theta: torch.Tensor) -> Any:
                return _loss_of(self._call(theta, batch))

            return term
        inputs, targets = batch
        loss_fn = self._loss_fn

        def loss_of(outputs: Any) -> Any:
            if denominator is not None:
                _check_outputs(spec, outputs, targets, denominator)
            return loss_fn(outputs, targets)

        if self._module is None:
            return lambda theta: loss_of(self._call(theta, inputs))
        # loss_fn runs while the point is in the model, so that a loss_fn reading the
        # model (a weight-decay term over model.parameters()) reads the point too
        wrapper = _PairLoss(self._module)
        frozen = {f"model.{k}": v for k, v in self._frozen.items()}

        def term(theta: torch.Tensor) -> Any:
            params = {f"model.{k}": v for k, v in self.unflatten(theta).items()}
            return torch.func.functional_call(wrapper, {**frozen, **params}, (inputs, loss_of))

        return term

    def loss(self, theta: torch.Tensor, *, batched: bool = True) -> torch.Tensor:
        """``f(θ) = Σ_b c_b ℓ_b(θ)`` at a flat point ``theta`` (shape ``(n,)``: a 0-d
        tensor) or at each row of ``(B, n)`` (shape ``(B,)``), without gradients, in this
        risk's mode and snapshot: one pass over the batches whatever ``B``.

        Rows are evaluated together with ``torch.func.vmap`` when ``batched`` (memory ∝ B ×
        one batch's activations) and one after another when vmap cannot run the model
        (data-dependent control flow, in-place updates) or ``batched=False``; both give the
        same values up to rounding. Each batch's loss is read exactly as for the gradient
        (streamed data is read again; with ``distributed`` the ranks' sums are all-reduced),
        so this is the value the curvature operators differentiate.

        >>> import torch
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> X, y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
        >>> risk = EmpiricalRisk(model, torch.nn.MSELoss(reduction="sum"), [(X[:1], y[:1]),
        ...                      (X[1:], y[1:])])
        >>> risk.loss(torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=torch.float64)).tolist()
        [5.0, 9.0]
        """
        if not isinstance(theta, torch.Tensor) or theta.ndim not in (1, 2):
            raise CurvatureError("theta must be a tensor of shape (n,) or (B, n)")
        n = self.theta.numel()
        if theta.shape[-1] != n:
            raise CurvatureError(f"theta has {theta.shape[-1]} entries, the parameters {n}")
        theta = theta.detach().to(dtype=self.theta.dtype, device=self.theta.device)
        rows = theta.reshape(-1, n)
        total = torch.zeros(rows.shape[0], dtype=torch.float64, device=rows.device)
        with self.context(), torch.no_grad():
            for c, fn in self.terms:
                values = None
                if batched and rows.shape[0] > 1:
                    try:
                        values = torch.func.vmap(lambda t, fn=fn: _loss_of(fn(t)).reshape(()))(rows)
                    except (RuntimeError, ValueError, NotImplementedError):
                        values = None  # vmap cannot run this model: one row at a time
                if values is None:
                    values = torch.stack([_loss_of(fn(t)).reshape(()) for t in rows])
                total += c * values.to(torch.float64)
        if self._group is not None:  # data-parallel: the sum over the ranks' shards
            total = self.all_reduce(total.to(_collective_device(self._group))).to(rows.device)
        return total.reshape(theta.shape[:-1])

    def check_deterministic(self) -> None:
        """Evaluate the first batch's loss twice and refuse a loss that differs, or whose
        second evaluation reads the parameters other than through the snapshot
        (:meth:`_check_reads_point`)."""
        fn = self._first if self.streamed else self.terms[0][1]
        if fn is None:
            return
        with self.context():
            with torch.no_grad():
                a = float(torch.as_tensor(fn(self.theta)).sum())
            leaf = point_leaf(self.theta)
            with torch.enable_grad():
                second = torch.as_tensor(fn(leaf))
            self._check_reads_point(second, leaf)
            b = float(second.detach().sum())
        self._check_state_unchanged()
        if not (math.isfinite(a) and math.isfinite(b)):
            return  # a non-finite loss is reported as such by the first evaluation
        if not (a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))):
            if any(t._version != version for t, version in self._data_versions):
                raise CurvatureError(
                    f"the model modifies its input batch in place (e.g. x /= 255 "
                    f"in forward), so each evaluation reads data the previous one changed: the "
                    f"same batch gave {a!r} and then {b!r}; write it out of place "
                    "(x = x / 255), or copy the inputs first"
                )
            raise CurvatureError(
                f"the loss is not deterministic: the same batch gave {a!r} and then {b!r} "
                f"in mode={self.mode!r} (random layers, data augmentation?); the Hessian of a "
                "random loss is undefined"
            )

    def _check_state_unchanged(self) -> None:
        """Refuse a model whose evaluations update buffers (or parameters outside θ) of the
        snapshot in place — a custom running statistic, a counter, a power iteration: each
        product would be taken in another state (torch's BatchNorm and spectral norm are
        held by :func:`_evaluation` instead)."""
        changed = [n for n, t in self._frozen.items() if t._version != self._versions[n]]
        if changed:
            raise CurvatureError(
                f"the forward pass in mode={self.mode!r} updates {', '.join(map(repr, changed))} "
                "in place (a running statistic, a counter, a cache), so every evaluation would "
                "change the state the Hessian is taken at; skip the update when the module is "
                "not training and use mode='eval', or make it a function of the batch alone"
            )

    def _check_reads_point(self, loss: torch.Tensor, leaf: torch.Tensor) -> None:
        """Refuse a loss that reaches, besides ``leaf`` (the point it was evaluated at), one
        of the model's own parameters or a leaf of an earlier evaluation. saddlescape puts
        its point into the model by replacing the module's attributes
        (``torch.func.functional_call``): a hook or closure holding a Parameter itself
        reads the model's own values instead, and a derived weight cached on the module
        (or by ``parametrize.cached()``) holds those of the point where it was computed.
        Either way no derivative reaches the point through that path — a gradient and a
        Hessian silently missing terms, and wrong values at any other point."""
        own = {id(p): n for n, p in self._module.named_parameters()} if self._module else {}
        for var in _graph_leaves(loss):
            if var is leaf:
                continue
            if id(var) in own:
                raise CurvatureError(
                    f"the loss reads parameter {own[id(var)]!r} through a reference to the "
                    "Parameter itself (a hook or closure holding it, or a plain attribute "
                    "keeping it), which saddlescape cannot replace by its point: no "
                    "derivative would reach the point through that path and every gradient "
                    "and Hessian would be wrong; read it as an attribute of its module "
                    "(module.weight) inside forward or the hook"
                )
            if is_point_leaf(var):
                raise CurvatureError(
                    "the loss reads a tensor computed from the parameters in an earlier "
                    "evaluation (a derived weight cached on a module, e.g. a transpose kept "
                    "in an attribute): it holds the values of that point and no derivative "
                    "flows through it, so every gradient and Hessian would be wrong; compute "
                    "it inside forward, or clear the cache before each call"
                )


def _graph_leaves(output: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors requiring grad that ``output`` was computed from (the variables of
    the ``AccumulateGrad`` nodes of its graph)."""
    found: dict[int, torch.Tensor] = {}
    for node in graph_nodes(output):
        var = getattr(node, "variable", None)
        if isinstance(var, torch.Tensor):
            found[id(var)] = var
    return list(found.values())


def _check_substitutable(module: nn.Module | None) -> None:
    """Refuse by name the wrappers whose parameters ``torch.func.functional_call`` cannot
    replace (torch raises a bare RuntimeError for them): ``nn.DataParallel`` (its replicas
    copy the wrapped module's own parameters) and TorchScript modules."""
    if isinstance(module, nn.DataParallel):
        raise CurvatureError(
            "the model is wrapped in nn.DataParallel, whose replicas copy the wrapped module's "
            "own parameters, so saddlescape cannot evaluate it at its snapshot or any other "
            "point; pass model.module (the same loss on one device; for several processes "
            "use distributed=True)"
        )
    if isinstance(module, (torch.jit.ScriptModule, torch.jit.RecursiveScriptModule)):
        raise CurvatureError(
            "the model is a TorchScript module (torch.jit.script/trace), which cannot be "
            "evaluated with parameters other than its own; pass the eager module it was made "
            "from"
        )


def _arguments(module: nn.Module, inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, Mapping):
        try:
            inspect.signature(module.forward).bind(**inputs)
        except TypeError:
            return (inputs,), {}
        except ValueError:  # no signature available
            return (inputs,), {}
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def _loss_of(out: Any) -> Any:
    """The loss a model returned: a tensor, ``out.loss`` or ``out["loss"]``."""
    if isinstance(out, torch.Tensor):
        return out
    loss = getattr(out, "loss", None)
    if loss is None and isinstance(out, Mapping):
        loss = out.get("loss")
    if loss is None:
        raise CurvatureError(
            "with loss_fn=None the model must return its loss (a scalar tensor, an object "
            f"with .loss or a mapping with 'loss'), got {type(out).__name__}"
        )
    return loss


class _PairLoss(nn.Module):
    """``loss_fn(model(inputs), targets)`` as a module (``loss_of`` closes over the loss and
    the targets), so that ``functional_call`` keeps the snapshot in the model while the loss
    function runs too."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Any, loss_of: Callable[[Any], Any]) -> Any:
        args, kwargs = _arguments(self.model, inputs)
        return loss_of(self.model(*args, **kwargs))


class _BatchLoss(nn.Module):
    """``batch_loss(model, batch)`` as a module, so that ``functional_call`` substitutes the
    snapshot for the model's parameters inside the user's function."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module, Any], Any]) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, batch: Any) -> Any:
        return self._fn(self.model, batch)


class _StreamedTerms(Sequence[Term]):
    """The terms of a streamed risk: every iteration reads the data again, moves each batch
    to the parameters' device and checks that it is the batch of the first pass."""

    def __init__(
        self,
        risk: EmpiricalRisk,
        data: Any,
        pairs: bool,
        coefs: list[float],
        denominators: list[float | None],
        prints: list[tuple[Any, ...]],
    ) -> None:
        self._risk, self._data, self._pairs = risk, data, pairs
        self._coefs, self._dens, self._prints = coefs, denominators, prints
        self._len = sum(1 for d in denominators if d != 0)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        return list(self)[index]

    def __iter__(self) -> Iterator[Term]:
        device = self._risk.theta.device
        n = len(self._prints)
        i = -1
        for i, b in enumerate(_validated(self._data, self._pairs, device)):
            if i >= n or _fingerprint(b) != self._prints[i]:
                what = f"batch {i} differs" if i < n else f"more than {n} batches"
                raise CurvatureError(
                    f"the data changed between passes ({what}): a shuffling or random "
                    "DataLoader does not define one Hessian; use shuffle=False (a fixed "
                    "order) or cache=True (the batches of the first pass, held in memory)"
                )
            if self._dens[i] != 0:
                yield self._coefs[i], self._risk._term(b, self._dens[i])
        if i + 1 != n:
            raise CurvatureError(
                f"the data changed between passes ({i + 1} batches instead of {n}); use a "
                "fixed loader or cache=True"
            )


def _process_group(distributed: Any) -> Any:
    """None (one process), or the torch.distributed group to all-reduce over."""
    if distributed is False or distributed is None:
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise ConfigError(
            "distributed=... needs torch.distributed initialized first "
            "(torch.distributed.init_process_group, e.g. under torchrun)"
        )
    if distributed is True:
        return dist.group.WORLD
    return distributed


def _world(group: Any) -> int:
    return torch.distributed.get_world_size(group)


def _rank(group: Any) -> int:
    return torch.distributed.get_rank(group)


def _global_rank(group: Any, rank: int) -> int:
    import torch.distributed as dist

    if group is None or group is dist.group.WORLD:
        return rank
    return dist.get_global_rank(group, rank)


def _collective_device(group: Any) -> torch.device:
    """Where the group's collectives take their tensors (CUDA for NCCL)."""
    backend = str(torch.distributed.get_backend(group)).lower()
    if "nccl" in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
