"""``python -m benchmarks.bench_search [--quick | --build | --live]``: what kdtune's search buys.

* no flag: replay every strategy (50 seeds), sweep ASHA's settings and num_samples on separate
  seeds, write ``benchmarks/results/bench_search.md`` (+ ``.json``, git-ignored) and print it;
* ``--quick``: replay the committed table (20 seeds, the main strategies) in well under a
  minute and print the table and PASS/FAIL per target (writes nothing unless ``--out``);
* ``--build``: build (or resume) ``benchmarks/results/search_table.csv`` (~40 min on 2 cores);
* ``--live``: one live ``kdtune.search`` beside the table's prediction (~15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.search import grid
from benchmarks.search import strategies as S
from benchmarks.search.evaluate import THRESHOLD, Summary, budgets, diff_interval, evaluate, evaluate_trials
from benchmarks.search.replay import Strategy, quiet
from benchmarks.search.table import Table

RESULTS = grid.TABLE.parent
SWEEP_SEED0 = 1000
MAIN_SEEDS = 50  # replays per strategy, --quick and full alike (same verdicts)
EVAL_EVERY_SWEEP = (0.25, 0.5, 1.0)
GRACE_SWEEP = (0.5, 1.0)
RF_SWEEP = (2, 3, 4)
NUM_SAMPLES_SWEEP = (6, 9, 12, 14, 18, 24, 30)
WARMUP_EPOCHS = 0.1 * grid.EPOCHS  # train.warmup_fraction x epochs: no rung before it
SETTING_KEYS = ("grace_period", "reduction_factor", "eval_every")


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(grid.TABLE.parents[2]))
    except ValueError:
        return str(path)


def fmt_c(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.1f}"


def pts(x: float) -> str:
    return f"{x * 100:.2f}"


def table_facts(table: Table) -> dict[str, Any]:
    sd = table.median_seed_sd
    seed_default = tuple(grid.SEED_DEFAULT)
    facts = {"runs": len(table.curves), "points": len(table.points), "seeds": table.seeds,
             "epochs": table.epochs, "grid_compute": table.grid_compute,
             "best_point": dict(zip(grid.PARAMS, table.best_point, strict=True)), "best": table.best,
             "median_seed_sd": sd, "threshold_points": THRESHOLD * 100,
             "threshold_sd": THRESHOLD / sd if sd > 0 else math.nan,
             "within_threshold": len(table.within(THRESHOLD)),
             "seed_default": table.value.get(seed_default, math.nan),
             "worst": float(min(table.final_mean)),
             "top5": sorted(((v, p) for p, v in table.value.items()), reverse=True)[:5],
             "by_learning_rate": {f"{lr:g}": float(np.mean([v for p, v in table.value.items()
                                                             if p[2] == lr]))
                                  for lr in sorted({p[2] for p in table.points})},
             "spread_at_best_lr": spread_at_best_lr(table)}
    try:
        facts["seconds"] = table.run_seconds()
    except (OSError, KeyError):
        pass
    log = grid.TABLE.with_name("bench_search_build.jsonl")
    if log.exists():
        calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        facts["build_wall_s"] = sum(c.get("wall_s_this_call", 0.0) for c in calls)
        facts["build_calls"] = len(calls)
    return facts


def first_within(table: Table) -> int:
    """1-based position in the grid's order of the first point within 0.5 points of the best."""
    near = set(table.within(THRESHOLD))
    return next(i for i, p in enumerate(table.points, start=1) if p in near)


def rung_correlation(table: Table, progress: float, evals: int, lr: float | None = None) -> float:
    """Spearman correlation over runs between what a search with ``1 / evals`` sees at
    ``progress`` and the run's final whole-split F1 (runs at learning rate ``lr`` only)."""
    e = 1.0 / evals
    pairs = [(c.seen[e][c.at(round(progress * 4))], c.full[-1]) for (p, _), c in table.curves.items()
             if lr is None or p[2] == lr]
    a, b = (np.argsort(np.argsort(np.array(x), kind="stable")) for x in zip(*pairs, strict=True))
    return float(np.corrcoef(a, b)[0, 1])


def spread_at_best_lr(table: Table) -> float:
    """Range of the seed-mean final F1 over alpha x T at the best point's learning rate."""
    vals = [v for p, v in table.value.items() if p[2] == table.best_point[2]]
    return float(max(vals) - min(vals))


