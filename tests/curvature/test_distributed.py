"""Data-parallel curvature on torch.distributed: two gloo ranks over uneven shards give the
numbers of one process holding all the data, and the same bits on both ranks."""

from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from saddlescape.curvature import (
    HessianOperator,
    SharpnessTracker,
    certify,
    certify_model,
    lanczos,
    smoothness,
    trace,
)
from saddlescape.errors import ConfigError

WORLD = 2


def _problem():
    """A BatchNorm net with a class-weighted cross-entropy; rank 0 holds batches of 5 and 3
    examples, rank 1 of 4 and 8 (uneven shards)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
    model = model.double()
    loss = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.5, 0.5], dtype=torch.float64))
    cuts = [(0, 5), (5, 8), (8, 12), (12, 20)]
    batches = [(X[a:b], y[a:b]) for a, b in cuts]
    return model, loss, [batches[:2], batches[2:]]


def _model_level(model, loss, data, mode, **distributed):
    """The model-level helpers, which build their own operators."""
    cert = certify_model(model, loss, data, eps=1e-6, tau=1e-3, tol=1e-10, mode=mode, **distributed)
    tracker = SharpnessTracker(model, loss, data, tol=1e-10, mode=mode, **distributed)
    beta = smoothness(model, loss_fn=loss, data=data, tol=1e-10, mode=mode, **distributed).beta
    record = tracker.update(0)
    return torch.tensor([cert.lambda_min, cert.lambda_max, record.lambda_max, beta])


def _measure(op):
    n = op.shape[0]
    v = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ends = lanczos(op, k=1, which="both", tol=1e-12, seed=0)
    cert = certify(op, eps=1e-6, tau=1e-3, tol=1e-10, seed=0)
    return {
        "loss": torch.tensor(op.loss()),
        "gradient": op.gradient().clone(),
        "hv": op @ v,
        "block": op @ torch.stack([v, 2 * v], dim=1),
        "ends": ends.eigenvalues.clone(),
        "trace": torch.tensor(trace(op, "hutch++", num_matvecs=3 * n, seed=0).estimate),
        "certificate": torch.tensor([cert.lambda_min, cert.lambda_max, cert.grad_norm]),
        "kind": cert.kind,
        "description": op.description,
    }


def _rank_main(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        torch.set_num_threads(1)
        model, loss, shards = _problem()
        for mode in ("train", "eval"):
            op = HessianOperator.from_model(model, loss, shards[rank], mode=mode, distributed=True)
            results = _measure(op)
            results["model level"] = _model_level(model, loss, shards[rank], mode, distributed=True)
            torch.save(results, f"{out}/{mode}-rank{rank}.pt")
        dist.barrier()  # no rank tears the file store down while another still reads it
    finally:
        dist.destroy_process_group()
    # reached only on success: torch 2.13's gloo backend can abort at interpreter exit
    # ("terminate called without an active exception"), so skip the C++ destructors
    os._exit(0)


def test_two_ranks_equal_one_process(tmp_path):
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for mode in ("train", "eval"):
        _compare(tmp_path, mode)


def _compare(tmp_path, mode):
    ranks = [torch.load(tmp_path / f"{mode}-rank{r}.pt") for r in range(WORLD)]
    model, loss, shards = _problem()
    one = _measure(HessianOperator.from_model(model, loss, shards[0] + shards[1], mode=mode))
    one["model level"] = _model_level(model, loss, shards[0] + shards[1], mode)
    for key, value in one.items():
        for r in ranks:
            if isinstance(value, str):
                assert r[key] == value or key == "description"
            else:
                scale = max(1.0, float(value.abs().max()))
                assert torch.allclose(r[key], value, rtol=0, atol=1e-12 * scale), key
        if not isinstance(value, str):
            assert torch.equal(ranks[0][key], ranks[1][key]), f"{key} differs between ranks"
    assert ranks[0]["description"].endswith("in 4 batches, on 2 ranks")


def test_distributed_needs_an_initialized_group():
    model, loss, shards = _problem()
    with pytest.raises(ConfigError, match=r"needs torch\.distributed initialized"):
        HessianOperator.from_model(model, loss, shards[0], distributed=True)


def test_the_torchrun_example_agrees_on_both_ranks(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "distributed_lambda_max.py"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(example)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if "lambda_max" in line]
    assert len(lines) == 1, done.stdout  # rank 0 reports
    assert "on 2 ranks" in lines[0] and lines[0].endswith("all ranks agree: True")
