"""``transformers.Trainer`` as a user runs it instead of kdtune: plain fine-tuning, and KD by the
``compute_loss`` subclass that tutorials show (the teacher's forward pass in every step).

Everything is the Trainer's default except the training values kdtune's run uses too (learning
rate, batch size, epochs, weight decay, warm-up share, gradient clip, seed) and ``bf16``, which
is what row 6 varies (with ``use_cpu=True`` on a CPU, which ``bf16`` there requires). Defaults
that matter for speed, as of transformers 5.x: random batches (``train_sampling_strategy=
"random"``: no length grouping), each padded to its longest row by ``DataCollatorWithPadding``;
``eval_strategy="no"`` (evaluation is called and timed apart); evaluation batches of
``per_device_eval_batch_size`` 8; ``optim="adamw_torch_fused"``. Only the console output is
turned off (no progress bar, no printed log dict): it is not part of the work.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from benchmarks.common import clocks, since
from kdtune.batches import Encoded
from kdtune.params import TrainParams


class EncodedDataset(torch.utils.data.Dataset):
    """The rows of a kdtune split as the Trainer's collator wants them: unpadded lists."""

    def __init__(self, enc: Encoded):
        self.enc = enc

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.enc.ids[self.enc.offsets[i]:self.enc.offsets[i + 1]].tolist()
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(self.enc.labels[i])}


class DistillationTrainer(Trainer):
    """The tutorial recipe: loss = alpha * CE + (1 - alpha) * T^2 * KL(student_T || teacher_T),
    the teacher frozen in eval mode and run under ``no_grad`` on every batch (evaluation
    included, since the Trainer's ``prediction_step`` calls ``compute_loss`` too)."""

    def __init__(self, *args: Any, teacher: nn.Module, alpha: float, temperature: float,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher, self.alpha, self.temperature = teacher.eval(), alpha, temperature

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs).logits
        t = self.temperature
        ce = nn.functional.cross_entropy(outputs.logits, labels)
        kl = nn.functional.kl_div(nn.functional.log_softmax(outputs.logits / t, dim=-1),
                                  nn.functional.softmax(teacher_logits / t, dim=-1),
                                  reduction="batchmean")
        loss = self.alpha * ce + (1.0 - self.alpha) * t * t * kl
        return (loss, outputs) if return_outputs else loss


def macro_f1(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import f1_score

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) \
        else prediction.predictions
    return {"macro_f1": float(f1_score(prediction.label_ids, np.argmax(logits, -1),
                                       average="macro"))}


def arguments(params: TrainParams, out: Path, bf16: bool, cpu: bool) -> TrainingArguments:
    """The Trainer's defaults with kdtune's training values (they set the recipe, not the speed);
    ``use_cpu`` on a CPU, which the Trainer demands before it accepts ``bf16`` there."""
    return TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate, num_train_epochs=params.epochs,
        weight_decay=params.weight_decay, warmup_steps=params.warmup_fraction,
        max_grad_norm=params.clip_norm, seed=params.seed, bf16=bf16, use_cpu=cpu,
        save_strategy="no", report_to="none", disable_tqdm=True)


@dataclass
class HFRun:
    """One Trainer run: the student (built by the caller from kdtune's init), its data and
    values, bf16 or not, and the teacher when it distils."""

    model: nn.Module
    train: Encoded
    val: Encoded
    params: TrainParams
    tokenizer: Any
    bf16: bool
    teacher: nn.Module | None = None

    @property
    def cpu(self) -> bool:
        return next(self.model.parameters()).device.type == "cpu"


def build(run: HFRun, out: Path) -> Trainer:
    kwargs: dict[str, Any] = {
        "model": run.model, "args": arguments(run.params, out, run.bf16, run.cpu),
        "train_dataset": EncodedDataset(run.train), "eval_dataset": EncodedDataset(run.val),
        "processing_class": run.tokenizer, "compute_metrics": macro_f1}
    if run.teacher is None:
        trainer = Trainer(**kwargs)
    else:
        trainer = DistillationTrainer(**kwargs, teacher=run.teacher, alpha=run.params.alpha,
                                      temperature=run.params.temperature)
    trainer.remove_callback(PrinterCallback)  # it prints the final log dict to stdout
    return trainer


def timed_run(run: HFRun, workdir: Path) -> dict[str, Any]:
    """``trainer.train()`` and ``trainer.evaluate()``, timed apart on both clocks
    (``benchmarks.common.clocks``); the Trainer's construction is untimed, as kdtune's
    ``build_trainer`` is in its rows."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="hf-trainer-") as tmp:
        trainer = build(run, Path(tmp))
        start = clocks()
        result = trainer.train()
        train = since(start)
        metrics = trainer.evaluate()
        epoch = since(start)
    return {clock: {"train": train[clock], "eval": epoch[clock] - train[clock],
                    "epoch": epoch[clock] / run.params.epochs} for clock in epoch} | {
        "val_macro_f1": metrics["eval_macro_f1"], "steps": result.global_step,
        "threads": torch.get_num_threads()}