def findings(table: Table, facts: dict[str, Any], by_name: dict[str, Summary], budget: float) -> list[str]:
    """What the numbers say, in words (every number computed here)."""
    d = {n: s.as_dict(table) for n, s in by_name.items()}
    tpe, rnd, grid_ = d[S.TPE_ASHA], d[S.RANDOM_ASHA], d[S.GRID]
    lo, hi = diff_interval(tpe["score_at_budget"], rnd["score_at_budget"])
    lrs = ", ".join(f"{k}: {v:.4f}" for k, v in facts["by_learning_rate"].items())
    everywhere, at_lr = rung_correlation(table, 0.5, 2), rung_correlation(table, 0.5, 2, table.best_point[2])
    out = [f"- The learning rate decides almost everything: mean final F1 by learning rate {lrs}. At "
           f"the best point's lr, alpha x T spans {facts['spread_at_best_lr'] * 100:.2f} points, "
           f"against a seed SD of {facts['median_seed_sd'] * 100:.2f} points: the table cannot rank "
           "alpha and T there.",
           f"- Early rungs: the F1 a search sees at 0.5 epochs (eval_every 0.5) ranks runs like their "
           f"final F1 across the whole grid (Spearman {everywhere:+.2f}), which is why stopping at "
           f"0.5 epochs is safe for the lr; within the best lr the early ranking says little or the "
           f"opposite ({at_lr:+.2f}), so ASHA may stop that lr's later winners, harmless here only "
           "because alpha and T move the final F1 by less than the seed noise.",
           f"- The 0.5-point target is {facts['threshold_sd']:.2f} seed SD. A search picks its config "
           "by one seed's score, so every strategy can end on a lucky draw of a point that is not "
           "within 0.5 points on average (the 'reached' column); kdtune's confirm stage (re-running "
           "the top trials with more seeds) is what addresses that, not the search algorithm.",
           f"- Target 1: TPE + ASHA needs a median {fmt_c(tpe['to_target_median'])} trial-epochs "
           f"({tpe['to_target_median'] / table.grid_compute:.0%} of the grid). The grid in the seed "
           f"report's order gets there at {fmt_c(grid_['to_target_median'])} because its point "
           f"number {first_within(table)} is within 0.5 points, luck of its order"]
    if "grid, order shuffled per replay" in d:
        sh = d["grid, order shuffled per replay"]
        out[-1] += f"; shuffled, the grid needs a median {fmt_c(sh['to_target_median'])}"
    out[-1] += "."
    out.append(f"- Target 2: at {budget:g} trial-epochs TPE + ASHA and random + ASHA differ by "
               f"{(tpe['score_mean'] - rnd['score_mean']) * 100:+.2f} points (95% CI {lo * 100:+.2f} to "
               f"{hi * 100:+.2f}): a tie. With one parameter (lr) mattering and a third of the grid at "
               "the best lr, random sampling finds it as fast as TPE's model does.")
    return out


def describe_table(f: dict[str, Any]) -> list[str]:
    b = f["best_point"]
    out = [f"- {f['runs']} runs: {f['points']} grid points (alpha {list(grid.ALPHAS)} x T "
           f"{list(grid.TEMPERATURES)} x lr {list(grid.LEARNING_RATES)}) x seeds {f['seeds']}, "
           f"{f['epochs']:g} epochs each, every rung recorded at progress 0.25, 0.5, ..., "
           f"{f['epochs']:g}; the full grid costs {f['grid_compute']:g} trial-epochs.",
           f"- Data: the quickstart's space (`{grid.BASE_SPACE}`) with max_train "
           f"{grid.OVERRIDES['data.max_train']}, max_val {grid.OVERRIDES['data.max_val']} "
           "(AG News, the fine-tuned 6-layer MiniLM teacher, a 2-layer student sliced from it).",
           f"- **The table's best** = the grid point with the highest seed-mean macro-F1 on the whole "
           f"validation split at the end of training: alpha {b['alpha']:g}, T {b['temperature']:g}, "
           f"lr {b['learning_rate']:g}, **{f['best']:.4f}**. The seed default (0.7, 3, 1e-4): "
           f"{f['seed_default']:.4f}; the worst point: {f['worst']:.4f}.",
           f"- Seed noise: the median over grid points of the SD between seeds of the final F1 is "
           f"**{pts(f['median_seed_sd'])} points**, so the 0.5-point threshold is "
           f"**{f['threshold_sd']:.2f} seed SD**. {f['within_threshold']} of {f['points']} grid points "
           "are within 0.5 points of the best.",
           "- Top 5 points (seed-mean final F1): " + "; ".join(
               f"({p[0]:g}, {p[1]:g}, {p[2]:g}) {v:.4f}" for v, p in f["top5"]) + "."]
    if "seconds" in f:
        s = f["seconds"]
        out.append(f"- Build cost: median run {s['median_run_s']:.0f} s of training + kdtune's own "
                   f"evaluations (one torch thread, two runs side by side), {s['sum_run_s'] / 60:.0f} "
                   f"min summed over runs; the table's extra whole-split scoring at intermediate "
                   f"rungs added {s['sum_extra_eval_s'] / 60:.0f} min.")
    if "build_wall_s" in f:
        out.append(f"- Build wall time: {f['build_wall_s'] / 60:.0f} min in {f['build_calls']} calls of "
                   "`--build` (teacher fine-tuning included), two worker processes on this project's "
                   "2-core machine while other jobs shared it (load 4-7): see bench_search_build.jsonl. "
                   f"The fastest run (table scoring included) took {f['seconds']['fastest_run_s']:.0f} s: "
                   f"~{f['seconds']['fastest_run_s'] * f['runs'] / 2 / 60:.0f} min for the grid on two "
                   "idle cores.")
    return out


