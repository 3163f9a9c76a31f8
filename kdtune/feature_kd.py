"""Feature-based KD inside the trainer: student blocks pulled towards teacher hidden states.

Student block ``s`` is pulled towards teacher block ``t``'s hidden states through a learned
linear projection when the widths differ. The teacher's states come from a cache (ragged like
the token ids, float16, one ``[tokens, hidden]`` array per block, gathered per batch on the
device when they fit the trial's share of the device budget, else on the host) or, when too
large to cache (``train.feature_cache_max_mb``),
from the teacher itself, batch by batch (``online``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from kdtune.batches import gather_padded, to_device
from kdtune.devices import autocast, same_device
from kdtune.losses import feature_loss


class RaggedStates:
    """One cached block: ``[tokens, hidden]`` float16 rows aligned with a split's offsets."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, device: torch.device):
        self.device = device
        self.flat = to_device(flat, device)
        self.starts = to_device(offsets[:-1], device)
        self.lengths = to_device(np.diff(offsets), device)
        # Host-resident states (too large for the device budget) are gathered per batch into a
        # new pageable tensor and copied over synchronously: pinning the source would not make
        # that copy asynchronous, and pinning on a CPU-only trial would open a CUDA context.

    @property
    def width(self) -> int:
        return int(self.flat.shape[1])

    def gather(self, index: np.ndarray, index_t: torch.Tensor, width: int,
               target: torch.device) -> torch.Tensor:
        idx = index_t if same_device(self.device, index_t.device) else torch.from_numpy(index)
        rows = gather_padded(self.flat, self.starts, self.lengths, idx, width)[0]
        return rows.to(target).float()


class FeatureKD(nn.Module):
    """The hidden-state loss of one trainer: pairs, projections and the teachers' states."""

    def __init__(self, pairs: Sequence[tuple[int, int]], student_width: int, kind: str,
                 cached: dict[int, RaggedStates] | None = None,
                 online_teacher: nn.Module | None = None, precision: str = "auto"):
        super().__init__()
        self.pairs, self.kind, self.precision = list(pairs), kind, precision
        self.cached = cached or {}
        # A tuple, not an attribute: the frozen teacher must not become a submodule (its
        # weights would enter the optimizer and every checkpoint).
        self._online = (online_teacher.eval(),) if online_teacher is not None else ()
        missing = {t for _, t in self.pairs} - set(self.cached)
        if missing and not self._online:
            raise ValueError(f"no cached teacher hidden states for blocks {sorted(missing)}")
        widths = [self._online[0].config.hidden_size if self._online
                  else self.cached[t].width for _, t in self.pairs]
        self.projections = nn.ModuleList(
            nn.Identity() if w == student_width else nn.Linear(student_width, w) for w in widths)

    def forward(self, student_states: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor],
                index: np.ndarray, index_t: torch.Tensor) -> torch.Tensor:
        """Mean hidden-state loss over the block pairs for one batch."""
        mask = batch["attention_mask"]
        width, device = mask.shape[1], mask.device
        teacher_states = None
        if self._online:
            with torch.inference_mode(), autocast(device, self.precision):
                teacher_states = self._online[0](**batch, output_hidden_states=True).hidden_states
        total = torch.zeros((), device=device)
        for proj, (s_block, t_block) in zip(self.projections, self.pairs, strict=True):
            if teacher_states is not None:
                target = teacher_states[t_block + 1].float().clone()
            else:
                target = self.cached[t_block].gather(index, index_t, width, device)
            student = proj(student_states[s_block + 1].float())
            total = total + feature_loss(student, target, mask, self.kind)
        return total / len(self.pairs)

    def to(self, device: torch.device) -> FeatureKD:  # type: ignore[override]
        if self._online:
            self._online = (self._online[0].to(device),)
        return super().to(device)
