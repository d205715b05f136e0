"""The demo's pictures, drawn with matplotlib (an optional extra), headless.

matplotlib is imported only inside the functions that draw, and only its object-oriented API
(``matplotlib.figure.Figure``, rendered by Agg when saved): no pyplot, no global backend
switch, no display needed. Each function writes one PNG and returns its path.

- ``plot_steps``: finite-difference error against step size (log-log), with fitted slopes.
- ``plot_losses``: training loss per epoch (log scale), one panel per network.
- ``plot_error_map``: the oracle's per-layer, per-term error (hand vs JAX) as a grid.
- ``plot_decision_regions``: a 2-D classifier's predicted class over the plane.
- ``plot_reconstructions``: an autoencoder's inputs beside its outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from reference import Network

    from .report import Report
    from .step_sweep import StepSweep

__all__ = [
    "MissingMatplotlib",
    "plot_decision_regions",
    "plot_error_map",
    "plot_losses",
    "plot_reconstructions",
    "plot_steps",
]

DPI = 120
REFERENCE_NAMES = {"jax": "JAX", "hand": "the hand-derived gradient"}
ERROR_FLOOR = 1e-17
"""Errors below this (exact zeros included) are drawn at it, so the log scale has a bottom."""


class MissingMatplotlib(ImportError):
    """matplotlib is not installed; the message says how to get it."""


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingMatplotlib(
            "the pictures need matplotlib: pip install 'simple-net[plot]' (or matplotlib)"
        ) from None
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to exactly ``path``: its suffix names the format, and a name without one
    is written as PNG under that very name (matplotlib would add ``.png`` to it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix[1:].lower() or "png")
    return path


# --- finite-difference error against step size -------------------------------------------------


def plot_steps(sweep: StepSweep, path: str | os.PathLike) -> Path:
    """Log-log error of the central and Richardson differences against h, for one entry.

    The fitted slopes are drawn over the ranges they were fitted on (truncation: expected 2;
    round-off: expected -1), and the oracle's chosen step is marked.
    """
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    h = sweep.steps
    central = np.maximum(sweep.central_error, ERROR_FLOOR)
    richardson = np.maximum(sweep.richardson_error, ERROR_FLOOR)
    ax.loglog(h, central, "o", ms=3.5, color="C0",
              label="central difference (f(w+h) - f(w-h)) / 2h")
    ax.loglog(h, richardson, "-", lw=1.0, color="C2", alpha=0.7,
              label="Richardson (4 D(h) - D(2h)) / 3, what the oracle uses")
    for slope, (lo, hi), colour, name in (
        (sweep.truncation_slope, sweep.truncation_range, "C3", "truncation"),
        (sweep.roundoff_slope, sweep.roundoff_range, "C1", "round-off"),
    ):
        if not np.isfinite(slope):
            continue
        mask = (h >= lo) & (h <= hi) & (sweep.central_error > 0)
        xs, ys = np.log10(h[mask]), np.log10(sweep.central_error[mask])
        intercept = np.mean(ys - slope * xs)
        line = 10 ** (intercept + slope * np.log10([lo, hi]))
        what = f"{name} side" if sweep.ok else "a floor"
        ax.loglog([lo, hi], line, "--", lw=2.0, color=colour,
                  label=f"{what}: fitted slope {slope:.2f}")
    ax.axvline(sweep.chosen_step, color="k", lw=1.0, ls=":")
    chosen = max(sweep.error_at(sweep.chosen_step), ERROR_FLOOR)
    ax.plot([sweep.chosen_step], [chosen], marker="*", ms=14, color="k", ls="none",
            label=f"the oracle's step h = {sweep.chosen_step:.1e} (central)")
    chosen_r = max(sweep.error_at(sweep.chosen_step, "richardson"), ERROR_FLOOR)
    ax.plot([sweep.chosen_step], [chosen_r], marker="*", ms=14, color="C2", ls="none",
            markeredgecolor="k", label="the oracle's step (Richardson)")
    ax.set_xlabel("finite-difference step h")
    exact = REFERENCE_NAMES.get(sweep.reference, sweep.reference)
    ax.set_ylabel(f"|estimate - exact|, exact from {exact}")
    ax.set_title(f"Finite-difference error for {sweep.entry}\n"
                 f"exact derivative {sweep.exact:.6g} at w = {sweep.value:.4g}", fontsize=11)
    if not sweep.ok:  # a wrong reference: the error cannot fall below its own error
        _note(ax, f"No step comes within {sweep.best_error:.1e} of the reference:\n"
                  "it is wrong, and the floor is its error.", "C3")
    elif not np.isfinite(sweep.truncation_slope):
        _note(ax, "No truncation side: f‴ is ~0 at this entry (the loss is\n"
                  "quadratic in it), so only round-off is left.", "0.2")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper center")
    ax.set_ylim(bottom=max(min(central.min(), richardson.min()) / 10, ERROR_FLOOR / 10),
                top=max(central.max(), richardson.max()) * 1e3)
    return _save(fig, path)


def _note(ax, text: str, colour: str) -> None:
    ax.text(0.5, 0.05, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=9,
            color=colour, bbox={"facecolor": "white", "edgecolor": colour, "alpha": 0.9})


# --- training loss ---------------------------------------------------------------------------


def plot_losses(
    histories: Mapping[str, Sequence[float]], path: str | os.PathLike
) -> Path:
    """Loss per epoch on a log scale, one panel per ``name -> history`` (from ``Network.fit``)."""
    fig = _figure(4.2 * len(histories) + 0.6, 3.8)
    axes = fig.subplots(1, len(histories), squeeze=False)[0]
    for i, (ax, (name, history)) in enumerate(zip(axes, histories.items())):
        epochs = np.arange(1, len(history) + 1)
        ax.semilogy(epochs, history, color=f"C{i}", lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss E (mean over the epoch)")
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle("Training loss", fontsize=12)
    return _save(fig, path)


# --- the oracle's error map ------------------------------------------------------------------

MAP_TERMS = (
    ("loss", "local", r"loss: $\partial E/\partial Y$, or $\partial E/\partial V$ if fused (eq 7)"),
    ("activation", "local", r"activation: $\partial E/\partial V = G \odot act'(V)$ (eq 9)"),
    ("dW", "local", r"$\partial E/\partial W = \tilde{X}^T \partial E/\partial V$ (eq 8)"),
    ("dX", "local", r"$\partial E/\partial X = \partial E/\partial V\ W_{[:-1]}^T$ (eq 11)"),
    ("dW", "total", r"$\partial E/\partial W$, end to end"),
    ("dX", "total", r"$\partial E/\partial X$, end to end"),
)
"""The grid's rows: (term, scope, label)."""


