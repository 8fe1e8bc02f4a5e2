"""Toy experiments for the runner tests. Worker processes import this module by the path
the run spec carries (module ``runner_toys``, root ``tests/runner``) and find the classes by
qualified name. Importing registers nothing (other tests list the registry): test modules
use the ``toys_registered`` fixture, subprocesses call :func:`register_toys`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from saddlescape.experiments import (
    Analysis,
    Experiment,
    RunOutput,
    RunRecord,
    Verdict,
    register,
    registry,
)


def quadratic_descent(dim: int, steps: int, lr: float, seed: int) -> tuple[torch.Tensor, list]:
    """Gradient descent on f(x) = ½ xᵀAx − bᵀx with a random SPD A (float32 on purpose:
    float32 sums are where thread counts change bits)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
    eig = torch.rand(dim, generator=gen) * 2 + 0.1
    a = (q * eig) @ q.T
    b = torch.randn(dim, generator=gen)
    x = torch.zeros(dim, requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = 0.5 * x @ a @ x - b @ x
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= lr * grad
        losses.append(loss.detach())
    return x.detach(), losses


class ToyQuadratic(Experiment):
    name = "toy_quadratic"
    claim = "gradient descent decreases a convex quadratic"
    source = "tests"

    @dataclass
    class Config:
        dim: int = 64
        steps: int = 40
        lr: float = 0.1
        seed: int = 0
        fail_seed: int = -1
        sleep: float = 0.0

        def validate(self) -> None:
            if self.dim < 1:
                raise ValueError(f"dim must be >= 1, got {self.dim}")

    quick_overrides: ClassVar[dict] = {"steps": 10}
    default_grid: ClassVar[dict] = {"seed": [0, 1]}
    quick_grid: ClassVar[dict] = {"seed": [0]}

    def run(self, config: Config) -> RunOutput:
        if config.seed == config.fail_seed:
            raise RuntimeError(f"boom on seed {config.seed}")
        if config.sleep:
            time.sleep(config.sleep)
        x, losses = quadratic_descent(config.dim, config.steps, config.lr, config.seed)
        return RunOutput(
            metrics={
                "final_loss": losses[-1],  # a 0-d tensor: the runner unwraps it
                "x_norm": np.float32(torch.linalg.vector_norm(x).item()),
                "global_draw": torch.rand(()).item(),  # the runner seeds the global RNG
            },
            arrays={"losses": torch.stack(losses), "x": x},  # tensors: the runner converts
        )

    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        ok = [r for r in records if r.status == "ok"]
        table = [{"seed": r.config["seed"], "final_loss": r.metrics["final_loss"]} for r in ok]
        decreased = all(r.arrays["losses"][-1] <= r.arrays["losses"][0] for r in ok)
        return Analysis(table, Verdict(decreased, "loss decreased"))


class ToyBadMetrics(Experiment):
    name = "toy_bad_metrics"
    claim = "returns a vector as a metric"
    source = "tests"

    @dataclass
    class Config:
        seed: int = 0

    def run(self, config: Config) -> RunOutput:
        return RunOutput(metrics={"vector": torch.ones(3)})

    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        return Analysis([], Verdict(False, "nothing"))


class ToyVictim(Experiment):
    """Seed ``victim`` notes its worker's pid in ``pid_dir`` and waits to be killed (by a
    test, as the out-of-memory killer would); the other seeds take ``seconds`` each."""

    name = "toy_victim"
    claim = "a dead worker fails only its own run"
    source = "tests"

    @dataclass
    class Config:
        seed: int = 0
        victim: int = -1
        pid_dir: str = ""
        seconds: float = 0.2

    def run(self, config: Config) -> RunOutput:
        if config.seed == config.victim:
            import os

            path = os.path.join(config.pid_dir, "victim")
            with open(path + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            time.sleep(120)
        time.sleep(config.seconds)
        return RunOutput(metrics={"seed": config.seed})

    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        return Analysis([], Verdict(True, "ran"))


class ToyUnregistered(ToyQuadratic):
    """Never registered: workers import it by qualified name."""

    name = "toy_unregistered"


class ToyExit(Experiment):
    """Seed ``exit_seed`` calls ``sys.exit(code)``, as a script turned experiment (or a
    library it calls) may. Never registered: run as a class."""

    name = "toy_exit"
    claim = "a run that calls sys.exit fails alone"
    source = "tests"

    @dataclass
    class Config:
        seed: int = 0
        exit_seed: int = 1
        code: int = 0

    def run(self, config: Config) -> RunOutput:
        if config.seed == config.exit_seed:
            sys.exit(config.code)
        return RunOutput(metrics={"seed": config.seed})

    def analyze(self, records: Sequence[RunRecord]) -> Analysis:
        return Analysis([], Verdict(True, "ran"))


TOYS = (ToyQuadratic, ToyBadMetrics, ToyVictim)


def register_toys() -> None:
    for cls in TOYS:
        register(cls)


@pytest.fixture(autouse=True, scope="module")
def toys_registered():
    """The toys registered for one test module, unregistered after it."""
    register_toys()
    yield
    for cls in TOYS:
        registry._REGISTRY.pop(cls.name, None)
