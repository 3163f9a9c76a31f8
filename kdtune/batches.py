"""Tokenised splits and the batches built from them, on the CPU or on a GPU.

A split is tokenised once into one flat ``int32`` array of token ids plus offsets
(:class:`Encoded`): it travels to Ray trials through the object store without copies, and
batches are padded to their own longest row, not to ``max_length``. A trial moves its split to
its device once (:class:`DeviceSplit`) and gathers every batch there with a few vectorised
tensor ops: no per-row Python loop and no host sync per step. The same code runs on the CPU.
Only numpy and torch are imported here, so the GPU benchmark can use it without kdtune's other
dependencies.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Encoded:
    """One tokenised split: flat token ids with offsets, plus labels."""

    ids: np.ndarray  # int32, all sequences concatenated
    offsets: np.ndarray  # int64, len n + 1
    labels: np.ndarray  # int64
    pad_id: int
    type_ids: np.ndarray | None = None  # int8 token type ids of sentence pairs, like ids

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def tokens(self) -> int:
        return int(self.offsets[-1])

    def subset(self, index: np.ndarray) -> Encoded:
        """The rows ``index`` (in that order) as a split of their own."""
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        take = row_positions(self.offsets[:-1][index], lengths)
        return Encoded(self.ids[take], offsets, self.labels[index], self.pad_id,
                       None if self.type_ids is None else self.type_ids[take])

    def collate(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """CPU tensors of the rows ``index``, padded to the longest of them."""
        return DeviceSplit.from_encoded(self, torch.device("cpu")).batch(index)


def row_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of every token of the rows starting at ``starts`` (vectorised)."""
    total = int(lengths.sum())
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    first = np.zeros(len(lengths), dtype=np.int64)
    first[1:] = np.cumsum(lengths)[:-1]
    return starts[row_of] + (np.arange(total) - first[row_of])


def encode(texts: Sequence[str], labels: np.ndarray, tokenizer, max_length: int,
           pairs: Sequence[str] | None = None) -> Encoded:
    """Tokenise once (truncation to ``max_length``, no padding); ``pairs`` as second segments."""
    args = (list(texts),) if pairs is None else (list(texts), list(pairs))
    enc = tokenizer(*args, truncation=True, max_length=max_length, padding=False,
                    return_token_type_ids=pairs is not None)
    seqs = enc["input_ids"]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    ids = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    type_ids = None
    if pairs is not None and "token_type_ids" in enc:
        type_ids = np.fromiter((t for s in enc["token_type_ids"] for t in s), dtype=np.int8,
                               count=int(offsets[-1]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids, offsets, np.asarray(labels, dtype=np.int64), int(pad), type_ids)


def batch_indices(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
                  group_by_length: bool = True) -> list[np.ndarray]:
    """Index batches of one pass over the rows.

    Training order is shuffled; with ``group_by_length`` rows are sorted by length inside
    mega-batches of 50 batches (as transformers' ``group_by_length`` does) so little padding is
    computed, and the batch order is shuffled again. Evaluation (no shuffle) sorts by length
    globally, which is the cheapest order and does not change the metrics.
    """
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable") if group_by_length else np.arange(n)
        return [order[s:s + batch_size] for s in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if not group_by_length:
        return [order[s:s + batch_size] for s in range(0, n, batch_size)]
    mega = batch_size * 50
    batches = []
    for start in range(0, n, mega):
        chunk = order[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[b] for b in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches by a token budget: rows sorted by length, each batch as many rows as
    fit ``batch_size x median length`` padded tokens. Short rows travel in larger batches and
    the longest in smaller ones, so no batch pads a few long rows to a full row count (a
    240-row subset's last batch of the longest rows cost as much as the rest together).
    """
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    budget = batch_size * max(1, int(np.median(lengths)))
    batches, start = [], 0
    for i in range(n):
        # ascending order: row i is the longest of the batch it would join
        if i > start and (i - start + 1) * int(lengths[order[i]]) > budget:
            batches.append(order[start:i])
            start = i
    batches.append(order[start:])
    return batches


def gather_padded(flat: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor,
                  index: torch.Tensor, width: int, pad: float | int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``index`` of a ragged array, padded to ``width``: ``([B, W, ...], mask [B, W])``.

    ``flat`` is ``[tokens]`` or ``[tokens, hidden]``; row ``i`` is
    ``flat[starts[i]:starts[i] + lengths[i]]``. Every tensor lives on one device.
    """
    cols = torch.arange(width, device=flat.device)
    mask = cols.unsqueeze(0) < lengths[index].unsqueeze(1)
    pos = torch.where(mask, starts[index].unsqueeze(1) + cols.unsqueeze(0), 0)
    out = flat[pos]
    fill = mask if out.dim() == 2 else mask.unsqueeze(-1)
    return out.masked_fill(~fill, pad), mask


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor of ``array`` on ``device``; on the CPU a zero-copy view, also of the read-only
    arrays Ray's object store hands out (kdtune never writes to them)."""
    array = np.ascontiguousarray(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


class DeviceSplit:
    """A split's token ids, labels and per-example targets, moved to ``device`` once."""

    def __init__(self, enc: Encoded, device: torch.device,
                 targets: dict[str, np.ndarray] | None = None):
        self.device, self.pad_id, self.size = device, enc.pad_id, len(enc)
        self.host_lengths = enc.lengths
        self.ids = to_device(enc.ids, device)
        self.starts = to_device(enc.offsets[:-1], device)
        self.lengths = to_device(self.host_lengths, device)
        self.labels = to_device(np.asarray(enc.labels, dtype=np.int64), device)
        self.type_ids = None if enc.type_ids is None else to_device(enc.type_ids, device)
        self.targets = {k: to_device(v, device) for k, v in (targets or {}).items()}

    @classmethod
    def from_encoded(cls, enc: Encoded, device: torch.device) -> DeviceSplit:
        return cls(enc, device)

    def __len__(self) -> int:
        return self.size

    def index(self, index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(index, dtype=np.int64)).to(self.device, non_blocking=True)

    def batch(self, index: np.ndarray, index_t: torch.Tensor | None = None
              ) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (and ``token_type_ids`` of pairs) for ``index``."""
        index_t = self.index(index) if index_t is None else index_t
        width = int(self.host_lengths[index].max())  # from host memory: no device sync
        ids, mask = gather_padded(self.ids, self.starts, self.lengths, index_t, width, self.pad_id)
        out = {"input_ids": ids.long(), "attention_mask": mask.long()}
        if self.type_ids is not None:
            out["token_type_ids"] = gather_padded(self.type_ids, self.starts, self.lengths,
                                                  index_t, width)[0].long()
        return out

    def epoch(self, batch_size: int, *, seed: int, group_by_length: bool
              ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """One shuffled pass: (host index, device index) per batch, uploaded once per epoch."""
        batches = batch_indices(self.host_lengths, batch_size, shuffle=True, seed=seed,
                                group_by_length=group_by_length)
        flat = self.index(np.concatenate(batches))
        start = 0
        for b in batches:
            yield b, flat[start:start + len(b)]
            start += len(b)


def stratified_subset(labels: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of about ``rows`` rows with every class in its share (at least one each)."""
    labels = np.asarray(labels)
    if rows >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    take = np.maximum(1, np.round(counts * rows / len(labels)).astype(int))
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(k, n), replace=False)
              for c, k, n in zip(classes, take, counts, strict=True)]
    return np.sort(np.concatenate(picked))
