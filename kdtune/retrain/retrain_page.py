"""``retrain/summary.md``: what was re-trained, mean ± std, per-seed values, paired tests, verdict.

Every interval sits beside its own estimate: the t-test CI beside the mean per-seed
difference, each bootstrap CI beside the difference of the predictions it resampled.
"""

from __future__ import annotations

from typing import Any

from kdtune.formatting import fmt_p, interval, md_table, metric_title, num, pm, points
from kdtune.params import Trial
from kdtune.retrain.report import RetrainReport
from kdtune.retrain.runs import metric_columns

HP_KEYS = ("alpha", "temperature", "learning_rate", "weight_decay", "epochs", "batch_size")
#: Shown when set: feature KD, two teachers, a searched slice, dropout.
OPTIONAL_KEYS = ("beta", "teacher_weight", "layers", "dropout")
TRANSFER_KEYS = ("unlabeled_ratio", "unlabeled_weight", "unlabeled_targets")


def _model_line(label: str, pick: dict[str, Any], config: dict[str, Any],
                transfer: bool = False) -> str:
    """The pick and the values it trained with, without those it ignored (``Trial.no_effect``),
    the transfer-set values where there was a transfer set."""
    keys = [*HP_KEYS, *OPTIONAL_KEYS, *(TRANSFER_KEYS if transfer else ())]
    keys = [k for k in keys if k not in Trial(config).no_effect]
    hp = ", ".join(f"{k} = {_value(config[k])}" for k in keys if config.get(k) is not None)
    trial = f"trial `{pick['trial_id']}`" if pick["trial_id"] else "no trial"
    anchor = f", {pick['anchor']}" if pick.get("anchor") else ""
    return f"- {label}: {trial} ({pick['source']}{anchor}): {hp}"


