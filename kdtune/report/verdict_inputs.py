"""The verdict section of an experiment: its numbers read from the record, then written out.

The writing itself is pure (:mod:`~kdtune.report.verdict`, :mod:`~kdtune.report.teacher_check`);
this module picks the numbers: the picks (``picks.json`` / ``evaluation.json``, or the best
trials so far of a partial search), the noise, the untuned CE anchor and the teacher's signs.
"""

from __future__ import annotations

import math

import pandas as pd

from kdtune.config import ANCHOR_CE, ARM_CE
from kdtune.formatting import float_or_none, int_or_none, num
from kdtune.record import STATE_FINISHED, STATE_RUNNING, Experiment
from kdtune.record import schema as S
from kdtune.record.picks import BASELINE, DISTILLED, SELF_TRAINING, pick_arms, single_seed, usable
from kdtune.record.trials import row_trial
from kdtune.report.tables import metric_words, models, shown_params
from kdtune.report.teacher_check import TeacherNumbers, teacher_warning
from kdtune.report.verdict import Anchor, Noise, Pick, VerdictInput, provisional_verdict

PARAM_WORDS = {"learning_rate": "learning rate", "weight_decay": "weight decay",
               "warmup_fraction": "warm-up fraction", "clip_norm": "gradient clipping",
               "batch_size": "batch size"}
SCORED = (*S.OK_STATUSES, S.RUNNING, S.INTERRUPTED)  # a partial search counts its best so far


def noise(exp: Experiment, top: int) -> Noise | None:
    """The confirm runs' seed std (pooled), else the std of the top trials' best scores."""
    ranking = (exp.picks or {}).get("ranking") or []
    stds = [float(r["std"]) for r in ranking if float_or_none(r.get("std")) is not None]
    if stds:
        return Noise(math.sqrt(sum(s * s for s in stds) / len(stds)),
                     f"the seed spread of the confirm stage (std over seeds, pooled over "
                     f"{len(stds)} confirmed trial(s))")
    values = usable(exp.trials, exp.cfg)[exp.score].head(top) if len(exp.trials) else []
    if len(values) >= 2:
        return Noise(float(pd.Series(values).std(ddof=1)),
                     f"the spread of the top {len(values)} trials' best val {metric_words(exp)} (std)")
    return None


def row_of(exp: Experiment, trial_id: str | None) -> pd.Series | None:
    if not trial_id or not len(exp.trials):
        return None
    match = exp.trials[exp.trials[S.TRIAL_ID].astype(str) == str(trial_id)]
    return match.iloc[0] if len(match) else None


def pick_ids(exp: Experiment) -> dict[str, str | None]:
    """Trial ids of the distilled, baseline (and self-training) picks and the recommended
    ``best``."""
    which = [w for w, _ in pick_arms(exp.cfg)]
    if exp.picks is not None or exp.evaluation is not None:
        ev = (exp.evaluation or {}).get("picks") or {}
        out = {w: ((exp.picks or {}).get(w) or {}).get(S.TRIAL_ID) or ev.get(w) for w in which}
        out["best"] = (exp.picks or {}).get("best") or ev.get("best") or out[DISTILLED]
        return out
    if exp.score not in exp.trials:
        return {**dict.fromkeys(which), "best": None}
    so_far = exp.trials[exp.trials[S.STATUS].isin(SCORED)].copy()  # running trials count too
    so_far[S.STATUS] = S.STOPPED
    return single_seed(so_far, exp.cfg)


def make_pick(exp: Experiment, which: str, trial_id: str | None) -> Pick | None:
    row = row_of(exp, trial_id)
    ev = models(exp.evaluation).get(which)
    if trial_id is None or (row is None and ev is None):
        return None
    key = exp.cfg.search.metric.removeprefix("val_")
    val = ev["val"][key] if ev else float_or_none(row.get(exp.score))
    entry = (exp.picks or {}).get(which) or {}
    entry = entry if entry.get(S.TRIAL_ID) == trial_id else {}
    lr = (entry.get("hparams") or {}).get("learning_rate")
    if lr is None and row is not None:
        lr = float_or_none(exp.param_value(row, "learning_rate"))
    return Pick(str(trial_id), val, ev["test"][key] if ev else None,
                int_or_none(entry.get("seeds")) or 1, float_or_none(entry.get("mean")),
                float_or_none(entry.get("std")), lr)


def ce_anchor(exp: Experiment) -> Anchor | None:
    t = exp.trials
    if not len(t) or exp.score not in t or S.ANCHOR not in t:
        return None
    rows = t[(t[S.ANCHOR] == ANCHOR_CE) & t[S.STATUS].isin(SCORED) & t[exp.score].notna()]
    if not len(rows):
        return None
    r = rows.iloc[0]
    return Anchor(str(r[S.TRIAL_ID]), float(r[exp.score]),
                  float_or_none(exp.param_value(r, "learning_rate")),
                  float_or_none(r.get(S.PROGRESS)), exp.cfg.train.epochs)


