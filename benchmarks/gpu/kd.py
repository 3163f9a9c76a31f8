"""kdtune's own training and inference, as the GPU check drives them.

Everything goes through ``kdtune.trainer``: a :class:`~kdtune.trainer.Trainer` built as a
trial builds it (cached logits, length-grouped batches gathered on the device, bf16 autocast
where the device has it), timed without its rung evaluations (those need scikit-learn), and
``predict_logits`` for the teacher's logits pass.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from benchmarks.gpu.shapes import LABELS
from kdtune.batches import Encoded
from kdtune.devices import synchronize
from kdtune.feature_kd import FeatureKD
from kdtune.params import TrainParams
from kdtune.trainer import Trainer, predict_logits


def make_trainer(student: torch.nn.Module, train: Encoded, logits: np.ndarray, params: TrainParams,
                 device: torch.device, features: FeatureKD | None = None) -> Trainer:
    val = train.subset(np.arange(min(len(train), 8)))  # required by the Trainer, never scored here
    return Trainer(student, train, val, params, LABELS, teacher_logits=logits, device=device,
                   features=features)


def kdtune_epoch(trainer: Trainer, epoch: int = 1, max_steps: int | None = None) -> dict[str, Any]:
    """One training epoch through ``Trainer.train_steps``: the epoch's batches uploaded once,
    kdtune's step, one host sync every ``nan_check_every`` steps; no evaluation."""
    synchronize(trainer.device)
    t0 = time.perf_counter()
    out = trainer.train_steps(epoch, max_steps)
    synchronize(trainer.device)
    return {"seconds": time.perf_counter() - t0, **out}


def cache_logits(teacher: torch.nn.Module, data: Encoded, params: TrainParams,
                 device: torch.device, precision: str = "auto") -> np.ndarray:
    """kdtune's teacher stage: ``predict_logits`` over the split (large batches on CUDA)."""
    return predict_logits(teacher, data, params.eval_batch_size, device, precision=precision)


def random_logits(rows: int, seed: int, scale: float = 3.0) -> np.ndarray:
    """Stand-in cached teacher logits, spread like a fine-tuned teacher's (std ``scale``)."""
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(rows, len(LABELS)))).astype(np.float32)


class RecordingTrainer(Trainer):
    """kdtune's Trainer, keeping each step's mean loss on the device (no extra sync)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step_losses: list[torch.Tensor] = []

    def _step(self, index: np.ndarray, index_t: torch.Tensor) -> torch.Tensor:
        sums = super()._step(index, index_t)
        self.step_losses.append(sums[0] / len(index))
        return sums

    def losses(self) -> np.ndarray:
        return torch.stack(self.step_losses).float().cpu().numpy()
