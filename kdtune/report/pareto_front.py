"""The Pareto front of a multi-objective search (quality vs latency or size): table and scatter.

``pareto.csv`` holds the front's trials with the columns of ``trials.csv``; ``picks.json``
names the chosen point (``best``), the cheapest front point within ``search.f1_tolerance`` of
the best quality (:func:`kdtune.record.picks.single_seed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.formatting import float_or_none, num
from kdtune.record import Experiment
from kdtune.record import schema as S
from kdtune.report.plots import STATUS_MARKERS, pyplot, save
from kdtune.report.tables import PARAM_LABELS, param_cells, size_values

COST_LABELS = {S.LATENCY: "latency (ms/example, batch 1, measured during the search)",
               S.PARAMS: "parameters"}
METRIC_LABELS = {"val_macro_f1": "best val macro-F1", "val_accuracy": "best val accuracy"}
CHOSEN = "chosen"


def cost_column(exp: Experiment) -> str:
    """The x axis: the second objective, or latency when the config names none."""
    objectives = exp.cfg.search.objectives or []
    return objectives[1] if len(objectives) >= 2 else S.LATENCY


def chosen_id(exp: Experiment) -> str | None:
    """The chosen point: ``best`` of picks.json (or of evaluation.json's picks)."""
    best = (exp.picks or {}).get("best") or ((exp.evaluation or {}).get("picks") or {}).get("best")
    return str(best) if best else None


def front_table(exp: Experiment) -> pd.DataFrame:
    """The front's trials, cheapest first, with the chosen one marked."""
    front = exp.pareto if exp.pareto is not None else pd.DataFrame()
    cost = cost_column(exp)
    if cost in front:
        front = front.sort_values(cost, kind="stable")
    pick = chosen_id(exp)
    rows = []
    for _, r in front.iterrows():
        row: dict[str, Any] = {"trial": r[S.TRIAL_ID], "arm": r.get(S.ARM, ""),
                               CHOSEN: CHOSEN if str(r[S.TRIAL_ID]) == pick else ""}
        cells = param_cells(exp, r)
        row["layers"] = cells.pop("layers", None) or str(list(exp.cfg.student.layers))
        row.update(cells)
        row.update(size_values(r))
        if cost not in row and cost in r.index:
            row[cost] = float_or_none(r[cost])
        row[METRIC_LABELS.get(exp.cfg.search.metric, exp.score)] = float_or_none(r.get(exp.score))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if S.PARAMS in frame:  # whole numbers, also where one is missing
        frame[S.PARAMS] = pd.Series([r[S.PARAMS] for r in rows], dtype=object)
    return frame


def front_note(exp: Experiment) -> str:
    """How the chosen point was picked, and whether it is on the front."""
    s = exp.cfg.search
    metric = METRIC_LABELS.get(s.metric, exp.score).removeprefix("best ")
    objectives = ", ".join(f"{o} ({m})" for o, m in zip(s.objectives or [], s.modes, strict=False))
    cheapest = "fastest" if cost_column(exp) == S.LATENCY else "cheapest"
    text = (f"Objectives: {objectives or 'not set in config.yaml'}. A trial is on the front when no "
            f"other trial is at least as good on every objective and better on one (each trial "
            f"counted at its best epoch). The chosen point is the {cheapest} "
            f"front point whose {metric} is within search.f1_tolerance = {num(s.f1_tolerance)} of "
            f"the front's best.")
    pick = chosen_id(exp)
    ids = set(exp.pareto[S.TRIAL_ID].astype(str)) if exp.pareto is not None and len(exp.pareto) else set()
    if pick is None:
        text += " No chosen point is recorded (picks.json is missing)."
    elif pick in ids:
        text += f" Chosen: trial `{pick}`."
    else:
        text += f" picks.json names trial `{pick}`, which is not on this front."
    return text


def plot_pareto(exp: Experiment, path: Path) -> Path | None:
    """Every usable trial's quality over its cost, the front as a step line, the chosen point."""
    cost, score = cost_column(exp), exp.score
    t = exp.trials
    if exp.pareto is None or cost not in t or score not in t or cost not in exp.pareto:
        return None
    ok = t[t[S.STATUS].isin(S.OK_STATUSES)]
    ok = ok[ok[cost].notna() & ok[score].notna()]
    if not len(ok):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    front_ids = set(exp.pareto[S.TRIAL_ID].astype(str))
    on_front = ok[S.TRIAL_ID].astype(str).isin(front_ids).to_numpy()
    for status, marker in STATUS_MARKERS.items():
        sel = (ok[S.STATUS] == status).to_numpy()
        for part, colour in ((sel & ~on_front, "lightgrey"), (sel & on_front, "tab:blue")):
            if part.any():
                ax.scatter(ok[cost][part], ok[score][part], c=colour, marker=marker, s=70,
                           edgecolors="black", zorder=3)
    front = exp.pareto[exp.pareto[cost].notna() & exp.pareto[score].notna()].sort_values(cost)
    if len(front):
        xs, ys = front[cost].to_numpy(float), front[score].to_numpy(float)
        if len(exp.cfg.search.objectives or []) <= 2:  # a 2-D front is a staircase
            right = max(float(ok[cost].max()), float(xs[-1]))
            ax.step(np.append(xs, right), np.append(ys, ys[-1]), where="post", color="tab:blue",
                    linewidth=1.5, label="Pareto front", zorder=2)
        else:
            ax.plot(xs, ys, linestyle=":", color="tab:blue", label="Pareto front (projected)")
    pick = chosen_id(exp)
    for _, r in front.iterrows():
        if str(r[S.TRIAL_ID]) != pick:
            ax.annotate(str(r[S.TRIAL_ID]), (r[cost], r[score]), xytext=(5, 5),
                        textcoords="offset points", fontsize=7, color="tab:blue")
    chosen = ok[ok[S.TRIAL_ID].astype(str) == pick] if pick else ok.iloc[0:0]
    if len(chosen):
        r = chosen.iloc[0]
        ax.scatter([r[cost]], [r[score]], marker="*", s=380, c="tab:red", edgecolors="black",
                   zorder=4, label=f"chosen: {pick}")
        detail = ", ".join(f"{PARAM_LABELS.get(p, p)} {_short(exp.param_value(r, p))}"
                           for p in ("layers", "alpha", "temperature") if p in exp.searched)
        ax.annotate(f"chosen {pick}" + (f"\n{detail}" if detail else ""), (r[cost], r[score]),
                    xytext=(12, -28), textcoords="offset points", fontsize=8, color="tab:red",
                    arrowprops={"arrowstyle": "-", "color": "tab:red", "linewidth": 0.8})
    ax.set_xlabel(COST_LABELS.get(cost, cost))
    ax.set_ylabel(METRIC_LABELS.get(exp.cfg.search.metric, score))
    ax.set_title(f"Pareto front: {len(front)} of {len(ok)} usable trials")
    ax.legend(*_legend(ax, ok[S.STATUS]), fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return save(fig, path)


def _legend(ax: Any, statuses: pd.Series) -> tuple[list[Any], list[str]]:
    """The plotted lines, the two point colours and, when they differ, the status markers."""
    from matplotlib.lines import Line2D

    def point(marker: str, colour: str) -> Line2D:
        return Line2D([], [], marker=marker, linestyle="", markerfacecolor=colour,
                      markeredgecolor="black", markersize=8)

    handles, labels = ax.get_legend_handles_labels()
    handles += [point("o", "tab:blue"), point("o", "lightgrey")]
    labels += ["on the front", "dominated"]
    present = [s for s in STATUS_MARKERS if (statuses == s).any()]
    if len(present) > 1:
        handles += [point(STATUS_MARKERS[s], "white") for s in present]
        labels += present
    return handles, labels


def _short(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.2f}"
    return str(list(v)) if isinstance(v, (list, tuple)) else str(v)
