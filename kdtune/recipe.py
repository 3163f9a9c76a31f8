"""One KD training from a trial's hparams: the shared recipe of trials, confirm runs and retrain.

A Ray trial (``kdtune.trainable``) and ``kdtune.retrain`` both call :func:`build_trainer`, so a
re-trained config is trained exactly as its trial was. Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune.batches import Encoded
from kdtune.feature_kd import FeatureKD, RaggedStates
from kdtune.latency import TRIAL, measure_torch
from kdtune.losses import combine_teacher_logits
from kdtune.models import ModelBlob, count_parameters, slice_layers
from kdtune.params import TrainParams, Trial
from kdtune.trainer import Callback, Trainer, seed_everything

#: Cached hidden states live on a GPU when they take at most this much *per GPU*; trials that
#: share a GPU (fractional gpus_per_trial) share it, each getting its fraction. Beyond it they
#: stay in host memory and each batch's rows are gathered there and copied over.
DEVICE_FEATURE_BUDGET_MB = 4096.0


def feature_budget_mb(gpus_per_trial: float) -> float:
    """One trial's share of the per-GPU budget: 8 trials at 0.125 GPU get 512 MB each (a run
    with no GPU share, e.g. on the driver, has its device to itself)."""
    return DEVICE_FEATURE_BUDGET_MB * (min(1.0, gpus_per_trial) if gpus_per_trial > 0 else 1.0)


@dataclass
class TrialData:
    """Everything a training needs; travels to Ray trials through the object store."""

    train: Encoded
    val: Encoded
    teacher_logits: list[np.ndarray]  # one [n_train, C] array per teacher, main teacher first
    student_init: ModelBlob
    label_names: list[str]
    base: dict[str, Any]  # the fixed hparams every trial starts from
    slice_in_trial: bool = False  # student_init holds every teacher layer; slice per trial
    teacher_layers: int = 0  # the (main) teacher's block count, for feature-pair mapping
    feature_targets: dict[int, np.ndarray] = field(default_factory=dict)  # block -> [tokens, H]
    student_layers: list[int] | None = None  # the fixed slice's teacher layers (None: hub model)
    online_teacher: ModelBlob | None = None  # hidden states too large to cache: this teacher
    measure_size: bool = False  # the search trades quality against latency / size
    feature_budget_mb: float = DEVICE_FEATURE_BUDGET_MB  # this trial's share of a GPU's budget
    transfer: Encoded | None = None  # the transfer set (data.unlabeled) in the student's tokens
    transfer_logits: list[np.ndarray] = field(default_factory=list)  # per teacher, main first


def teacher_weights(hparams: dict[str, Any], n_teachers: int) -> list[float]:
    """Per-teacher weights: searched ``teacher_weight`` (2 teachers), fixed list, or equal."""
    if n_teachers == 2 and hparams.get("teacher_weight") is not None:
        w = float(hparams["teacher_weight"])
        return [w, 1.0 - w]
    if hparams.get("teacher_weights"):
        return [float(x) for x in hparams["teacher_weights"]]
    return [1.0 / n_teachers] * n_teachers


def combined_logits(logits: list[np.ndarray], hparams: dict[str, Any]) -> np.ndarray | None:
    """One target per row from the teachers' logits (the main teacher's alone when single)."""
    if not logits:
        return None
    if len(logits) == 1:
        return logits[0]
    weights = teacher_weights(hparams, len(logits))
    combined = combine_teacher_logits([torch.from_numpy(np.asarray(z)) for z in logits],
                                      weights, hparams.get("teacher_combine", "weighted"))
    return combined.numpy()


def uses_transfer(data: TrialData, params: TrainParams, hparams: dict[str, Any]) -> bool:
    """Transfer rows join a training only when it distils (the CE-only arm has no labels for
    them) and gives them weight."""
    return (data.transfer is not None and not Trial(hparams).ce_only
            and params.unlabeled_weight > 0)


def feature_pairs(student_layers: Sequence[int] | None, n_student: int,
                  n_teacher: int) -> list[tuple[int, int]]:
    """(student block, teacher block) pairs for the hidden-state loss.

    A student sliced from teacher layers ``L`` pairs its block ``i`` with teacher block
    ``L[i]`` (the block it was copied from); another student maps uniformly (block ``i`` of
    ``n_s`` to teacher block ``round((i + 1) * n_t / n_s) - 1``, as TinyBERT's mapping).
    """
    if student_layers is not None:
        return [(i, int(t)) for i, t in enumerate(student_layers)]
    return [(i, max(0, round((i + 1) * n_teacher / n_student) - 1)) for i in range(n_student)]


def build_model(data: TrialData, hparams: dict[str, Any]) -> nn.Module:
    model = data.student_init.build(dropout=hparams.get("dropout"))
    if data.slice_in_trial:
        model = slice_layers(model, list(hparams["layers"]))
    return model


def build_features(data: TrialData, params: TrainParams, hparams: dict[str, Any],
                   model: nn.Module, device: torch.device) -> FeatureKD | None:
    """The hidden-state loss of this trial, or None when it distils logits only."""
    if params.beta <= 0:
        return None
    layers = hparams.get("layers") if data.slice_in_trial else data.student_layers
    pairs = feature_pairs(layers, model.config.num_hidden_layers, data.teacher_layers)
    if data.online_teacher is not None and not data.feature_targets:
        return FeatureKD(pairs, model.config.hidden_size, params.feature_loss,
                         online_teacher=data.online_teacher.build(), precision=params.precision)
    total_mb = sum(a.nbytes for a in data.feature_targets.values()) / 1e6
    where = device if total_mb <= data.feature_budget_mb else torch.device("cpu")
    blocks = {t for _, t in pairs}
    cached = {b: RaggedStates(a, data.train.offsets, where)
              for b, a in data.feature_targets.items() if b in blocks}
    return FeatureKD(pairs, model.config.hidden_size, params.feature_loss, cached=cached)


def build_trainer(hparams: dict[str, Any], data: TrialData, callbacks: Sequence[Callback] = (),
                  device: torch.device | None = None, progress: bool = False) -> Trainer:
    """Seed, build the student and its trainer for one trial's hparams (merged over the base)."""
    trial = Trial.of(data.base, hparams)
    hparams, params = trial.values, trial.train()
    seed_everything(params.seed)
    model = build_model(data, hparams)
    device = device or torch.device("cpu")
    transfer = uses_transfer(data, params, hparams)
    return Trainer(model, data.train, data.val, params, data.label_names,
                   teacher_logits=combined_logits(data.teacher_logits, hparams), device=device,
                   callbacks=callbacks, progress=progress,
                   features=build_features(data, params, hparams, model, device),
                   transfer=data.transfer if transfer else None,
                   transfer_logits=combined_logits(data.transfer_logits, hparams) if transfer
                   else None)


def size_metrics(model: nn.Module, data: Encoded) -> dict[str, float]:
    """What the multi-objective search trades quality against (the one latency protocol)."""
    return {"latency_ms": measure_torch(model, data, TRIAL)["latency_ms"],
            "params": float(count_parameters(model))}
