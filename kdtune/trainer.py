"""The KD training loop: AdamW, OneCycleLR, grad clipping, per-epoch metrics, callbacks.

It knows nothing of Ray or Optuna: a tuner plugs in through ``callbacks``, each called with the
epoch's :class:`EpochMetrics` after every epoch (minGPT's trainer is the model for this).
Teacher logits, when given, are precomputed per training example, so no teacher runs here.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from torch import nn
from tqdm.auto import tqdm

from kdtune.data import Encoded, batch_indices
from kdtune.losses import feature_loss, kd_loss
from kdtune.models import pick_device

log = logging.getLogger(__name__)


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; the run cannot continue meaningfully."""


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a callback to end training after the current epoch."""


@dataclass
class TrainParams:
    """Values of one KD training run (fixed values merged with a trial's sampled ones)."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 1e-4
    alpha: float = 0.7
    temperature: float = 3.0
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clip_norm: float = 1.0
    seed: int = 0
    group_by_length: bool = True
    beta: float = 0.0
    feature_loss: str = "mse"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainParams:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "batch_size" in known:
            known["batch_size"] = int(known["batch_size"])
        return cls(**known)


@dataclass
class EpochMetrics:
    epoch: int
    loss: float
    ce_loss: float
    kd_loss: float
    kd_ce_ratio: float
    train_accuracy: float
    val_accuracy: float
    val_macro_f1: float
    val_f1_per_class: list[float] = field(default_factory=list)
    epoch_lr: float = 0.0  # the scheduled learning rate at the epoch's start
    feature_loss: float = 0.0  # the hidden-state loss (before beta), 0 without feature KD
    epoch_seconds: float = 0.0
    train_examples_per_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Callback = Callable[[EpochMetrics, "Trainer"], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def classification_metrics(labels: np.ndarray, preds: np.ndarray,
                           label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support (scikit-learn)."""
    classes = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=classes, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, labels=classes, average="macro",
                                   zero_division=0)),
        "per_class": {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                             "support": int(s[i])} for i, name in enumerate(label_names)},
    }


def _autocast(device: torch.device):
    # bf16 autocast on CUDA (fast tensor cores, no loss scaling needed); fp32 elsewhere.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.inference_mode()
def predict_logits(model: nn.Module, data: Encoded, batch_size: int = 128,
                   device: torch.device | None = None) -> np.ndarray:
    """Logits for every row of ``data`` in its original order (batched by length for speed)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = None
    for index in batch_indices(data.lengths, batch_size, shuffle=False):
        batch = {k: v.to(device, non_blocking=True) for k, v in data.collate(index).items()}
        with _autocast(device):
            logits = model(**batch).logits.float().cpu().numpy()
        if out is None:
            out = np.empty((len(data), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    model.train(was_training)
    return out


class Trainer:
    """Train ``model`` on ``train`` (optionally distilling ``teacher_logits``), validate on ``val``."""

    def __init__(self, model: nn.Module, train: Encoded, val: Encoded, params: TrainParams,
                 label_names: Sequence[str], teacher_logits: np.ndarray | None = None,
                 device: torch.device | None = None, callbacks: Sequence[Callback] = (),
                 progress: bool = False, progress_desc: str = "train",
                 feature_targets: dict[int, np.ndarray] | None = None,
                 feature_pairs: Sequence[tuple[int, int]] = (),
                 online_teacher: nn.Module | None = None):
        if teacher_logits is not None and len(teacher_logits) != len(train):
            raise ValueError(f"{len(teacher_logits)} teacher logits for {len(train)} train rows")
        if teacher_logits is None and params.alpha < 1.0:
            raise ValueError("alpha < 1 needs teacher logits")
        self.device = device or pick_device()
        self.model = model.to(self.device)
        self.train_data, self.val_data, self.params = train, val, params
        self.label_names = list(label_names)
        self.teacher_logits = (torch.from_numpy(np.array(teacher_logits, dtype=np.float32))
                               if teacher_logits is not None else None)
        self.callbacks = list(callbacks)
        # Feature KD: student block s is pulled towards teacher block t's cached hidden states,
        # through a learned projection when the widths differ.
        self.feature_pairs = list(feature_pairs) if params.beta > 0 else []
        self.feature_targets = feature_targets or {}
        # Hidden states too large to cache come from the teacher itself, batch by batch.
        self.online_teacher = online_teacher.to(self.device).eval() if (
            online_teacher is not None and self.feature_pairs) else None
        if self.feature_pairs:
            missing = {t for _, t in self.feature_pairs} - set(self.feature_targets)
            if missing and self.online_teacher is None:
                raise ValueError(f"no cached teacher hidden states for blocks {sorted(missing)}")
            s_width = model.config.hidden_size
            t_width = (self.online_teacher.config.hidden_size if self.online_teacher is not None
                       else None)
            widths = [t_width or self.feature_targets[t].shape[1] for _, t in self.feature_pairs]
            self.projections = nn.ModuleList(
                nn.Identity() if w == s_width else nn.Linear(s_width, w)
                for w in widths).to(self.device)
        else:
            self.projections = nn.ModuleList()
        self.progress, self.progress_desc = progress, progress_desc
        self.train_labels = torch.from_numpy(np.array(train.labels, dtype=np.int64))
        self.steps_per_epoch = math.ceil(len(train) / params.batch_size)
        decay, no_decay = [], []
        named = [*model.named_parameters(), *self.projections.named_parameters(prefix="proj")]
        for name, p in named:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": params.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=params.learning_rate)
        total = self.steps_per_epoch * params.epochs
        if total >= 3:
            # OneCycleLR needs at least two warm-up steps to interpolate; tiny runs get them.
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=params.learning_rate, total_steps=total,
                pct_start=min(max(params.warmup_fraction, 2.0 / total), 0.5),
                anneal_strategy="cos")
        else:  # one or two steps in all: a schedule is meaningless, keep the rate constant
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.history: list[EpochMetrics] = []
        self.last_val_logits: np.ndarray | None = None

    def train_epoch(self, epoch: int) -> dict[str, float]:
        p, device = self.params, self.device
        self.model.train()
        # Sums stay on the device: one host sync per epoch, not per step.
        sums = torch.zeros(5, device=device)  # loss, ce, kd, correct, feature
        seen = 0
        batches = batch_indices(self.train_data.lengths, p.batch_size, shuffle=True,
                                seed=p.seed * 1000 + epoch, group_by_length=p.group_by_length)
        if self.progress:
            batches = tqdm(batches, total=self.steps_per_epoch, leave=False,
                           desc=f"{self.progress_desc} epoch {epoch}/{p.epochs}")
        for index in batches:
            batch = {k: v.to(device, non_blocking=True)
                     for k, v in self.train_data.collate(index).items()}
            labels = self.train_labels[index].to(device, non_blocking=True)
            with _autocast(device):
                out = self.model(**batch, output_hidden_states=bool(self.feature_pairs))
            logits = out.logits
            if self.teacher_logits is not None:
                teacher = self.teacher_logits[index].to(device, non_blocking=True)
                parts = kd_loss(logits, teacher, labels, p.alpha, p.temperature)
            else:
                ce = nn.functional.cross_entropy(logits.float(), labels)
                parts = (ce, ce, torch.zeros((), device=device))
            total, feat = parts[0], torch.zeros((), device=device)
            if self.feature_pairs:
                feat = self._feature_loss(out.hidden_states, index, batch)
                total = total + p.beta * feat
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_([*self.model.parameters(), *self.projections.parameters()],
                                     p.clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            n = len(index)
            sums += torch.stack([total.detach() * n, parts[1].detach() * n,
                                 parts[2].detach() * n,
                                 (logits.detach().argmax(-1) == labels).sum().float(),
                                 feat.detach() * n])
            seen += n
        loss, ce, kd, correct, feat = (sums / seen).tolist()
        if not all(math.isfinite(v) for v in (loss, ce, kd, feat)):
            raise DivergedError(f"loss became {loss} in epoch {epoch} "
                                f"(learning_rate={p.learning_rate:g})")
        return {"loss": loss, "ce_loss": ce, "kd_loss": kd, "train_accuracy": correct,
                "feature_loss": feat}

    def _feature_loss(self, student_states: tuple[torch.Tensor, ...], index: np.ndarray,
                      batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean hidden-state loss over the student/teacher block pairs for one batch."""
        mask = batch["attention_mask"]
        lengths = self.train_data.lengths[index]
        offsets = self.train_data.offsets[index]
        width = mask.shape[1]
        teacher_states = None
        if self.online_teacher is not None:
            with torch.inference_mode(), _autocast(self.device):
                teacher_states = self.online_teacher(**batch, output_hidden_states=True).hidden_states
        total = torch.zeros((), device=self.device)
        for proj, (s_block, t_block) in zip(self.projections, self.feature_pairs, strict=True):
            if teacher_states is not None:
                target = teacher_states[t_block + 1].float().clone()
            else:
                flat = self.feature_targets[t_block]
                rows = np.zeros((len(index), width, flat.shape[1]), dtype=np.float32)
                for row, (start, n) in enumerate(zip(offsets, lengths, strict=True)):
                    rows[row, :n] = flat[start:start + n]
                target = torch.from_numpy(rows).to(self.device)
            student = proj(student_states[s_block + 1].float())
            total = total + feature_loss(student, target, mask, self.params.feature_loss)
        return total / len(self.feature_pairs)

    def evaluate(self) -> dict[str, Any]:
        logits = predict_logits(self.model, self.val_data, self.params.eval_batch_size,
                                self.device)
        self.last_val_logits = logits
        return classification_metrics(self.val_data.labels, logits.argmax(-1), self.label_names)

    def restore(self, history: list[dict[str, Any]]) -> int:
        """Continue after the epochs in ``history`` (weights already loaded by the caller).

        The learning-rate schedule is moved to the right step; AdamW's moment estimates start
        afresh (storing them would triple every checkpoint). Returns the next epoch.
        """
        self.history = [EpochMetrics(**h) for h in history]
        with warnings.catch_warnings():  # stepping a scheduler before the optimizer warns
            warnings.simplefilter("ignore")
            for _ in range(self.steps_per_epoch * len(history)):
                self.scheduler.step()
        return len(history) + 1

    def fit(self, start_epoch: int = 1) -> list[EpochMetrics]:
        seed_everything(self.params.seed + start_epoch - 1)
        for epoch in range(start_epoch, self.params.epochs + 1):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train = self.train_epoch(epoch)
            train_s = time.perf_counter() - t0
            val = self.evaluate()
            metrics = EpochMetrics(
                epoch=epoch, **train,
                kd_ce_ratio=train["kd_loss"] / train["ce_loss"] if train["ce_loss"] > 0 else 0.0,
                val_accuracy=val["accuracy"], val_macro_f1=val["macro_f1"],
                val_f1_per_class=[val["per_class"][n]["f1"] for n in self.label_names],
                epoch_lr=lr, epoch_seconds=time.perf_counter() - t0,
                train_examples_per_s=len(self.train_data) / train_s)
            self.history.append(metrics)
            log.info("epoch %d: loss %.4f (ce %.4f, kd %.4f) train acc %.4f, val acc %.4f, "
                     "val macro-F1 %.4f, %.0f ex/s", epoch, metrics.loss, metrics.ce_loss,
                     metrics.kd_loss, metrics.train_accuracy, metrics.val_accuracy,
                     metrics.val_macro_f1, metrics.train_examples_per_s)
            try:
                for callback in self.callbacks:
                    callback(metrics, self)
            except StopTraining:
                break
        return self.history
