"""A picture of a saddle for the report: the loss on the plane through a strict saddle
spanned by its Hessian's λ_max and λ_min eigenvectors (:mod:`saddlescape.landscape`), with
the iterates of GD and of perturbed GD (Jin et al. 2017) from one start drawn on it.

GD started on the saddle's stable manifold slides into the saddle along v_max; PGD's
perturbation gives it a component along v_min and it leaves along the negative curvature
(Lee et al. 2016; Jin et al. 2017). The trajectories are recomputed here (a few hundred
steps on a 2-D problem, milliseconds): the stored runs keep hitting times, not iterates.
"""

from __future__ import annotations

from typing import Any

import torch


def trajectory(
    problem: Any, start: torch.Tensor, name: str, steps: int, stop: Any = None, **hyper: Any
) -> torch.Tensor:
    """The ``(T, n)`` iterates of optimizer ``name`` (``optim.make``) from ``start``, at
    most ``steps`` steps; ``stop(x)`` true ends it early."""
    from .. import optim

    x = start.detach().clone().to(torch.float64).requires_grad_(True)
    opt = optim.make(name, [x], **hyper)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = problem.f(x)
        loss.backward()
        return loss

    path = [x.detach().clone()]
    for _ in range(steps):
        opt.step(closure)
        path.append(x.detach().clone())
        if stop is not None and stop(path[-1]):
            break
    return torch.stack(path)


def saddle_slice_figure(
    problem: Any,
    saddle: torch.Tensor,
    paths: dict[str, torch.Tensor],
    *,
    span: float | tuple[float, float],
    title: str,
    resolution: int = 81,
) -> Any:
    """Filled contours of ``problem`` on the eigen-plane through ``saddle`` with each of
    ``paths`` (label → ``(T, n)`` iterates) projected onto it; returns the figure."""
    from matplotlib import patheffects

    from .. import plotting as plots
    from ..landscape import eigen_directions, plot_contour, slice_2d

    saddle = saddle.to(torch.float64)
    dirs = eigen_directions(problem, saddle)
    s = slice_2d(problem, dirs, center=saddle, span=span, resolution=resolution)
    with plots.style():
        fig, ax = plots.figure(width=6.2, height=5.0)
        plot_contour(s, ax=ax)
        ax.get_legend().remove()
        lo_a, hi_a = float(s.alphas[0]), float(s.alphas[-1])
        lo_b, hi_b = float(s.betas[0]), float(s.betas[-1])
        vecs = dirs.vectors[:2].to(torch.float64)
        stroke = [patheffects.withStroke(linewidth=3.6, foreground="black")]
        looks = [("#FFFFFF", "-"), ("#56B4E9", "--"), ("#E69F00", ":")]
        for i, (label, path) in enumerate(paths.items()):
            xy = ((path.to(torch.float64) - saddle) @ vecs.T).numpy()
            c, ls = looks[i % len(looks)]
            ax.plot(
                xy[:, 0],
                xy[:, 1],
                ls,
                color=c,
                lw=2.0,
                path_effects=stroke,
                label=f"{label} ({len(xy) - 1} steps)",
                zorder=7,
            )
            ax.plot(xy[0, 0], xy[0, 1], "s", color=c, mec="black", ms=7, zorder=8)
            ax.plot(xy[-1, 0], xy[-1, 1], "*", color=c, mec="black", ms=13, zorder=8)
        ax.plot([], [], "s", color="#BBBBBB", mec="black", ms=7, label="start")
        ax.plot([], [], "*", color="#BBBBBB", mec="black", ms=12, label="end")
        ax.set_xlim(lo_a, hi_a)
        ax.set_ylim(lo_b, hi_b)
        ax.set_title(title)
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8.5)
    return fig
