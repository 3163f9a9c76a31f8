"""Matplotlib plumbing and the report's scatter plots: alpha x T and the confusion matrix.

Every function writes one PNG (Agg backend, no display needed) and returns its path, or None
when there is nothing to draw.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.record import Experiment
from kdtune.record import schema as S

STATUS_MARKERS = {S.COMPLETED: "o", S.STOPPED: "v", S.ERRORED: "X", S.DIVERGED: "X",
                  S.RUNNING: "s", S.INTERRUPTED: "s"}
STATUS_COLOURS = {S.COMPLETED: "tab:green", S.STOPPED: "tab:orange", S.ERRORED: "tab:red",
                  S.DIVERGED: "tab:red", S.RUNNING: "tab:blue", S.INTERRUPTED: "tab:gray",
                  S.DUPLICATE: "tab:purple"}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported only when a plot is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight_layout cannot always fit outside legends
        fig.tight_layout()
        fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def status_legend(ax: Any, statuses: pd.Series, title: str) -> None:
    """A legend of the status markers present in ``statuses``."""
    from matplotlib.lines import Line2D

    shown = [s for s in STATUS_MARKERS if (statuses == s).any()]
    ax.legend([Line2D([], [], marker=STATUS_MARKERS[s], linestyle="", markerfacecolor="white",
                      markeredgecolor="black", markersize=9) for s in shown], shown,
              fontsize=8, loc="best", title=title, title_fontsize=8)


def trained(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that trained (duplicates were served from a known result)."""
    if S.STATUS not in trials:
        return trials
    return trials[trials[S.STATUS] != S.DUPLICATE]


def plot_alpha_temperature(exp: Experiment, path: Path) -> Path | None:
    """Each trial's best val score over the alpha x temperature plane (CE-only trials at alpha 1)."""
    t = trained(exp.trials)
    if not len(t):
        return None
    plt = pyplot()
    alpha = np.array([float(exp.param_value(r, "alpha")) for _, r in t.iterrows()])
    temp = np.array([float(exp.param_value(r, "temperature")) for _, r in t.iterrows()])
    score = t[exp.score] if exp.score in t else pd.Series(np.nan, index=t.index)
    fig, ax = plt.subplots(figsize=(7, 5))
    valid = score.notna().to_numpy()
    vmin, vmax = (float(score.min()), float(score.max())) if valid.any() else (0.0, 1.0)
    sc = None
    for status, marker in STATUS_MARKERS.items():
        sel = (t[S.STATUS] == status).to_numpy()
        ok, bad = sel & valid, sel & ~valid
        if ok.any():
            sc = ax.scatter(alpha[ok], temp[ok], c=score[ok], cmap="viridis", vmin=vmin, vmax=vmax,
                            marker=marker, s=110, edgecolors="black")
        if bad.any():
            ax.scatter(alpha[bad], temp[bad], c="lightgrey", marker=marker, s=110, edgecolors="black")
    for i, (_, r) in enumerate(t.iterrows()):
        tag = r.get(S.ANCHOR) or ("best" if i == 0 and valid[0] else "")
        if tag:
            ax.annotate(tag, (alpha[i], temp[i]), xytext=(6, 6), textcoords="offset points",
                        fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=ax, label=exp.score.replace("_", " "))
    ax.set_xlabel("alpha (weight of the CE loss; 1 = no distillation)")
    ax.set_ylabel("temperature T (no effect at alpha = 1)")
    ax.set_title("Best val score over alpha x temperature (marker = status)")
    status_legend(ax, t[S.STATUS], "status (grey: no score)")
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_confusion(cm: pd.DataFrame, path: Path, title: str) -> Path:
    """A confusion matrix (first column: class names) as a heat map with the counts written in."""
    plt = pyplot()
    values = cm.drop(columns=cm.columns[0]).to_numpy()
    names = list(cm.iloc[:, 0])
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    threshold = values.max() / 2 if values.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, int(values[i, j]), ha="center", va="center",
                    color="white" if values[i, j] > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    return save(fig, path)
