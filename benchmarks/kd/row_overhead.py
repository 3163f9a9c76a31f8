"""Row 4: Ray Tune's overhead on a trial, from the run-to-completion search of row 3.

Per trial, from history.csv: Ray's ``time_total_s`` at its last report (everything the trial
function did, from its start) against the sum of the trainer's own ``seconds`` over its rungs
(training + validation between evaluations, as ``kdtune.trainer.RungMetrics`` measures them).
The difference is what ``kdtune.trainable.kd_trial`` adds around the trainer (hparams, the
student's build from the object store, checkpoint + report at every rung) and Ray's own
bookkeeping; worker start is outside both. Summed over trials: Ray <= 1.1x bare.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import pandas as pd

from benchmarks.common import Row, at_most
from benchmarks.kd.row_asha import Search
from kdtune.record import schema as S


def per_trial(history: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for tid, h in history.groupby(S.TRIAL_ID):
        h = h.sort_values("training_iteration")
        bare = float(h["seconds"].fillna(0).sum())
        ray = float(h["time_total_s"].iloc[-1])
        out.append({"trial_id": str(tid), "rungs": len(h), "ray_time_total_s": ray,
                    "trainer_seconds": bare,
                    "first_report_extra_s": float(h["time_this_iter_s"].iloc[0] - h["seconds"].iloc[0]),
                    "ratio": ray / bare if bare > 0 else math.nan})
    return out


def stats(search: Search) -> dict[str, Any]:
    trials = per_trial(search.history)
    bare = sum(t["trainer_seconds"] for t in trials)
    ray = sum(t["ray_time_total_s"] for t in trials)
    concurrent = search.cfg.search.max_concurrent
    out: dict[str, Any] = {
        "per_trial": trials, "trainer_seconds": bare, "ray_time_total_s": ray,
        "ratio": ray / bare if bare > 0 else math.nan,
        "median_trial_ratio": statistics.median(t["ratio"] for t in trials) if trials else math.nan,
        "search_seconds": search.search_seconds, "max_concurrent": concurrent,
        "search_over_bare_per_slot": search.search_seconds / (bare / concurrent) if bare else math.nan}
    if "peak_rss_mb" in search.history:  # reported by kd_trial (ru_maxrss of the Ray worker)
        out["trial_peak_rss_mb"] = float(search.history["peak_rss_mb"].max())
    return out


def rows(searches: dict[str, Search]) -> list[Row]:
    ref = searches["complete"]
    st = {k: stats(v) for k, v in searches.items()}
    s = st["complete"]
    asha = f"; ASHA search {st['asha']['ratio']:.3f}" if "asha" in st else ""
    return [at_most(
        "4", "Ray Tune overhead: trainer time vs trial time in Ray", s["trainer_seconds"],
        s["ray_time_total_s"], "s", 1.1,
        f"run-to-completion search, {len(s['per_trial'])} trials: sum of Ray time_total_s vs sum of "
        f"the trainer's own seconds (train + validation); median trial {s['median_trial_ratio']:.3f}"
        f"{asha}; search wall {ref.search_seconds:.0f} s = {s['search_over_bare_per_slot']:.2f}x the "
        f"trainer seconds / {s['max_concurrent']} concurrent slots", raw=st)]