def strategy_rows(table: Table, summaries: list[Summary], budget: float) -> list[str]:
    sd = table.median_seed_sd
    out = ["| strategy | compute to within 0.5 pt: median [IQR] (95% CI of the median) | reached | "
           "best F1 at "
           f"{budget:g} trial-epochs: mean (median) [IQR] | gap to best: points / seed SD | "
           "trials in the grid's compute | stopped early |",
           "|---|---|---|---|---|---|---|"]
    for s in summaries:
        d = s.as_dict(table)
        out.append(
            f"| {d['strategy']} | {fmt_c(d['to_target_median'])} [{fmt_c(d['to_target_q1'])}, "
            f"{fmt_c(d['to_target_q3'])}] ({fmt_c(d['to_target_median_ci'][0])}-"
            f"{fmt_c(d['to_target_median_ci'][1])}) | {d['reached_share']:.0%} | {d['score_mean']:.4f} "
            f"({d['score_median']:.4f}) [{d['score_q1']:.4f}, {d['score_q3']:.4f}] | "
            f"{d['gap_mean_points']:.2f} / {d['gap_mean_points'] / 100 / sd if sd else math.nan:.2f} | "
            f"{d['trials_median']:.0f} | {d['stopped_share']:.0%} |")
    return out


def curve_rows(table: Table, summaries: list[Summary]) -> list[str]:
    bs = budgets(table)
    out = ["| strategy | " + " | ".join(f"{b:g}" for b in bs) + " |",
           "|---|" + "---|" * len(bs)]
    for s in summaries:
        out.append(f"| {s.strategy.name} | " + " | ".join(
            f"{float(np.nanmean(s.curve[b])):.4f}" for b in bs) + " |")
    return out


def targets(table: Table, by_name: dict[str, Summary], budget: float) -> list[dict[str, Any]]:
    tpe = by_name[S.TPE_ASHA].as_dict(table)
    rnd = by_name[S.RANDOM_ASHA].as_dict(table)
    limit = table.grid_compute / 3
    sd = table.median_seed_sd
    diff = tpe["score_mean"] - rnd["score_mean"]
    lo, hi = diff_interval(tpe["score_at_budget"], rnd["score_at_budget"])
    m_lo, m_hi = tpe["to_target_median_ci"]
    return [
        {"target": "TPE + ASHA within 0.5 points of the grid's optimum using <= 1/3 of the full "
                   "grid's compute (median over seeds)",
         "value": f"median {fmt_c(tpe['to_target_median'])} trial-epochs "
                  f"(IQR {fmt_c(tpe['to_target_q1'])}-{fmt_c(tpe['to_target_q3'])}; 95% CI of the "
                  f"median {fmt_c(m_lo)}-{fmt_c(m_hi)}) vs limit {limit:g} "
                  f"({fmt_c(tpe['to_target_median'] / table.grid_compute * 100)}% of the grid's)",
         "pass": tpe["to_target_median"] <= limit + 1e-9},
        {"target": f"TPE + ASHA at least as good as random + ASHA at equal compute ({budget:g} "
                   "trial-epochs; mean over seeds of the returned config's seed-mean F1)",
         "value": f"{tpe['score_mean']:.4f} vs {rnd['score_mean']:.4f} ({diff * 100:+.2f} points, "
                  f"{diff / sd if sd else math.nan:+.2f} seed SD; 95% CI {lo * 100:+.2f} to "
                  f"{hi * 100:+.2f} points)",
         "pass": diff >= -1e-12},
    ]


