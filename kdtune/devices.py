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
import functools
import os
from collections.abc import Sequence
from pathlib import Path

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


PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX-512 BF16: a bf16 matmul runs ~4x an
    fp32 one on one thread); elsewhere bf16 would be emulated, slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: no cheap way to tell; fp32
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(device: torch.device, requested: str = "auto") -> str:
    """``bf16`` or ``fp32`` for ``train.precision`` on ``device``: ``auto`` takes bf16 where
    the hardware has it (a GPU with bf16, a CPU with AMX / AVX-512 BF16), else fp32 (fp16 on
    older GPUs would need loss scaling, and overflows in the KD term's softmax at high
    temperature); ``bf16`` and ``fp32`` are taken as asked."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto" or device.type not in ("cuda", "cpu"):
        return "fp32" if requested == "auto" else requested
    return "bf16" if (cuda_bf16(device) if device.type == "cuda" else cpu_bf16()) else "fp32"


def precision(device: torch.device, requested: str = "auto") -> str:
    """The compute precision as recorded (run_info.json, the teacher cache key, the report):
    ``bf16-autocast`` (weights, optimiser state and the loss stay fp32) or ``fp32``."""
    return "bf16-autocast" if resolve_precision(device, requested) == "bf16" else "fp32"


def autocast(device: torch.device, requested: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast of the forward pass where :func:`resolve_precision` says so (no loss
    scaling needed with bf16's range); else plain fp32."""
    if resolve_precision(device, requested) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device, base: int) -> int:
    return base * CUDA_INFERENCE_SCALE if device.type == "cuda" else base


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
