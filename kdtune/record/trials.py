"""trials.csv and history.csv: one row per trial, one row per trial evaluation.

Built from Ray Tune's results (a ``ResultGrid``, or the per-trial ``result.json`` files of a
partial search, duck-typed as :class:`TrialResult`) plus the finished-trial objects of
duplicates, which were never trained. A trial's "best" is its best evaluation on the whole
validation split (epoch ends); only a trial stopped before its first epoch end falls back to
its validation-subset rungs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kdtune.config import ExperimentConfig, anchor_label
from kdtune.params import Trial
from kdtune.record import schema as S

HPARAMS = "hparams"  # trials.csv: the trial's own (sampled + pinned) values, as JSON


@dataclass
class TrialResult:
    """What :func:`trial_tables` reads of a Ray ``Result``."""

    trial_id: str
    path: str
    config: dict[str, Any]
    history: pd.DataFrame
    error: str | None


def from_ray(res: Any) -> TrialResult:
    """A Ray ``Result`` as a :class:`TrialResult`."""
    hist = res.metrics_dataframe if res.metrics_dataframe is not None else pd.DataFrame()
    trial_id = (res.metrics or {}).get("trial_id") or str(res.path).rstrip("/").rsplit("/", 1)[-1]
    error = None if res.error is None else str(res.error)
    return TrialResult(str(trial_id), str(res.path), dict(res.config or {}), hist, error)


def last_line(text: Any) -> str:
    """The last non-empty line: for a traceback, the exception itself."""
    lines = [ln for ln in str(text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def sampled(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's own hparams (what the searcher gave it), without the routing key."""
    return {k: v for k, v in config.items() if k != S.ARM}


def _status(tr: TrialResult, hist: pd.DataFrame, epochs: int) -> tuple[str, str]:
    diverged = bool(hist.get("diverged", pd.Series(dtype=bool)).fillna(False).astype(bool).any())
    if tr.error is not None:
        return S.ERRORED, last_line(tr.error)
    if diverged:
        errors = hist["error"].dropna() if "error" in hist else pd.Series(dtype=str)
        return S.DIVERGED, last_line(errors.iloc[-1]) if len(errors) else ""
    progress = float(hist[S.PROGRESS].max()) if S.PROGRESS in hist and len(hist) else 0.0
    return (S.COMPLETED if progress >= epochs - 1e-9 else S.STOPPED), ""


def _best(hist: pd.DataFrame, cfg: ExperimentConfig) -> dict[str, Any]:
    """The trial's best evaluation (whole validation split when it has one) and last values."""
    metric, mode = cfg.search.metric, cfg.search.mode
    good = hist[~hist.get("diverged", pd.Series(False, index=hist.index)).fillna(False).astype(bool)]
    if metric not in good or not good[metric].notna().any():
        return {}
    full = good[good[S.FULL_VAL].fillna(False).astype(bool)] if S.FULL_VAL in good else good
    pool = full if len(full) and full[metric].notna().any() else good
    i = pool[metric].idxmax() if mode == "max" else pool[metric].idxmin()
    out = {S.best(q): float(pool.loc[i, q]) for q in S.QUALITY if q in pool}
    out[S.BEST_PROGRESS] = float(pool.loc[i, S.PROGRESS])
    out.update({S.last(q): float(good[q].iloc[-1]) for q in S.QUALITY if q in good})
    return out


def summarise(tr: TrialResult, cfg: ExperimentConfig, anchors: list[dict[str, Any]]) -> dict[str, Any]:
    """One trials.csv row."""
    hist = tr.history
    own = sampled(tr.config)
    row: dict[str, Any] = {S.TRIAL_ID: tr.trial_id, S.ARM: tr.config.get(S.ARM, "kd"),
                           S.ANCHOR: anchor_label(own, anchors)}
    row.update({p.name: _cell(own.get(p.name)) for p in cfg.space})
    status, error = _status(tr, hist, cfg.train.epochs)
    progress = float(hist[S.PROGRESS].max()) if S.PROGRESS in hist and len(hist) else 0.0
    row.update({S.STATUS: status, S.PROGRESS: progress, S.ERROR: error, S.DUPLICATE_OF: ""})
    row.update(_best(hist, cfg))
    for extra in (S.LATENCY, S.PARAMS):  # constant per trial (the architecture's)
        if extra in hist and hist[extra].notna().any():
            row[extra] = float(hist[extra].dropna().iloc[-1])
    row[HPARAMS] = json.dumps(own, default=_plain)
    row[S.PATH] = relative_trial_path(tr.path)
    return row