def verdict_input(exp: Experiment, top: int) -> VerdictInput:
    ids = pick_ids(exp)
    teacher = models(exp.evaluation).get("teacher")
    key = exp.cfg.search.metric.removeprefix("val_")
    tuned = [PARAM_WORDS.get(p.name, p.name.replace("_", " ")) for p in exp.cfg.ce_space]
    n_test = len(((exp.evaluation or {}).get("labels") or {}).get("test") or []) or None
    return VerdictInput(metric_words(exp), exp.cfg.baseline_mode,
                        make_pick(exp, DISTILLED, ids.get(DISTILLED)),
                        make_pick(exp, BASELINE, ids.get(BASELINE)), noise(exp, top),
                        ce_anchor(exp), " and ".join(tuned) or "settings",
                        teacher["test"][key] if teacher else None, n_test,
                        f"python -m kdtune.retrain {exp.root}",
                        make_pick(exp, SELF_TRAINING, ids.get(SELF_TRAINING)),
                        exp.cfg.search.self_training)


def teacher_numbers(exp: Experiment, spread: Noise | None) -> TeacherNumbers:
    scores = [float(e["val_macro_f1"]) for e in exp.info.get("teacher_epochs") or []
              if isinstance(e, dict) and e.get("val_macro_f1") is not None]
    found = models(exp.evaluation)
    teacher, student = found.get("teacher") or {}, found.get("distilled") or {}
    zero = {name: [c for c, pc in ((teacher.get(split) or {}).get("per_class") or {}).items()
                   if float_or_none(pc.get("f1")) == 0.0]
            for split, name in (("val", "validation"), ("test", "test"))}
    return TeacherNumbers(scores, zero, (teacher.get("val") or {}).get("macro_f1"),
                          (student.get("val") or {}).get("macro_f1"), spread,
                          exp.cfg.teacher.epochs, exp.cfg.teacher.learning_rates)


def verdict(exp: Experiment, top: int) -> list[str]:
    """The verdict section's paragraphs."""
    paras = [] if exp.state == STATE_FINISHED else [_partial(exp)]
    v = verdict_input(exp, top)
    paras += provisional_verdict(v)
    warning = teacher_warning(teacher_numbers(exp, v.noise))
    if warning:
        paras.append(warning)
    said = ((exp.retrain or {}).get("verdict") or {}).get("text")
    if said:
        paras.append(f"**Re-training over seeds** (see **Re-training** below) says: {said} It "
                     "supersedes this provisional verdict.")
    elif exp.retrain_summary:
        paras.append("Multi-seed re-training results are present (see **Re-training** below): "
                     "trust them over this provisional verdict.")
    rec = recommended(exp, pick_ids(exp).get("best"))
    return paras + ([rec] if rec else [])


def _partial(exp: Experiment) -> str:
    where = ("still running" if exp.state == STATE_RUNNING else
             f"interrupted (continue it with `python -m kdtune.search --resume {exp.root}`)")
    return (f"The search is {where}; {len(exp.trials)} trial(s) so far, and the picks below are "
            "the best so far.")


def recommended(exp: Experiment, trial_id: str | None) -> str:
    """The config to use: its values, and what it is (CE-only, a Pareto choice)."""
    row = row_of(exp, trial_id)
    if row is None or float_or_none(row.get(exp.score)) is None:
        return ""
    trial = row_trial(row, exp.cfg)
    ce = row.get(S.ARM) == ARM_CE or trial.ce_only
    params = [p for p in shown_params(exp) if p not in trial.no_effect]
    parts = [f"{p} = {num(exp.param_value(row, p))}" for p in params]
    anchor = f", the {row[S.ANCHOR]} anchor" if row.get(S.ANCHOR) else ""
    at = float_or_none(row.get(S.BEST_PROGRESS))
    text = (f"**Recommended config** (trial `{trial_id}`{anchor}, best val {metric_words(exp)} "
            f"{num(row[exp.score])}" + (f" after {at:.2f} epochs" if at is not None else "")
            + "): " + ", ".join(parts) + ".")
    if ce:
        text += (" That is the CE-only baseline: no distillation setting beat plain fine-tuning "
                 "on validation in this search.")
    s = exp.cfg.search
    if exp.pareto is not None and s.objectives:
        text += (f" It is the chosen point of the Pareto front ({' vs '.join(s.objectives)}): the "
                 f"cheapest front point within {num(s.f1_tolerance)} of the best validation "
                 "score (see **Pareto front** below).")
    return text
