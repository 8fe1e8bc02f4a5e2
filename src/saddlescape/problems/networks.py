"""Neural-network problems: deep linear regression and a tanh MLP on scikit-learn's digits.

Public helpers for training and curvature work on the same networks:

- :func:`load_digits_tensors` — the 1,797 bundled 8×8 digits, pixels scaled by 1/16;
- :func:`make_mlp` — a seeded fully connected ``nn.Sequential``;
- :func:`make_loss` — the two loss conventions (``"cross-entropy"``, ``"mse"``);
- :func:`fit_full_batch` — plain full-batch gradient descent (``torch.optim.SGD``).

The curvature benchmark network (tanh 64-128-128-10, cross-entropy, all 1,797 examples,
200 full-batch steps at learning rate 0.5 from ``torch.manual_seed(0)``):

>>> X, y = load_digits_tensors()
>>> model = make_mlp((64, 128, 128, 10), seed=0)
>>> losses = fit_full_batch(model, X, y, loss="cross-entropy", lr=0.5, steps=2)
>>> X.shape, len(losses), losses[1] < losses[0]
(torch.Size([1797, 64]), 2, True)

The edge-of-stability network (Cohen et al. 2021) is ``make_mlp((64, 200, 200, 10), seed=0)``
with ``make_loss("mse")``. With these, full-batch GD at lr 0.1 on all digits gives sharpness
(power iteration, float32) 11.52 at step 0, then 14.56, 16.26, 17.92, 19.30, 20.63 at steps
100…500 (measured 2026-11-28, 2 CPU cores), matching THEORY.md's 11.5 → 14.6 → 17.9 → 20.6.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_int, check_int64, check_positive
from .base import CriticalPoint, Problem
from .registry import register

__all__ = [
    "ACTIVATIONS",
    "DIGITS_SIZE",
    "LOSSES",
    "DeepLinear",
    "MLPDigits",
    "fit_full_batch",
    "load_digits_tensors",
    "make_loss",
    "make_mlp",
]

DIGITS_SIZE = 1797
"""Number of examples in scikit-learn's bundled digits data set."""

LOSSES: tuple[str, ...] = ("cross-entropy", "mse")
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


# --------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=1)
def _digits_numpy() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data / 16.0, data.target


def load_digits_tensors(
    n_samples: int | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits as tensors ``(X, y)``.

    ``X`` has shape ``(n, 64)`` with pixels scaled by 1/16 into ``[0, 1]``; ``y`` holds the
    labels 0–9 (``torch.long``). ``n_samples`` keeps the first ``n`` examples in scikit-learn's
    order (``None``: all 1,797), as Cohen et al. (2021) keep the first 5,000 of CIFAR-10.
    No download: the data ship with scikit-learn.
    """
    if n_samples is not None:
        n_samples = check_int("n_samples", n_samples, minimum=1)
        if n_samples > DIGITS_SIZE:
            raise ConfigError(f"n_samples must be <= {DIGITS_SIZE}, got {n_samples}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    Xn, yn = _digits_numpy()
    Xn, yn = Xn[:n_samples], yn[:n_samples]
    return torch.tensor(Xn, dtype=dtype), torch.tensor(yn, dtype=torch.long)


def make_mlp(
    widths: Sequence[int] = (64, 128, 128, 10),
    activation: str = "tanh",
    seed: int | None = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    """A fully connected network ``Linear, act, Linear, act, …, Linear`` with PyTorch's
    default initialisation.

    The parameters equal those of ``torch.manual_seed(seed)`` followed by building the same
    ``nn.Sequential`` in float32 (then cast to ``dtype``, so float32 and float64 networks of
    one seed hold the same numbers); the global RNG is left untouched. ``seed=None`` draws
    from the global RNG instead.

    >>> net = make_mlp((64, 200, 200, 10), seed=0)
    >>> sum(p.numel() for p in net.parameters())
    55210
    """
    widths = tuple(check_int("widths", w, minimum=1) for w in widths)
    if len(widths) < 2:
        raise ConfigError(f"widths needs at least input and output sizes, got {widths}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating torch.dtype, got {dtype!r}")

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            if i > 0:
                layers.append(ACTIVATIONS[activation]())
            layers.append(nn.Linear(a, b))
        return nn.Sequential(*layers)

    if seed is None:
        net = build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_int("seed", seed))
            net = build()
    return net.to(dtype)


def make_loss(loss: str = "cross-entropy") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``loss_fn(outputs, labels)`` averaged over examples.

    - ``"cross-entropy"``: ``F.cross_entropy(outputs, labels)`` (mean over examples);
    - ``"mse"``: mean over examples of ``½‖outputs − onehot(labels)‖²`` — the convention of
      Cohen et al. (2021, code ``SquaredLoss`` = ``0.5·sum`` divided by the data-set size),
      which is 5× ``torch.nn.MSELoss()`` for 10 classes.

    >>> out = torch.zeros(2, 10); labels = torch.tensor([0, 3])
    >>> make_loss("mse")(out, labels).item()
    0.5
    """
    if loss == "cross-entropy":
        return _cross_entropy
    if loss == "mse":
        return _half_squared_error
    raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")


def _cross_entropy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, labels)


