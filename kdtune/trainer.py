"""The KD training loop: AdamW, OneCycleLR, grad clipping, validation at rungs, callbacks.

It knows nothing of Ray or Optuna: a tuner plugs in through ``callbacks``, each called with a
:class:`RungMetrics` at every evaluation (minGPT's trainer is the model for this). Training
validates ``1 / eval_every`` times per epoch: at epoch ends on the whole validation split, in
between on a fixed stratified subset sized so that these extra evaluations stay near 10% of the
epoch's time. Teacher logits (and cached hidden states) are precomputed per training example and
moved to the device once with the tokens; no teacher runs here unless hidden states are too
large to cache (online feature KD).

With a transfer set (``data.unlabeled``) an epoch is still one pass over the *labelled* rows:
each of its steps also trains on ``round(unlabeled_ratio * batch_size)`` transfer rows
(:class:`TransferStream`), so every trial reaches ASHA's rungs after the same number of
optimizer steps whatever its ratio; a step costs ``1 + unlabeled_ratio`` times the forward /
backward work of a labelled-only step.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune.batches import DeviceSplit, Encoded, batch_indices, eval_batches, stratified_subset
from kdtune.devices import autocast, best_device, inference_batch_size
from kdtune.feature_kd import FeatureKD
from kdtune.logs import progress_bar
from kdtune.losses import logit_loss
from kdtune.metrics import classification_metrics
from kdtune.params import TrainParams

log = logging.getLogger(__name__)

#: Extra (subset) evaluations inside an epoch may cost about this share of the epoch's time.
INTERMEDIATE_EVAL_SHARE = 0.1
#: Time to evaluate one row relative to training on one: forward only, but at batch
#: evaluation's padding and with the metrics (bench_kd row 2b; its figures and history are in
#: benchmarks/README.md).
EVAL_ROW_COST = 0.5
#: The running sums of training: loss, CE, KD, correct, feature loss, transfer loss.
SUMS = 6


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; the run cannot continue meaningfully."""


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a callback to end training after the current evaluation."""


@dataclass
class RungMetrics:
    """One evaluation: training means since the previous one, validation scores now."""

    progress: float  # epochs of training done: the time unit of ASHA's rungs
    epoch: int  # the (1-based) epoch this evaluation falls in
    step: int  # optimizer steps done
    loss: float
    ce_loss: float
    kd_loss: float
    kd_ce_ratio: float
    feature_loss: float  # the hidden-state loss (before beta), 0 without feature KD
    train_accuracy: float
    val_accuracy: float
    val_macro_f1: float
    val_loss: float
    val_rows: int  # rows scored: the whole split at epoch ends, a fixed subset in between
    full_val: bool
    val_f1_per_class: list[float] = field(default_factory=list)
    lr: float = 0.0  # the scheduled learning rate at this evaluation
    seconds: float = 0.0  # wall time since the previous evaluation (training + evaluation)
    train_examples_per_s: float = 0.0
    # the transfer rows' term (before unlabeled_weight): KD, or CE on the teacher's argmax;
    # 0 for a training without transfer rows (the CE-only arm)
    transfer_loss: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Callback = Callable[[RungMetrics, "Trainer"], None]


#: A trial checkpoint's files (kdtune.trainable writes them; kdtune.score_picks reads the weights).
CHECKPOINT_STATE, CHECKPOINT_WEIGHTS = "trainer.json", "trainer.safetensors"


class KeepBest:
    """A callback keeping a CPU copy of the weights at the best *whole-split* evaluation.

    Intermediate rungs score a validation subset (``full_val`` False): they steer ASHA, but a
    subset score is not comparable with whole-split ones, so it never selects weights.
    """

    def __init__(self, metric: str = "val_macro_f1", mode: str = "max") -> None:
        self.metric, self.sign = metric, (1.0 if mode == "max" else -1.0)
        self.score: float | None = None  # the best value of ``metric`` (its own sign)
        self.progress: float | None = None
        self.epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def __call__(self, m: RungMetrics, trainer: Trainer) -> None:
        if not m.full_val:
            return
        value = float(getattr(m, self.metric))
        if self.score is None or self.sign * value > self.sign * self.score:
            self.score, self.progress, self.epoch = value, m.progress, m.epoch
            self.state = {k: v.detach().to("cpu", copy=True)
                          for k, v in trainer.model.state_dict().items()}


def fused_adamw(device: torch.device) -> bool:
    """Whether torch has a fused AdamW kernel for ``device`` (CPU and CUDA do)."""
    return device.type in ("cpu", "cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_logits(model: nn.Module, data: Encoded | DeviceSplit, batch_size: int = 128,
                   device: torch.device | None = None, progress: str | None = None,
                   precision: str = "auto") -> np.ndarray:
    """Logits for every row of ``data`` in its original order (batched by length for speed);
    ``progress`` names a bar shown on a terminal (the teacher's logits pass)."""
    device = device or next(model.parameters()).device
    split = data if isinstance(data, DeviceSplit) else DeviceSplit(data, device)
    was_training = model.training
    model.eval()
    out = None
    batches = eval_batches(split.host_lengths, inference_batch_size(device, batch_size))
    with progress_bar(len(split), progress or "", "row", enabled=progress is not None) as bar:
        for index in batches:
            index_t = split.index(index)
            with autocast(device, precision):
                logits = model(**split.batch(index, index_t)).logits.float()
            if out is None:
                out = torch.empty((len(split), logits.shape[1]), dtype=torch.float32, device=device)
            out[index_t] = logits
            if bar is not None:
                bar.update(len(index))
    model.train(was_training)
    return out.cpu().numpy()


def evaluation_points(steps_per_epoch: int, evals_per_epoch: int) -> list[int]:
    """Steps (within an epoch, 1-based) after which to validate; the last is the epoch's end."""
    n = max(1, min(evals_per_epoch, steps_per_epoch))
    return sorted({max(1, round(k * steps_per_epoch / n)) for k in range(1, n + 1)})


def intermediate_rows(n_train: int, n_val: int, evals_per_epoch: int, num_classes: int) -> int:
    """Rows of the validation subset scored between epoch ends (0: none are needed).

    An evaluation row costs about :data:`EVAL_ROW_COST` of a training row, so ``k`` extra
    evaluations of ``m`` rows per epoch cost about ``k * m * EVAL_ROW_COST / n_train`` of the
    epoch; ``m`` is sized to keep that near :data:`INTERMEDIATE_EVAL_SHARE`, and is at least
    8 rows per class.
    """
    if evals_per_epoch <= 1:
        return 0
    rows = int(INTERMEDIATE_EVAL_SHARE * n_train / (EVAL_ROW_COST * (evals_per_epoch - 1)))
    return min(n_val, max(8 * num_classes, rows))


class TransferStream:
    """Transfer rows for each optimizer step: ``rows_per_step`` at a time, length-grouped like
    the labelled batches (a random pick of rows would pad every one to the longest: on the
    transfer space that made a step 2.5x dearer per row), in a seeded order that is reshuffled
    after each full pass. The rows of step ``s`` are a function of ``s`` alone, so a resumed
    training sees exactly the rows it would have seen."""

    def __init__(self, split: DeviceSplit, rows_per_step: int, seed: int) -> None:
        self.split, self.rows_per_step, self.seed = split, rows_per_step, seed
        self.steps_per_pass = math.ceil(len(split) / rows_per_step)
        self._pass: tuple[int, list[np.ndarray]] | None = None  # (pass, its batches)

    def _batches(self, k: int) -> list[np.ndarray]:
        if self._pass is None or self._pass[0] != k:
            self._pass = (k, batch_indices(self.split.host_lengths, self.rows_per_step,
                                           shuffle=True, seed=self.seed * 7919 + k))
        return self._pass[1]

    def rows(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        k, g = divmod(step, self.steps_per_pass)
        index = self._batches(k)[g]
        return index, self.split.index(index)


class Trainer:
    """Train ``model`` on ``train`` (optionally distilling ``teacher_logits``), validate on ``val``."""

    def __init__(self, model: nn.Module, train: Encoded, val: Encoded, params: TrainParams,
                 label_names: Sequence[str], teacher_logits: np.ndarray | None = None,
                 device: torch.device | None = None, callbacks: Sequence[Callback] = (),
                 progress: bool = False, progress_desc: str = "train",
                 features: FeatureKD | None = None, transfer: Encoded | None = None,
                 transfer_logits: np.ndarray | None = None,
                 class_weights: np.ndarray | None = None):
        if teacher_logits is not None and len(teacher_logits) != len(train):
            raise ValueError(f"{len(teacher_logits)} teacher logits for {len(train)} train rows")
        if (transfer is None) != (transfer_logits is None) or (
                transfer is not None and len(transfer_logits) != len(transfer)):
            raise ValueError("a transfer set needs one teacher logit row per transfer row")
        if teacher_logits is None and params.alpha < 1.0:
            raise ValueError("alpha < 1 needs teacher logits")
        self.device = device or best_device()
        self.model = model.to(self.device)
        self.params, self.label_names = params, list(label_names)
        self.callbacks = list(callbacks)
        self.progress, self.progress_desc = progress, progress_desc  # a bar on a terminal
        self._bar: Any = None
        targets = {} if teacher_logits is None else {"teacher": np.asarray(teacher_logits, np.float32)}
        self.train = DeviceSplit(train, self.device, targets)
        self.val, self.val_labels = DeviceSplit(val, self.device), val.labels
        self.features = features.to(self.device) if features is not None and params.beta > 0 else None
        self.class_weights = None if class_weights is None else torch.as_tensor(  # plain CE only
            class_weights, dtype=torch.float32, device=self.device)
        self.logit_loss = logit_loss(params.logit_loss)  # chosen by name: kdtune.losses
        self.transfer = None if transfer is None else TransferStream(
            DeviceSplit(transfer, self.device, {"teacher": np.asarray(transfer_logits, np.float32)}),
            max(1, round(params.unlabeled_ratio * params.batch_size)), params.seed)
        self.steps_per_epoch = math.ceil(len(train) / params.batch_size)
        evals = max(1, round(1.0 / params.eval_every))
        self.eval_steps = evaluation_points(self.steps_per_epoch, evals)
        rows = intermediate_rows(len(train), len(val), len(self.eval_steps), len(self.label_names))
        subset = stratified_subset(val.labels, rows, seed=params.seed) if rows else None
        self.val_subset = None if subset is None else (DeviceSplit(val.subset(subset), self.device),
                                                       val.labels[subset])
        self.optimizer, self.scheduler = self._optimizer()
        self.history: list[RungMetrics] = []
        self.step = 0

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.params.epochs

    def _parameters(self) -> list[tuple[str, nn.Parameter]]:
        extra = self.features.named_parameters(prefix="features") if self.features else []
        return [*self.model.named_parameters(), *extra]

    def _optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        p = self.params
        decay = [w for n, w in self._parameters() if w.ndim >= 2 and "LayerNorm" not in n]
        no_decay = [w for n, w in self._parameters() if w.ndim < 2 or "LayerNorm" in n]
        # The fused kernel: one pass over all parameters instead of a loop of small ops. On this
        # project's CPU it made AdamW's step 4.8x cheaper for the quickstart's student (17 vs
        # 83 ms: its 11.7M-row embedding is updated densely every step), the same update to
        # float rounding. transformers.Trainer's default (adamw_torch_fused) does the same.
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=p.learning_rate, fused=fused_adamw(self.device) or None)
        total = self.total_steps
        if total < 3:  # one or two steps in all: a schedule is meaningless, keep the rate
            return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        # OneCycleLR needs at least two warm-up steps to interpolate; tiny runs get them.
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=p.learning_rate, total_steps=total,
            pct_start=min(max(p.warmup_fraction, 2.0 / total), 0.5), anneal_strategy="cos")

    def _batches(self, epoch: int, skip: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        p = self.params
        batches = self.train.epoch(p.batch_size, seed=p.seed * 1000 + epoch,
                                   group_by_length=p.group_by_length)
        for i, item in enumerate(batches):
            if i >= skip:
                yield item

    def _step(self, index: np.ndarray, index_t: torch.Tensor) -> torch.Tensor:
        """One optimizer step; returns [loss, ce, kd, correct, feature, transfer] sums on the
        device."""
        p, n = self.params, len(index)
        batch = self.train.batch(index, index_t)
        labels = self.train.labels[index_t]
        with autocast(self.device, p.precision):
            out = self.model(**batch, output_hidden_states=self.features is not None)
        logits = out.logits
        if "teacher" in self.train.targets:
            parts = self.logit_loss(logits, self.train.targets["teacher"][index_t], labels, p.alpha,
                                    p.temperature)
        else:
            ce = nn.functional.cross_entropy(logits.float(), labels, weight=self.class_weights)
            parts = (ce, ce, torch.zeros((), device=self.device))
        total, feat = parts[0], torch.zeros((), device=self.device)
        transfer = torch.zeros((), device=self.device)
        if self.transfer is not None:
            transfer = self._transfer_loss()
            total = total + p.unlabeled_weight * transfer
        if self.features is not None:
            feat = self.features(out.hidden_states, batch, index, index_t)
            total = total + p.beta * feat
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([w for _, w in self._parameters()], p.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        correct = (logits.detach().argmax(-1) == labels).sum().float()
        return torch.stack([total.detach() * n, parts[1].detach() * n, parts[2].detach() * n,
                            correct, feat.detach() * n, transfer.detach() * n])

    def _transfer_loss(self) -> torch.Tensor:
        """The KD term on this step's transfer rows (no labels: no CE); with
        ``unlabeled_targets: hard``, CE on the teacher's argmax instead (self-training)."""
        p = self.params
        index, index_t = self.transfer.rows(self.step)
        split = self.transfer.split
        with autocast(self.device, p.precision):
            logits = self.model(**split.batch(index, index_t)).logits
        teacher = split.targets["teacher"][index_t]
        if p.unlabeled_targets == "hard":
            return nn.functional.cross_entropy(logits.float(), teacher.argmax(-1))
        return self.logit_loss(logits, teacher, teacher.argmax(-1), 0.0, p.temperature).loss

    def _advance(self, sums: torch.Tensor, seen: int, index: np.ndarray, index_t: torch.Tensor,
                 epoch: int) -> tuple[torch.Tensor, int]:
        """One step added to the running sums, with the periodic NaN check."""
        sums = sums + self._step(index, index_t)
        self.step += 1
        if self._bar is not None:
            self._bar.update(1)
        if self.step % self.params.nan_check_every == 0:
            self._check_finite(sums, epoch)
        return sums, seen + len(index)

    def _check_finite(self, sums: torch.Tensor, epoch: int) -> None:
        """One host sync every ``nan_check_every`` steps: a NaN stops training within them."""
        if not bool(torch.isfinite(sums).all()):
            loss = float(sums[0])
            raise DivergedError(f"loss became {loss} in epoch {epoch}, by step {self.step} "
                                f"(learning_rate={self.params.learning_rate:g})")

    def _evaluate(self, full: bool) -> dict[str, Any]:
        split, labels = (self.val, self.val_labels) if full or self.val_subset is None \
            else self.val_subset
        logits = predict_logits(self.model, split, self.params.eval_batch_size, self.device,
                                precision=self.params.precision)
        out = classification_metrics(labels, logits.argmax(-1), self.label_names)
        log_p = torch.log_softmax(torch.from_numpy(logits), dim=-1)
        out["loss"] = float(-log_p[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
        out["rows"] = len(labels)
        return out

    def _rung(self, epoch: int, batch: int, sums: torch.Tensor, seen: int, t0: float,
              train_s: float) -> RungMetrics:
        """The evaluation after batch ``batch`` of ``epoch`` (one of ``eval_steps``)."""
        loss, ce, kd, correct, feat, transfer = (sums / max(seen, 1)).tolist()
        full = batch == self.steps_per_epoch
        val = self._evaluate(full)
        # Nominal progress (0.25, 0.5, ...): every trial reports the same rung positions, which
        # sit within half a step of the true one (all trials share the schedule's length).
        k = self.eval_steps.index(batch) + 1
        return RungMetrics(
            progress=epoch - 1 + k / len(self.eval_steps), epoch=epoch, step=self.step, loss=loss,
            ce_loss=ce, kd_loss=kd, kd_ce_ratio=kd / ce if ce > 0 else 0.0, feature_loss=feat,
            train_accuracy=correct, val_accuracy=val["accuracy"], val_macro_f1=val["macro_f1"],
            val_loss=val["loss"], val_rows=val["rows"], full_val=full,
            val_f1_per_class=[val["per_class"][n]["f1"] for n in self.label_names],
            lr=self.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - t0,
            train_examples_per_s=seen / train_s if train_s > 0 else 0.0, transfer_loss=transfer)

    def _run_epoch(self, epoch: int, skip: int) -> bool:
        """Train one epoch from batch ``skip``, validating at its rungs; False once stopped."""
        sums, seen, t0, train_s = torch.zeros(SUMS, device=self.device), 0, time.perf_counter(), 0.0
        tick = time.perf_counter()
        for i, (index, index_t) in enumerate(self._batches(epoch, skip), start=skip + 1):
            sums, seen = self._advance(sums, seen, index, index_t, epoch)
            if i not in self.eval_steps:
                continue
            self._check_finite(sums, epoch)
            train_s += time.perf_counter() - tick
            metrics = self._rung(epoch, i, sums, seen, t0, train_s)
            self.history.append(metrics)
            self._log(metrics)
            try:
                for callback in self.callbacks:
                    callback(metrics, self)
            except StopTraining:
                return False
            sums, seen, t0, train_s = torch.zeros(SUMS, device=self.device), 0, time.perf_counter(), 0.0
            tick = time.perf_counter()
        return True

    def train_steps(self, epoch: int = 1, max_steps: int | None = None) -> dict[str, float]:
        """Train ``max_steps`` batches of ``epoch`` (all by default) without evaluating: the
        training cost alone, as the benchmarks time it. Returns examples, steps and mean loss."""
        sums, seen, steps = torch.zeros(SUMS, device=self.device), 0, 0
        for index, index_t in self._batches(epoch, 0):
            if max_steps is not None and steps >= max_steps:
                break
            sums, seen = self._advance(sums, seen, index, index_t, epoch)
            steps += 1
        self._check_finite(sums, epoch)
        return {"examples": seen, "steps": steps, "loss": float(sums[0]) / max(seen, 1)}

    def _log(self, m: RungMetrics) -> None:
        log.info("%s progress %.2f: loss %.4f (ce %.4f, kd %.4f) train acc %.4f, val acc %.4f, "
                 "val macro-F1 %.4f (%s, %d rows), %.0f ex/s", self.progress_desc, m.progress,
                 m.loss, m.ce_loss, m.kd_loss, m.train_accuracy, m.val_accuracy, m.val_macro_f1,
                 "full" if m.full_val else "subset", m.val_rows, m.train_examples_per_s)

    def restore(self, history: list[dict[str, Any]], step: int) -> None:
        """Continue after ``step`` optimizer steps (weights already loaded by the caller).

        The learning-rate schedule is moved to the right step; AdamW's moment estimates start
        afresh (storing them would triple every checkpoint).
        """
        self.history = [RungMetrics(**h) for h in history]
        self.step = step
        with warnings.catch_warnings():  # stepping a scheduler before the optimizer warns
            warnings.simplefilter("ignore")
            for _ in range(step):
                self.scheduler.step()

    def fit(self) -> list[RungMetrics]:
        """Train to the end (or until a callback stops it), from ``self.step``."""
        seed_everything(self.params.seed + self.step)
        first_epoch = self.step // self.steps_per_epoch + 1
        with progress_bar(self.params.epochs * self.steps_per_epoch, self.progress_desc, "step",
                          enabled=self.progress, initial=self.step) as self._bar:
            for epoch in range(first_epoch, self.params.epochs + 1):
                skip = self.step - (epoch - 1) * self.steps_per_epoch
                if not self._run_epoch(epoch, skip):
                    break
        self._bar = None
        return self.history

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """Everything trained: the student and the feature projections (for resuming)."""
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.features is not None:
            state.update({f"features.{k}": v for k, v in self.features.state_dict().items()})
        return state

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        model = {k[6:]: v for k, v in state.items() if k.startswith("model.")}
        self.model.load_state_dict(model, strict=True)
        if self.features is not None:
            feats = {k[9:]: v for k, v in state.items() if k.startswith("features.")}
            self.features.load_state_dict(feats, strict=True)
