"""Extreme eigenpairs of a symmetric operator by (block) Lanczos with full
reorthogonalization, thick restarts and early stopping on the Ritz residual.

References: Lanczos 1950; Paige 1971 and Parlett, "The Symmetric Eigenvalue Problem"
(1998), ch. 7, 11 and 13 (residual bounds, reorthogonalization); Wu & Simon 2000,
"Thick-restart Lanczos method for large symmetric eigenvalue problems" (SIAM J. Matrix
Anal. Appl. 22(2)); Golub & Underwood 1977 (block Lanczos).

**Algorithm.** Starting from an orthonormal block ``P`` (``b`` columns: the start vector,
``v0`` if given), each step multiplies ``W = H P`` (``b`` products), orthogonalizes ``W``
twice against the whole basis ("twice is enough", classical Gram–Schmidt in float64) and
records the coefficients as a new column block of the projected matrix ``T = Qᵀ H Q``
(tridiagonal, block tridiagonal, or arrowhead after a restart). This keeps the relation
``H Q = Q T + P C`` where ``P`` is the next block and ``C`` its coupling. A Ritz pair
``(θ, y = Q s)`` with ``T s = θ s`` then has residual ``‖H y − θ y‖ = ‖C s‖`` — read off
the tridiagonal's eigenvectors (for ``b = 1``: ``β_m |s_m|``, the bottom-row component)
with no extra product. When the basis reaches ``max_basis`` columns it restarts thickly:
it keeps the Ritz vectors nearest the wanted end(s) of the spectrum (half the basis),
which preserves the relation above with ``T`` = diag(kept Ritz values).

**Stopping rule.** Stop when every wanted Ritz pair has ``‖H y − θ y‖ ≤ tol · s`` where
``s = max |θ_i|`` over all Ritz values is an estimate (a lower bound) of ``‖H‖``: a
relative criterion, so ``tol`` reads as "fraction of the spectral scale". Why a residual
bounds the eigenvalue error (Parlett 1998, Thms 4.5.1 and 11.7.1): for symmetric ``H``,
unit ``y`` and ``θ = yᵀHy``, some eigenvalue ``λ`` satisfies ``|λ − θ| ≤ ‖r‖``, and if the
rest of the spectrum is at distance ``≥ δ`` from ``θ`` then ``|λ − θ| ≤ ‖r‖²/δ`` (Kato–Temple;
``error_bounds`` reports ``min(‖r‖, ‖r‖²/δ̂)`` with ``δ̂`` the distance to the nearest other
Ritz value — an estimate, since δ̂ can exceed the true gap before convergence). The
Ritz values interlace the spectrum (Cauchy): ``θ_min ≥ λ_min`` and ``θ_max ≤ λ_max`` at every
step, which the one-sided test in :mod:`~saddlescape.curvature.certify` uses.

The recurrence runs in float64 whatever the operator's dtype (products are cast to the
operator's dtype and back): reorthogonalization is then exact to ``1e-16`` and the
attainable accuracy is set by the products themselves (float32 HVPs carry noise of about
``1e-7·‖H‖``). A single start vector finds one copy of a repeated eigenvalue only. For
``k > 1`` the default therefore runs one vector to convergence, locks the converged pairs
and searches their orthogonal complement from a fresh random vector for anything they
missed — a copy, or an eigenvalue converged past — locking and searching again until the
search finds nothing that belongs to the ``k`` wanted (``_complete_multiplicities``). A
block of ``b ≥ multiplicity`` columns (``block_size=b``) finds every copy by construction,
but costs ``b`` products a step; ``block_size=1`` skips the search. If the
Krylov space becomes invariant (breakdown), a random vector orthogonal to it continues;
after a breakdown from a given ``v0`` (which may be an exact eigenvector and miss the wanted
end), convergence also waits for the fresh segment's most wanted Ritz pair — and so when
``v0`` is an eigenvector up to the rounding of its dtype or of the products (its first
residual ``≤ 100·eps·‖H‖``, as for a float32 copy of an eigenvector), which is a breakdown
in all but name. A ``v0`` that is an eigenvector to a looser accuracy is taken as the warm
start it usually is: Lanczos cannot tell it from the wanted one until its Krylov space has
seen past it, so pass no ``v0`` that may belong to another part of the spectrum.

>>> import torch
>>> from saddlescape.curvature import DenseOperator, lanczos
>>> op = DenseOperator(torch.diag(torch.linspace(-1.0, 2.0, 50, dtype=torch.float64)))
>>> r = lanczos(op, k=1, which="both", tol=1e-8, seed=0)
>>> [round(x, 6) for x in r.eigenvalues.tolist()], r.converged
([-1.0, 2.0], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import ConfigError, CurvatureError, check_int, check_positive
from ._progress import CurvatureProgress, Watch

__all__ = ["EigenResult", "lanczos"]

Which = Literal["largest", "smallest", "both"]


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs with their cost and quality.

    ``eigenvalues`` (float64, ascending) and ``eigenvectors`` (``(n, k)``, unit columns,
    float64) are Ritz pairs; ``residuals[i] = ‖H v_i − λ_i v_i‖`` (each bounds the distance
    from ``λ_i`` to the spectrum); ``error_bounds[i] = min(residual, residual²/gap)`` with the
    gap estimated from the other Ritz values — an estimate despite its name: where the
    Krylov space has not resolved a cluster the Ritz gap exceeds the true one (a converged
    run on a cluster of ~1e-9 eigenvalues reported 7.9e-20 where the nearest eigenvalue
    was 3.1e-11 away), so only ``residuals`` bound the error; ``converged`` is True when
    every pair met the stopping rule; ``hvps`` counts operator products and ``passes`` the
    passes over the data they took (a block of products shares one); ``iterations``
    Lanczos steps (power iterations); ``restarts`` thick restarts; ``seconds`` wall time.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    converged: bool
    hvps: int
    seconds: float
    iterations: int
    restarts: int = 0
    error_bounds: torch.Tensor | None = None
    passes: int = 0

    @property
    def eigenvalue(self) -> float:
        """The eigenvalue when there is one (the last, i.e. largest, otherwise)."""
        return float(self.eigenvalues[-1])

    def __repr__(self) -> str:
        vals = ", ".join(f"{v:.6g}" for v in self.eigenvalues.tolist())
        res = ", ".join(f"{v:.2g}" for v in self.residuals.tolist())
        return (
            f"EigenResult(eigenvalues=[{vals}], residuals=[{res}], converged={self.converged}, "
            f"hvps={self.hvps}, iterations={self.iterations}, restarts={self.restarts}, "
            f"seconds={self.seconds:.3g})"
        )


# ---------------------------------------------------------------------- helpers
def _apply(op: Any, V: torch.Tensor) -> torch.Tensor:
    """``op @ V`` for a float64 block ``V`` (n, b), returned in float64."""
    dtype = getattr(op, "dtype", torch.float64)
    device = getattr(op, "device", V.device)
    Vc = V.to(dtype=dtype, device=device)
    if V.shape[1] > 1 and hasattr(op, "matmat"):
        out = op.matmat(Vc)
    else:
        out = torch.stack([op.matvec(Vc[:, j]) for j in range(V.shape[1])], dim=1)
    out = torch.as_tensor(out).to(dtype=torch.float64, device=V.device)
    if not bool(torch.isfinite(out).all()):
        from ..errors import DivergenceError

        raise DivergenceError("a Hessian-vector product is not finite (contains nan or inf)")
    return out


def _orthonormalize(
    W: torch.Tensor,
    Q: torch.Tensor,
    gen: torch.Generator,
    scale: float,
    locked: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Column-wise Gram–Schmidt of ``W`` (already orthogonal to ``Q``) into ``P`` with
    ``W = P B`` (``B`` upper triangular). A column that vanishes (an invariant subspace) is
    replaced by a random unit vector orthogonal to everything (``Q``, ``locked`` and the
    columns before it), with coupling 0."""
    n, b = W.shape
    Y = locked if locked is not None and locked.shape[1] else None
    P = torch.empty_like(W)
    B = torch.zeros(b, b, dtype=W.dtype, device=W.device)
    tiny = 1e-13 * max(scale, 1e-300)
    broke = False
    for j in range(b):
        w = W[:, j].clone()
        prev = P[:, :j]
        # Reorthogonalize against everything until no more cancellation (Daniel, Gragg,
        # Kaufman & Stewart 1976: repeat while the norm drops below 1/√2 of the previous).
        old = float(torch.linalg.vector_norm(w))
        for _rep in range(4):
            w -= Q @ (Q.T @ w)
            if Y is not None:
                w -= Y @ (Y.T @ w)
            if j:
                c = prev.T @ w
                w -= prev @ c
                B[:j, j] += c
            beta = float(torch.linalg.vector_norm(w))
            if beta >= 0.7 * old:
                break
            old = beta
        if beta > tiny:
            B[j, j] = beta
            P[:, j] = w / beta
            continue
        broke = True
        nw = 0.0
        if Q.shape[1] + j + (0 if Y is None else Y.shape[1]) < n:
            for _attempt in range(3):  # breakdown: continue with a fresh random direction
                w = torch.randn(n, generator=gen, dtype=W.dtype).to(W.device)
                for _ in range(2):
                    w -= Q @ (Q.T @ w)
                    if Y is not None:
                        w -= Y @ (Y.T @ w)
                    w -= prev @ (prev.T @ w)
                nw = float(torch.linalg.vector_norm(w))
                if nw > 1e-8:
                    break
        if nw <= 1e-8:  # no room left in R^n: the block shrinks to the columns so far,
            # which with Q span everything: the later columns of W lie in their span, and
            # their coefficients complete W = P B (the residuals are read from B)
            prev = P[:, :j]
            for jj in range(j + 1, b):
                w = W[:, jj].clone()
                for _ in range(2):
                    w -= Q @ (Q.T @ w)
                    if Y is not None:
                        w -= Y @ (Y.T @ w)
                B[:j, jj] = prev.T @ w
            return prev, B[:j], broke
        P[:, j] = w / nw
    return P, B, broke


