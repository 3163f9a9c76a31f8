"""The report's plots section: alpha x T, learning curves, losses, Optuna, training granted."""

from __future__ import annotations

from kdtune.record import Experiment
from kdtune.record import schema as S
from kdtune.report.curves import has_feature_loss, plot_learning_curves, plot_losses, plot_training_granted
from kdtune.report.document import Doc
from kdtune.report.optuna_plots import plot_optuna
from kdtune.report.outputs import Outputs
from kdtune.report.plots import plot_alpha_temperature, trained
from kdtune.report.verdict_inputs import pick_ids


def plot_sections(doc: Doc, exp: Experiment, out: Outputs, top: int) -> None:
    doc.heading("Plots")
    if not len(exp.trials):
        doc.para("No trial has reported yet: nothing to plot.")
        return
    img = plot_alpha_temperature(exp, out.path("alpha_temperature.png"))
    if img:
        doc.heading("Best val score over alpha x temperature", 3)
        doc.image(img, "Best val score per trial over alpha and temperature; marker = status")
    img = plot_learning_curves(exp, out.path("learning_curves.png"), min(top, 8))
    if img:
        doc.heading("Learning curves", 3)
        doc.image(img, "Val score over training progress (epochs) of the top trials; filled: whole "
                       "validation split at epoch ends, hollow: the validation subset of the rungs "
                       "inside an epoch (dashed: anchors)")
    _losses(doc, exp, out)
    _optuna(doc, exp, out)
    img, note = plot_training_granted(exp, out.path("training_granted.png"))
    if img:
        doc.heading("Training granted per trial (ASHA)", 3)
        doc.image(img, "Epochs of training each trial ran (fractional); the dashed line is the maximum")
        doc.para(note)


def _losses(doc: Doc, exp: Experiment, out: Outputs) -> None:
    ids = pick_ids(exp)
    best_id = ids.get("distilled") or ids.get("best")
    if best_id is None:
        ok = trained(exp.trials)
        best_id = str(ok[S.TRIAL_ID].iloc[0]) if len(ok) and exp.score in ok else None
    img = plot_losses(exp, out.path("losses_best_trial.png"), best_id) if best_id else None
    if not img:
        return
    feature = has_feature_loss(exp.history)
    doc.heading(f"KD loss, CE loss{', feature loss' if feature else ''} and KD/CE ratio of the "
                "distilled pick", 3)
    doc.image(img, f"Training losses over progress of trial {best_id}"
                   + (" (feature loss on the right axis, before its weight beta)" if feature else ""))


def _optuna(doc: Doc, exp: Experiment, out: Outputs) -> None:
    doc.heading("Optuna: optimisation history and parameter importances", 3)
    for study in plot_optuna(exp, out):
        if len(study.plots) > 1:
            doc.para(f"**{study.title}**")
        for key, alt in (("history", "optimisation history"), ("importances", "parameter importances")):
            img, note = study.plots.get(key, (None, ""))
            if img:
                doc.image(img, f"Optuna {alt}, {study.title}")
            if note:
                doc.para(note)