def _half_squared_error(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    target = F.one_hot(labels, outputs.shape[-1]).to(outputs.dtype)
    return 0.5 * (outputs - target).square().sum(-1).mean()


def fit_full_batch(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str = "cross-entropy",
    lr: float = 0.5,
    steps: int = 200,
) -> list[float]:
    """Train ``model`` in place by full-batch gradient descent (``torch.optim.SGD``, no
    momentum) and return the loss before each step."""
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps)
    loss_fn = make_loss(loss)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    history: list[float] = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(X), y)
        value.backward()
        history.append(float(value.detach()))
        opt.step()
    return history


def _parse_hidden(hidden: object) -> tuple[int, ...]:
    if isinstance(hidden, str):
        parts = [p for p in hidden.replace(" ", "").split(",") if p]
        try:
            values: list[object] = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"hidden must be widths like '32' or '64,64', got {hidden!r}"
            ) from None
    elif isinstance(hidden, int):
        values = [hidden]
    else:
        try:
            values = list(hidden)  # type: ignore[call-overload]
        except TypeError:
            raise ConfigError(f"hidden must be a tuple of widths, got {hidden!r}") from None
    if not values:
        raise ConfigError("hidden must name at least one hidden width")
    return tuple(check_int("hidden", v, minimum=1) for v in values)


