"""Where do practical optimizers stop on a network's loss? Second-order certificates of
trained MLPs.

The saddle-escape theory (Ge, Huang, Jin, Yuan 2015; Jin, Ge, Netrapalli, Kakade, Jordan
2017, Definition 4 and Theorem 3; Lee, Simchowitz, Jordan, Recht 2016) says that
gradient methods started at random — with or without injected noise — converge to
second-order stationary points, not to strict saddles. This experiment trains one small
network with four optimizers and certifies each final point with Hessian-vector products
on the full training set (:func:`saddlescape.curvature.certify_model`).

Set-up: a tanh MLP 64-32-10 (:func:`~saddlescape.problems.networks.make_mlp`, PyTorch's
default initialisation from ``seed``) on scikit-learn's 1,797 digits (pixels/16), mean
cross-entropy (:func:`~saddlescape.problems.networks.make_loss`), ``steps`` updates at
step size ``lr``:

- ``gd``: full-batch :class:`~saddlescape.optim.GD`;
- ``sgd``: ``torch.optim.SGD`` on minibatches of ``batch_size`` examples drawn with
  replacement from the generator of ``seed``, step size decayed by a cosine schedule to
  ``lr/100`` over the run (so the end point is not dominated by minibatch noise);
- ``pgd``: full-batch :class:`~saddlescape.optim.PerturbedGD` (Jin et al. 2017), radius
  ``radius``, g_thres = ``grad_threshold``, t_thres = ``interval``, no stop test;
- ``noisy``: full-batch :class:`~saddlescape.optim.NoisyGD` (Ge et al. 2015), noise
  uniform on the sphere of radius ``noise`` added to every gradient.

Training runs in float32; the final parameters are copied to float64 for the
certificate: ``‖∇f‖``, the extreme Hessian eigenvalues by Lanczos to relative tolerance
``lanczos_tol`` (about ``lanczos_tol·‖H‖`` absolute), and the kind (``"minimum"``,
``"saddle"``, ``"maximum"``, ``"degenerate"``, ``"not stationary"``, or ``"undecided"``
when the HVP budget ran out first) for the thresholds ``eps`` (gradient)
and τ (curvature). As in Jin et al.'s ε-SOSP definition, τ = √(ρ̂·ε) where ρ̂ is the
Hessian-Lipschitz constant estimated on the ball of radius ``rho_radius`` around the end
point (:func:`saddlescape.curvature.hessian_lipschitz`, a lower-bound estimate, so τ is if
anything too strict); a positive ``tau`` fixes τ instead. The train accuracy, ρ̂ and the
number of HVPs are reported.

Measured while designing (2026-11-28, GD, lr 0.5, seed 0; Lanczos to 1e-7): the smallest
Hessian eigenvalue is negative but shrinks as training goes on — λ_min = −2.6e-3, −6.6e-4,
−2.1e-4 after 1,000, 3,000, 6,000 steps (λ_max 1.18, 0.54, 0.27; ‖∇f‖ 8.1e-3, 2.5e-3,
1.1e-3; ρ̂ ≈ 0.7 on a ball of radius 0.1). A fixed τ = 1e-3 would call the 1,000-step GD
point a strict saddle and the 3,000-step one not (SGD after 3,000 steps: λ_min = −1.02e-3):
such a τ decides by the step budget. τ = √(ρ̂ε) ≈ 0.1 at ε = 1e-2 is the theory's scale.

**Verdict.** Supported when every optimizer reaches train accuracy ≥ ``ACCURACY_MIN`` =
0.95 and none ends where the Hessian has an eigenvalue below −τ (a strict-saddle
direction). Whether each end point is an ε-second-order stationary point (``‖∇f‖ ≤ eps``
as well) is reported but not judged: with a fixed step budget the gradient is small, not
zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError, check_count, check_int, check_positive
from ._common import mlp_widths
from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict
from .registry import register

__all__ = ["ACCURACY_MIN", "OPTIMIZERS", "CertifyNetwork", "CertifyNetworkConfig"]

OPTIMIZERS: tuple[str, ...] = ("gd", "sgd", "pgd", "noisy")
"""The optimizers compared (``sgd`` is ``torch.optim.SGD`` on minibatches)."""
ACCURACY_MIN = 0.95
"""Train accuracy every optimizer must reach."""


@dataclass(frozen=True)
class CertifyNetworkConfig:
    """One training run and its certificate.

    ``optimizer`` one of :data:`OPTIMIZERS`; ``hidden`` hidden widths (``"32"`` →
    64-32-10); ``loss`` ``"cross-entropy"`` or ``"mse"``; ``lr``, ``steps`` updates;
    ``batch_size`` for SGD; ``radius``, ``grad_threshold``, ``interval`` of PGD; ``noise``
    of noisy GD; ``n_samples`` the first n digits (0: all 1,797); ``eps``, ``tau`` the
    certificate thresholds (``tau`` 0: √(ρ̂·eps), ρ̂ estimated within ``rho_radius``);
    ``lanczos_tol`` relative Lanczos tolerance; ``seed`` the initialisation, minibatches
    and perturbations.
    """

    optimizer: str = "gd"
    hidden: str = "32"
    loss: str = "cross-entropy"
    lr: float = 0.5
    steps: int = 3000
    batch_size: int = 64
    radius: float = 1e-2
    grad_threshold: float = 1e-2
    interval: int = 50
    noise: float = 1e-2
    n_samples: int = 0
    eps: float = 1e-2
    tau: float = 0.0
    rho_radius: float = 1.0
    lanczos_tol: float = 1e-6
    seed: int = 0

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.loss not in ("cross-entropy", "mse"):
            raise ConfigError(f"loss must be 'cross-entropy' or 'mse', got {self.loss!r}")
        _widths(self.hidden)
        check_positive("lr", self.lr)
        from ..problems.networks import DIGITS_SIZE

        check_count("steps", self.steps, minimum=1, maximum=10**7)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("radius", self.radius)
        check_positive("grad_threshold", self.grad_threshold)
        check_count("interval", self.interval, minimum=1, maximum=10**8)
        check_positive("noise", self.noise)
        check_count("n_samples", self.n_samples, minimum=0, maximum=DIGITS_SIZE)
        check_positive("eps", self.eps)
        check_positive("tau", self.tau, allow_zero=True)
        check_positive("rho_radius", self.rho_radius)
        check_positive("lanczos_tol", self.lanczos_tol)
        check_int("seed", self.seed, minimum=0)


def _widths(hidden: str) -> tuple[int, ...]:
    return mlp_widths(hidden, "'32' or '64,64'")


@register
class CertifyNetwork(Experiment):
    """Trained networks end at points without strong negative curvature (HVP certificates).

    >>> from saddlescape import experiments
    >>> exp = experiments.get("certify-network")
    >>> cfg = exp.config(hidden="4", n_samples=100, steps=10, tau=1e-3)
    >>> m = exp.run(cfg).metrics
    >>> m["kind"] in ("minimum", "saddle", "degenerate", "not stationary"), m["n_params"]
    (True, 310)
    """

    name = "certify-network"
    claim = (
        "Gradient descent, minibatch SGD, perturbed GD and noisy GD from a random start all "
        "train a small MLP to high accuracy and end at points that are not strict saddles: "
        "the Hessian of the full training loss has no eigenvalue below −τ there."
    )
    source = (
        "Jin, Ge, Netrapalli, Kakade, Jordan, 'How to escape saddle points efficiently', "
        "ICML 2017 (Definition 4, Theorem 3); Ge, Huang, Jin, Yuan, 'Escaping from saddle "
        "points', COLT 2015; Lee, Simchowitz, Jordan, Recht, 'Gradient descent only "
        "converges to minimizers', COLT 2016"
    )
    Config = CertifyNetworkConfig
    quick_overrides: ClassVar[dict[str, Any]] = {"steps": 1000}
    default_grid: ClassVar[dict[str, list[Any]]] = {"optimizer": list(OPTIMIZERS), "seed": [0]}
    quick_grid: ClassVar[dict[str, list[Any]]] = {"optimizer": list(OPTIMIZERS), "seed": [0]}

    # ------------------------------------------------------------------ one run
    def run(self, config: CertifyNetworkConfig) -> RunOutput:
        """Train, then certify the final point on the full training set (float64)."""
        from .. import optim, problems
        from ..curvature import HessianOperator, certify_model, hessian_lipschitz, lanczos
        from ..problems.networks import load_digits_tensors, make_loss, make_mlp

        t0 = time.perf_counter()
        widths = _widths(config.hidden)
        X, y = load_digits_tensors(config.n_samples or None)
        loss_fn = make_loss(config.loss)
        model = make_mlp(widths, "tanh", config.seed)
        params = list(model.parameters())
        gen = torch.Generator().manual_seed(config.seed)
        name = config.optimizer
        if name == "sgd":
            opt: Any = torch.optim.SGD(params, lr=config.lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=config.steps, eta_min=config.lr / 100
            )
        elif name == "gd":
            opt = optim.make("gd", params, lr=config.lr)
        elif name == "pgd":
            opt = optim.make(
                "pgd",
                params,
                lr=config.lr,
                radius=config.radius,
                grad_threshold=config.grad_threshold,
                interval=config.interval,
                f_threshold=None,
                seed=config.seed,
            )
        else:
            opt = optim.make("noisy", params, lr=config.lr, radius=config.noise, seed=config.seed)

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X), y)
            loss.backward()
            return loss

        record_every = max(1, config.steps // 200)
        curve: list[float] = []
        t_train = time.perf_counter()
        for t in range(config.steps):
            if name == "sgd":
                idx = torch.randint(0, X.shape[0], (config.batch_size,), generator=gen)
                opt.zero_grad(set_to_none=True)
                loss_fn(model(X[idx]), y[idx]).backward()
                opt.step()
                sched.step()
            else:
                opt.step(closure)
            if t % record_every == 0:
                with torch.no_grad():
                    curve.append(float(loss_fn(model(X), y)))
        train_seconds = time.perf_counter() - t_train

        # certificate on a float64 copy
        model64 = make_mlp(widths, "tanh", config.seed, torch.float64)
        with torch.no_grad():
            for p64, p in zip(model64.parameters(), model.parameters(), strict=True):
                p64.copy_(p)
        X64 = X.double()
        rho = float("nan")
        tau = config.tau
        if tau == 0:
            problem = problems.get(
                "mlp-digits",
                hidden=config.hidden,
                loss=config.loss,
                n_samples=config.n_samples or None,
                seed=config.seed,
            )
            theta = torch.nn.utils.parameters_to_vector(model64.parameters()).detach()
            rho = hessian_lipschitz(
                problem.f, theta, radius=config.rho_radius, seed=config.seed
            ).rho
            tau = math.sqrt(rho * config.eps)
        cert = certify_model(
            model64,
            loss_fn,
            (X64, y),
            eps=config.eps,
            tau=tau,
            tol=config.lanczos_tol,
            seed=config.seed,
        )
        lam_min, hvps = cert.lambda_min, cert.hvps
        if cert.lambda_min < -tau:
            # certify stops as soon as λ_min < −τ is proven, reporting a Ritz value (an
            # upper bound of λ_min): converge it for the table
            op = HessianOperator.from_model(model64, loss_fn, (X64, y))
            r = lanczos(op, k=1, which="smallest", tol=config.lanczos_tol, seed=config.seed)
            lam_min, hvps = min(lam_min, float(r.eigenvalues[0])), hvps + r.hvps
        with torch.no_grad():
            out = model64(X64)
            final_loss = float(loss_fn(out, y))
            accuracy = float((out.argmax(1) == y).double().mean())
        if not math.isfinite(final_loss):
            raise ConfigError(f"certify-network: training diverged (loss {final_loss})")
        perturbations = getattr(opt, "perturbations", 0)
        metrics = {
            "optimizer": name,
            "final_loss": final_loss,
            "train_accuracy": accuracy,
            "grad_norm": cert.grad_norm,
            "lambda_min": lam_min,
            "lambda_max": cert.lambda_max,
            "residual_min": cert.residual_min,
            "kind": cert.kind,
            "is_sosp": bool(cert.is_sosp),
            "negative_curvature": bool(lam_min < -tau),
            "certificate_converged": bool(cert.converged),
            "eps": config.eps,
            "tau": tau,
            "rho": rho,
            "hvps": hvps,
            "certify_seconds": cert.seconds,
            "train_seconds": train_seconds,
            "perturbations": int(perturbations) if not torch.is_tensor(perturbations) else 0,
            "n_params": sum(p.numel() for p in params),
            "seconds": time.perf_counter() - t0,
        }
        arrays = {
            "theta": torch.nn.utils.parameters_to_vector(model64.parameters()).detach().numpy(),
            "loss_curve": np.asarray(curve),
            "curve_steps": np.arange(0, config.steps, record_every)[: len(curve)],
        }
        return RunOutput(metrics, arrays)

    # ------------------------------------------------------------------ analysis
    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        """Table of certificates; verdict: high accuracy and no curvature below −τ."""
        ok = [r for r in records if r.status == "ok"]
        failed = len(records) - len(ok)
        order = {o: i for i, o in enumerate(OPTIMIZERS)}
        ok = sorted(
            ok, key=lambda r: (order.get(str(r.config["optimizer"]), 99), r.config.get("seed", 0))
        )
        rows: list[dict[str, Any]] = []
        numbers: dict[str, float] = {"failed": float(failed)}
        problems: list[str] = []
        for r in ok:
            m, opt = r.metrics, str(r.config["optimizer"])
            tag = opt + (f" (seed {r.config['seed']})" if r.config.get("seed", 0) else "")
            tau = float(m["tau"])
            rows.append(
                {
                    "optimizer": opt,
                    "seed": r.config.get("seed"),
                    "final loss": m["final_loss"],
                    "train accuracy": m["train_accuracy"],
                    "‖∇f‖": m["grad_norm"],
                    "λ_min": m["lambda_min"],
                    "λ_max": m["lambda_max"],
                    "kind": m["kind"],
                    "ε-SOSP": m["is_sosp"],
                    "ρ̂": m.get("rho"),
                    "τ": m["tau"],
                    "HVPs": m["hvps"],
                    "perturbations": m.get("perturbations"),
                }
            )
            for k in ("train_accuracy", "grad_norm", "lambda_min", "lambda_max", "final_loss"):
                numbers[f"{tag} {k}"] = float(m[k])
            if not m["train_accuracy"] >= ACCURACY_MIN:
                problems.append(
                    f"{tag} reached train accuracy {m['train_accuracy']:.3f} < {ACCURACY_MIN}"
                )
            if m["lambda_min"] >= -tau and not m.get("certificate_converged", True):
                # an unconverged λ_min is only a Ritz value, an upper bound: no proof
                problems.append(
                    f"{tag}: the certificate did not converge (kind {m['kind']!r}), so "
                    f"λ_min ≥ −τ is not established"
                )
            if not m["lambda_min"] >= -tau:
                problems.append(
                    f"{tag} ended with λ_min = {m['lambda_min']:.3g} < −τ = {-tau:.3g} "
                    f"(kind {m['kind']!r})"
                )
        if ok:
            numbers["worst lambda_min/tau"] = min(
                float(r.metrics["lambda_min"]) / float(r.metrics["tau"]) for r in ok
            )
        if failed:
            problems.append(f"{failed} run(s) failed")
        if not ok:
            problems.append("no successful runs")
        desc = "; ".join(
            f"{row['optimizer']}: acc {row['train accuracy']:.3f}, ‖∇f‖ {row['‖∇f‖']:.2g}, "
            f"λ_min {row['λ_min']:.2g}, λ_max {row['λ_max']:.2g}, {row['kind']}"
            for row in rows
        )
        if ok:
            eps, tau = float(ok[0].metrics["eps"]), float(ok[0].metrics["tau"])
            sosp = [row["optimizer"] for row in rows if row["ε-SOSP"]]
            thresholds = f"ε = {eps:g}, τ = {tau:g}"
            sosp_txt = f"ε-SOSPs: {', '.join(sosp) if sosp else 'none'}"
        else:
            thresholds = sosp_txt = ""
        if problems:
            summary = (
                "Not supported: " + "; ".join(problems) + f". Measured ({thresholds}): {desc}."
            )
        else:
            summary = (
                f"Supported: every optimizer reached train accuracy ≥ {ACCURACY_MIN} and none "
                f"ended with λ_min < −τ ({thresholds}; {sosp_txt}; most negative λ_min/τ = "
                f"{numbers['worst lambda_min/tau']:.3g}). Measured: {desc}."
            )
        verdict = Verdict(not problems, summary, numbers)
        return Analysis(rows, verdict, _figures(ok))


def _figures(records: Sequence[RunRecord]) -> dict[str, Any]:
    from .. import plotting as plots

    with plots.style():
        fig, (ax_l, ax_e) = plots.figure(ncols=2, width=9.2, height=3.6)
        names = []
        for i, r in enumerate(records):
            c = plots.color(i)
            opt = str(r.config["optimizer"])
            names.append(opt)
            ax_l.plot(r.arrays["curve_steps"], r.arrays["loss_curve"], color=c, label=opt)
            ax_e.plot(
                [i, i], [r.metrics["lambda_min"], r.metrics["lambda_max"]], "-", color=c, lw=3
            )
            ax_e.plot([i], [r.metrics["lambda_min"]], "v", color=c)
            ax_e.plot([i], [r.metrics["lambda_max"]], "^", color=c)
        if records:
            tau = float(records[0].metrics["tau"])
            ax_e.axhline(-tau, color=plots.THEORY_COLOR, ls="--", lw=1, label="−τ")
            ax_e.axhline(tau, color=plots.THEORY_COLOR, ls=":", lw=1, label="τ")
        ax_l.set_yscale("log")
        ax_l.set_xlabel("update")
        ax_l.set_ylabel("full training loss")
        ax_l.set_title("Training")
        ax_l.legend()
        ax_e.set_yscale("symlog", linthresh=1e-4)
        ax_e.set_xticks(range(len(names)), names)
        ax_e.set_ylabel("Hessian eigenvalue")
        ax_e.set_title("λ_min and λ_max at the end point")
        ax_e.legend()
    return {"certificates": fig}
