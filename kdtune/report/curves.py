"""Plots over training progress (epochs, fractional): learning curves, losses, ASHA's budget.

A trial is evaluated every ``train.eval_every`` epochs: at epoch ends on the whole validation
split (``full_val``), in between on a validation subset (the rungs ASHA may stop it at). The
learning curves mark the two kinds differently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.config import ARM_CE, ARM_SELF
from kdtune.record import Experiment
from kdtune.record import schema as S
from kdtune.report.plots import STATUS_COLOURS, pyplot, save, trained


def trial_rows(exp: Experiment, trial_id: str) -> pd.DataFrame:
    """One trial's evaluations in training order."""
    h = exp.history
    if not len(h) or S.TRIAL_ID not in h or S.PROGRESS not in h:
        return pd.DataFrame()
    rows = h[h[S.TRIAL_ID].astype(str) == str(trial_id)]
    order = [c for c in (S.PROGRESS, S.STEP) if c in rows]
    return rows.sort_values(order, kind="stable")


def full_val_mask(rows: pd.DataFrame) -> pd.Series:
    """True where the evaluation scored the whole validation split (an epoch end)."""
    if S.FULL_VAL not in rows:
        return pd.Series(True, index=rows.index)
    return rows[S.FULL_VAL].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))


def _label(exp: Experiment, r: pd.Series) -> str:
    lr = float(exp.param_value(r, "learning_rate"))
    if r.get(S.ARM) == ARM_CE:
        text = f"{r[S.TRIAL_ID]} (CE only, lr {lr:.1e})"
    elif r.get(S.ARM) == ARM_SELF:
        text = f"{r[S.TRIAL_ID]} (self-training, lr {lr:.1e})"
    else:
        text = (f"{r[S.TRIAL_ID]} (alpha {float(exp.param_value(r, 'alpha')):.2f}, "
                f"T {float(exp.param_value(r, 'temperature')):.1f})")
    return text + (f" [{r[S.ANCHOR]}]" if r.get(S.ANCHOR) else "")


def plot_learning_curves(exp: Experiment, path: Path, top: int) -> Path | None:
    """The search metric over progress (epochs) of the top trials; hollow: subset rungs."""
    from matplotlib.lines import Line2D

    metric = exp.cfg.search.metric
    if not len(exp.history) or metric not in exp.history:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    drawn = 0
    for _, r in trained(exp.trials).head(top).iterrows():
        rows = trial_rows(exp, r[S.TRIAL_ID])
        if not len(rows):
            continue
        full = full_val_mask(rows).to_numpy()
        (line,) = ax.plot(rows[S.PROGRESS], rows[metric], linestyle="--" if r.get(S.ANCHOR) else "-",
                          label=_label(exp, r))
        ax.scatter(rows[S.PROGRESS][full], rows[metric][full], color=line.get_color(), zorder=3)
        ax.scatter(rows[S.PROGRESS][~full], rows[metric][~full], facecolors="none",
                   edgecolors=line.get_color(), zorder=3)
        drawn += 1
    if not drawn:
        pyplot().close(fig)
        return None
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", linestyle="", color="black"),
                Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="black")]
    labels += ["whole validation split (epoch end)", "validation subset (rung inside an epoch)"]
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    ax.set_xlabel("progress (epochs of training)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"Learning curves of the top {drawn} trials")
    ax.grid(alpha=0.3)
    return save(fig, path)


def has_feature_loss(history: pd.DataFrame) -> bool:
    """Whether some trial trained with a hidden-state (feature) loss."""
    if "feature_loss" not in history:
        return False
    values = pd.to_numeric(history["feature_loss"], errors="coerce").fillna(0.0)
    return bool((values != 0).any())


def plot_losses(exp: Experiment, path: Path, trial_id: str) -> Path | None:
    """Combined, CE and KD loss (and the feature loss, if any), and the KD/CE ratio over progress."""
    rows = trial_rows(exp, trial_id)
    if not len(rows) or "ce_loss" not in rows:
        return None
    x = rows[S.PROGRESS]
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    for col, label in (("loss", "combined loss"), ("ce_loss", "CE loss"), ("kd_loss", "KD loss")):
        if col in rows:
            ax1.plot(x, rows[col], marker="o", label=label)
    ax1.set_xlabel("progress (epochs)")
    ax1.set_ylabel("training loss (running mean at each evaluation)")
    handles, labels = ax1.get_legend_handles_labels()
    top = ax1
    if has_feature_loss(exp.history):  # its own axis: a hidden-state MSE has another scale
        ax3 = ax1.twinx()
        ax3.plot(x, pd.to_numeric(rows["feature_loss"], errors="coerce"), marker="s",
                 linestyle="--", color="tab:brown", label="feature loss (right axis, before beta)")
        ax3.set_ylabel("feature loss", color="tab:brown")
        ax3.tick_params(axis="y", colors="tab:brown")
        more_handles, more_labels = ax3.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
        top = ax3  # the twin axis is drawn over ax1: its legend would hide under the lines
    top.legend(handles, labels, fontsize=8)
    ax1.grid(alpha=0.3)
    if "kd_ce_ratio" in rows:
        ax2.plot(x, rows["kd_ce_ratio"], marker="o", color="tab:purple")
    ax2.set_xlabel("progress (epochs)")
    ax2.set_ylabel("KD / CE ratio")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"Losses of trial {trial_id}")
    return save(fig, path)


