"""Training and evaluating one seed of one model, and checking that the trial reproduces.

:func:`train_run` trains with :func:`kdtune.recipe.build_trainer`, the recipe of a search trial,
keeps the weights of the best validation epoch and evaluates them on the validation and held-out
test splits; :func:`reproduction` compares the re-run trial with what the search recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kdtune.retrain.choose import Pick

if TYPE_CHECKING:  # heavy imports are deferred so that bad input fails fast
    import torch

    from kdtune.batches import Encoded
    from kdtune.recipe import TrialData

log = logging.getLogger("kdtune.retrain")

REPRODUCTION_TOLERANCE = 0.005  # 0.5 macro-F1 points


@dataclass
class Run:
    """One seed of one model, evaluated at its best full-validation evaluation."""

    model: str  # "student" or "baseline"
    seed: int
    epochs: int
    best_progress: float | None  # epochs trained at its best full-validation evaluation
    diverged: bool
    seconds: float
    history: list[dict[str, Any]]  # one RungMetrics dict per evaluation
    val: dict[str, Any]  # classification_metrics
    test: dict[str, Any]
    test_predictions: np.ndarray = field(repr=False)
    test_probs: np.ndarray = field(repr=False)

    def row(self, label_names: list[str]) -> dict[str, Any]:
        """The run's line of ``per_seed.csv``."""
        out: dict[str, Any] = {"model": self.model, "seed": self.seed, "epochs": self.epochs,
                               "best_progress": self.best_progress, "diverged": self.diverged}
        for split, m in (("val", self.val), ("test", self.test)):
            out[f"{split}_accuracy"] = m["accuracy"]
            out[f"{split}_macro_f1"] = m["macro_f1"]
            out.update({f"{split}_f1_{n}": m["per_class"][n]["f1"] for n in label_names})
        out["train_seconds"] = self.seconds
        return out


def metric_columns(label_names: list[str]) -> list[str]:
    """The metric columns of ``per_seed.csv`` that are summarised, test first."""
    cols = []
    for split in ("test", "val"):
        cols += [f"{split}_macro_f1", f"{split}_accuracy", *(f"{split}_f1_{n}" for n in label_names)]
    return cols


def train_run(data: TrialData, test: Encoded, name: str, values: dict[str, Any],
              device: torch.device, metric: str = "val_macro_f1", mode: str = "max"
              ) -> tuple[Run, dict[str, torch.Tensor]]:
    """Train as ``kdtune.trainable.kd_trial`` does, keep the best whole-validation evaluation,
    evaluate it on validation and test; returns the run and those weights (on the CPU).

    Nothing here knows where it runs: in this process (``--sequential``) or in a Ray task
    (:mod:`kdtune.retrain.pool`), with the same numbers for the same seed and threads.
    """
    from scipy.special import softmax

    from kdtune.metrics import classification_metrics
    from kdtune.recipe import build_trainer
    from kdtune.trainer import DivergedError, KeepBest, predict_logits

    best = KeepBest(metric, mode)  # runs are compared on the whole validation split, as trials are
    # The same recipe as a search trial: seeding, student (slice), teachers, feature targets.
    trainer = build_trainer(values, data, callbacks=[best], device=device)
    model, params = trainer.model, trainer.params
    t0 = time.perf_counter()
    diverged = False
    try:
        trainer.fit()
    except DivergedError as exc:
        diverged = True  # counted as a failure of this model by the decision, never scored silently
        log.warning("%s seed %d diverged (%s)", name, params.seed, exc)
    seconds = time.perf_counter() - t0
    if best.state is not None:
        model.load_state_dict(best.state)
    metrics: dict[str, dict[str, Any]] = {}
    logits = None
    for split, encoded in (("val", data.val), ("test", test)):
        logits = predict_logits(model, encoded, params.eval_batch_size, device,
                                precision=params.precision)
        metrics[split] = classification_metrics(encoded.labels, logits.argmax(-1), data.label_names)
    run = Run(name, params.seed, params.epochs, best.progress, diverged, seconds,
              [h.as_dict() for h in trainer.history], metrics["val"], metrics["test"],
              logits.argmax(-1), softmax(logits.astype(np.float64), axis=-1))
    log.info("%s seed %d: best at epoch %s, val macro-F1 %.4f, test macro-F1 %.4f (%.0f s)", name,
             run.seed, run.best_progress, run.val["macro_f1"], run.test["macro_f1"], seconds)
    state = best.state or {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return run, state


def reproduction(pick: Pick, run: Run | None, threads: int, device: str, note: str = "") -> dict[str, Any]:
    """The re-run trial's validation macro-F1 at the trial's best evaluation vs the record's."""
    out: dict[str, Any] = {
        "trial_id": pick.trial_id, "seed": int(pick.hparams["seed"]),
        "epochs": int(pick.hparams["epochs"]), "best_progress": pick.best_progress,
        "trial_val_macro_f1": pick.val_score, "retrained_val_macro_f1": None,
        "difference": None, "tolerance": REPRODUCTION_TOLERANCE, "within_tolerance": None,
        "checked": False, "threads": threads, "device": device, "note": note}
    if run is None:
        return out
    if pick.best_progress is None or pick.val_score is None:
        out["note"] = "the search recorded no best evaluation / validation macro-F1 for this trial"
        return out
    rows = [h for h in run.history if abs(h["progress"] - pick.best_progress) < 1e-6]
    if not rows:
        out["note"] = (f"the re-run stopped at {run.history[-1]['progress'] if run.history else 0:g} "
                       f"epochs, before the trial's best evaluation at {pick.best_progress:g} (diverged)")
        return out
    value = float(rows[-1]["val_macro_f1"])
    diff = value - pick.val_score
    out.update(retrained_val_macro_f1=value, difference=diff, checked=True,
               within_tolerance=bool(abs(diff) <= REPRODUCTION_TOLERANCE + 1e-12))
    return out