# --------------------------------------------------------------------------- MLP on digits
@register("mlp-digits")
@dataclass
class MLPDigits(Problem):
    """Training loss of a small MLP on scikit-learn's digits, as a function of its flattened
    parameters.

    Data: the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and
    C. Kaynak, 1998, UCI Machine Learning Repository), as bundled in scikit-learn
    (``sklearn.datasets.load_digits``: 1,797 images of 8×8 pixels with values 0–16, the
    test part of the UCI set).

    ``f(θ) = loss_fn(net_θ(X), y)`` with ``net`` = :func:`make_mlp` of widths
    ``(64, *hidden, 10)`` and ``loss_fn`` = :func:`make_loss` (``"cross-entropy"`` or
    ``"mse"`` on one-hot targets, both averaged over examples) on the first ``n_samples``
    digits (pixels/16). ``θ`` is ``torch.nn.utils.parameters_to_vector`` order
    (``0.weight, 0.bias, 2.weight, …``, weights row-major); :meth:`unflatten` gives the
    parameter dict. ``f`` runs the network with ``torch.func.functional_call`` in the
    dtype of ``θ`` (float32 and float64 both work); a batch ``(B, d)`` of parameter vectors
    is evaluated with ``torch.func.vmap`` (memory ∝ B·n·max(hidden)).

    ``.model`` is the seeded network (float64, parameters = :meth:`sample_init`), ``.data``
    the float64 ``(X, y)``, ``.loss_fn`` the loss; :meth:`module` builds a fresh network in
    any dtype for training. ``f`` never reads ``.model``'s own parameters.

    No critical point is known in closed form; ``f ≥ 0`` for both losses (``f_min`` is
    ``None``: the infimum depends on the width). ℓ and ρ are not known (``None``): estimate
    them with the curvature tools.

    >>> p = MLPDigits(hidden=(8,), n_samples=100)
    >>> p.dim, round(float(p.f(p.sample_init())), 2)
    (610, 2.36)
    """

    name = "mlp-digits"
    hidden: tuple[int, ...] | str | int = (32,)
    loss: str = "cross-entropy"
    activation: str = "tanh"
    n_samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = _parse_hidden(self.hidden)
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}"
            )
        self.seed = check_int64("seed", check_int("seed", self.seed))
        if self.n_samples is not None:
            self.n_samples = check_int("n_samples", self.n_samples, minimum=1)
        X, y = load_digits_tensors(self.n_samples, dtype=torch.float64)
        self.widths: tuple[int, ...] = (64, *self.hidden, 10)
        self.model: nn.Sequential = make_mlp(self.widths, self.activation, self.seed, torch.float64)
        self.loss_fn = make_loss(self.loss)
        self.param_shapes: dict[str, torch.Size] = {
            k: v.shape for k, v in self.model.named_parameters()
        }
        self.dim = sum(int(np.prod(s)) for s in self.param_shapes.values())
        self._data: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {torch.float64: (X, y)}

    # ------------------------------------------------------------------ data / module
    @property
    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` in float64: ``X`` of shape ``(n, 64)``, ``y`` labels (long)."""
        return self._data[torch.float64]

    def data_as(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` with ``X`` in ``dtype`` (cached)."""
        if dtype not in self._data:
            X, y = self._data[torch.float64]
            self._data[dtype] = (X.to(dtype), y)
        return self._data[dtype]

    def module(self, dtype: torch.dtype = torch.float32) -> nn.Sequential:
        """A fresh copy of the seeded network in ``dtype``."""
        return make_mlp(self.widths, self.activation, self.seed, dtype)

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat parameter vector ``(..., dim)`` into ``{name: tensor}`` views."""
        out, i = {}, 0
        for k, shape in self.param_shapes.items():
            n = int(np.prod(shape))
            out[k] = x[..., i : i + n].reshape(*x.shape[:-1], *shape)
            i += n
        return out

    @staticmethod
    def flatten(module: nn.Module) -> torch.Tensor:
        """A module's parameters as one vector (the order :meth:`unflatten` expects)."""
        return torch.nn.utils.parameters_to_vector(module.parameters()).detach()

    # ------------------------------------------------------------------ Problem
    def _single(self, theta: torch.Tensor) -> torch.Tensor:
        X, y = self.data_as(theta.dtype)
        out = torch.func.functional_call(self.model, self.unflatten(theta), (X,))
        return self.loss_fn(out, y)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 1:
            return self._single(x)
        flat = x.reshape(-1, self.dim)
        return torch.func.vmap(self._single)(flat).reshape(x.shape[:-1])

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """PyTorch's default initialisation of the network, flattened (float64).

        Without ``generator`` the network of ``seed`` (batch element ``i``: ``seed + i``);
        with one, each element uses a seed drawn from ``generator``.
        """
        count = 1 if batch is None else check_int("batch", batch, minimum=1)
        if generator is None:
            seeds = [self.seed + i for i in range(count)]
        else:
            seeds = torch.randint(0, 2**31 - 1, (count,), generator=generator).tolist()
        rows = [
            self.flatten(make_mlp(self.widths, self.activation, s, torch.float64)) for s in seeds
        ]
        return rows[0] if batch is None else torch.stack(rows)


