"""The report's matplotlib figures of trials: alpha x T, learning curves, losses, ASHA, confusion.

Every function writes one PNG (Agg backend, no display needed) and returns its path, or None
when there is nothing to draw.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.report.experiment import Experiment, param_value

STATUS_MARKERS = {"completed": "o", "stopped early": "v", "errored": "X", "diverged": "X",
                  "running": "s", "interrupted": "s"}
STATUS_COLOURS = {"completed": "tab:green", "stopped early": "tab:orange", "errored": "tab:red",
                  "diverged": "tab:red", "running": "tab:blue", "interrupted": "tab:gray"}


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


def plot_alpha_temperature(exp: Experiment, path: Path) -> Path | None:
    """Best val macro-F1 of each trial over the alpha x temperature plane."""
    t = exp.trials
    if not len(t):
        return None
    plt = pyplot()
    alpha = np.array([float(param_value(exp, r, "alpha")) for _, r in t.iterrows()])
    temp = np.array([float(param_value(exp, r, "temperature")) for _, r in t.iterrows()])
    score = t["best_val_macro_f1"] if "best_val_macro_f1" in t else pd.Series(np.nan, index=t.index)
    fig, ax = plt.subplots(figsize=(7, 5))
    valid = score.notna().to_numpy()
    vmin, vmax = (float(score.min()), float(score.max())) if valid.any() else (0.0, 1.0)
    sc = None
    for status, marker in STATUS_MARKERS.items():
        sel = (t["status"] == status).to_numpy()
        if not sel.any():
            continue
        ok, bad = sel & valid, sel & ~valid
        if ok.any():
            sc = ax.scatter(alpha[ok], temp[ok], c=score[ok], cmap="viridis", vmin=vmin, vmax=vmax,
                            marker=marker, s=110, edgecolors="black")
        if bad.any():
            ax.scatter(alpha[bad], temp[bad], c="lightgrey", marker=marker, s=110, edgecolors="black")
    for i, (_, r) in enumerate(t.iterrows()):
        tag = r.get("anchor") or ("best" if i == 0 and valid[0] else "")
        if tag:
            ax.annotate(tag, (alpha[i], temp[i]), xytext=(6, 6), textcoords="offset points",
                        fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="best val macro-F1")
    ax.set_xlabel("alpha (weight of the CE loss; 1 = no distillation)")
    ax.set_ylabel("temperature T")
    ax.set_title("Val macro-F1 over alpha x temperature (marker = status)")
    status_legend(ax, t["status"], "status (grey: no score)")
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_learning_curves(exp: Experiment, path: Path, top: int) -> Path | None:
    """Val macro-F1 per epoch of the top trials."""
    h = exp.history
    if not len(h) or "val_macro_f1" not in h or "trial_id" not in h:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, r in exp.trials.head(top).iterrows():
        rows = h[h["trial_id"].astype(str) == str(r["trial_id"])].sort_values("epoch")
        if not len(rows):
            continue
        label = (f"{r['trial_id']} (alpha {param_value(exp, r, 'alpha'):.2f}, "
                 f"T {param_value(exp, r, 'temperature'):.1f})")
        if r.get("anchor"):
            label += f" [{r['anchor']}]"
        ax.plot(rows["epoch"], rows["val_macro_f1"], marker="o",
                linestyle="--" if r.get("anchor") else "-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val macro-F1")
    ax.set_title(f"Learning curves of the top {min(top, len(exp.trials))} trials")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return save(fig, path)


def has_feature_loss(history: pd.DataFrame) -> bool:
    """Whether some trial trained with a hidden-state (feature) loss."""
    if "feature_loss" not in history:
        return False
    values = pd.to_numeric(history["feature_loss"], errors="coerce").fillna(0.0)
    return bool((values != 0).any())


def plot_losses(exp: Experiment, path: Path, trial_id: str) -> Path | None:
    """Combined, CE and KD loss (and the feature loss, if any), and the KD/CE ratio per epoch."""
    h = exp.history
    if not len(h) or "trial_id" not in h:
        return None
    rows = h[h["trial_id"].astype(str) == str(trial_id)].sort_values("epoch")
    if not len(rows) or "ce_loss" not in rows:
        return None
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    for col, label in (("loss", "combined loss"), ("ce_loss", "CE loss"), ("kd_loss", "KD loss")):
        if col in rows:
            ax1.plot(rows["epoch"], rows[col], marker="o", label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (epoch mean)")
    handles, labels = ax1.get_legend_handles_labels()
    top = ax1
    if has_feature_loss(h):  # its own axis: a hidden-state MSE has another scale than CE / KD
        ax3 = ax1.twinx()
        ax3.plot(rows["epoch"], pd.to_numeric(rows["feature_loss"], errors="coerce"), marker="s",
                 linestyle="--", color="tab:brown", label="feature loss (right axis, before beta)")
        ax3.set_ylabel("feature loss (epoch mean)", color="tab:brown")
        ax3.tick_params(axis="y", colors="tab:brown")
        more_handles, more_labels = ax3.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
        top = ax3  # the twin axis is drawn over ax1: its legend would hide under the lines
    top.legend(handles, labels, fontsize=8)
    ax1.grid(alpha=0.3)
    if "kd_ce_ratio" in rows:
        ax2.plot(rows["epoch"], rows["kd_ce_ratio"], marker="o", color="tab:purple")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("KD / CE ratio")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Losses of the best trial {trial_id}")
    return save(fig, path)


def trial_number(path: Any) -> int:
    """The start order Ray put in a trial folder's name (``..._<id>_<n>_...``)."""
    match = re.search(r"_[0-9a-f]{5,}_(\d+)_", Path(str(path)).name)
    return int(match.group(1)) if match else 10**9


def plot_epochs_granted(exp: Experiment, path: Path) -> tuple[Path | None, str]:
    """Epochs each trial ran (ASHA stops the weak ones early) and the saving it made."""
    t = exp.trials
    budget = exp.cfg.search.num_samples * exp.cfg.train.epochs
    if not len(t):
        return None, ""
    order = t.assign(_n=[trial_number(p) for p in t.get("path", pd.Series([""] * len(t)))])
    order = order.sort_values("_n", kind="stable")
    run = int(order["epochs_run"].fillna(0).sum())
    note = (f"{run} trial-epochs run of {budget} ({exp.cfg.search.num_samples} trials x "
            f"{exp.cfg.train.epochs} epochs) without early stopping: ASHA saved "
            f"{budget - run} ({100.0 * (budget - run) / budget:.0f}%).")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(order) + 2), 4))
    ax.bar(order["trial_id"].astype(str), order["epochs_run"].fillna(0),
           color=[STATUS_COLOURS.get(s, "tab:gray") for s in order["status"]])
    ax.axhline(exp.cfg.train.epochs, color="black", linestyle="--", linewidth=1,
               label=f"max epochs ({exp.cfg.train.epochs})")
    present = set(order["status"])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for s, c in STATUS_COLOURS.items() if s in present]
    labels = [s for s in STATUS_COLOURS if s in present]
    ax.legend([*ax.get_legend_handles_labels()[0], *handles],
              [*ax.get_legend_handles_labels()[1], *labels], fontsize=8, loc="upper right")
    ax.set_ylim(0, exp.cfg.train.epochs * 1.35)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel("epochs run")
    ax.set_title(f"Epochs granted per trial: {run} of {budget} trial-epochs")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    return save(fig, path), note


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
