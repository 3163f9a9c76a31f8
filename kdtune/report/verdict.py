"""The verdict: paragraphs in plain language, written from the numbers.

Did distillation beat the CE-only baseline on held-out test, is the gap larger than the noise of
one search, and which config to use; for a partial search, the best so far.
"""

from __future__ import annotations

import pandas as pd

from kdtune.report.experiment import STATE_RUNNING, Experiment, param_value
from kdtune.report.formatting import num, signed
from kdtune.report.tables import models, shown_params
from kdtune.status import OK_STATUSES

METRIC_NAMES = {"val_macro_f1": "macro-F1", "val_accuracy": "accuracy"}


def _spread(exp: Experiment, top: int) -> float | None:
    if exp.score not in exp.trials:
        return None
    ok = exp.trials[exp.trials["status"].isin(OK_STATUSES)]
    values = ok[exp.score].dropna().head(top)
    return float(values.std(ddof=1)) if len(values) >= 2 else None


def _recommended(exp: Experiment) -> str:
    if not exp.best:
        return ""
    config = exp.best.get("config") or {}
    parts = [f"{n} = {num(config[n])}" for n in shown_params(exp) if n in config]
    anchor = f", the {exp.best['anchor']} anchor" if exp.best.get("anchor") else ""
    text = (f"**Recommended config** (trial `{exp.best['trial_id']}`{anchor}, best val "
            f"{METRIC_NAMES.get(exp.cfg.search.metric, exp.cfg.search.metric)} "
            f"{num(exp.best.get('score'))} at epoch "
            f"{exp.best.get('best_epoch')}): " + ", ".join(parts) + ".")
    if float(config.get("alpha", 0.0)) >= 1.0:
        text += (" That is the CE-only baseline: no distillation setting beat plain fine-tuning "
                 "on validation in this search.")
    if exp.pareto is not None and exp.cfg.search.objectives:
        text += (f" It is the chosen point of the Pareto front ({' vs '.join(exp.cfg.search.objectives)}"
                 f"): the cheapest front point within {num(exp.cfg.search.f1_tolerance)} of the "
                 "best validation score (see **Pareto front** below).")
    return text


def verdict(exp: Experiment, top: int) -> list[str]:
    """Paragraphs in plain language, written from the numbers."""
    retrain_cmd = f"`python -m kdtune.retrain {exp.dir}`"
    paras: list[str] = []
    spread = _spread(exp, top)
    evaluated = models(exp.evaluation) if exp.evaluation else {}
    if exp.evaluation and "distilled" in evaluated and "baseline" in evaluated:
        s, b = evaluated["distilled"], evaluated["baseline"]
        gain = s["test"]["macro_f1"] - b["test"]["macro_f1"]
        val_test = abs(s["val"]["macro_f1"] - s["test"]["macro_f1"])
        n_test = len((exp.evaluation.get("labels") or {}).get("test") or [])
        picks = exp.evaluation.get("picks") or {}
        verb = "beats" if gain > 0 else ("ties with" if gain == 0 else "does not beat")
        text = (f"The best distilled student (trial `{picks.get('distilled')}`) **{verb}** the "
                f"CE-only baseline (trial `{picks.get('baseline')}`) on held-out test macro-F1: "
                f"{s['test']['macro_f1']:.4f} vs {b['test']['macro_f1']:.4f}, a difference of "
                f"{signed(gain)} ({100 * gain:+.1f} points) on {n_test} test examples.")
        noise = [("the spread between the top trials' best val macro-F1 (std "
                  f"{spread:.4f})", spread)] if spread is not None else []
        noise.append((f"the student's validation/test difference ({val_test:.4f})", val_test))
        larger = [d for d, v in noise if abs(gain) > v]
        smaller = [d for d, v in noise if abs(gain) <= v]
        if not smaller:
            text += (" The gap is larger than " + " and than ".join(larger) + ", so it stands out "
                     "from the noise of this one search.")
        elif not larger:
            text += (" The gap is not larger than " + " nor than ".join(smaller) + ", so it is "
                     "within the noise of this search and should not be read as a real difference.")
        else:
            text += (" The gap is larger than " + " and ".join(larger) + " but not than "
                     + " and ".join(smaller) + ", so the evidence is weak.")
        if "teacher" in evaluated:
            t_gap = s["test"]["macro_f1"] - evaluated["teacher"]["test"]["macro_f1"]
            text += (f" Against the teacher the student is {signed(t_gap)} test macro-F1 "
                     f"({'above' if t_gap > 0 else 'below' if t_gap < 0 else 'level with'} it).")
        paras.append(text)
    elif exp.evaluation:
        missing = [m for m in ("baseline", "distilled") if m not in evaluated]
        paras.append(f"No {' and no '.join(missing)} model was evaluated (no such trial finished), "
                     "so the distillation-vs-baseline comparison cannot be made from this search.")
    else:
        paras.append(_partial_verdict(exp))
    if exp.retrain:
        paras.append("Multi-seed re-training results are present (see **Re-training** below): "
                     "trust them over the single-seed comparison above.")
    else:
        paras.append("Caveat: one search run is one seed per configuration, and the best trial was "
                     "chosen on the same validation split it is scored on, so small gaps can be "
                     f"luck. Re-train the baseline and the recommended config over several seeds "
                     f"with {retrain_cmd} before trusting a difference of a few points.")
    rec = _recommended(exp)
    if rec:
        paras.append(rec)
    return paras


def _partial_verdict(exp: Experiment) -> str:
    where = ("still running" if exp.state == STATE_RUNNING else
             f"interrupted; continue it with `python -m kdtune.search --resume {exp.dir}`")
    t = exp.trials
    if exp.score not in t or not t[exp.score].notna().any():
        return f"The search is {where}. No trial has reported a validation score yet."
    best = t.iloc[0]
    text = (f"The search is {where}: {len(t)} trials so far. The best val macro-F1 so far is "
            f"{best['best_val_macro_f1']:.4f} (trial `{best['trial_id']}`, alpha "
            f"{param_value(exp, best, 'alpha'):.3f}, T {param_value(exp, best, 'temperature'):.2f}).")
    scored = t[t[exp.score].notna()]
    base = scored[scored["anchor"] == "baseline"] if "anchor" in scored else scored.iloc[0:0]
    alphas = pd.Series([float(param_value(exp, r, "alpha")) for _, r in scored.iterrows()],
                       index=scored.index, dtype=float)
    distilled = scored[alphas < 1.0]
    if len(base) and len(distilled):
        b, d = base.iloc[0], distilled.iloc[0]
        gain = d["best_val_macro_f1"] - b["best_val_macro_f1"]
        text += (f" The best distilled trial so far (`{d['trial_id']}`) has "
                 f"{d['best_val_macro_f1']:.4f} against {b['best_val_macro_f1']:.4f} for the CE-only "
                 f"baseline, a validation difference of {signed(gain)}.")
    return text + " Test-split numbers come when the search finishes."