# --------------------------------------------------------------------------- deep linear
@register("deep-linear")
@dataclass
class DeepLinear(Problem):
    """Deep linear network regression
    ``f(W_1, …, W_L) = (1/2n)‖W_L ⋯ W_1 X − Y‖²_F`` (Kawaguchi 2016, "Deep learning without
    poor local minima"; Baldi & Hornik 1989 for depth 2).

    Data (from ``seed``): ``X ∈ R^{d_in×n}`` standard normal, ``Y = A X + noise·N`` with
    ``A`` standard normal / √d_in. Shapes: ``W_1`` is ``width×d_in``, ``W_2 … W_{L−1}`` are
    ``width×width``, ``W_L`` is ``d_out×width``; ``x`` concatenates them row-major in that
    order (``dim = width·d_in + (L−2)·width² + d_out·width``).

    With ``Σxx = XXᵀ/n``, ``Σyx = YXᵀ/n``, the least-squares map ``W* = Σyx Σxx⁻¹`` and
    ``M = W* Σxx W*ᵀ = U diag(λ) Uᵀ`` (λ decreasing, distinct for generic data), every
    subset ``S`` of at most ``width`` eigenvectors gives a critical point: the balanced
    factorisation (each factor carries ``σ^{1/L}`` of the SVD of ``P_S = U_S U_Sᵀ W*``) has
    product ``P_S``, and ``∂f/∂P = −(I − U_S U_Sᵀ)Σyx`` is annihilated on both sides. Its
    value is ``½(tr Σyy − Σ_{i∈S} λ_i)``, so with ``k = min(width, d_in, d_out)``:

    - **global minimum** ``S = {1…k}``: ``f_min = ½(tr Σyy − Σ_{i≤k} λ_i)`` (reduced-rank
      regression; least squares when ``width ≥ min(d_in, d_out)``). The Hessian has zero
      eigenvalues along the ``GL(width)`` rescaling orbit ``W_{j+1}G⁻¹, GW_j`` (and along
      unused hidden units), none negative: kind ``"minimum"`` (its value is ``f_min``);
    - **strict saddle**: ``S`` with one eigenvector swapped for a lower one
      (``{1…k−1, k+1}`` when ``k < min(d_in, d_out)``, else ``{2…k}``): rotating the product
      from ``u_j`` toward an unused ``u_i`` with ``λ_i > λ_j`` lowers f by
      ``½(λ_i − λ_j)sin²θ``, a path with negative second derivative;
    - **W = 0**, ``f = ‖Y‖²/2n``: for ``depth ≥ 3`` every second derivative of the
      degree-L product ``W_L⋯W_1`` vanishes at 0, so the Hessian is exactly zero —
      kind ``"degenerate"``: second-order information cannot classify it (it is a saddle,
      escaped only at order ``L``; Kawaguchi 2016, Thm 2.3). For ``depth = 2`` the Hessian
      is ``[[0, −Σxy⊗·],[·, 0]]``-shaped and indefinite: a strict saddle.

    ℓ and ρ are unbounded on ``R^d`` (``None``). ``sample_init`` draws ``W_j`` entries from
    ``N(0, 1/fan_in)``.

    >>> p = DeepLinear()
    >>> p.dim, [c.kind for c in p.critical_points]
    (22, ['degenerate', 'minimum', 'saddle'])
    """

    name = "deep-linear"
    depth: int = 3
    width: int = 2
    d_in: int = 5
    d_out: int = 4
    n_samples: int = 40
    noise: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        self.depth = check_int("depth", self.depth, minimum=2)
        self.width = check_int("width", self.width, minimum=1)
        self.d_in = check_int("d_in", self.d_in, minimum=1)
        self.d_out = check_int("d_out", self.d_out, minimum=1)
        self.n_samples = check_int("n_samples", self.n_samples, minimum=1)
        if self.n_samples < self.d_in:
            raise ConfigError(
                f"n_samples must be >= d_in = {self.d_in} (so that XXᵀ is invertible), "
                f"got {self.n_samples}"
            )
        self.noise = check_positive("noise", self.noise, allow_zero=True)
        self.seed = check_int64("seed", check_int("seed", self.seed))
        g = torch.Generator().manual_seed(self.seed)
        X = torch.randn(self.d_in, self.n_samples, generator=g, dtype=torch.float64)
        A = torch.randn(self.d_out, self.d_in, generator=g, dtype=torch.float64)
        A /= self.d_in**0.5
        N = torch.randn(self.d_out, self.n_samples, generator=g, dtype=torch.float64)
        self.X, self.Y = X, A @ X + self.noise * N
        self.shapes: list[tuple[int, int]] = (
            [(self.width, self.d_in)]
            + [(self.width, self.width)] * (self.depth - 2)
            + [(self.d_out, self.width)]
        )
        self.dim = sum(r * c for r, c in self.shapes)

    def unflatten(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[W_1, …, W_L]`` (views) from ``x`` of shape ``(..., dim)``."""
        out, i = [], 0
        for r, c in self.shapes:
            out.append(x[..., i : i + r * c].reshape(*x.shape[:-1], r, c))
            i += r * c
        return out

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """The end-to-end map ``W_L ⋯ W_1`` of shape ``(..., d_out, d_in)``."""
        Ws = self.unflatten(x)
        P = Ws[0]
        for W in Ws[1:]:
            P = W @ P
        return P

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        X, Y = self.X.to(x.dtype), self.Y.to(x.dtype)
        R = self.product(x) @ X - Y
        return 0.5 * R.square().sum((-2, -1)) / self.n_samples

    # ------------------------------------------------------------------ structure
    @functools.cached_property
    def _spectral(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        n = self.n_samples
        Sxx, Syx = self.X @ self.X.T / n, self.Y @ self.X.T / n
        W_star = torch.linalg.solve(Sxx, Syx.T).T
        M = W_star @ Sxx @ W_star.T
        lam, U = torch.linalg.eigh(M)
        lam, U = lam.flip(0), U.flip(1)
        tr_yy = float((self.Y * self.Y).sum()) / n
        return W_star, lam, U, tr_yy

    def _balanced(self, subset: Sequence[int]) -> torch.Tensor:
        """Balanced factorisation of ``P_S = U_S U_Sᵀ W*``, flattened."""
        W_star, _, U, _ = self._spectral
        Us = U[:, list(subset)]
        P = Us @ Us.T @ W_star
        k = len(subset)
        Uu, sig, Vh = torch.linalg.svd(P)
        s = sig[:k] ** (1.0 / self.depth)
        Ws = []
        for j, (r, c) in enumerate(self.shapes):
            W = torch.zeros(r, c, dtype=torch.float64)
            if j == 0:
                W[:k] = s[:, None] * Vh[:k]
            elif j == self.depth - 1:
                W[:, :k] = Uu[:, :k] * s[None, :]
            else:
                W[range(k), range(k)] = s
            Ws.append(W.reshape(-1))
        return torch.cat(Ws)

    @property
    def _k(self) -> int:
        return min(self.width, self.d_in, self.d_out)

    @property
    def f_min(self) -> float:
        _, lam, _, tr_yy = self._spectral
        return 0.5 * (tr_yy - float(lam[: self._k].sum()))

    @property
    def critical_points(self) -> list[CriticalPoint]:
        _, lam, _, tr_yy = self._spectral
        k, rank = self._k, min(self.d_in, self.d_out)
        zero = torch.zeros(self.dim, dtype=torch.float64)
        pts = [
            CriticalPoint(zero, "degenerate" if self.depth >= 3 else "saddle", 0.5 * tr_yy),
            CriticalPoint(self._balanced(range(k)), "minimum", self.f_min),
        ]
        if k < rank:
            saddle: list[int] | None = [*range(k - 1), k]
        elif k >= 2:
            saddle = list(range(1, k))
        else:
            saddle = None
        if saddle is not None:
            value = 0.5 * (tr_yy - float(lam[saddle].sum()))
            pts.append(CriticalPoint(self._balanced(saddle), "saddle", value))
        return pts

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """Entries of each ``W_j`` from ``N(0, 1/fan_in)`` (LeCun initialisation), float64."""
        lead = () if batch is None else (check_int("batch", batch, minimum=1),)
        parts = [
            torch.randn(*lead, r * c, generator=generator, dtype=torch.float64) / c**0.5
            for r, c in self.shapes
        ]
        return torch.cat(parts, dim=-1)
