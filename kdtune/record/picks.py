"""What the search recommends: the distilled student's config and the baseline it is judged by.

* single seed: the best usable KD trial (one that distils: ``Trial.distils``) and, for the
  baseline, the best trial of the tuned CE-only arm (or the CE-only anchor with
  ``search.baseline: fixed``); with ``search.self_training``, also the best self-training trial;
* confirmed: the top-k completed trials of each arm re-run with extra seeds (``confirm.csv``)
  and ranked by their mean over the original run and the extra seeds, which tames the winner's
  curse of picking the single-seed best of many trials;
* multi-objective searches choose on the Pareto front: the cheapest point within
  ``search.f1_tolerance`` of the best quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kdtune.config import ANCHOR_CE, ARM_CE, ARM_KD, ARM_SELF, ExperimentConfig
from kdtune.record import schema as S
from kdtune.record.trials import distils_mask, row_trial, trial_hparams

DISTILLED, BASELINE, SELF_TRAINING = "distilled", "baseline", "self_training"


def pick_arms(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(pick, arm) of each pick this search makes: distilled / kd and baseline / ce, then
    self_training / self when ``search.self_training`` is on."""
    return [(DISTILLED, ARM_KD), (BASELINE, ARM_CE),
            *([(SELF_TRAINING, ARM_SELF)] if cfg.search.self_training else [])]


def pareto_mask(frame: pd.DataFrame, objectives: list[str], modes: list[str]) -> np.ndarray:
    """True for rows no other row dominates (at least as good on all, better on one)."""
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    values = frame[objectives].to_numpy(dtype=float) * signs  # larger is better everywhere
    keep = np.ones(len(values), dtype=bool)
    for i, v in enumerate(values):
        dominated = np.all(values >= v, axis=1) & np.any(values > v, axis=1)
        keep[i] = not dominated.any()
    return keep


def choose(front: pd.DataFrame, metric: str, mode: str, cost: str, tolerance: float) -> Any:
    """Index of the cheapest front point whose ``metric`` is within ``tolerance`` of the best."""
    best = front[metric].max() if mode == "max" else front[metric].min()
    close = front[(front[metric] - best).abs() <= tolerance]
    return close[cost].idxmin()


def objective_columns(cfg: ExperimentConfig) -> list[str]:
    """trials.csv columns of ``search.objectives``: quality at each trial's best epoch."""
    return [S.best(o) if o in S.QUALITY else o for o in (cfg.search.objectives or [])]


