"""The Ray Tune adapter: one trial = build the student, run the trainer, report every rung.

Everything heavy (a :class:`~kdtune.recipe.TrialData`: tokenised splits, cached teacher
logits and hidden states, the student's initial weights, an online teacher) arrives through
``tune.with_parameters``, i.e. Ray's object store, where numpy arrays are shared zero-copy by
every trial on a node and shipped once to other nodes; no trial reads a path on the driver.
A trial runs on exactly what Ray assigned it: the CPU unless it was given a GPU. The trainer
knows nothing of Ray: this module only adds a reporting callback.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from safetensors.torch import load_file, save_file

from kdtune import faults
from kdtune.devices import hide_unassigned_gpus, precision, trial_device
from kdtune.recipe import TrialData, build_trainer, size_metrics
from kdtune.record import schema as S
from kdtune.trainer import CHECKPOINT_STATE as STATE
from kdtune.trainer import CHECKPOINT_WEIGHTS as WEIGHTS
from kdtune.trainer import DivergedError, RungMetrics, Trainer


def rung_report(m: RungMetrics, label_names: list[str], mode: str, metric: str) -> dict[str, Any]:
    """Flat metrics dict for Ray (per-class F1 as one column per class)."""
    d = m.as_dict()
    per_class = d.pop("val_f1_per_class")
    d.update({S.per_class(name): f for name, f in zip(label_names, per_class, strict=True)})
    # Checkpoints are ranked (higher is better) on full-validation rungs only.
    d[S.CKPT_SCORE] = (d[metric] if mode == "max" else -d[metric]) if m.full_val else S.WORST_SCORE
    d["diverged"] = False
    d["peak_rss_mb"] = peak_rss_mb()
    return d


def peak_rss_mb() -> float:
    """Peak resident memory of this trial's process so far, in MB (the teacher is never loaded).

    With ``reuse_actors`` it is the peak over every trial this actor has run.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def save_checkpoint(trainer: Trainer, folder: Path, score: float | None = None) -> None:
    """The trainer's weights and step; ``score`` (its :data:`~kdtune.record.schema.CKPT_SCORE`)
    goes with them, so the best checkpoint is found from the checkpoints themselves even
    where Ray's saved state missed the last one (a kill just after a trial's end)."""
    # contiguous + clone: tied or sliced tensors must be stored as independent buffers.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in trainer.checkpoint_state().items()}
    save_file(state, str(folder / WEIGHTS))
    (folder / STATE).write_text(json.dumps({"step": trainer.step, S.CKPT_SCORE: score,
                                            "history": [h.as_dict() for h in trainer.history]}))


def restore_checkpoint(trainer: Trainer, folder: Path) -> None:
    """Continue a resumed trial after its last reported rung (projections included)."""
    trainer.load_checkpoint_state(load_file(str(folder / WEIGHTS)))
    state = json.loads((folder / STATE).read_text())
    trainer.restore(state["history"], int(state["step"]))


def kd_trial(config: dict[str, Any], *, data: TrialData, threads: int, metric: str,
             mode: str, replay: dict[str, dict[str, Any]] | None = None,
             kind: str = "search") -> None:
    """Ray Tune function trainable. ``config`` holds the trial's hparams; ``data`` the rest;
    ``kind`` says whether it is a search trial or a confirm run.

    ``replay`` (a resume) maps trials that had already ended, by the record, to their last
    result: Ray's saved state can lag a trial's end by a snapshot period, and such a trial is
    reported again as it ended instead of being trained again from its last checkpoint.
    """
    ended = (replay or {}).get(tune.get_context().get_trial_id())
    if ended is not None:
        tune.report(ended)
        return
    gpu_ids = ray.get_gpu_ids()
    hide_unassigned_gpus(gpu_ids)  # a CPU trial on a GPU node never opens a CUDA context
    device = trial_device(gpu_ids)
    torch.set_num_threads(max(1, threads))
    hparams = {k: v for k, v in config.items() if k != S.ARM}
    trainer = build_trainer(hparams, data, device=device)
    sizes = size_metrics(trainer.model, data.val) if data.measure_size else {}
    extra = {S.ARM: config.get(S.ARM, "kd"), "device": str(device),
             "precision": precision(device, trainer.params.precision), "resumed_from_step": 0,
             "node_id": ray.get_runtime_context().get_node_id(), **sizes}

    def report(m: RungMetrics, trainer: Trainer) -> None:
        metrics = {**rung_report(m, data.label_names, mode, metric), **extra}
        if not m.full_val:  # rungs inside an epoch only report: a checkpoint per epoch end
            tune.report(metrics)  # keeps checkpoint I/O (and uploads to s3://) per epoch
            return
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(trainer, Path(tmp), metrics[S.CKPT_SCORE])
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        if m.progress < trainer.params.epochs:  # tests only: a window to kill a trial mid-way
            faults.hold_after_checkpoint(kind, tune.get_context())

    trainer.callbacks.append(report)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a resumed search: continue after the last checkpointed epoch
        with checkpoint.as_directory() as folder:
            restore_checkpoint(trainer, Path(folder))
        extra["resumed_from_step"] = trainer.step
    try:
        trainer.fit()
    except DivergedError as exc:
        # A diverged trial ends normally with the worst score so ASHA and TPE learn from it,
        # and the results keep the reason; the search goes on.
        worst = {q: 0.0 for q in S.QUALITY}
        tune.report({**worst, **extra, S.PROGRESS: trainer.step / trainer.steps_per_epoch,
                     S.STEP: trainer.step, S.FULL_VAL: True, S.CKPT_SCORE: S.WORST_SCORE, "loss": math.nan,
                     "diverged": True, "error": str(exc)})
    finally:
        del trainer  # free the student's memory before the actor is reused (ray#23971)
        if device.type == "cuda":
            torch.cuda.empty_cache()