def trial_number(path: Any) -> int:
    """The start order Ray put in a trial folder's name (``..._<id>_<n>_...``)."""
    match = re.search(r"_[0-9a-f]{5,}_(\d+)_", Path(str(path)).name)
    return int(match.group(1)) if match else 10**9


def granted_note(exp: Experiment) -> str:
    """Training run against the budget of ``num_samples x epochs`` without early stopping."""
    s, epochs, t = exp.cfg.search, exp.cfg.train.epochs, exp.trials
    budget = s.num_samples * epochs
    run = float(pd.to_numeric(t[S.PROGRESS], errors="coerce").fillna(0).sum()) if S.PROGRESS in t else 0.0
    dup = int((t[S.STATUS] == S.DUPLICATE).sum()) if S.STATUS in t else 0
    saved = budget - run
    why = "ASHA" + (f" and {dup} duplicate(s) served from a known result" if dup else "")
    return (f"{run:.2f} trial-epochs run of a budget of {budget} ({s.num_samples} trials x "
            f"{epochs} epochs) without early stopping: {why} saved {saved:.2f} "
            f"({100.0 * saved / budget:.0f}%). Progress is fractional: ASHA's rungs fall every "
            f"{exp.cfg.train.eval_every:g} epoch, grace period {exp.cfg.grace_period:g} epochs.")


def plot_training_granted(exp: Experiment, path: Path) -> tuple[Path | None, str]:
    """Training (epochs, fractional) each trial ran, in start order, and the budget it saved."""
    t = exp.trials
    if not len(t) or S.PROGRESS not in t:
        return None, ""
    epochs = exp.cfg.train.epochs
    order = t.assign(_n=[trial_number(p) for p in t.get(S.PATH, pd.Series([""] * len(t)))])
    order = order.sort_values("_n", kind="stable")
    progress = pd.to_numeric(order[S.PROGRESS], errors="coerce").fillna(0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(order) + 2), 4))
    ax.bar(order[S.TRIAL_ID].astype(str), progress,
           color=[STATUS_COLOURS.get(s, "tab:gray") for s in order[S.STATUS]])
    ax.axhline(epochs, color="black", linestyle="--", linewidth=1, label=f"max epochs ({epochs})")
    present = set(order[S.STATUS])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for s, c in STATUS_COLOURS.items() if s in present]
    labels = [s for s in STATUS_COLOURS if s in present]
    line_handles, line_labels = ax.get_legend_handles_labels()
    ax.legend([*line_handles, *handles], [*line_labels, *labels], fontsize=8, loc="upper right")
    ax.set_ylim(0, epochs * 1.35)
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel("progress (epochs trained)")
    ax.set_title(f"Training granted per trial: {float(progress.sum()):.2f} of "
                 f"{exp.cfg.search.num_samples * epochs} trial-epochs")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    return save(fig, path), granted_note(exp)
