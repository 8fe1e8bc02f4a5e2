"""Fixtures over the case matrix of ``cases.py``: each case built once per module, with the
dense float64 Hessian of its hand-written reference loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from cases import CASE_IDS, CASES, Case, batch_statistics
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass
class Built:
    """A case with its reference loss (a function of the flat point), its model, its data as
    the user passes it, the flat point, the reference loss's value and gradient there, and
    the dense Hessian."""

    case: Case
    reference: Any
    model: Any
    data: Any
    names: list[str]
    theta: torch.Tensor
    value: float
    gradient: torch.Tensor
    hessian: torch.Tensor

    def operator(self, **kwargs: Any):
        from saddlescape.curvature import HessianOperator

        opts = {**self.case.options, **kwargs}
        return HessianOperator.from_model(self.model, self.case.loss, self.data, **opts)


def reference_function(case: Case, model: Any, names: list[str]):
    """θ ↦ the case's reference loss, every other parameter and buffer as in ``model``."""
    if isinstance(model, nn.Module):
        ref_model = batch_statistics(model) if case.mode == "train" else model
        ref_model.train(case.mode == "train")
        shapes = {n: p.shape for n, p in model.named_parameters()}
    else:
        ref_model = model
        shapes = {n: t.shape for n, t in case.options["params"].items()}
    sizes = [shapes[n].numel() for n in names]

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, theta.split(sizes), strict=True))
        params = {n: parts[n].view(shapes[n]) for n in names}
        with sdpa_kernel([SDPBackend.MATH]):
            return case.reference(ref_model, params)

    return f


def dense_hessian(f, theta: torch.Tensor) -> torch.Tensor:
    """The dense Hessian of ``f`` at ``theta``, column by column by plain double backward
    (torch.autograd on the hand-written loss, none of saddlescape's code). Not
    torch.func.hessian, which is wrong through normalization layers in torch 2.13 (see
    ``test_cases.py::test_reference_agrees_with_torch_func_hessian``)."""
    x = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    H = torch.stack([torch.autograd.grad(g, x, e, retain_graph=True)[0] for e in eye], dim=1)
    return (H + H.T) / 2


def build(case: Case) -> Built:
    model = case.model()
    if isinstance(model, nn.Module):
        sel = case.options.get("params")
        names = list(sel) if sel else [n for n, p in model.named_parameters()]
        theta = torch.cat([dict(model.named_parameters())[n].detach().reshape(-1) for n in names])
    else:
        names = list(case.options["params"])
        theta = torch.cat([case.options["params"][n].reshape(-1) for n in names])
    f = reference_function(case, model, names)
    x = theta.clone().requires_grad_(True)
    value = f(x)
    (gradient,) = torch.autograd.grad(value, x)
    return Built(
        case,
        f,
        model,
        case.data(),
        names,
        theta,
        float(value.detach()),
        gradient,
        dense_hessian(f, theta),
    )


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def built(request) -> Built:
    return build(request.param)