def _value(v: Any) -> str:
    return num(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _header(report: RetrainReport) -> list[str]:
    data = report.data
    transfer = bool(data.get("transfer"))
    third = ([_model_line("Self-training", report.self_training, report.self_training_config,
                          transfer)] if report.self_training else [])
    return [f"# kdtune retrain of `{report.experiment_name}`", "",
            _model_line("KD student", report.student, report.config, transfer),
            _model_line("CE-only baseline", report.baseline, report.baseline_config, transfer),
            *third,
            f"- seeds: {', '.join(map(str, report.seeds))} (the same for every model), all fresh: the "
            f"search and its confirm stage trained with seeds "
            f"{', '.join(map(str, report.search_seeds)) or 'none'}, none of which is re-used; "
            f"each run keeps its best full-validation evaluation by {report.selection_metric}; "
            f"torch threads {report.threads}, device {report.device}, {report.execution}",
            f"- data: `{data['source']}`: {data['rows']['train']} train / {data['rows']['val']} "
            f"validation / {data['rows']['test']} held-out test rows (the search never saw test)", ""]


def _tests_table(cmp_: dict[str, Any]) -> list[str]:
    seeds = cmp_["seed_level"]
    t, w = seeds["t_test"], seeds["wilcoxon"]
    rows = [["over seeds", "paired t-test", "mean per-seed difference",
             points(seeds["mean_difference"]), interval(t.get("ci_low"), t.get("ci_high")),
             fmt_p(t["pvalue"])],
            ["over seeds", "Wilcoxon signed-rank", "mean per-seed difference",
             points(seeds["mean_difference"]), "-", fmt_p(w["pvalue"])]]
    for key, label in (("majority_vote", "the seeds' majority vote"),
                       ("best_seed", "the best seed of each (by validation)")):
        ex = cmp_["example_level"].get(key)
        if ex is None:
            continue
        b, m = ex["bootstrap"], ex["mcnemar"]
        rows.append(["over test examples", f"paired bootstrap ({b['n_resamples']})",
                     f"macro-F1 difference of {label}", points(ex["difference"]),
                     interval(b["ci_low"], b["ci_high"]), "-"])
        rows.append(["over test examples", "exact McNemar", f"accuracy of {label} "
                     f"({m['student_only_correct']} vs {m['baseline_only_correct']} discordant)",
                     "-", "-", fmt_p(m["pvalue"])])
    header = ["unit", "test", "estimate of", "estimate (points)", "95% CI of that estimate", "p"]
    return ["## Paired comparison on test macro-F1 (KD student - CE baseline)", "",
            md_table(header, rows), ""]


def _looks(report: RetrainReport) -> list[str]:
    d = report.design
    rows = [[x["look"], x["seeds_run"], x["n"], x["kind"], points(x["mean_difference"]),
             interval(x["ci_low"], x["ci_high"]),
             interval(x["equivalence_ci_low"], x["equivalence_ci_high"]), fmt_p(x["pvalue"])]
            for x in report.looks]
    levels = ", ".join(f"{lv['seeds']} seeds: |t| >= {lv['superiority_t']:.3f} (nominal p "
                       f"{fmt_p(lv['superiority_p'])}), equivalence t >= {lv['equivalence_t']:.3f}"
                       for lv in d["levels"])
    return ["## Decision", "", f"Equivalence margin ±{100 * d['margin']:.2f} points of test macro-F1; "
            f"superiority two-sided alpha {d['alpha']:g}, equivalence alpha {d['equivalence_alpha']:g} "
            f"per one-sided test; looks after {', '.join(map(str, d['looks']))} seeds, "
            f"{d['spending']}. Corrected levels: {levels}.", "",
            md_table(["look", "seeds", "paired", "decision", "mean difference (points)",
                      "superiority CI", "equivalence CI", "p (nominal)"], rows), ""]


def _ship(report: RetrainReport) -> list[str]:
    rows = [[("**ship**" if report.ship["model"] == m else "alternative"), m, info["seed"],
             f"{info['params']:,}", f"{info['weights_mb']:.1f}",
             f"{info['latency']['latency_ms']:.2f}", f"`{info['dir']}`"]
            for m, info in report.models.items()]
    name = "the KD student" if report.ship["model"] == "student" else "the tuned CE baseline"
    return ["## The model to ship", "", f"Ship **{name}**: {report.ship['reason']}. Both models' "
            "best validation seeds are saved, each with its model card.", "",
            md_table(["", "model", "seed", "parameters", "MB", "ms/example (batch 1)", "folder"], rows), ""]


def _reproduction(rep: dict[str, Any]) -> list[str]:
    if not rep["checked"]:
        return ["## Reproduction of the trial", "", f"Not checked: {rep['note']}", ""]
    verdict = "reproduced" if rep["within_tolerance"] else "NOT reproduced"
    return ["## Reproduction of the trial", "",
            f"Seed {rep['seed']} with the trial's {rep['epochs']} epochs reaches validation macro-F1 "
            f"{rep['retrained_val_macro_f1']:.4f} at the trial's best evaluation "
            f"({rep['best_progress']:g} epochs); the search recorded {rep['trial_val_macro_f1']:.4f} "
            f"(difference {points(rep['difference'])} points, tolerance "
            f"{100 * rep['tolerance']:.1f}): {verdict}.", ""]


def render_summary(report: RetrainReport, label_names: list[str]) -> str:
    s = report.summary
    means = [[metric_title(c), pm(s["student"][c]), pm(s["baseline"][c]), pm(s["difference"][c])]
             for c in metric_columns(label_names) if c in s["student"]]
    per_seed = [[r["model"], r["seed"], r["diverged"], num(r["best_progress"]), r["val_macro_f1"],
                 r["val_accuracy"], r["test_macro_f1"], r["test_accuracy"]]
                for r in report.per_seed]
    lines = [*_header(report), "## Verdict", "", report.verdict["text"], "", *_looks(report),
             "## Mean ± std over seeds (sample std, ddof = 1; seeds where neither diverged)", "",
             md_table(["metric", "KD student", "CE-only baseline", "difference (paired)"], means), "",
             "## Per seed", "",
             md_table(["model", "seed", "diverged", "best at epoch", "val macro-F1", "val accuracy",
                       "test macro-F1", "test accuracy"], per_seed), "",
             *_tests_table(report.comparison), *_versus_self_training(report, label_names),
             *_reproduction(report.reproduction), *_ship(report)]
    return "\n".join(lines)


def _versus_self_training(report: RetrainReport, label_names: list[str]) -> list[str]:
    """The second comparison: KD student vs self-training on the same seeds."""
    v = report.versus_self_training
    if not v:
        return []
    lines = ["## KD vs self-training (the same seeds)", "",
             "Self-training is CE on the labelled rows and on the teacher's argmax of the transfer "
             "rows (no soft targets): this comparison says whether the soft targets matter or only "
             "the extra text. The seeds and the stopping are the KD-vs-CE question's: this "
             "decision is read at the look where that one stopped, with that look's levels, and "
             "never stops or extends the seeds itself.", "", v["text"], ""]
    s = report.summary
    if "difference_self_training" in s:
        rows = [[metric_title(c), pm(s["student"][c]), pm(s["self_training"][c]),
                 pm(s["difference_self_training"][c])]
                for c in metric_columns(label_names)[:2] if c in s["self_training"]]
        lines += [md_table(["metric", "KD student", "self-training", "difference (paired)"], rows), ""]
    return lines
