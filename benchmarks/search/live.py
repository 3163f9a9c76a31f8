"""One live kdtune search beside the table's prediction for the same budget.

The search is ``python -m kdtune.search`` (kdtune.search.main) on a space written to a temporary
folder: the table's data, teacher, student and epochs, the recommended ASHA settings and
num_samples, and the table's grid as ``choice`` values (Optuna then gets one
CategoricalDistribution per parameter, exactly what the replay's TPE asks, so every live trial is
a grid point the table holds). Every trial trains with train.seed 0, so the prediction replays
with the table's seed-0 curves and kdtune's duplicate handling (a repeated point is served from
its known result). Two settings differ from the quickstart, for comparability:

* ``search.baseline: none``: the default tuned CE-only arm would take a quarter of num_samples
  (>= 3 trials) for alpha = 1 runs that are not in the table; the replayed strategies are the
  KD arm alone.
* ``search.confirm.top_k: 0``: the confirm stage re-trains the top trials with extra seeds after
  the search, compute the replay does not model.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.search import grid
from benchmarks.search import strategies as S
from benchmarks.search.evaluate import THRESHOLD, evaluate_trials, quantiles
from benchmarks.search.replay import Strategy, quiet, simulate
from benchmarks.search.table import UNITS_PER_EPOCH, Table

ROOT = Path(__file__).resolve().parents[2]
NAME = "bench_search_live"


def live_space(results_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The live search's space file (a mapping to dump as YAML)."""
    from benchmarks.search.build import bench_config

    cfg = bench_config({"train.eval_every": settings["eval_every"]})
    raw = cfg.to_dict()
    raw.update(name=NAME, results_dir=str(results_dir))
    raw["search"].update(num_samples=settings["num_samples"], grace_period=settings["grace_period"],
                         reduction_factor=settings["reduction_factor"], baseline="none",
                         max_concurrent=2, seed=0, anchors=True)
    raw["search"]["confirm"] = {"top_k": 0, "seeds": 0}
    raw["space"] = {"alpha": {"type": "choice", "values": list(grid.ALPHAS)},
                    "temperature": {"type": "choice", "values": list(grid.TEMPERATURES)},
                    "learning_rate": {"type": "choice", "values": list(grid.LEARNING_RATES)}}
    return raw


def point_of(row: Any) -> tuple[float, float, float]:
    """The grid point nearest a trials.csv row (or an Optuna params dict)."""
    return tuple(min(vals, key=lambda v: abs(v - float(row[k])))
                 for k, vals in zip(grid.PARAMS, (grid.ALPHAS, grid.TEMPERATURES, grid.LEARNING_RATES),
                                    strict=True))


def table_best_to(table: Table, point, seed: int, progress: float, eval_every: float) -> float:
    """kdtune's best_val_macro_f1 of the table's run stopped at ``progress``: the best
    whole-split F1 at epoch ends, else the best value the search saw (subset rungs)."""
    c = table.curves[(point, seed)]
    q = round(progress * UNITS_PER_EPOCH)
    full = [f for qq, f, e in zip(c.quarters, c.full, c.full_val, strict=True) if e and qq <= q]
    seen = [f for qq, f in zip(c.quarters, c.seen[eval_every], strict=True) if qq <= q and not math.isnan(f)]
    return max(full) if full else max(seen) if seen else math.nan


def told_values(db: Path) -> dict[int, Any]:
    """Optuna trial number -> (state, value) in the live study (what TPE was told)."""
    import optuna

    quiet()
    out = {}
    for summary in optuna.get_all_study_summaries(f"sqlite:///{db}"):
        study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
        for t in study.trials:
            out[t.number] = {"state": t.state.name, "value": t.value,
                             "params": dict(t.params), "last_step": t.last_step}
    return out


#: num_samples candidates for the live search's budget (see :func:`live_budget`).
LIVE_CANDIDATES = range(10, 31)
LIVE_REPLAYS = 20


def live_strategy(n: int, settings: dict[str, Any]) -> Strategy:
    """TPE + ASHA as the live search runs it: every trial seed 0, duplicates served (kdtune)."""
    return Strategy("live prediction", "tpe", "asha", num_samples=n, dedup=True, fixed_seed=0,
                    grace_period=settings["grace_period"], reduction_factor=settings["reduction_factor"],
                    eval_every=settings["eval_every"])