def target_rows(ts: list[dict[str, Any]]) -> list[str]:
    out = ["| target | measured | result |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['value']} | **{'PASS' if t['pass'] else 'FAIL'}** |" for t in ts]
    return out


def asha_grid() -> list[dict[str, Any]]:
    out = []
    for e in EVAL_EVERY_SWEEP:
        for g in GRACE_SWEEP:
            if g < WARMUP_EPOCHS - 1e-9 or abs(g / e - round(g / e)) > 1e-9:
                continue  # kdtune refuses it (config._check_rungs)
            for rf in RF_SWEEP:
                out.append({"eval_every": e, "grace_period": g, "reduction_factor": rf})
    return out


def sweep(table: Table, seeds: list[int], budget: float, log) -> dict[str, Any]:
    """TPE + ASHA and random + ASHA over kdtune's ASHA settings (anytime replays), then
    num_samples at the pick."""
    rows = []
    for a in asha_grid():
        tpe = evaluate(table, Strategy("sweep", "tpe", "asha", startup_from=S.KDTUNE_BEFORE["num_samples"],
                                       **a), seeds, budget)
        rnd = evaluate(table, Strategy("sweep", "random", "asha", **a), seeds, budget)
        d = tpe.as_dict(table)
        any_t, any_r = tpe.anytime(budget), rnd.anytime(budget)
        rows.append({**a, **{k: d[k] for k in ("to_target_q1", "to_target_median", "to_target_q3",
                                               "to_target_median_ci", "reached_share", "score_mean",
                                               "trials_median", "stopped_share")},
                     "anytime_mean": float(np.mean(any_t)), "anytime_values": any_t,
                     "random_anytime_mean": float(np.mean(any_r)),
                     "random_score_mean": float(np.nanmean(rnd.score_at_budget)),
                     "vs_random_ci": diff_interval(any_t, any_r)})
        log(f"  sweep {a}: median {fmt_c(d['to_target_median'])}, anytime {np.mean(any_t):.4f}")
    best = max(rows, key=lambda r: r["anytime_mean"])
    for r in rows:
        r["vs_best_ci"] = diff_interval(r["anytime_values"], best["anytime_values"])
        r["indistinguishable"] = r["vs_best_ci"][1] >= 0
    pick = min((r for r in rows if r["indistinguishable"]), key=lambda r: (
        sum(r[k] != S.KDTUNE_BEFORE[k] for k in SETTING_KEYS), -r["eval_every"], -r["grace_period"],
        abs(r["reduction_factor"] - S.KDTUNE_BEFORE["reduction_factor"]), -r["anytime_mean"]))
    settings = {k: pick[k] for k in SETTING_KEYS}
    ns = []
    for n in NUM_SAMPLES_SWEEP:
        for label, extra in (("redraw seeds", {}), ("kdtune dedup", {"dedup": True})):
            st = Strategy("n", "tpe", "asha", num_samples=n, **S.asha_settings(S.RECOMMENDED), **extra)
            d = evaluate_trials(table, st, seeds)
            ns.append({"variant": label, **{k: v for k, v in d.items() if k not in ("compute", "finals")}})
        log(f"  num_samples {n}: compute {ns[-2]['compute_median']:.1f}, "
            f"within {ns[-2]['within_share']:.0%}")
    for r in rows:
        r.pop("anytime_values")
    return {"asha": rows, "best": {k: best[k] for k in SETTING_KEYS}, "pick": settings, "num_samples": ns}


