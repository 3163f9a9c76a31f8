"""The Ray Tune adapter: one trial = build the student, run the trainer, report each epoch.

Everything heavy (a :class:`~kdtune.recipe.TrialData`: tokenised splits, cached teacher
logits and hidden states, the student's initial weights) arrives through
``tune.with_parameters``, i.e. Ray's object store, where numpy arrays are shared zero-copy by
every trial on a node and shipped once to other nodes. Trials never load the teacher. The
trainer knows nothing of Ray: this module only adds a reporting callback.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from kdtune.models import load_weights, save_weights
from kdtune.recipe import TrialData, build_trainer, size_metrics
from kdtune.trainer import DivergedError, EpochMetrics, Trainer

STATE = "history.json"


def epoch_report(m: EpochMetrics, label_names: list[str]) -> dict[str, Any]:
    """Flat metrics dict for Ray (per-class F1 as one column per class)."""
    d = m.as_dict()
    per_class = d.pop("val_f1_per_class")
    d.update({f"val_f1_{name}": f for name, f in zip(label_names, per_class, strict=True)})
    d["diverged"] = False
    d["peak_rss_mb"] = peak_rss_mb()
    return d


def peak_rss_mb() -> float:
    """Peak resident memory of this trial's process so far, in MB (the teacher is never loaded).

    With ``reuse_actors`` it is the peak over every trial this actor has run.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def kd_trial(config: dict[str, Any], *, data: TrialData, threads: int) -> None:
    """Ray Tune function trainable. ``config`` holds the sampled values; ``data`` the rest."""
    torch.set_num_threads(max(1, threads))
    trainer = build_trainer(config, data)
    model = trainer.model
    label_names = data.label_names
    sizes = size_metrics(model, data.val)  # the architecture is fixed: measure once

    def report(m: EpochMetrics, trainer: Trainer) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            save_weights(trainer.model, Path(tmp))
            (Path(tmp) / STATE).write_text(json.dumps([h.as_dict() for h in trainer.history]))
            tune.report({**epoch_report(m, label_names), **sizes},
                        checkpoint=tune.Checkpoint.from_directory(tmp))

    trainer.callbacks.append(report)
    start_epoch = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a resumed search: continue after the last finished epoch
        with checkpoint.as_directory() as folder:
            load_weights(trainer.model, folder)
            start_epoch = trainer.restore(json.loads((Path(folder) / STATE).read_text()))
    try:
        trainer.fit(start_epoch)
    except DivergedError as exc:
        # A diverged trial ends normally with the worst score so ASHA and TPE learn from it,
        # and the results keep the reason; the search goes on.
        worst = {"val_macro_f1": 0.0, "val_accuracy": 0.0}
        tune.report({**worst, **sizes, "epoch": len(trainer.history) + 1, "loss": math.nan,
                     "diverged": True, "error": str(exc)})
    finally:
        del trainer, model  # free the student's memory before the actor is reused (ray#23971)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
