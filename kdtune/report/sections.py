"""The report's result sections: leaderboard, Pareto front, held-out test tables, efficiency.

Every function writes one section (heading, tables, images, notes) into a
:class:`~kdtune.report.document.Doc` and the CSV / PNG files it shows into ``report/``.
"""

from __future__ import annotations

from kdtune.record import Experiment
from kdtune.report.document import Doc
from kdtune.report.efficiency import efficiency_display, efficiency_table, protocol_note
from kdtune.report.outputs import Outputs
from kdtune.report.pareto_front import cost_column, front_note, front_table, plot_pareto
from kdtune.report.plots import plot_confusion
from kdtune.report.tables import (
    MODEL_ORDER,
    PROGRESS_COLUMNS,
    confusion_table,
    f1_all_models_table,
    leaderboard,
    models,
    per_class_test_table,
)


def leaderboard_section(doc: Doc, exp: Experiment, out: Outputs, top: int) -> None:
    doc.heading(f"Leaderboard (top {top}, ranked by each trial's best full-validation score)")
    board = leaderboard(exp, top)
    if not len(board):
        doc.para("No trial has reported yet.")
        return
    out.csv("leaderboard.csv", board)
    doc.table(board, digits=PROGRESS_COLUMNS)
    doc.para("arm: `kd` distils, `ce` is the CE-only baseline's arm (alpha = 1). progress: epochs "
             "of training the trial ran (fractions: ASHA's rungs fall inside epochs); best "
             "progress: where its best whole-validation score was reached. A duplicate was not "
             "trained: it shows the result of the trial it repeats.")


def pareto_section(doc: Doc, exp: Experiment, out: Outputs) -> None:
    """Only for a multi-objective search that wrote ``pareto.csv``."""
    if exp.pareto is None:
        return
    metric = exp.cfg.search.metric.removeprefix("val_").replace("macro_f1", "macro-F1")
    doc.heading(f"Pareto front: val {metric} vs {cost_column(exp)}")
    front = front_table(exp)
    if not len(front):
        doc.para("pareto.csv holds no trial: no trial finished with both objectives measured.")
        return
    img = plot_pareto(exp, out.path("pareto_front.png"))
    if img:
        doc.image(img, "Every usable trial's best val score over its cost; the line is the Pareto "
                       "front, the star the chosen point")
    out.csv("pareto_front.csv", front)
    doc.table(front)
    doc.para(front_note(exp))


def model_sections(doc: Doc, exp: Experiment, out: Outputs) -> None:
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
    out.csv("per_class_test.csv", pc)
    doc.table(pc, signed_cols=tuple(c for c in pc.columns if c.startswith("ΔF1")))
    missing = [m for m in MODEL_ORDER if m not in evaluated]
    note = ("Columns: P precision, R recall. ΔF1 = distilled student's F1 minus the reference's. "
            "'macro avg' is the unweighted mean over classes.")
    if missing:
        note += f" Not evaluated (no such trial finished, or search.baseline: none): {', '.join(missing)}."
    doc.para(note)
    doc.heading("F1 across all models, held-out test split")
    f1 = f1_all_models_table(ev)
    out.csv("f1_all_models.csv", f1)
    doc.table(f1)
    _confusion(doc, ev, evaluated, out)


def _confusion(doc: Doc, ev: dict, evaluated: dict, out: Outputs) -> None:
    model = next((m for m in ("distilled", "baseline") if m in evaluated), None)
    cm = confusion_table(ev, model) if model else None
    if cm is None:
        return
    trial = (ev.get("picks") or {}).get(model)
    who = "distilled student" if model == "distilled" else model
    doc.heading(f"Confusion matrix of the best {who} (trial `{trial}`), held-out test split")
    out.csv("confusion_matrix.csv", cm)
    doc.table(cm)
    img = plot_confusion(cm, out.path("confusion_matrix.png"), f"{model} ({trial}) on test")
    doc.image(img, f"Confusion matrix of the {model} student on the test split")


def efficiency_section(doc: Doc, exp: Experiment, out: Outputs, efficiency: bool,
                       remeasure: bool) -> None:
    doc.heading("Efficiency (measured on this machine's CPU)")
    if not efficiency:
        doc.para("Skipped (--no-efficiency).")
        return
    frame, note = efficiency_table(exp, out, remeasure)
    if frame is None:
        doc.para(note)
        return
    doc.table(efficiency_display(frame))
    doc.para(f"{note} {protocol_note(frame)}")