def live_budget(table: Table, settings: dict[str, Any]) -> int:
    """The fixed budget (1/3 of the grid's trial-epochs) in trials: the largest num_samples whose
    predicted median compute stays within it."""
    budget = table.grid_compute / 3
    best = min(LIVE_CANDIDATES)
    for n in LIVE_CANDIDATES:
        if quantiles(evaluate_trials(table, live_strategy(n, settings), range(LIVE_REPLAYS))["compute"])[1] \
                <= budget + 1e-9:
            best = n
    return best


TRIALS_COPY = "bench_search_live_trials.csv"
INFO_COPY = "bench_search_live_run.jsonl"  # not *.json: git ignores those


def run_search(table: Table, results: Path) -> int:
    """Run the live search; keep its trials.csv (metrics and hparams only), what Optuna was
    told, and the wall time under ``results``."""
    import pandas as pd

    settings = dict(S.RECOMMENDED)
    settings["num_samples"] = live_budget(table, settings)
    print(f"live search: num_samples {settings['num_samples']} (the fixed budget of "
          f"{table.grid_compute / 3:g} trial-epochs in trials), {settings}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_search_live_") as tmp:
        tmp = Path(tmp)
        space = tmp / "space.yaml"
        space.write_text(yaml.safe_dump(live_space(tmp / "results", settings), sort_keys=False))
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "kdtune.search", "--space", str(space), "--no-report"]
        # A fresh local Ray, never a cluster someone else started on this machine (ray.init
        # with no address joins one): RAY_ADDRESS=local starts a new one.
        env = {**os.environ, "RAY_ADDRESS": "local"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env)  # cwd: the data path and the teacher cache
        wall = time.perf_counter() - t0
        exp = tmp / "results" / NAME
        if proc.returncode != 0 or not (exp / "trials.csv").exists():
            print(f"the live search failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        trials = pd.read_csv(exp / "trials.csv")  # metrics and hparams; not its temporary paths
        trials.drop(columns=[c for c in ("path",) if c in trials]).to_csv(results / TRIALS_COPY, index=False)
        told = told_values(exp / "optuna.db") if (exp / "optuna.db").exists() else {}
    (results / INFO_COPY).write_text(json.dumps({"wall_s": wall, "settings": settings,
                                                 "optuna_told": told}, default=str) + "\n")
    return 0


def live(table_path: Path, results: Path, reuse: bool = False) -> int:
    """Run the live search (unless ``reuse`` and a saved one exists), then compare it with the
    table's prediction (once the table is complete)."""
    table = Table.load(table_path)
    if not (reuse and (results / TRIALS_COPY).exists() and (results / INFO_COPY).exists()):
        code = run_search(table, results)
        if code:
            return code
    return compare(table, results)


def compare(table: Table, results: Path) -> int:
    import pandas as pd

    run_info = json.loads((results / INFO_COPY).read_text())
    settings, wall, told = run_info["settings"], run_info["wall_s"], run_info["optuna_told"]
    trials = pd.read_csv(results / TRIALS_COPY)
    ran = trials[trials["status"].isin(["completed", "stopped early"])].copy()
    ran["point"] = [point_of(r) for _, r in ran.iterrows()]
    ran["table_same_seed"] = [table_best_to(table, p, 0, pr, settings["eval_every"])
                              for p, pr in zip(ran["point"], ran["progress"], strict=True)]
    best = ran.loc[ran["best_val_macro_f1"].idxmax()]
    compute = float(ran["progress"].sum())
    n = settings["num_samples"]
    st = live_strategy(n, settings)
    pred = evaluate_trials(table, st, range(LIVE_REPLAYS))
    same = simulate(table, st, 0)  # search.seed 0 -> TPESampler(seed=0), as the live search
    same_trials = [{"point": t.point, "status": t.status, "progress": t.end / UNITS_PER_EPOCH}
                   for t in same.trials]
    mismatch = float((ran["best_val_macro_f1"] - ran["table_same_seed"]).abs().max())
    done = {p: b for p, st_, b in zip(ran["point"], ran["status"], ran["best_val_macro_f1"], strict=True)
            if st_ == "completed"}
    told_ok = [abs(float(t["value"]) - done[point_of(t["params"])]) < 1e-9
               for t in told.values() if t["state"] == "COMPLETE" and point_of(t["params"]) in done]
    same_set = sorted((tuple(t.point), t.status, t.end) for t in same.trials) == sorted(
        (p, "completed" if st_ == "completed" else "stopped", round(pr * UNITS_PER_EPOCH))
        for p, st_, pr in zip(ran["point"], ran["status"], ran["progress"], strict=True))
    info = {"wall_s": wall, "num_samples": n, "settings": settings,
            "trials": len(trials), "duplicates": int((trials["status"] == "duplicate").sum()),
            "stopped": int((trials["status"] == "stopped early").sum()),
            "compute": compute, "best_point": best["point"],
            "best_val_macro_f1_seed0": float(best["best_val_macro_f1"]),
            "best_table_mean": table.value[best["point"]],
            "max_abs_diff_live_vs_table_seed0": mismatch,
            "prediction": {k: v for k, v in pred.items() if k not in ("compute", "finals")},
            "same_seed_replay": {"compute": same.compute, "final": same.final,
                                 "final_mean": table.value[same.final] if same.final else None,
                                 "trials": same_trials},
            "live_trials": [{"point": p, "status": s, "progress": float(pr), "best": float(b),
                             "table_seed0": float(tb)}
                            for p, s, pr, b, tb in zip(ran["point"], ran["status"], ran["progress"],
                                                       ran["best_val_macro_f1"], ran["table_same_seed"],
                                                       strict=True)],
            "optuna_told": told}
    c1, cm, c3 = quantiles(pred["compute"])
    within = table.value[best["point"]] >= table.best - THRESHOLD - 1e-12
    lines = [
        "# bench_search --live: one kdtune search beside the table's prediction", "",
        f"`python -m kdtune.search` on the table's data and epochs, the grid as `choice` values, "
        f"search.num_samples {n} (the fixed budget, 1/3 of the grid's compute, in trials), grace_period "
        f"{settings['grace_period']:g}, reduction_factor {settings['reduction_factor']}, "
        f"train.eval_every {settings['eval_every']:g}, max_concurrent 2, search.seed 0, "
        "baseline none and confirm off (see benchmarks/search/live.py for why). Wall time "
        f"{wall / 60:.1f} min on this machine.", "",
        "| | compute (trial-epochs) | returned config | its F1 (seed 0) | its table seed-mean F1 "
        "| within 0.5 pt of the table's best |",
        "|---|---|---|---|---|---|",
        f"| live search | {compute:.2f} | {best['point']} | {best['best_val_macro_f1']:.4f} | "
        f"{table.value[best['point']]:.4f} | {'yes' if within else 'no'} |",
        f"| table, same seed (replay seed 0) | {same.compute:.2f} | {same.final} | - | "
        f"{table.value[same.final]:.4f} | "
        f"{'yes' if table.value[same.final] >= table.best - THRESHOLD - 1e-12 else 'no'} |",
        f"| table, 20 replay seeds | median {cm:.2f} [IQR {c1:.2f}, {c3:.2f}] | - | - | mean "
        f"{pred['final_mean']:.4f} [IQR {pred['final_q1']:.4f}, {pred['final_q3']:.4f}] | "
        f"{pred['within_share']:.0%} of replays |", "",
        f"The table's best is {table.best:.4f}. Live trials: {len(trials)} ({info['stopped']} "
        f"stopped early by ASHA, {info['duplicates']} duplicates served from a known result). "
        f"Every live trial's best full-validation F1 against the table's seed-0 run of the same "
        f"point up to the same progress: largest absolute difference {mismatch:.2e} "
        "(0 means the table reproduces kdtune's trials exactly). The same-seed replay ran "
        f"{'the same' if same_set else 'NOT the same'} trials (points, statuses, progress) as the "
        f"live search. Optuna was told each completed trial's best full-validation F1, last epoch "
        f"included, in {sum(told_ok)} of {len(told_ok)} COMPLETE study trials (duplicates "
        "included), as the replay assumes.", "",
        "| live trial point | status | progress | best full-val F1 | table (seed 0) |",
        "|---|---|---|---|---|"]
    lines += [f"| {t['point']} | {t['status']} | {t['progress']:g} | {t['best']:.4f} | "
              f"{t['table_seed0']:.4f} |" for t in info["live_trials"]]
    lines += ["", "(A trial stopped before its first epoch end has no whole-split score: its best is "
              "the subset F1 it was stopped on, as in kdtune's trials.csv.)"]
    info.update(same_trials_as_live=same_set, told_complete_ok=f"{sum(told_ok)}/{len(told_ok)}")
    text = "\n".join(lines) + "\n"
    print(text)
    (results / "bench_search_live.md").write_text(text)
    (results / "bench_search_live.json").write_text(json.dumps(info, indent=1, default=str))
    return 0
