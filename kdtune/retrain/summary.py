"""``summary.md``: what was re-trained, mean ± std, per-seed values, paired tests, verdict."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kdtune.files import atomic_write_text
from kdtune.retrain.formatting import fmt, fmt_p, md_table, metric_title, pm
from kdtune.retrain.runs import metric_columns


def write_summary(path: Path, report: dict[str, Any], label_names: list[str]) -> None:
    """``summary.md``: what was re-trained, mean ± std, per-seed values, paired tests, verdict."""
    cmp_ = report["comparison"]
    seeds = cmp_["seed_level"]
    trial = report["trial"]
    anchor = f", anchor {trial['anchor']}" if trial["anchor"] else ""
    hp = ", ".join(f"{k} = {fmt(report['config'][k])}" for k in
                   ("alpha", "temperature", "learning_rate", "epochs", "batch_size"))
    lines = [f"# kdtune retrain of `{report['experiment_name']}`", "",
             f"- configuration: trial `{trial['trial_id']}` (from {trial['source']}{anchor}): {hp}",
             f"- CE-only baseline: alpha = 1, learning_rate = "
             f"{fmt(report['baseline_config']['learning_rate'])} ({report['baseline_lr_source']} "
             "learning rate), same seeds, data, epochs and batch size",
             f"- seeds: {', '.join(map(str, report['seeds']))}; each run keeps its best "
             f"validation epoch by {report['selection_metric']}; torch threads "
             f"{report['threads']}, device {report['device']}",
             f"- data: `{report['data']['source']}`: {report['data']['rows']['train']} train / "
             f"{report['data']['rows']['val']} validation / {report['data']['rows']['test']} "
             "held-out test rows (the search never saw test)", ""]
    lines += ["## Mean ± std over seeds (sample std, ddof = 1)", ""]
    rows = []
    summary = report["summary"]
    for col in metric_columns(label_names):
        rows.append([metric_title(col), pm(summary["student"][col]),
                     pm(summary["baseline"][col]), pm(summary["difference"][col])])
    lines += [md_table(["metric", "KD student", "CE-only baseline", "difference (paired)"], rows), ""]
    lines += ["## Per seed", ""]
    per_seed = [[r["model"], r["seed"], r["best_epoch"], f"{r['val_macro_f1']:.4f}",
                 f"{r['val_accuracy']:.4f}", f"{r['test_macro_f1']:.4f}",
                 f"{r['test_accuracy']:.4f}"] for r in report["per_seed"]]
    lines += [md_table(["model", "seed", "best epoch", "val macro-F1", "val accuracy",
                      "test macro-F1", "test accuracy"], per_seed), ""]
    lines += ["## Paired comparison on test macro-F1 (KD student - baseline)", ""]
    t, w = seeds["t_test"], seeds["wilcoxon"]
    rows = [["over seeds", "paired t-test", f"{100 * seeds['mean_difference']:+.2f} points",
             (f"[{100 * t['ci_low']:+.2f}, {100 * t['ci_high']:+.2f}]" if t.get("ci_low") is not None
              and math.isfinite(t["ci_low"]) else "-"), fmt_p(t["pvalue"])],
            ["over seeds", "Wilcoxon signed-rank", f"{100 * seeds['mean_difference']:+.2f} points",
             "-", fmt_p(w["pvalue"])]]
    for key, label in (("majority_vote", "majority vote of the seeds"),
                       ("best_seed", "best seed of each (by validation)")):
        ex = cmp_["example_level"][key]
        b, m = ex["bootstrap"], ex["mcnemar"]
        rows.append([f"over test examples, {label}", f"paired bootstrap ({b['n_resamples']})",
                     f"{100 * ex['difference']:+.2f} points",
                     f"[{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}]", "-"])
        rows.append([f"over test examples, {label}",
                     f"exact McNemar ({m['student_only_correct']} vs "
                     f"{m['baseline_only_correct']} discordant)", "(accuracy)", "-",
                     fmt_p(m["pvalue"])])
    lines += [md_table(["unit", "test", "estimate", "95% CI (points)", "p-value"], rows), ""]
    notes = list(dict.fromkeys(n for n in (t.get("note"), w.get("note")) if n))
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    rep = report["reproduction"]
    lines += ["## Reproduction of the trial", ""]
    if rep["checked"]:
        lines += [f"Seed {rep['seed']} with the trial's {rep['epochs']} epochs reaches validation "
                  f"macro-F1 {rep['retrained_val_macro_f1']:.4f} at the trial's best epoch "
                  f"{rep['best_epoch']}; the search recorded {rep['trial_val_macro_f1']:.4f} "
                  f"(difference {100 * rep['difference']:+.2f} points, tolerance "
                  f"{100 * rep['tolerance']:.1f}): "
                  f"{'reproduced' if rep['within_tolerance'] else 'NOT reproduced'}.", ""]
    else:
        lines += [f"Not checked: {rep['note']}", ""]
    mdl = report["model"]
    lines += ["## Exported model", "",
              f"Seed {mdl['seed']} (best validation macro-F1 of the KD student seeds) in "
              f"`{mdl['dir']}`: {mdl['params']:,} parameters, {mdl['weights_mb']:.1f} MB, "
              f"{mdl['latency']['ms_per_example_mean']:.1f} ms/example on CPU at batch size 1; "
              "see its README.md.", ""]
    lines += ["## Verdict", "", report["verdict"]["text"], ""]
    atomic_write_text(path, "\n".join(lines))