def relative_trial_path(path: str) -> str:
    """A Ray trial folder relative to the experiment root (``tune/kd_trial_...``): the record
    holds no machine's absolute path or bucket, so it reads the same wherever it is moved."""
    return "/".join(str(path).rstrip("/").split("/")[-2:])


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, tuple)) else v


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else str(v)


def history_rows(tr: TrialResult) -> pd.DataFrame:
    """The trial's evaluations, one row each (a resumed trial's repeated rung kept once)."""
    hist = tr.history
    if not len(hist):
        return hist
    keep = [c for c in hist.columns if not c.startswith(("config/", "checkpoint_dir"))]
    h = hist[keep].copy()
    if S.TRIAL_ID not in h:
        h.insert(0, S.TRIAL_ID, tr.trial_id)
    h[S.TRIAL_ID] = tr.trial_id
    if S.ARM not in h:
        h.insert(1, S.ARM, tr.config.get(S.ARM, "kd"))
    if S.STEP in h:
        h = h.drop_duplicates(S.STEP, keep="last")
    return h.reset_index(drop=True)


def duplicate_row(entry: dict[str, Any], original: dict[str, Any] | None, cfg: ExperimentConfig,
                  anchors: list[dict[str, Any]]) -> dict[str, Any]:
    """The trials.csv row of a config that was not trained: its original's result was used."""
    own = entry.get(HPARAMS) or {}
    row = {S.TRIAL_ID: entry[S.TRIAL_ID], S.ARM: entry.get(S.ARM, "kd"),
           S.ANCHOR: anchor_label(own, anchors), **{p.name: _cell(own.get(p.name)) for p in cfg.space},
           S.STATUS: S.DUPLICATE, S.PROGRESS: 0.0, S.ERROR: "",
           S.DUPLICATE_OF: entry.get(S.DUPLICATE_OF, ""), HPARAMS: json.dumps(own, default=_plain),
           S.PATH: ""}
    if original:
        row.update({k: original.get(k) for k in (*map(S.best, S.QUALITY), S.BEST_PROGRESS)
                    if k in original})
    return row


def trial_tables(results: list[TrialResult], cfg: ExperimentConfig,
                 duplicates: list[dict[str, Any]] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) frames, trials ranked by each trial's best score."""
    anchors = cfg.anchor_points()
    rows = [summarise(tr, cfg, anchors) for tr in results]
    by_id = {r[S.TRIAL_ID]: r for r in rows}
    rows += [duplicate_row(d, by_id.get(d.get(S.DUPLICATE_OF, "")), cfg, anchors)
             for d in duplicates]
    trials = rank(pd.DataFrame(rows), cfg)
    histories = [h for h in (history_rows(tr) for tr in results) if len(h)]
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return trials, history


def rank(trials: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame:
    """Trials sorted by their best score (duplicates after the trial they copy)."""
    score = S.best(cfg.search.metric)
    if score not in trials or not len(trials):
        return trials.reset_index(drop=True)
    dup = (trials[S.STATUS] == S.DUPLICATE).astype(int) if S.STATUS in trials else 0
    key = trials[score] if cfg.search.mode == "min" else -trials[score]
    keyed = trials.assign(_key=key.fillna(np.inf), _dup=dup)  # ties: by trial id, deterministic
    order = keyed.sort_values(["_key", "_dup", S.TRIAL_ID], kind="stable").index
    return trials.loc[order].reset_index(drop=True)


def row_trial(row: pd.Series | dict[str, Any], cfg: ExperimentConfig) -> Trial:
    """A trials.csv row as the :class:`~kdtune.params.Trial` it trained: its own values (the
    JSON column), or failing that its searched columns, over the fixed ones."""
    own = row.get(HPARAMS)
    if isinstance(own, str) and own:
        values = json.loads(own)
    else:
        values = {p.name: row[p.name] for p in cfg.space
                  if p.name in row and not _missing(row[p.name])}
    return Trial.of(cfg.trial_base(), values)


def trial_hparams(row: pd.Series | dict[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    """A trials.csv row's full hparams: the fixed values with the trial's own merged over."""
    return row_trial(row, cfg).values


def distils_mask(frame: pd.DataFrame, cfg: ExperimentConfig) -> pd.Series:
    """Per row: whether that trial trained on the teacher's soft targets (``Trial.distils``:
    neither CE-only nor self-training)."""
    return pd.Series([row_trial(r, cfg).distils for _, r in frame.iterrows()], index=frame.index,
                     dtype=bool)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
