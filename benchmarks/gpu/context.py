"""What every row of the GPU check is given: the device, the sizes, the deadline, the output.

``FULL`` fits one run of at most 5 minutes on one H200 with room to spare (about 3 minutes of
work inside a 240 s deadline); ``TINY`` runs every row with tiny models on the CPU in seconds
(the test does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.common import Row
from benchmarks.gpu.deadline import Deadline


@dataclass(frozen=True)
class Sizes:
    """How much each row does."""

    train_rows: int  # epoch rows: one epoch over this many synthetic rows
    repeats: int  # epoch rows: interleaved repeats (the median is reported)
    warmup_steps: int
    seed_run_seconds: float  # a seed-style run stops after about this long (constant step cost)
    sync_steps: int  # host-sync row: training steps counted
    check_rows: int  # correctness rows: rows of logits / hidden states compared
    trajectory_steps: int  # bf16 vs fp32 KD loss trajectories
    trial_steps: int  # concurrency row: the fixed trial is one epoch of this many batches
    trials_per_worker: int  # trials each process runs back to back per round
    concurrency: tuple[int, ...]  # processes per round (1 first)
    cache_rows: int  # teacher-logits row: rows whose logits kdtune caches
    seed_teacher_rows: int  # rows of seed-style teacher forwards
    util_interval_s: float


FULL = Sizes(train_rows=4096, repeats=2, warmup_steps=5, seed_run_seconds=5.0, sync_steps=48,
             check_rows=256, trajectory_steps=50, trial_steps=80, trials_per_worker=2,
             concurrency=(1, 4, 8), cache_rows=32768, seed_teacher_rows=4096, util_interval_s=0.2)
TINY = Sizes(train_rows=32, repeats=1, warmup_steps=1, seed_run_seconds=600.0, sync_steps=4,
             check_rows=64, trajectory_steps=6, trial_steps=2, trials_per_worker=1,
             concurrency=(1, 2), cache_rows=128, seed_teacher_rows=32, util_interval_s=0.1)


@dataclass
class Ctx:
    """One run: where it runs, how big, until when, and where finished rows go."""

    device: torch.device
    tiny: bool
    sizes: Sizes
    deadline: Deadline
    emit: Callable[[Row], None]
    state: dict[str, Any] = field(default_factory=dict)  # what later rows read from earlier ones

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"
