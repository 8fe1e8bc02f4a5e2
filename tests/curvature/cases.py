"""The case matrix for the model operators, in the style of curvlinops' ``test/cases.py``.

Each :class:`Case` builds a small float64 model, a loss and data, says how to call
:meth:`HessianOperator.from_model` on them, and writes the whole-data loss out by hand,
*independently* of saddlescape's batch protocol: one big batch with the user's own loss
where the batches can be concatenated, an explicit sum divided by an explicit count where
they cannot (sequences of different lengths, train-mode BatchNorm whose statistics are
per batch). ``tests/curvature/test_cases.py`` compares every operator with the dense
float64 Hessian of that reference.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Drawn once per (shape, seed) and copied: the references can then be evaluated inside
# torch.func transforms, where drawing random numbers is an error.
@functools.cache
def _randn(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=DT)


@functools.cache
def _randint(shape: tuple[int, ...], high: int, seed: int) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=_gen(seed))


@functools.cache
def _rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed), dtype=DT)


def randn(*shape: int, seed: int) -> torch.Tensor:
    return _randn(shape, seed).clone()


def labels(shape: tuple[int, ...], classes: int, seed: int) -> torch.Tensor:
    return _randint(tuple(shape), classes, seed).clone()


def call(model: nn.Module, params: dict[str, torch.Tensor], *args: Any, **kwargs: Any) -> Any:
    return torch.func.functional_call(model, params, args, kwargs)


@dataclass
class Case:
    """``model()`` builds the model (seeded); ``loss`` the loss (or None); ``data()`` the
    data as the user passes it; ``options`` extra keywords of ``from_model``;
    ``reference(model, params)`` the whole-data loss at ``params`` (a dict by name), written
    out by hand; ``mode`` how the reference evaluates the model."""

    id: str
    model: Callable[[], nn.Module]
    loss: Any
    data: Callable[[], Any]
    reference: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = "eval"


# ------------------------------------------------------------------------- models
def mlp(d_in: int = 6, d_out: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 4), nn.Tanh(), nn.Linear(4, d_out)).to(DT)


def cnn(batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(1)
    layers: list[nn.Module] = [nn.Conv2d(1, 2, 3)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(2))
    layers += [nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)]
    model = nn.Sequential(*layers).to(DT)
    if batchnorm:  # running statistics that differ from any batch's own
        bn = model[1]
        bn.running_mean.copy_(torch.tensor([0.3, -0.2], dtype=DT))
        bn.running_var.copy_(torch.tensor([1.5, 0.7], dtype=DT))
        bn.weight.data.copy_(torch.tensor([1.2, 0.8], dtype=DT))
        bn.bias.data.copy_(torch.tensor([0.1, -0.1], dtype=DT))
    return model


class SequenceTagger(nn.Module):
    """Per-token classes: (B, T, d) → (B, C, T) logits (torch's layout for CrossEntropyLoss)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).to(DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).transpose(1, 2)


class TransformerClassifier(nn.Module):
    """A one-layer TransformerEncoder on (B, T, 3) sequences, mean-pooled to 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed = nn.Linear(3, 4)
        layer = nn.TransformerEncoderLayer(
            d_model=4, nhead=2, dim_feedforward=6, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(4, 3)
        self.to(DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


class LSTMRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.lstm = nn.LSTM(3, 3, batch_first=True)
        self.head = nn.Linear(3, 2)
        self.to(DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class KeywordModel(nn.Module):
    """Takes its inputs as keywords (``model(**inputs)``, the Hugging Face way)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(6, 3, seed=5)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.net(x * scale)


class MappingModel(nn.Module):
    """Takes one mapping argument (curvlinops' ``ModelWithDictInput``)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(6, 3, seed=6)

    def forward(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(data["x"])


@dataclass
class Output:
    loss: torch.Tensor
    logits: torch.Tensor


class LossReturningModel(nn.Module):
    """``model(**batch).loss``: a token-level mean cross-entropy with ignored labels."""

    def __init__(self) -> None:
        super().__init__()
        self.tagger = SequenceTagger()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> Output:
        logits = self.tagger(x)
        return Output(F.cross_entropy(logits, labels, ignore_index=-100), logits)


# ------------------------------------------------------------------------- data
def uneven(d_in: int, targets: Callable[[int, int], torch.Tensor], sizes=(3, 4, 2)) -> list:
    """Batches of the given sizes: ``(randn(n, d_in), targets(n, seed))``."""
    return [(randn(n, d_in, seed=10 + i), targets(n, 20 + i)) for i, n in enumerate(sizes)]


def concat(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def one_big_batch(loss: Any, batches: Callable[[], list]) -> Callable:
    """The reference of a batchable case: the user's loss on all the data at once."""

    def reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
        X, y = concat(batches())
        return loss(call(model, params, X), y)

    return reference


def ce_targets(n: int, seed: int) -> torch.Tensor:
    return labels((n,), 3, seed)


def soft_targets(n: int, seed: int, k: int = 3) -> torch.Tensor:
    return _rand((n, k), seed).clone()


def reg_targets(n: int, seed: int, k: int = 3) -> torch.Tensor:
    return randn(n, k, seed=seed)


def ignored_targets(n: int, seed: int) -> torch.Tensor:
    t = labels((n,), 3, seed)
    t[::2] = -100
    return t


def _batchable(
    id: str,
    loss: Any,
    targets: Callable[[int, int], torch.Tensor],
    d_out: int = 3,
    sizes=(3, 4, 2),
    **options: Any,
) -> Case:
    batches = functools.partial(uneven, 6, targets, sizes)
    return Case(id, lambda: mlp(6, d_out), loss, batches, one_big_batch(loss, batches), options)


CE = nn.CrossEntropyLoss
W = torch.tensor([0.2, 1.0, 3.0], dtype=DT)

CASES: list[Case] = [
    # ---- one batch and uneven batches, every reduction of the common losses
    _batchable("mlp-ce-mean-one-batch", CE(), ce_targets, sizes=(9,)),
    _batchable("mlp-ce-mean", CE(), ce_targets),
    _batchable("mlp-ce-sum", CE(reduction="sum"), ce_targets),
    _batchable("mlp-bce-mean", nn.BCEWithLogitsLoss(), soft_targets),
    _batchable("mlp-bce-sum", nn.BCEWithLogitsLoss(reduction="sum"), soft_targets),
    _batchable("mlp-mse-mean", nn.MSELoss(), reg_targets),
    _batchable("mlp-mse-sum", nn.MSELoss(reduction="sum"), reg_targets),
    _batchable("mlp-mse-sum-equal-batches", nn.MSELoss(reduction="sum"), reg_targets, sizes=(4, 4)),
    # ---- weighted means: the mean divides by the total class weight / kept targets
    _batchable("mlp-ce-class-weights", CE(weight=W), ce_targets),
    _batchable("mlp-ce-ignore-index", CE(), ignored_targets),
    _batchable(
        "mlp-ce-weights-ignore-smoothing",
        CE(weight=W, ignore_index=-100, label_smoothing=0.1),
        ignored_targets,
    ),
    _batchable("mlp-ce-soft-labels", CE(), lambda n, s: soft_targets(n, s).softmax(1)),
    _batchable("mlp-nll", nn.NLLLoss(weight=W), ce_targets),
    _batchable(
        "mlp-kl-batchmean",
        nn.KLDivLoss(reduction="batchmean"),
        lambda n, s: soft_targets(n, s).softmax(1),
    ),
    _batchable("mlp-huber", nn.HuberLoss(delta=0.5), reg_targets),
    # ---- functional losses are recognized too
    _batchable("mlp-functional-ce", F.cross_entropy, ce_targets),
    _batchable(
        "mlp-functional-partial-ce-weights",
        functools.partial(F.cross_entropy, weight=W, reduction="mean"),
        ignored_targets,
    ),
    _batchable(
        "mlp-functional-mse-sum", functools.partial(F.mse_loss, reduction="sum"), reg_targets
    ),
    # ---- a plain callable with the reduction stated
    _batchable(
        "mlp-callable-mean",
        lambda out, y: ((out - y) ** 2).sum(1).mean(),
        reg_targets,
        reduction="mean",
    ),
    # ---- parameter subset
    _batchable("mlp-param-subset", CE(), ce_targets, params=["2.weight", "0.bias"]),
]


def _seq_batches() -> list:
    """Sequences of different lengths: the token-level mean is not a per-batch-size mean."""
    out = []
    for i, (n, T) in enumerate(((2, 5), (3, 2), (1, 7))):
        y = labels((n, T), 3, 30 + i)
        y[0, 0] = -100
        out.append((randn(n, T, 5, seed=40 + i), y))
    return out


def _seq_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    total = sum(CE(reduction="sum")(call(model, params, X), y) for X, y in _seq_batches())
    count = sum(int((y != -100).sum()) for _, y in _seq_batches())
    return total / count


CASES.append(Case("seq-ce-token-mean", SequenceTagger, CE(), _seq_batches, _seq_reference))


def _dataloader() -> DataLoader:
    X, y = randn(10, 6, seed=50), reg_targets(10, 51)
    return DataLoader(TensorDataset(X, y), batch_size=4)  # 4, 4, 2


def _dataloader_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.MSELoss()(call(model, params, randn(10, 6, seed=50)), reg_targets(10, 51))


CASES.append(Case("mlp-dataloader", mlp, nn.MSELoss(), _dataloader, _dataloader_reference))


# ---- dict inputs: keyword arguments (HF) and one mapping argument (curvlinops)
def _kw_batches() -> list:
    return [
        ({"x": randn(n, 6, seed=60 + i), "scale": randn(n, 1, seed=70 + i)}, ce_targets(n, 80 + i))
        for i, n in enumerate((3, 5))
    ]


def _kw_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    b = _kw_batches()
    x = torch.cat([i["x"] for i, _ in b])
    s = torch.cat([i["scale"] for i, _ in b])
    return CE()(call(model, params, x=x, scale=s), torch.cat([t for _, t in b]))


CASES.append(Case("dict-inputs-keywords", KeywordModel, CE(), _kw_batches, _kw_reference))


def _map_batches() -> list:
    return [({"x": randn(n, 6, seed=90 + i)}, ce_targets(n, 95 + i)) for i, n in enumerate((4, 2))]


def _map_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    b = _map_batches()
    x = torch.cat([i["x"] for i, _ in b])
    return CE(reduction="sum")(call(model, params, {"x": x}), torch.cat([t for _, t in b]))


CASES.append(
    Case("dict-inputs-one-mapping", MappingModel, CE(reduction="sum"), _map_batches, _map_reference)
)


# ---- dict targets with a user's multi-task loss, reduction stated
def _multi_loss(out: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(out, t["cls"]) + 0.5 * F.mse_loss(out[:, 0], t["reg"])


def _dict_target_batches() -> list:
    return [
        (randn(n, 6, seed=100 + i), {"cls": ce_targets(n, 110 + i), "reg": randn(n, seed=120 + i)})
        for i, n in enumerate((2, 5, 3))
    ]


def _dict_target_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    b = _dict_target_batches()
    X = torch.cat([x for x, _ in b])
    t = {k: torch.cat([y[k] for _, y in b]) for k in ("cls", "reg")}
    return _multi_loss(call(model, params, X), t)


CASES.append(
    Case(
        "dict-targets-callable",
        mlp,
        _multi_loss,
        _dict_target_batches,
        _dict_target_reference,
        {"reduction": "mean"},
    )
)


# ---- the model returns its loss (Hugging Face): a token mean, weighted by kept tokens
def _hf_batches() -> list:
    return [{"x": X, "labels": y} for X, y in _seq_batches()]


def _hf_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    p = {k.removeprefix("tagger."): v for k, v in params.items()}
    return _seq_reference(model.tagger, p)


CASES.append(
    Case(
        "model-returns-loss",
        LossReturningModel,
        None,
        _hf_batches,
        _hf_reference,
        {"reduction": "mean", "batch_size_fn": lambda b: (b["labels"] != -100).sum()},
    )
)


# ---- the general form: batch_loss(model, batch) on any batch
def _pairwise_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A margin ranking loss between two inputs, summed: no (inputs, targets) here."""
    a, b = model(batch["a"])[:, 0], model(batch["b"])[:, 0]
    return F.softplus(-(a - b) * batch["sign"]).sum()


def _pair_batches() -> list:
    return [
        {
            "a": randn(n, 6, seed=130 + i),
            "b": randn(n, 6, seed=140 + i),
            "sign": torch.sign(randn(n, seed=150 + i)),
        }
        for i, n in enumerate((3, 4))
    ]


def _pair_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    out = 0
    for batch in _pair_batches():
        a = call(model, params, batch["a"])[:, 0]
        b = call(model, params, batch["b"])[:, 0]
        out = out + F.softplus(-(a - b) * batch["sign"]).sum()
    return out


CASES.append(
    Case(
        "batch-loss-general",
        mlp,
        None,
        _pair_batches,
        _pair_reference,
        {"batch_loss": _pairwise_loss, "reduction": "sum"},
    )
)


# ---- a CNN, and a BatchNorm CNN in eval and in train mode
def _img_batches() -> list:
    return [
        (randn(n, 1, 6, 6, seed=160 + i), ce_targets(n, 170 + i)) for i, n in enumerate((3, 5, 4))
    ]


CASES.append(Case("cnn-ce-mean", cnn, CE(), _img_batches, one_big_batch(CE(), _img_batches)))
CASES.append(
    Case(
        "bn-cnn-eval",
        functools.partial(cnn, batchnorm=True),
        CE(),
        _img_batches,
        one_big_batch(CE(), _img_batches),
    )
)


def batch_statistics(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose norm layers always normalize with the batch's statistics
    (torch's documented ``track_running_stats=False`` with no running buffers)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._NormBase):
            mod.track_running_stats = False
            mod.running_mean = mod.running_var = mod.num_batches_tracked = None
    return m


def _bn_train_reference(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Train mode: each batch normalized by its own statistics; the mean over examples."""
    b = _img_batches()
    N = sum(len(y) for _, y in b)
    return sum(len(y) / N * CE()(call(model, params, X), y) for X, y in b)


CASES.append(
    Case(
        "bn-cnn-train",
        functools.partial(cnn, batchnorm=True),
        CE(),
        _img_batches,
        _bn_train_reference,
        {"mode": "train"},
        mode="train",
    )
)


# ---- attention and recurrence
def _seq_inputs(d: int, targets: Callable[[int, int], torch.Tensor]) -> Callable[[], list]:
    return lambda: [
        (randn(n, 4, d, seed=180 + i), targets(n, 190 + i)) for i, n in enumerate((2, 3))
    ]


_tf_batches = _seq_inputs(3, ce_targets)
CASES.append(
    Case(
        "transformer-ce-mean",
        TransformerClassifier,
        CE(),
        _tf_batches,
        one_big_batch(CE(), _tf_batches),
    )
)
CASES.append(
    Case(
        "transformer-ce-train",
        TransformerClassifier,
        CE(),
        _tf_batches,
        one_big_batch(CE(), _tf_batches),
        {"mode": "train"},
        mode="train",
    )
)
_lstm_batches = _seq_inputs(3, lambda n, s: reg_targets(n, s, 2))
CASES.append(
    Case(
        "lstm-mse-sum",
        LSTMRegressor,
        nn.MSELoss(reduction="sum"),
        _lstm_batches,
        one_big_batch(nn.MSELoss(reduction="sum"), _lstm_batches),
    )
)

# ---- a function model(params, inputs) instead of a module (curvlinops' model_func)
_FN_PARAMS = {
    "W1": randn(4, 6, seed=200),
    "b1": randn(4, seed=201),
    "W2": randn(3, 4, seed=202),
    "b2": randn(3, seed=203),
}


def model_func(p: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    return F.linear(torch.tanh(F.linear(X, p["W1"], p["b1"])), p["W2"], p["b2"])


def _fn_batches() -> list:
    return uneven(6, reg_targets, (3, 4))


def _fn_reference(model: Any, params: dict[str, torch.Tensor]) -> torch.Tensor:
    X, y = concat(_fn_batches())
    return nn.MSELoss()(model_func(params, X), y)


CASES.append(
    Case(
        "function-model",
        lambda: model_func,
        nn.MSELoss(),
        _fn_batches,
        _fn_reference,
        {"params": _FN_PARAMS},
    )
)

CASE_IDS = [c.id for c in CASES]
