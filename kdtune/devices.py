"""Which device runs what, and at which precision.

* The driver's own stages (teacher fine-tuning, logits, hidden states, final evaluations,
  retrain) use the best device the driver has (:func:`best_device`).
* A Ray trial uses exactly what Ray assigned it (:func:`trial_device`): the CPU when it was
  given no GPU, even on a GPU box. Ray 2.60 no longer hides GPUs from zero-GPU actors, so
  ``torch.cuda.is_available()`` is true inside them and must not decide.
* On CUDA, forward passes run under bf16 autocast where the GPU has bf16 (fp32 on T4 / V100),
  and inference uses larger batches.
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


class DeviceError(RuntimeError):
    """A trial cannot use the device Ray assigned it; the message is one line with the fix."""


def trial_device(gpu_ids: Sequence[int | str], cuda_available: bool | None = None) -> torch.device:
    """The device of a trial Ray gave ``gpu_ids`` (``ray.get_gpu_ids()``): CPU when none.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the assigned GPUs, so the first visible one is ours.
    A trial given a GPU that torch cannot see fails with one line: falling back to the CPU
    would run a GPU-sized job there, silently, hours slower.
    """
    if not gpu_ids:
        return torch.device("cpu")
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if not cuda_available:
        raise DeviceError(f"Ray assigned GPU(s) {list(gpu_ids)} but torch cannot use CUDA here "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); install "
                          "a CUDA build of torch on this node or set search.gpus_per_trial: 0")
    return torch.device("cuda", 0)


def same_device(a: torch.device | str, b: torch.device | str) -> bool:
    """Whether two devices are the same one: ``cuda`` is the current CUDA device (``cuda:0``
    unless set otherwise), so ``cuda`` and ``cuda:0`` compare equal, ``cpu`` and ``cpu:0`` too."""
    return _normal(torch.device(a)) == _normal(torch.device(b))


def _normal(d: torch.device) -> tuple[str, int]:
    if d.index is not None:
        return d.type, d.index
    if d.type == "cuda" and torch.cuda.is_initialized():
        return d.type, torch.cuda.current_device()
    return d.type, 0


def hide_unassigned_gpus(gpu_ids: Sequence[int | str]) -> None:
    """In a trial given no GPU, make CUDA invisible to every library (tokenizers, torch)."""
    if not gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def cuda_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a GPU with bf16 (Ampere and newer; not T4 or V100)."""
    return device.type == "cuda" and bool(torch.cuda.is_bf16_supported())


def precision(device: torch.device) -> str:
    """The compute precision kdtune uses on ``device``: bf16 autocast on GPUs that have bf16;
    fp32 on older GPUs (fp16 would need loss scaling, and its range overflows in the KD
    term's softmax at high temperature) and on the CPU. Recorded in run_info.json."""
    return "bf16-autocast" if cuda_bf16(device) else "fp32"


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`precision` says so (no loss scaling needed); else fp32."""
    if cuda_bf16(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device, base: int) -> int:
    return base * CUDA_INFERENCE_SCALE if device.type == "cuda" else base


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
