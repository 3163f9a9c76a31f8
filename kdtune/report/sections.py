"""The report's sections, each written into a :class:`~kdtune.report.document.Doc`.

Every function here writes one section (its heading, tables, images and notes) and the CSV /
PNG files it shows into ``report/``.
"""

from __future__ import annotations

from pathlib import Path

from kdtune.files import atomic_write_csv
from kdtune.report.document import Doc
from kdtune.report.efficiency import efficiency_display, efficiency_table
from kdtune.report.experiment import STATE_FINISHED, STATE_INTERRUPTED, STATE_RUNNING, Experiment
from kdtune.report.formatting import num
from kdtune.report.optuna_plots import plot_optuna
from kdtune.report.pareto_front import cost_column, front_note, front_table, plot_pareto
from kdtune.report.plots import (
    has_feature_loss,
    plot_alpha_temperature,
    plot_confusion,
    plot_epochs_granted,
    plot_learning_curves,
    plot_losses,
)
from kdtune.report.tables import (
    MODEL_ORDER,
    confusion_table,
    f1_all_models_table,
    leaderboard,
    models,
    per_class_test_table,
)


def facts(exp: Experiment) -> list[str]:
    """The bullet list under the title: state, data, teachers, student, trials, wall time."""
    cfg, info, t = exp.cfg, exp.info, exp.trials
    state = {STATE_FINISHED: "finished",
             STATE_RUNNING: "running (tune/ changed in the last minute); this is a snapshot",
             STATE_INTERRUPTED: "interrupted (partial): no summary.md / evaluation.json yet; resume "
                                f"with `python -m kdtune.search --resume {exp.dir}`"}[exp.state]
    out = [f"state: **{state}**"]
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
    if info.get("feature_cache_mb"):
        out.append(f"feature KD: the teacher's hidden states for the training split are cached, "
                   f"{num(float(info['feature_cache_mb']), 1)} MB in memory")
    if len(t):
        counts = ", ".join(f"{n} {s}" for s, n in t["status"].value_counts().items())
        out.append(f"trials: {len(t)} of {cfg.search.num_samples} ({counts}); metric "
                   f"`{cfg.search.metric}` ({cfg.search.mode}), up to {cfg.train.epochs} epochs "
                   f"each, ASHA grace {cfg.search.grace_period}, reduction "
                   f"{cfg.search.reduction_factor}")
    if cfg.search.objectives:
        out.append("objectives: " + ", ".join(f"`{o}` ({m})" for o, m in zip(
            cfg.search.objectives, cfg.search.modes, strict=False))
                   + f"; f1_tolerance {num(cfg.search.f1_tolerance)}")
    if info.get("search_seconds") is not None:
        out.append(f"search wall time {info['search_seconds']:.0f} s, total "
                   f"{info.get('total_seconds', 0):.0f} s")
    return out


def leaderboard_section(doc: Doc, exp: Experiment, out: Path, top: int) -> None:
    doc.heading(f"Leaderboard (top {top}, ranked by each trial's best epoch)")
    board = leaderboard(exp, top)
    if len(board):
        atomic_write_csv(out / "leaderboard.csv", board)
        doc.table(board)
    else:
        doc.para("No trial has reported yet.")


def pareto_section(doc: Doc, exp: Experiment, out: Path) -> None:
    """Only for a multi-objective search that wrote ``pareto.csv``."""
    if exp.pareto is None:
        return
    metric = exp.cfg.search.metric.removeprefix("val_").replace("macro_f1", "macro-F1")
    doc.heading(f"Pareto front: val {metric} vs {cost_column(exp)}")
    front = front_table(exp)
    if not len(front):
        doc.para("pareto.csv holds no trial: no trial finished with both objectives measured.")
        return
    img = plot_pareto(exp, out / "pareto_front.png")
    if img:
        doc.image(img, "Every usable trial's best val score over its cost; the line is the Pareto "
                       "front, the star the chosen point")
    atomic_write_csv(out / "pareto_front.csv", front)
    doc.table(front)
    doc.para(front_note(exp))


