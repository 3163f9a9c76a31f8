"""Which device runs what, and at which precision.

* The driver's own stages (teacher fine-tuning, logits, hidden states, final evaluations,
  retrain) use the best device the driver has (:func:`best_device`).
* A Ray trial uses exactly what Ray assigned it (:func:`trial_device`): the CPU when it was
  given no GPU, even on a GPU box. Ray 2.60 no longer hides GPUs from zero-GPU actors, so
  ``torch.cuda.is_available()`` is true inside them and must not decide.
* On CUDA, forward passes run under bf16 autocast and inference uses larger batches.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch

#: Inference batches on CUDA are this many times the configured eval batch size.
CUDA_INFERENCE_SCALE = 4


def best_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU (the seed's order put MPS first; CUDA is faster)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def trial_device(gpu_ids: Sequence[int | str], cuda_available: bool | None = None) -> torch.device:
    """The device of a trial Ray gave ``gpu_ids`` (``ray.get_gpu_ids()``): CPU when none.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the assigned GPUs, so the first visible one is ours.
    """
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if gpu_ids and cuda_available:
        return torch.device("cuda", 0)
    return torch.device("cpu")


def hide_unassigned_gpus(gpu_ids: Sequence[int | str]) -> None:
    """In a trial given no GPU, make CUDA invisible to every library (tokenizers, torch)."""
    if not gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def precision(device: torch.device) -> str:
    """The compute precision kdtune uses on ``device``."""
    return "bf16-autocast" if device.type == "cuda" else "fp32"


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device, base: int) -> int:
    return base * CUDA_INFERENCE_SCALE if device.type == "cuda" else base


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