def start_generator(seed: int | None) -> torch.Generator:
    """The generator of random start vectors for ``seed`` (None: fresh entropy).

    The seed is mixed with a constant so that the start vector differs from
    ``torch.randn`` after ``torch.manual_seed(seed)`` — the same seed often made the problem
    itself, and a start vector equal to the problem's data can be an exact eigenvector.
    """
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed((int(seed) * 0x9E3779B97F4A7C15 + 0x5ADD1E) % (2**63))
    return gen


def _priority(theta: torch.Tensor, which: str) -> torch.Tensor:
    """Ritz indices ordered by how wanted they are (most wanted first)."""
    m = theta.numel()
    asc = torch.argsort(theta)
    if which == "smallest":
        return asc
    if which == "largest":
        return asc.flip(0)
    order = []
    lo, hi = 0, m - 1
    while lo <= hi:
        order.append(int(asc[lo]))
        if hi != lo:
            order.append(int(asc[hi]))
        lo, hi = lo + 1, hi - 1
    return torch.tensor(order, dtype=torch.long)


def _wanted(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    m = theta.numel()
    asc = torch.argsort(theta)
    if which == "smallest":
        idx = asc[: min(k, m)]
    elif which == "largest":
        idx = asc[max(0, m - k) :]
    else:
        idx = torch.unique(torch.cat([asc[: min(k, m)], asc[max(0, m - k) :]]))
        idx = idx[torch.argsort(theta[idx])]
    return idx


def _error_bounds(theta: torch.Tensor, res: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    out = res[idx].clone()
    if theta.numel() > 1:
        for a, i in enumerate(idx.tolist()):
            others = torch.cat([theta[:i], theta[i + 1 :]])
            gap = float((others - theta[i]).abs().min())
            if gap > 0:
                out[a] = min(float(res[i]), float(res[i]) ** 2 / gap)
    return out


def _estimates(theta: torch.Tensor, res: torch.Tensor, which: str) -> dict[str, float]:
    """The extreme Ritz values (and the residual of the first) for progress reports."""
    out: dict[str, float] = {}
    if which in ("smallest", "both"):
        i = int(torch.argmin(theta))
        out["lambda_min"] = float(theta[i])
        out["residual"] = float(res[i])
    if which in ("largest", "both"):
        i = int(torch.argmax(theta))
        out["lambda_max"] = float(theta[i])
        out.setdefault("residual", float(res[i]))
    return out


def precision_floor(dtype: torch.dtype) -> float:
    """The smallest tolerance, relative to ``‖H‖``, that products in ``dtype`` can show.

    A Ritz residual is read off the Krylov relation of the *computed* products, so below
    their rounding it keeps falling while the true one does not: on a float16 operator a
    run at ``tol=1e-6`` reported residuals of 2e-6 (true 3e-4) and λ 1.5e-4 off. Measured
    eigenvalue errors of dense operators of size 100 reach about ``eps/9`` of ``‖H‖``
    (float32 1.4e-8, float16 8e-5, bfloat16 5e-4), so the floor is ``eps/8`` (float32
    1.5e-8, float16 1.2e-4, bfloat16 9.8e-4: the default ``tol=1e-3`` passes)."""
    return torch.finfo(dtype).eps / 8 if dtype.is_floating_point else 0.0


def check_tolerance(tol: float, op: Any) -> None:
    """Refuse a positive ``tol`` below :func:`precision_floor` of the operator's dtype."""
    dtype = getattr(op, "dtype", torch.float64)
    floor = precision_floor(dtype)
    if 0 < tol < floor:
        raise ConfigError(
            f"tol={tol:g} is below what {dtype} products can resolve (eps/8 = {floor:.2g} "
            "of ‖H‖): the residuals would claim an accuracy the products do not have; "
            f"use tol >= {floor:.2g} or run the model in a finer dtype"
        )


def _validate(op: Any) -> int:
    if not hasattr(op, "matvec") or not hasattr(op, "shape"):
        raise CurvatureError(f"expected an operator with matvec and shape, got {type(op).__name__}")
    n0, n1 = op.shape
    if n0 != n1:
        raise CurvatureError(f"the operator must be square, got shape {tuple(op.shape)}")
    if n0 < 1:
        raise CurvatureError("the operator is empty (n = 0)")
    return int(n0)


# ---------------------------------------------------------------------- the solver
def lanczos(
    op: Any,
    k: int = 1,
    which: Which = "largest",
    tol: float = 1e-3,
    max_hvps: int | None = None,
    seed: int | None = None,
    v0: torch.Tensor | None = None,
    *,
    block_size: int | None = None,
    max_basis: int | None = None,
    stop: Callable[[torch.Tensor, torch.Tensor, float], bool] | None = None,
    relative_to: Literal["norm", "eigenvalue"] = "norm",
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> EigenResult:
    """The ``k`` largest, ``k`` smallest, or both (``which="both"``: ``2k`` values) eigenpairs
    of the symmetric operator ``op`` (anything with ``matvec``, ``shape``, ``dtype``).

    Stops when every wanted Ritz pair has residual ``≤ tol · max|θ|`` (relative to the
    estimated ``‖H‖``; see the module docstring for why this bounds the eigenvalue error;
    with ``relative_to="eigenvalue"``: ``≤ tol · |θ_i|``, each pair relative to itself, ARPACK's
    rule — what "λ_min to 1e-3 relative" needs when ``|λ_min| ≪ ‖H‖``, as for a trained
    network; a pair with ``θ_i ≈ 0`` then converges only by exhausting the space or budget),
    when ``max_hvps`` products are spent (default ``max(200, 30·k·b)``, capped to ``10·n``;
    ``converged=False`` then — and a budget below the number of values asked for returns
    fewer values, one per product), when the Krylov space fills ``R^n`` (exact), or when
    ``stop(theta, residuals, scale)`` returns True (used by the one-sided negative-curvature
    test; ``tol = 0`` leaves only these other rules). ``v0`` warm-starts (e.g. the previous
    step's eigenvector; a trace of the random start, ``min(1e-3, max(tol, 1e-6))`` of it, is
    added so that a ``v0`` orthogonal to the wanted end cannot hide it); ``seed`` fixes the
    random start (same seed ⇒ same bits).
    ``block_size``: the default (None) is one start vector and, for ``k > 1``, a search
    for the copies of repeated eigenvalues it cannot see (module docstring); every copy is
    returned, with residuals as exact as the first run's. ``block_size=b`` instead runs block
    Lanczos from ``b`` random vectors (safe for multiplicities up to ``b``, ``b`` products a
    step, sharing one pass over the data); ``block_size=1`` is the cheapest and finds one
    copy of each repeated eigenvalue (benchmarks/RESULTS.md, "scale", compares the three on
    a 309k-parameter CNN). ``max_basis``: memory cap in
    basis vectors before a thick restart (default ``min(n, 128)``, fewer if ``n·128``
    float64 values exceed 2 GiB). ``progress=True`` shows a bar (products out of the budget,
    the current extreme Ritz values); ``callback(p)`` gets a
    :class:`~saddlescape.curvature.CurvatureProgress` after every step.
    """
    t0 = time.perf_counter()
    n = _validate(op)
    k = check_int("k", k, minimum=1)
    if which not in ("largest", "smallest", "both"):
        raise ConfigError(f"which must be 'largest', 'smallest' or 'both', got {which!r}")
    tol = check_positive("tol", tol, allow_zero=True)
    check_tolerance(tol, op)
    b = check_int("block_size", block_size if block_size is not None else 1, minimum=1)
    b = min(b, n)
    if relative_to not in ("norm", "eigenvalue"):
        raise ConfigError(f"relative_to must be 'norm' or 'eigenvalue', got {relative_to!r}")
    n_wanted = min(n, 2 * k if which == "both" else k)
    if max_basis is None:
        max_basis = min(n, 128, max(2**28 // n, 4 * b))
    max_basis = check_int("max_basis", max_basis, minimum=1)
    max_basis = min(max(max_basis, n_wanted + 2 * b, 3 * b), n) if n > 1 else 1
    if max_hvps is None:
        max_hvps = min(max(200, 30 * k * b), 10 * n)
    max_hvps = check_int("max_hvps", max_hvps, minimum=1)

    passes0 = getattr(op, "passes", 0)
    common = (n, which, tol, relative_to, max_basis)
    with Watch("lanczos", progress, callback, max_hvps) as watch:
        result, R, scale = _lanczos(
            op, n, k, which, tol, b, relative_to, n_wanted, max_basis, max_hvps, seed, v0,
            stop, watch, t0,
        )  # fmt: skip
        if block_size is None and k > 1 and result.converged and n_wanted < n:
            result = _complete_multiplicities(
                op, common, k, max_hvps, seed, watch, t0, result, R, scale
            )
    return dataclasses.replace(result, passes=getattr(op, "passes", 0) - passes0)


class _Offset:
    """A progress watch for a later run: its products are added to those spent before."""

    def __init__(self, watch: Any, offset: int) -> None:
        self.watch, self.offset = watch, offset

    @property
    def active(self) -> bool:
        return bool(self.watch.active)

    def __call__(self, hvps: int, **estimate: float) -> None:
        self.watch(self.offset + hvps, **estimate)


def _complete_multiplicities(
    op: Any,
    common: tuple[int, str, float, str, int],
    k: int,
    max_hvps: int,
    seed: int | None,
    watch: Any,
    t0: float,
    first: EigenResult,
    R: torch.Tensor,
    scale: float,
) -> EigenResult:
    """Find the copies of repeated eigenvalues a single start vector cannot see.

    A Krylov space from one vector holds one direction of each eigenspace, so a converged
    single-vector run returns each repeated eigenvalue once. The converged pairs are
    locked (``Y``) and a fresh run from a random vector explores ``Y⊥`` for the most
    wanted eigenvalue of ``(I − YYᵀ) H (I − YYᵀ)``: a hidden copy (or a pair the first run
    converged past) is the most wanted there and enters the wanted set — then it is locked
    too and another run looks again; a value that would not be wanted, or would be by less
    than the tolerance (a tie with the k-th, which either answer meets), ends the search.
    A search ends when its most wanted pair converges, or, with nothing beyond the k-th in
    sight, after as many steps as the first run took: those steps converged the k-th pair,
    and a hidden eigenvalue beyond it has no smaller gap to the rest of ``Y⊥``, so it would
    have shown (Ritz values only grow towards the end of the spectrum, so one that shows
    is certain). Searches cost at most as many products as the first run, usually fewer.

    Residuals stay exact: for ``y ⊥ Y`` with ``(I − YYᵀ) H y − θ y = r``,
    ``H y − θ y = r + Y (Rᵀ y)`` where ``R = H Y − Y Θ`` are the locked pairs' residual
    vectors, known from their Krylov relations, and the two terms are orthogonal."""
    n, which, tol, relative_to, max_basis = common
    theta, Y, res = first.eigenvalues, first.eigenvectors, first.residuals
    hvps, iterations, restarts = first.hvps, first.iterations, first.restarts
    converged = True
    rounds = 0

    def beyond(values: list[float], top: float, bottom: float, scale: float) -> list[int]:
        """Indices of ``values`` that would be wanted over the k-th by more than the
        tolerance (a value within it is a tie with the k-th, which either answer meets)."""
        out = []
        for j, value in enumerate(values):
            margin = tol * (scale if relative_to == "norm" else abs(value))
            if (which != "smallest" and value > top + margin) or (
                which != "largest" and value < bottom - margin
            ):
                out.append(j)
        return out

    while Y.shape[1] < n:
        if hvps >= max_hvps:
            converged = False  # the search for copies did not finish
            break
        rounds += 1
        asc = torch.sort(theta).values
        top, bottom = float(asc[-min(k, asc.numel())]), float(asc[min(k, asc.numel()) - 1])
        steps = [0]

        def settled(
            th: torch.Tensor,
            _res: torch.Tensor,
            sc: float,
            steps: list[int] = steps,
            top: float = top,
            bottom: float = bottom,
        ) -> bool:
            # Given the steps that converged the k-th pair, a hidden eigenvalue beyond it
            # (whose gap to the rest of Y⊥ is no smaller) would have shown by now.
            steps[0] += 1
            ends = [float(th.min()), float(th.max())]
            return steps[0] >= first.iterations and not beyond(ends, top, bottom, sc)

        sub, Rs, scale = _lanczos(
            op, n, 1, which, tol, 1, relative_to, 2 if which == "both" else 1,
            min(max_basis, n - Y.shape[1]), max_hvps - hvps,
            None if seed is None else seed + 7919 * rounds, None, settled,
            _Offset(watch, hvps), t0, locked=Y, scale0=scale,
        )  # fmt: skip
        hvps += sub.hvps
        iterations += sub.iterations
        restarts += sub.restarts
        enters = beyond(sub.eigenvalues.tolist(), top, bottom, scale)
        if not enters:
            break  # nothing hidden at the wanted end: every copy was found
        if not sub.converged:
            converged = False  # something is hidden but did not converge in the budget
            break
        Rnew = Rs + Y @ (R.T @ sub.eigenvectors[:, enters])
        theta = torch.cat([theta, sub.eigenvalues[enters]])
        Y = torch.cat([Y, sub.eigenvectors[:, enters]], dim=1)
        R = torch.cat([R, Rnew], dim=1)
        res = torch.cat([res, torch.linalg.vector_norm(Rnew, dim=0).cpu()])
    idx = _wanted(theta, k, which)
    bound = tol * (scale if relative_to == "norm" else theta[idx].abs())
    return EigenResult(
        eigenvalues=theta[idx].clone(),
        eigenvectors=Y[:, idx.to(Y.device)],
        residuals=res[idx].clone(),
        converged=converged and bool((res[idx] <= bound).all()),
        hvps=hvps,
        seconds=time.perf_counter() - t0,
        iterations=iterations,
        restarts=restarts,
        error_bounds=_error_bounds(theta, res, idx),
    )


def _lanczos(
    op: Any,
    n: int,
    k: int,
    which: str,
    tol: float,
    b: int,
    relative_to: str,
    n_wanted: int,
    max_basis: int,
    max_hvps: int,
    seed: int | None,
    v0: torch.Tensor | None,
    stop: Callable[[torch.Tensor, torch.Tensor, float], bool] | None,
    watch: Any,
    t0: float,
    locked: torch.Tensor | None = None,
    scale0: float = 0.0,
) -> tuple[EigenResult, torch.Tensor, float]:
    """One Lanczos run; also returns the residual vectors ``H y − θ y`` of the wanted pairs
    (``(n, k)``, exact from the Krylov relation). With ``locked`` (orthonormal columns ``Y``)
    it runs on ``Y⊥``: the start, every product and every fresh direction are projected
    off ``Y``, so it computes eigenpairs of ``(I − YYᵀ) H (I − YYᵀ)`` restricted to ``Y⊥``
    (its residuals are those of that operator); ``scale0`` seeds the estimate of ``‖H‖``,
    which is returned third."""
    gen = start_generator(seed)
    device = getattr(op, "device", torch.device("cpu"))
    f64 = torch.float64
    Y = locked if locked is not None and locked.shape[1] else None
    room = n - (0 if Y is None else Y.shape[1])  # the dimension of the space searched

    # start block
    start = torch.randn(n, b, generator=gen, dtype=f64).to(device)
    near_invariant = 0.0  # a first coupling below near_invariant·scale: v0 is an eigenvector
    first_coupling = float("inf")  # ‖H v0 − θ v0‖, the first step's residual
    if v0 is not None:
        v0 = torch.as_tensor(v0)
        # An eigenvector rounded to float32 (or multiplied in float32) couples to the rest of
        # the space only by its rounding error: Lanczos from it is a breakdown in all but
        # name, and its own Ritz pair converges at once whatever the wanted end holds.
        dtypes = [getattr(op, "dtype", f64)] + ([v0.dtype] if v0.is_floating_point() else [])
        near_invariant = 100 * max(torch.finfo(dt).eps for dt in dtypes)
        v0 = v0.to(dtype=f64, device=device).reshape(-1)
        if v0.numel() != n:
            raise CurvatureError(f"v0 must have shape ({n},), got {tuple(v0.shape)}")
        if not bool(torch.isfinite(v0).all()) or float(torch.linalg.vector_norm(v0)) == 0:
            raise CurvatureError("v0 must be a finite, non-zero vector")
        # A v0 with no component in the wanted eigenspace (exactly orthogonal to it, as a
        # block-diagonal or separable Hessian and a v0 inside one block give) confines the
        # Krylov space to an invariant subspace without the wanted end, whose own top
        # converges: λ_max 0.999 for 3.0 at n = 2000. A trace of the random start, at the
        # tolerance's level (1e-6 to 1e-3), lets the wanted end grow in while a v0 that is
        # the answer still converges at once.
        unit = start[:, 0] / torch.linalg.vector_norm(start[:, 0])
        mix = min(1e-3, max(tol, 1e-6))
        start[:, 0] = v0 / torch.linalg.vector_norm(v0) + mix * unit
    if Y is not None:
        start -= Y @ (Y.T @ start)
    norms = torch.linalg.vector_norm(start, dim=0, keepdim=True)
    P, _, _ = _orthonormalize(start / norms, start[:, :0], gen, 1.0, Y)

    # The basis lives in one buffer, Q = buf[:, :m], that grows (doubling) with the steps
    # taken up to the restart size: memory follows the steps, not the maximum.
    capacity = min(n, max_basis + b)
    buf = torch.empty(n, min(capacity, 8 * b), dtype=f64, device=device)
    m = 0
    fresh: int | None = None  # first column of the Krylov segment begun after a breakdown
    suspicious = v0 is not None
    T = torch.zeros(0, 0, dtype=f64, device=device)
    hvps = iterations = restarts = 0
    scale = scale0
    converged = False
    theta = torch.zeros(0, dtype=f64)
    S = torch.zeros(0, 0, dtype=f64)
    res = torch.zeros(0, dtype=f64)
    B = torch.zeros(0, 0, dtype=f64, device=device)
    while True:
        bb = min(P.shape[1], room - m, max_hvps - hvps)
        W = _apply(op, P[:, :bb])
        hvps += bb
        if Y is not None:
            W -= Y @ (Y.T @ W)
        iterations += 1
        if m + bb > buf.shape[1]:
            width = min(capacity, max(m + bb, 2 * buf.shape[1]))
            grown = torch.empty(n, width, dtype=f64, device=device)
            grown[:, :m] = buf[:, :m]
            buf = grown
        buf[:, m : m + bb] = P[:, :bb]
        QP = buf[:, : m + bb]
        h = QP.T @ W  # full reorthogonalization, twice (Parlett 1998, §6.9)
        W -= QP @ h
        h2 = QP.T @ W
        W -= QP @ h2
        h += h2
        Tn = torch.zeros(m + bb, m + bb, dtype=f64, device=device)
        Tn[:m, :m] = T
        Tn[:, m:] = h
        Tn[m:, :m] = h[:m].T
        Tn[m:, m:] = 0.5 * (h[m:] + h[m:].T)
        m, T = m + bb, Tn
        theta, S = torch.linalg.eigh(T.cpu())
        scale = max(scale, float(theta.abs().max()))
        exhausted = m >= room
        broke = False
        if exhausted:
            res = torch.zeros_like(theta)
        else:
            P, B, broke = _orthonormalize(W, buf[:, :m], gen, scale, Y)
            if suspicious and not broke and m == 1:
                first_coupling = float(B[0, 0])
            if broke and suspicious:
                # A breakdown from a random start is generic: the invariant subspace then
                # holds every distinct eigenvalue the start touched, i.e. all of them. From
                # a given v0 it may miss the wanted end: explore a fresh random segment.
                fresh, suspicious = m, False
            else:
                broke = False
            # H Q = Q T + P C with C = [0 … 0 B]: the residual of (θ, Q s) is ‖C s‖.
            res = torch.linalg.vector_norm(B.cpu() @ S[m - bb :], dim=0)
            exhausted = P.shape[1] == 0
        idx = _wanted(theta, k, which)
        if watch.active:
            watch(hvps, **_estimates(theta, res, which))
        bound = tol * (scale if relative_to == "norm" else theta[idx].abs())
        # At a breakdown the basis spans an invariant subspace: its Ritz pairs are exact
        # but may miss the wanted end of the spectrum, so go on with the fresh direction.
        converged = exhausted or (
            not broke and idx.numel() >= n_wanted and bool((res[idx] <= bound).all())
        )
        if converged and suspicious and restarts == 0 and first_coupling <= near_invariant * scale:
            # v0 is an eigenvector to the precision of its dtype and of the products (judged
            # on the scale seen so far, not |θ| of v0 alone): as after a breakdown, the second
            # direction began a segment (its coupling kept) whose most wanted pair must
            # converge too
            fresh, suspicious = 1, False
        if converged and fresh is not None and not exhausted:
            # after a breakdown the old invariant subspace has zero residuals forever: also
            # require the most wanted Ritz pair of the fresh Krylov segment to converge
            own = S[fresh:].norm(dim=0) > 0.5
            order = [i for i in _priority(theta, which).tolist() if own[i]]
            if order:
                b0 = tol * (scale if relative_to == "norm" else abs(float(theta[order[0]])))
                converged = float(res[order[0]]) <= b0
            else:  # the fresh segment holds no Ritz pair yet: it has seen nothing
                converged = False
        if converged or hvps >= max_hvps or (stop is not None and stop(theta, res, scale)):
            break
        if m + min(P.shape[1], room - m) > max_basis:  # thick restart (Wu & Simon 2000)
            keep = _priority(theta, which)[: max(n_wanted, min(m - b, max_basis // 2))]
            keep = keep[torch.argsort(theta[keep])]
            kept = buf[:, :m] @ S[:, keep].to(device)
            m = kept.shape[1]
            buf[:, :m] = kept
            T = torch.diag(theta[keep]).to(device)
            restarts += 1
            fresh = None
            # the coupling of the pending block P to the kept Ritz vectors, C @ S_keep, is
            # recovered exactly by the next step's orthogonalization coefficients.

    idx = _wanted(theta, k, which)
    vecs = buf[:, :m] @ S[:, idx].to(device)
    if exhausted or P.shape[1] == 0:
        R = torch.zeros_like(vecs)
    else:  # H y − θ y = P C s with C = [0 … 0 B]
        R = P @ (B @ S[m - B.shape[1] :, idx].to(device))
    result = EigenResult(
        eigenvalues=theta[idx].clone(),
        eigenvectors=vecs,
        residuals=res[idx].clone(),
        converged=converged,
        hvps=hvps,
        seconds=time.perf_counter() - t0,
        iterations=iterations,
        restarts=restarts,
        error_bounds=_error_bounds(theta, res, idx),
    )
    return result, R, scale