def model_sections(doc: Doc, exp: Experiment, out: Path) -> None:
    """Per-class, F1-across-models and confusion tables of the held-out test split."""
    ev = exp.evaluation or {}
    evaluated = models(ev)
    if not evaluated:
        doc.heading("Held-out test results")
        doc.para("Test-split results are written when the search finishes (evaluation.json is "
                 "missing).")
        return
    doc.heading("Per-class precision / recall / F1, held-out test split")
    pc = per_class_test_table(ev)
    atomic_write_csv(out / "per_class_test.csv", pc)
    doc.table(pc, signed=tuple(c for c in pc.columns if c.startswith("ΔF1")))
    missing = [m for m in MODEL_ORDER if m not in evaluated]
    note = ("Columns: P precision, R recall. ΔF1 = distilled student's F1 minus the reference's. "
            "'macro avg' is the unweighted mean over classes.")
    if missing:
        note += f" Not evaluated (no such trial finished): {', '.join(missing)}."
    doc.para(note)

    doc.heading("F1 across all models, held-out test split")
    f1 = f1_all_models_table(ev)
    atomic_write_csv(out / "f1_all_models.csv", f1)
    doc.table(f1)

    model = "distilled" if "distilled" in evaluated else ("baseline" if "baseline" in evaluated else None)
    cm = confusion_table(ev, model) if model else None
    if cm is not None:
        trial = (ev.get("picks") or {}).get(model)
        doc.heading(f"Confusion matrix of the best {'distilled student' if model == 'distilled' else model}"
                    f" (trial `{trial}`), held-out test split")
        atomic_write_csv(out / "confusion_matrix.csv", cm)
        doc.table(cm)
        img = plot_confusion(cm, out / "confusion_matrix.png", f"{model} ({trial}) on test")
        doc.image(img, f"Confusion matrix of the {model} student on the test split")


def efficiency_section(doc: Doc, exp: Experiment, out: Path, efficiency: bool, remeasure: bool) -> None:
    doc.heading("Efficiency (measured on this machine's CPU)")
    if not efficiency:
        doc.para("Skipped (--no-efficiency).")
        return
    frame, note = efficiency_table(exp, out, remeasure)
    if frame is None:
        doc.para(note)
        return
    threads = int(frame["threads"].iloc[0]) if "threads" in frame else 1
    doc.table(efficiency_display(frame))
    doc.para(f"{note} Model forward pass only (texts tokenised beforehand) with "
             f"`torch.inference_mode()` on {threads} CPU thread(s): latency is the median "
             "over 30 test examples at batch 1 after warm-up; throughput is over 2 "
             "batches of 32 after one warm-up batch. Size is the weight files on disk. On "
             "a shared machine these numbers are noisy; compare ratios, not absolutes.")


def plot_sections(doc: Doc, exp: Experiment, out: Path, top: int) -> None:
    doc.heading("Plots")
    if not len(exp.trials):
        doc.para("No trial has reported yet: nothing to plot.")
        return
    img = plot_alpha_temperature(exp, out / "alpha_temperature.png")
    if img:
        doc.heading("Val macro-F1 over alpha x temperature", 3)
        doc.image(img, "Best val macro-F1 per trial over alpha and temperature; marker = status")
    img = plot_learning_curves(exp, out / "learning_curves.png", min(top, 8))
    if img:
        doc.heading("Learning curves", 3)
        doc.image(img, "Val macro-F1 per epoch of the top trials (dashed: anchors)")
    best_id = ((exp.evaluation or {}).get("picks") or {}).get("best") or (
        exp.trials["trial_id"].iloc[0] if exp.score in exp.trials else None)
    img = plot_losses(exp, out / "losses_best_trial.png", best_id) if best_id else None
    if img:
        feature = has_feature_loss(exp.history)
        doc.heading(f"KD loss, CE loss{', feature loss' if feature else ''} and KD/CE ratio of the "
                    "best trial", 3)
        doc.image(img, f"Training losses per epoch of trial {best_id}"
                       + (" (feature loss on the right axis, before its weight beta)" if feature else ""))
    doc.heading("Optuna: optimisation history and parameter importances", 3)
    optuna_plots = plot_optuna(exp, out)
    for key, alt in (("history", "Optuna optimisation history"),
                     ("importances", "Optuna parameter importances")):
        img, note = optuna_plots[key]
        if img:
            doc.image(img, alt)
        if note:
            doc.para(note)
    img, note = plot_epochs_granted(exp, out / "epochs_granted.png")
    if img:
        doc.heading("Epochs granted per trial (ASHA)", 3)
        doc.image(img, "Epochs each trial ran; the dashed line is the maximum")
        doc.para(note)


def retrain_section(doc: Doc, exp: Experiment) -> None:
    if not exp.retrain:
        return
    doc.heading("Re-training")
    for name, text in exp.retrain:
        doc.para(f"From `retrain/{name}`:")
        doc.markdown(text)