def sweep_rows(sw: dict[str, Any], budget: float) -> list[str]:
    out = ["| eval_every | grace_period | reduction_factor | compute to within 0.5 pt: median "
           "[IQR] (95% CI of the median) | reached | anytime F1 up to "
           f"{budget:g}: TPE + ASHA (minus the best setting, 95% CI) | random + ASHA (TPE minus "
           "random, 95% CI) | trials in the grid's compute | stopped early |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(sw["asha"], key=lambda r: (r["eval_every"], r["grace_period"], r["reduction_factor"])):
        tags = [t for t, m in (("pick", sw["pick"]), ("best", sw["best"]), ("kdtune before", S.KDTUNE_BEFORE))
                if all(r[k] == m[k] for k in SETTING_KEYS)]
        mark = f" **({', '.join(tags)})**" if tags else ""
        lo, hi = r["to_target_median_ci"]
        b_lo, b_hi = r["vs_best_ci"]
        r_lo, r_hi = r["vs_random_ci"]
        out.append(f"| {r['eval_every']:g} | {r['grace_period']:g} | {r['reduction_factor']}{mark} | "
                   f"{fmt_c(r['to_target_median'])} [{fmt_c(r['to_target_q1'])}, "
                   f"{fmt_c(r['to_target_q3'])}] ({fmt_c(lo)}-{fmt_c(hi)}) | {r['reached_share']:.0%} | "
                   f"{r['anytime_mean']:.4f} ({b_lo * 100:+.2f}, {b_hi * 100:+.2f} pt) | "
                   f"{r['random_anytime_mean']:.4f} ({r_lo * 100:+.2f}, {r_hi * 100:+.2f} pt) | "
                   f"{r['trials_median']:.0f} | {r['stopped_share']:.0%} |")
    out += ["", "num_samples (a kdtune search's budget) with the recommended settings: trial-limited "
            "replays; 'redraw seeds' re-trains a repeated grid point with a seed drawn afresh (as a "
            "nearby point of the continuous space would be), 'kdtune dedup' serves it from the known "
            "result as kdtune's router does (what a `choice` space over the grid gets).", "",
            "| num_samples | variant | compute (trial-epochs): median [IQR] | returned config's F1: "
            "mean [IQR] | within 0.5 pt of best |", "|---|---|---|---|---|"]
    for r in sw["num_samples"]:
        out.append(f"| {r['num_samples']} | {r['variant']} | {r['compute_median']:.1f} "
                   f"[{r['compute_q1']:.1f}, {r['compute_q3']:.1f}] | {r['final_mean']:.4f} "
                   f"[{r['final_q1']:.4f}, {r['final_q3']:.4f}] | {r['within_share']:.0%} |")
    return out


def replay_main(table: Table, seeds: list[int], budget: float, with_extra: bool, log
                ) -> list[Summary]:
    out = []
    todo = S.main_strategies() + (S.extra_strategies() if with_extra else [])
    for st in todo:
        t0 = time.perf_counter()
        out.append(evaluate(table, st, seeds, budget))
        log(f"  {st.name}: {len(seeds)} replays in {time.perf_counter() - t0:.1f} s")
    return out


def header(table: Table, seeds: int, budget: float) -> list[str]:
    r = S.RECOMMENDED
    return [f"Each strategy is replayed {seeds} times (replay seeds 0-{seeds - 1}); each replay runs "
            f"until it has spent the full grid's compute ({table.grid_compute:g} trial-epochs). The "
            f"fixed budget is 1/3 of it: {budget:g} trial-epochs. ASHA-like rows use "
            f"grace_period {r['grace_period']:g}, reduction_factor {r['reduction_factor']}, "
            f"eval_every {r['eval_every']:g} (the recommended defaults) and kdtune's promotion rule "
            "(`search.promotion: top_k`; Ray's percentile rule is an extra row); TPE's random start is "
            f"max(2, min(10, num_samples // 3)) with num_samples {r['num_samples']} (kdtune's rule). "
            "Two trials run side by side (kdtune's max_concurrent) except the grid and Optuna's own "
            "pruners (sequential); every strategy validates at the same points (eval_every), and "
            "before a trial's first epoch end kdtune ranks it by its subset F1, so a first trial at a "
            "good point can be the pick after a fraction of an epoch. "
            "TPE asks one `CategoricalDistribution` per parameter over the grid "
            "values (= `suggest_categorical`), univariate as in kdtune; every sampled strategy "
            "starts with kdtune's anchor, the seed default (0.7, 3, 1e-4). A repeated grid point is "
            "re-trained with a seed drawn afresh (random search samples with replacement).", ""]


def run(args: argparse.Namespace) -> int:
    quiet()
    t0 = time.perf_counter()
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else (lambda m: None)
    if not args.table.exists():
        print(f"no table at {args.table}: build it with --build", file=sys.stderr)
        return 2
    table = Table.load(args.table)
    budget = table.grid_compute / 3
    n = args.seeds or MAIN_SEEDS
    seeds = list(range(n))
    facts = table_facts(table) if args.table == grid.TABLE else {
        k: v for k, v in table_facts(table).items() if k != "seconds"}
    summaries = replay_main(table, seeds, budget, with_extra=not args.quick, log=log)
    by_name = {s.strategy.name: s for s in summaries}
    ts = targets(table, by_name, budget)
    lines = ["# bench_search: what kdtune's search buys (tabular benchmark)", "",
             f"## The table (`{shown(args.table)}`)", "", *describe_table(facts), "",
             "## Strategies", "", *header(table, n, budget), *strategy_rows(table, summaries, budget),
             "", "Mean over replays of the returned config's seed-mean F1 once each compute level "
             "(trial-epochs) is spent:", "", *curve_rows(table, summaries),
             "", "## Targets", "", *target_rows(ts), "", "## What this says", "",
             *findings(table, facts, by_name, budget)]
    result: dict[str, Any] = {"table": facts, "budget": budget, "replay_seeds": n,
                              "strategies": [s.as_dict(table) for s in summaries], "targets": ts,
                              "recommended": S.RECOMMENDED}
    if not args.quick:
        sw = sweep(table, list(range(SWEEP_SEED0, SWEEP_SEED0 + args.sweep_seeds)), budget, log)
        result["sweep"] = sw
        agree = all(S.RECOMMENDED[k] == v for k, v in sw["pick"].items())
        lines += ["", "## ASHA settings and num_samples (TPE + ASHA)", "",
                  f"Replay seeds {SWEEP_SEED0}-{SWEEP_SEED0 + args.sweep_seeds - 1} (not the ones "
                  "above), each setting replayed with TPE and with random sampling. grace_period must "
                  "be a multiple of eval_every and at least the warm-up "
                  f"({WARMUP_EPOCHS:g} epochs), as kdtune requires. TPE's random start is set from "
                  f"num_samples {S.KDTUNE_BEFORE['num_samples']}. **Anytime F1** = per replay, the "
                  "mean of the returned config's seed-mean F1 at 9, 13.5 and 27 trial-epochs (one "
                  "number for reaching good configs early and holding them at the budget), then the "
                  "mean over replays. Rule for the pick: among the settings indistinguishable from "
                  "the best anytime F1 (the 95% bootstrap interval of the difference contains 0), "
                  "the one that changes fewest of kdtune's settings before this benchmark (grace 1, "
                  "rf 3, eval_every 1), then the coarser eval_every, the larger grace period, rf "
                  "nearer 3: a default changes only on evidence, and no further than it shows.", "",
                  *sweep_rows(sw, budget), "",
                  f"The sweep picks {sw['pick']}; the defaults used above (strategies.RECOMMENDED) "
                  f"are {S.RECOMMENDED}" + (" (the same)." if agree else " (they DIFFER: update "
                                            "strategies.RECOMMENDED).")]
    live = RESULTS / "bench_search_live.md"
    if live.exists() and not args.quick:
        lines += ["", "## Live search", "", f"See `{live.name}` (written by `--live`)."]
    elapsed = time.perf_counter() - t0
    lines += ["", f"_Replayed in {elapsed:.0f} s._"]
    text = "\n".join(lines) + "\n"
    print(text)
    for t in ts:
        print(f"{'PASS' if t['pass'] else 'FAIL'}: {t['target']} -- {t['value']}")
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_search.md").write_text(text)
        (out / "bench_search.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_search", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="replay the committed table (< 1 min)")
    mode.add_argument("--build", action="store_true", help="build or resume the table (~40 min)")
    mode.add_argument("--live", action="store_true", help="one live kdtune search vs the table")
    p.add_argument("--table", type=Path, default=grid.TABLE)
    p.add_argument("--seeds", type=int, default=None, help=f"replays per strategy (default {MAIN_SEEDS})")
    p.add_argument("--sweep-seeds", type=int, default=100)
    p.add_argument("--workers", type=int, default=2, help="--build: parallel runs")
    p.add_argument("--out", type=Path, default=None, help="folder for bench_search.md/.json")
    p.add_argument("--reuse-live", action="store_true",
                   help="--live: compare the saved live search instead of running a new one")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.seeds is not None and a.seeds < 1:
        p.error("--seeds must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build:
        from benchmarks.search.build import build

        print(json.dumps(build(args.table, args.workers), indent=1))
        return 0
    if args.live:
        from benchmarks.search.live import live

        return live(args.table, RESULTS, reuse=args.reuse_live)
    return run(args)
