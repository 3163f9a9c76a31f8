"""The bullet list under the report's title: state, data, models, trials, arms, cost."""

from __future__ import annotations

from typing import Any

from kdtune.config import ARM_CE, ARM_KD, ARM_SELF, Arm
from kdtune.formatting import num
from kdtune.record import STATE_FINISHED, STATE_RUNNING, Experiment
from kdtune.record import schema as S

BASELINE_MODES = {
    "tuned": "tuned (the best trial of the CE-only arm, which is searched like the student)",
    "fixed": "fixed (the CE-only anchor: alpha = 1 at train.learning_rate, not tuned)",
    "none": "none (no CE-only reference: this search cannot compare distillation with plain "
            "fine-tuning)",
}
ARM_ROLES = {ARM_KD: "distillation", ARM_CE: "the tuned CE-only baseline, alpha = 1",
             ARM_SELF: "self-training, alpha = 1 and CE on the teacher's argmax of the transfer rows"}


def facts(exp: Experiment) -> list[str]:
    """State, data, models, trials, arms, duplicates, objectives and the run's cost."""
    return [_state(exp), *_data(exp), *_trials(exp), *_arms(exp), *_timing(exp)]


def _state(exp: Experiment) -> str:
    if exp.state == STATE_FINISHED:
        return "state: **finished**"
    if exp.state == STATE_RUNNING:
        return "state: **running** (tune/ changed in the last minute); this is a snapshot"
    return ("state: **interrupted** (partial): no summary.md / evaluation.json yet; resume with "
            f"`python -m kdtune.search --resume {exp.root}`")


def _data(exp: Experiment) -> list[str]:
    cfg, info, out = exp.cfg, exp.info, []
    if info:
        rows = info.get("rows") or {}
        out.append(f"data: `{info.get('source')}`: {rows.get('train')} train / {rows.get('val')} "
                   f"validation / {rows.get('test')} held-out test rows")
        out.append(f"teacher: `{cfg.teacher.finetuned or cfg.teacher.model}` (cache "
                   f"`{info.get('teacher_key')}`); student: {info.get('student')}")
    extra = info.get("extra_teachers") or []
    if extra:
        out.append(f"extra teachers ({len(extra)}): " + "; ".join(
            f"`{e.get('key')}` (val accuracy {num(e.get('val_accuracy'))}, test accuracy "
            f"{num(e.get('test_accuracy'))})" for e in extra))
    if info.get("transfer"):
        out.append(_transfer(info["transfer"]))
    if info.get("feature_cache_mb"):
        out.append(f"feature KD: the teacher's hidden states for the training split are cached, "
                   f"{num(float(info['feature_cache_mb']), 1)} MB in memory")
    return out


def _transfer(t: dict[str, Any]) -> str:
    """The transfer set: its source, size and what de-duplication removed."""
    return (f"transfer set: `{t.get('source')}`, {t.get('rows')} unlabelled rows (of "
            f"{t.get('read')} read: {t.get('dropped_equal_to_val_or_test')} equal to a validation "
            f"or test text and {t.get('dropped_repeats')} repeats dropped, {t.get('capped')} over "
            "data.max_unlabeled); KD trials add `unlabeled_ratio` x batch_size of them to each "
            "step with the KD term only (weight `unlabeled_weight`); the CE-only arm never sees "
            "them (it has no labels for them)")


def _trials(exp: Experiment) -> list[str]:
    cfg, t, out = exp.cfg, exp.trials, []
    if len(t) and S.STATUS in t:
        counts = ", ".join(f"{n} {s}" for s, n in t[S.STATUS].value_counts().items())
        out.append(f"trials: {len(t)} of {cfg.search.num_samples} ({counts}); metric "
                   f"`{cfg.search.metric}` ({cfg.search.mode}), up to {cfg.train.epochs} epochs "
                   f"each, ASHA grace {num(cfg.grace_period, 2)} epochs, reduction "
                   f"{cfg.search.reduction_factor}, promotion `{cfg.search.promotion}`")
        dup = int((t[S.STATUS] == S.DUPLICATE).sum())
        if dup:
            out.append(f"duplicates: {dup} trial(s) proposed a config that had already run: "
                       "served from a known result, not trained")
    if cfg.search.objectives:
        out.append("objectives: " + ", ".join(f"`{o}` ({m})" for o, m in zip(
            cfg.search.objectives, cfg.search.modes, strict=False))
                   + f"; f1_tolerance {num(cfg.search.f1_tolerance)}")
    return out


def _arms(exp: Experiment) -> list[str]:
    """Each arm's trial budget, what it searches and its anchors; the baseline mode."""
    budgets: dict[str, Any] = exp.info.get("arms") or {}
    parts = []
    for arm in exp.cfg.arms():
        parts.append(f"{arm.name} {budgets.get(arm.name, arm.num_samples)} trials "
                     f"({ARM_ROLES.get(arm.name, arm.name)}; {_arm_detail(arm)})")
    return [f"arms (trial budgets): {', '.join(parts)}",
            f"baseline: {BASELINE_MODES.get(exp.cfg.baseline_mode, exp.cfg.baseline_mode)}"]


def _arm_detail(arm: Arm) -> str:
    searched = ", ".join(p.name for p in arm.space) or "nothing"
    anchors = len(arm.points)
    return f"searches {searched}" + (f"; {anchors} anchor(s) first" if anchors else "")


def _timing(exp: Experiment) -> list[str]:
    info, confirm = exp.info, exp.cfg.search.confirm
    if info.get("search_seconds") is None:
        return []
    out = [f"search wall time {info['search_seconds']:.0f} s, total "
           f"{info.get('total_seconds') or 0:.0f} s"]
    if info.get("confirm_seconds") is not None:
        ratio = info.get("confirm_ratio")
        share = f", {ratio:.2f}x the search's wall time" if ratio is not None else ""
        out.append(f"confirm stage: {info['confirm_seconds']:.0f} s{share} (the top "
                   f"{confirm.top_k} completed trial(s) of each arm re-run with {confirm.seeds} "
                   "extra seed(s))")
    elif not confirm.enabled:
        out.append("confirm stage: off (search.confirm.top_k or seeds is 0): picks are single-seed")
    return out