def usable(trials: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame:
    """Trials with a usable best score (completed or stopped early), in ranked order."""
    score = S.best(cfg.search.metric)
    if not len(trials) or score not in trials:
        return trials.iloc[0:0]
    return trials[trials[S.STATUS].isin(S.OK_STATUSES) & trials[score].notna()]


def pareto_table(trials: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame | None:
    """The trials on the Pareto front of ``search.objectives``, cheapest first."""
    cols = objective_columns(cfg)
    ok = usable(trials, cfg)
    if not cols or not all(c in ok for c in cols):
        return None
    ok = ok[ok[cols].notna().all(axis=1)]
    return ok[pareto_mask(ok, cols, cfg.search.modes)].sort_values(cols[1])


def arm_pool(trials: pd.DataFrame, cfg: ExperimentConfig, which: str) -> pd.DataFrame:
    """Usable trials that may be picked as ``distilled`` (KD), ``baseline`` (CE-only) or
    ``self_training``."""
    ok = usable(trials, cfg)
    if which == DISTILLED:
        return ok[(ok[S.ARM] == ARM_KD) & distils_mask(ok, cfg)]
    if which == SELF_TRAINING:
        return ok[ok[S.ARM] == ARM_SELF]
    mode = cfg.baseline_mode
    if mode == "tuned":
        return ok[ok[S.ARM] == ARM_CE]
    if mode == "fixed":
        return ok[ok[S.ANCHOR] == ANCHOR_CE]
    return ok.iloc[0:0]


def single_seed(trials: pd.DataFrame, cfg: ExperimentConfig) -> dict[str, str | None]:
    """Trial ids of the best KD trial, the baseline and the overall best (one seed each)."""
    picks: dict[str, str | None] = {}
    for which, _ in pick_arms(cfg):
        pool = arm_pool(trials, cfg, which)
        picks[which] = str(pool[S.TRIAL_ID].iloc[0]) if len(pool) else None
    ok = usable(trials, cfg)
    picks["best"] = str(ok[S.TRIAL_ID].iloc[0]) if len(ok) else None
    cols = objective_columns(cfg)
    front = pareto_table(trials, cfg)
    if front is not None and len(front):
        chosen = front.loc[choose(front, S.best(cfg.search.metric), cfg.search.mode, cols[1],
                                  cfg.search.f1_tolerance)]
        picks["best"] = str(chosen[S.TRIAL_ID])
        if row_trial(front.loc[chosen.name], cfg).distils:
            picks[DISTILLED] = str(chosen[S.TRIAL_ID])
    return picks


def confirm_candidates(trials: pd.DataFrame, cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(trial id, arm) of the top-k *completed* trials of each arm (full length, so their own
    run counts as one seed of the mean)."""
    k = cfg.search.confirm.top_k
    out = []
    for which, arm in pick_arms(cfg):
        pool = arm_pool(trials, cfg, which)
        pool = pool[pool[S.STATUS] == S.COMPLETED].head(k)
        out += [(str(t), arm) for t in pool[S.TRIAL_ID]]
    return out


def multi_seed_ranking(trials: pd.DataFrame, confirm: pd.DataFrame | None,
                       cfg: ExperimentConfig) -> pd.DataFrame:
    """Each confirmed trial's single-seed score, mean over seeds, their count and both ranks."""
    score, sign = S.best(cfg.search.metric), (1 if cfg.search.mode == "max" else -1)
    rows = []
    by_id = trials.set_index(S.TRIAL_ID)
    for tid, arm in confirm_candidates(trials, cfg):
        runs = confirm[confirm[S.TRIAL_ID] == tid] \
            if confirm is not None and len(confirm) and score in confirm else None
        # only confirm runs that completed count: an errored or diverged run has no score
        # worth averaging (a diverged one reports the worst), and the table says how many
        ok = runs[(runs[S.STATUS] == S.COMPLETED) & runs[score].notna()] if runs is not None else None
        values = [float(by_id.loc[tid, score]), *map(float, ok[score] if ok is not None else [])]
        rows.append({S.TRIAL_ID: tid, S.ARM: arm, "single_seed": values[0],
                     "mean": float(np.mean(values)),
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                     "seeds": len(values),
                     "dropped": 0 if runs is None else len(runs) - len(ok)})
    frame = pd.DataFrame(rows, columns=[S.TRIAL_ID, S.ARM, "single_seed", "mean", "std", "seeds",
                                        "dropped"])
    for col, rank in (("single_seed", "single_seed_rank"), ("mean", "multi_seed_rank")):
        frame[rank] = frame.groupby(S.ARM)[col].rank(ascending=sign < 0, method="first").astype(int)
    return frame


def picks(trials: pd.DataFrame, cfg: ExperimentConfig,
          confirm: pd.DataFrame | None = None) -> dict[str, Any]:
    """``picks.json``: the recommended configs, how they were chosen, and whether seeds changed
    the choice."""
    single = single_seed(trials, cfg)
    out: dict[str, Any] = {"metric": cfg.search.metric, "mode": cfg.search.mode,
                           "method": "single seed", "single_seed": dict(single),
                           "best": single["best"], "ranking": []}
    chosen = dict(single)
    ranking = multi_seed_ranking(trials, confirm, cfg) if confirm is not None else None
    if ranking is not None and len(ranking) and (ranking["seeds"] > 1).any():
        out["method"] = "mean over seeds (confirm stage)"
        out["ranking"] = ranking.to_dict("records")
        for which, arm in pick_arms(cfg):
            arm_rows = ranking[ranking[S.ARM] == arm]
            if len(arm_rows) and not cfg.search.objectives:
                chosen[which] = str(arm_rows.sort_values("multi_seed_rank")[S.TRIAL_ID].iloc[0])
        if not cfg.search.objectives and chosen[DISTILLED] is not None:
            out["best"] = chosen[DISTILLED]
    out["changed"] = {w: chosen[w] != single[w] for w, _ in pick_arms(cfg)}
    by_id = trials.set_index(S.TRIAL_ID, drop=False) if len(trials) else None
    for which, _ in pick_arms(cfg):
        tid = chosen[which]
        out[which] = None if tid is None else _pick_entry(by_id.loc[tid], cfg, ranking)
    return out


def _pick_entry(row: pd.Series, cfg: ExperimentConfig, ranking: pd.DataFrame | None) -> dict[str, Any]:
    score = S.best(cfg.search.metric)
    entry = {S.TRIAL_ID: str(row[S.TRIAL_ID]), S.ARM: row.get(S.ARM, ARM_KD),
             S.ANCHOR: row.get(S.ANCHOR, ""), S.STATUS: row[S.STATUS],
             "score": float(row[score]), S.BEST_PROGRESS: row.get(S.BEST_PROGRESS),
             "hparams": trial_hparams(row, cfg)}
    if ranking is not None and len(ranking):
        match = ranking[ranking[S.TRIAL_ID] == entry[S.TRIAL_ID]]
        if len(match):
            entry.update({k: match.iloc[0][k] for k in ("mean", "std", "seeds", "dropped")})
    return entry
