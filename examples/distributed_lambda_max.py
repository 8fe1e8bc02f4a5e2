"""λ_max, λ_min and the trace of a network's Hessian, data-parallel on torch.distributed.

Each rank holds a shard of the data (here: every rank-th batch of scikit-learn's digits);
the operator all-reduces the loss, the gradient and every product with the exact weights of
one process holding all the data, so every rank computes the same numbers::

    torchrun --standalone --nproc-per-node 2 examples/distributed_lambda_max.py

On GPUs the same script uses NCCL (one GPU per rank); across machines give torchrun
``--nnodes``, ``--node-rank`` and ``--rdzv-endpoint`` as usual.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

from saddlescape.curvature import HessianOperator, lanczos, trace


def main() -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" else None
    )
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same parameters on every rank
    images, labels = load_digits(return_X_y=True)
    X = torch.tensor(images / 16.0, dtype=torch.float64)
    y = torch.tensor(labels)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    if device is not None:
        model = model.to(device)
    batches = [(X[i : i + 128], y[i : i + 128]) for i in range(0, len(y), 128)]
    shard = batches[rank::world]  # uneven shards are fine
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), shard, distributed=True)
    ends = lanczos(op, k=1, which="both", tol=1e-6, seed=0)
    tr = trace(op, "hutch++", num_matvecs=60, seed=0)
    numbers = (ends.eigenvalues.tolist(), tr.estimate)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, numbers)  # every rank computed the same bits?
    if rank == 0:
        print(
            f"{op.description}; lambda_min {ends.eigenvalues[0]:.6g}, "
            f"lambda_max {ends.eigenvalues[-1]:.6g}, trace {tr.estimate:.6g} "
            f"({ends.hvps + tr.hvps} products, {ends.passes + tr.passes} passes); "
            f"all ranks agree: {all(g == numbers for g in gathered)}",
            flush=True,
        )
    dist.barrier()
    dist.destroy_process_group()
    # torch 2.13's gloo backend can abort at interpreter exit ("terminate called without an
    # active exception") once its work is done: leave without running C++ destructors
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
