"""A small BatchNorm CNN on scikit-learn's digits, for ``saddlescape certify --model``.

``make()`` is the contract of ``--model FILE.py[:FUNCTION]``: it returns the model, the loss
and the data (here as a dict; a tuple ``(model, loss_fn, data)`` works too). Options come
from ``--model-arg key=value`` as strings::

    saddlescape certify --model examples/digits_bn.py --mode train
    saddlescape certify --model examples/digits_bn.py --model-arg checkpoint=run3.pt
    saddlescape spectrum --model examples/digits_bn.py:make --model-arg n=512 --out bn.png
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn


def make(n: str = "256", batch_size: str = "64", seed: str = "0", checkpoint: str = "") -> dict:
    """The first ``n`` digits in batches of ``batch_size``, a float64 BN CNN initialized
    from ``seed`` (or loaded from ``checkpoint``, a saved ``state_dict``) and the mean
    cross-entropy."""
    n_examples, size = int(n), int(batch_size)
    torch.manual_seed(int(seed))
    images, labels = load_digits(return_X_y=True)
    X = torch.tensor(images[:n_examples] / 16.0).reshape(-1, 1, 8, 8)
    y = torch.tensor(labels[:n_examples])
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    ).double()
    if checkpoint:
        model.load_state_dict(torch.load(checkpoint))
    batches = [(X[i : i + size], y[i : i + size]) for i in range(0, n_examples, size)]
    return {"model": model, "loss_fn": nn.CrossEntropyLoss(), "data": batches}