def _error_grid(report: Report, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(errors, failed)`` of shape ``(len(MAP_TERMS), n_layers)``; NaN where no row exists."""
    errors = np.full((len(MAP_TERMS), n_layers), np.nan)
    failed = np.zeros(errors.shape, dtype=bool)
    for r, (term, scope, _) in enumerate(MAP_TERMS):
        for row in report.rows:
            if row.term == term and row.scope == scope and row.layer is not None:
                errors[r, row.layer] = max(row.max_rel_err, ERROR_FLOOR)
                failed[r, row.layer] = row.status == "FAIL"
    return errors, failed


def plot_error_map(
    reports: Mapping[str, Report], n_layers: int, path: str | os.PathLike
) -> Path:
    """One grid per report: rows are terms, columns layers, colour the worst relative error.

    A cell's value is the term's ``max_rel_err`` (against JAX where JAX took part, as it does
    for every built-in term); FAIL cells are outlined in red, so a wrong term stands out.
    """
    from matplotlib.colors import LogNorm

    fig = _figure(3.6 + len(reports) * (0.95 * n_layers + 0.3) + 1.2, 4.4)
    axes = fig.subplots(1, len(reports), squeeze=False)[0]
    norm = LogNorm(vmin=ERROR_FLOOR, vmax=1.0)
    image = None
    for i, (ax, (title, report)) in enumerate(zip(axes, reports.items())):
        errors, failed = _error_grid(report, n_layers)
        image = ax.imshow(np.ma.masked_invalid(errors), norm=norm, cmap="magma",
                          aspect="auto")
        ax.set_facecolor("0.85")
        for (r, k), value in np.ndenumerate(errors):
            if np.isnan(value):
                ax.text(k, r, "-", ha="center", va="center", color="0.4", fontsize=8)
                continue
            bright = np.log10(value) > -6
            label = f"{value:.0e}" if value > ERROR_FLOOR else "0"
            ax.text(k, r, label + ("\nFAIL" if failed[r, k] else ""), ha="center",
                    va="center", fontsize=8, color="black" if bright else "white",
                    fontweight="bold" if failed[r, k] else "normal")
            if failed[r, k]:
                ax.add_patch(_cell_outline(k, r))
        ax.axhline(3.5, color="white", lw=4)  # local terms above, end-to-end totals below
        ax.set_xticks(range(n_layers), [f"layer {k}" for k in range(n_layers)])
        ax.set_yticks(range(len(MAP_TERMS)),
                      [label if i == 0 else "" for *_, label in MAP_TERMS])
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes), label="max relative error, hand vs JAX",
                 shrink=0.9)
    fig.suptitle("The oracle's error per term and layer (local terms above the line,\n"
                 "end-to-end gradients below): a wrong term stands out", fontsize=11)
    return _save(fig, path)


def _cell_outline(col: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=3)


# --- a classifier's decision regions ---------------------------------------------------------


def plot_decision_regions(
    net: Network,
    X: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    title: str = "Decision regions",
    resolution: int = 300,
) -> Path:
    """The plane coloured by a 2-class network's predicted probability of class 1, with the
    0.5 boundary and the data.

    Args:
        net: a network with 2 inputs and 2 softmax outputs (or 1 sigmoid output).
        X: points ``(N, 2)`` in the plane as plotted; labels: ``(N,)`` ints 0/1.
        transform: maps plotted points to the network's inputs (e.g. the standardisation
            used in training); identity when None.
    """
    pad = 0.15 * np.ptp(X, axis=0)
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    inputs = grid if transform is None else transform(grid)
    out = net.forward(inputs)
    p1 = (out[:, 1] if out.shape[1] > 1 else out[:, 0]).reshape(g0.shape)
    fig = _figure(5.8, 5.0)
    ax = fig.add_subplot()
    filled = ax.contourf(g0, g1, p1, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.8)
    ax.contour(g0, g1, p1, levels=[0.5], colors="k", linewidths=1.5)
    ax.plot([], [], color="k", lw=1.5, label="boundary, p = 0.5")  # a legend entry for it
    for c, colour in ((0, "C0"), (1, "C3")):
        pts = X[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=12, color=colour, edgecolors="white",
                   linewidths=0.5, label=f"class {c}")
    fig.colorbar(filled, ax=ax, label="predicted probability of class 1", shrink=0.9)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9, markerscale=1.8)
    return _save(fig, path)


# --- an autoencoder's reconstructions --------------------------------------------------------


def plot_reconstructions(
    inputs: np.ndarray,
    outputs: np.ndarray,
    path: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    title: str = "Inputs and reconstructions",
) -> Path:
    """Each 3x3 pattern (``inputs (N, 3, 3)``) above its reconstruction (``outputs``)."""
    n = len(inputs)
    cols = (n + 1) // 2
    fig = _figure(1.05 * cols + 0.6, 5.0)
    axes = fig.subplots(4, cols, squeeze=False)
    for i in range(2 * cols):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if i >= n:
            top.set_axis_off()
            bottom.set_axis_off()
            continue
        top.imshow(inputs[i], cmap="gray_r", vmin=0, vmax=1)
        image = bottom.imshow(outputs[i], cmap="gray_r", vmin=0, vmax=1)
        if names is not None:
            top.set_title(names[i].replace(" ", "\n", 1) if len(names[i]) > 12 else names[i],
                          fontsize=7)
        if i % cols == 0:
            top.set_ylabel("input", fontsize=8)
            bottom.set_ylabel("output", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="pixel value")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
