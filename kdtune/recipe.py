"""One KD training from a flat dict of values: the shared recipe of trials and re-training.

A Ray trial (``kdtune.trainable``) and ``kdtune.retrain`` both call :func:`build_trainer`, so a
re-trained config is trained exactly as its trial was. Nothing here imports Ray.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune.data import Encoded, batch_indices
from kdtune.losses import combine_teacher_logits
from kdtune.models import StudentInit, count_parameters, slice_layers
from kdtune.trainer import Callback, Trainer, TrainParams, seed_everything


@dataclass
class TrialData:
    """Everything a training needs; travels to Ray trials through the object store."""

    train: Encoded
    val: Encoded
    teacher_logits: list[np.ndarray]  # one [n_train, C] array per teacher, main teacher first
    student_init: StudentInit
    label_names: list[str]
    fixed: dict[str, Any]
    slice_in_trial: bool = False  # student_init holds every teacher layer; slice per trial
    teacher_layers: int = 0  # the (main) teacher's block count, for feature-pair mapping
    feature_targets: dict[int, np.ndarray] = field(default_factory=dict)  # block -> [tokens, H]
    student_layers: list[int] | None = None  # the fixed slice's teacher layers (None: hub model)
    online_teacher_dir: str | None = None  # hidden states too large to cache: run this teacher


def teacher_weights(values: dict[str, Any], n_teachers: int) -> list[float]:
    """Per-teacher weights: searched ``teacher_weight`` (2 teachers), fixed list, or equal."""
    if n_teachers == 2 and values.get("teacher_weight") is not None:
        w = float(values["teacher_weight"])
        return [w, 1.0 - w]
    if values.get("teacher_weights"):
        return [float(x) for x in values["teacher_weights"]]
    return [1.0 / n_teachers] * n_teachers


def combined_logits(data: TrialData, values: dict[str, Any]) -> np.ndarray | None:
    if not data.teacher_logits:
        return None
    if len(data.teacher_logits) == 1:
        return data.teacher_logits[0]
    weights = teacher_weights(values, len(data.teacher_logits))
    combined = combine_teacher_logits([torch.from_numpy(np.asarray(z)) for z in data.teacher_logits],
                                      weights, values.get("teacher_combine", "weighted"))
    return combined.numpy()


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


def build_model(data: TrialData, values: dict[str, Any]) -> nn.Module:
    model = data.student_init.build(dropout=values.get("dropout"))
    if data.slice_in_trial:
        model = slice_layers(model, list(values["layers"]))
    return model


def build_trainer(values: dict[str, Any], data: TrialData, callbacks: Sequence[Callback] = (),
                  device: torch.device | None = None) -> Trainer:
    """Seed, build the student and its trainer for one set of values (fixed + sampled)."""
    values = {**data.fixed, **values}
    params = TrainParams.from_dict(values)
    seed_everything(params.seed)
    model = build_model(data, values)
    pairs: list[tuple[int, int]] = []
    if params.beta > 0:
        layers = values.get("layers") if data.slice_in_trial else data.student_layers
        pairs = feature_pairs(layers, model.config.num_hidden_layers, data.teacher_layers)
    online = None
    if pairs and data.online_teacher_dir:  # the one case where a trial loads the teacher
        from transformers import AutoModelForSequenceClassification

        online = AutoModelForSequenceClassification.from_pretrained(data.online_teacher_dir)
    return Trainer(model, data.train, data.val, params, data.label_names,
                   teacher_logits=combined_logits(data, values), device=device,
                   callbacks=callbacks, feature_targets=data.feature_targets, feature_pairs=pairs,
                   online_teacher=online)


@torch.inference_mode()
def latency_ms(model: nn.Module, data: Encoded, n: int = 16) -> float:
    """Median CPU-or-device latency of one example (batch 1), over ``n`` validation rows."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = list(batch_indices(data.lengths, 1, shuffle=True, seed=0))[: n + 2]
    times = []
    for i, index in enumerate(order):
        batch = {k: v.to(device) for k, v in data.collate(index).items()}
        t0 = time.perf_counter()
        model(**batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # two warm-up calls
            times.append((time.perf_counter() - t0) * 1000.0)
    model.train(was_training)
    return float(np.median(times))


def size_metrics(model: nn.Module, data: Encoded) -> dict[str, float]:
    """What the multi-objective search trades quality against."""
    return {"latency_ms": latency_ms(model, data), "params": float(count_parameters(model))}
