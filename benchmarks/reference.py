"""THE seed-style reference loop every kdtune benchmark compares against.

What ``../shared/SEED_NOTES.md`` describes, and nothing more clever:

* every text tokenised with truncation and ``padding='max_length'``, ``max_length`` 150: every
  batch is 150 tokens wide, whatever its texts' lengths; no length grouping;
* a shuffling ``DataLoader`` over those CPU tensors, each batch copied to the device;
* the frozen teacher runs under ``no_grad`` on every training step (no cached logits);
* AdamW (``lr``, torch's default weight decay on every parameter), OneCycleLR
  (``max_lr = lr``, ``total_steps = batches * epochs``, ``pct_start`` 0.1, cosine annealing),
  gradient-norm clip 1.0, the KD loss ``kdtune.losses.kd_loss`` (the seed's formula);
* per-step ``.item()`` bookkeeping of loss and accuracy (a host sync each step), a validation
  pass over padded batches after each epoch;
* fp32, as the seed ran (``amp=True`` uses ``kdtune.devices.autocast`` instead, to compare
  loops at one precision; on the CPU both are fp32).

``bench_kd`` (CPU rows 1 and 5) and ``bench_gpu`` (rows 1, 3 and 4) both use it. Only numpy,
torch and ``kdtune.batches`` / ``kdtune.devices`` / ``kdtune.losses`` are imported at module
level (scikit-learn only inside :func:`evaluate`), so the GPU benchmark runs without them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kdtune.batches import Encoded, gather_padded
from kdtune.devices import autocast, synchronize
from kdtune.losses import kd_loss

SEED_MAX_LENGTH = 150  # the seed tokenised with padding='max_length', max_length=150
SEED_PCT_START = 0.1


def padded_tensors(data: Encoded, max_length: int = SEED_MAX_LENGTH
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, labels)`` of every row padded to ``max_length``: what the
    seed's tokenizer call returned. ``data`` must be encoded with ``max_length`` at most this
    (``kdtune.batches.encode`` truncates as the tokenizer does)."""
    lengths = data.lengths
    if len(lengths) and int(lengths.max()) > max_length:
        raise ValueError(f"rows of up to {int(lengths.max())} tokens; encode them with "
                         f"max_length={max_length} first")
    flat = torch.from_numpy(data.ids.astype(np.int64))
    starts = torch.from_numpy(data.offsets[:-1].astype(np.int64))
    lens = torch.from_numpy(lengths.astype(np.int64))
    index = torch.arange(len(data))
    ids, mask = gather_padded(flat, starts, lens, index, max_length, data.pad_id)
    return ids, mask.long(), torch.tensor(np.asarray(data.labels), dtype=torch.long)


def loader(data: Encoded, batch_size: int, *, shuffle: bool, seed: int = 0,
           max_length: int = SEED_MAX_LENGTH) -> torch.utils.data.DataLoader:
    """The seed's batches: padded tensors in a (shuffling) ``DataLoader``."""
    dataset = torch.utils.data.TensorDataset(*padded_tensors(data, max_length))
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator)


def optimizer_and_schedule(student: nn.Module, lr: float, total_steps: int,
                           pct_start: float = SEED_PCT_START) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and OneCycleLR as the seed set them up (tiny runs get the >= 2 warm-up steps
    OneCycleLR needs to interpolate, as kdtune's trainer does)."""
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    total_steps = max(total_steps, 3)
    pct = min(max(pct_start, 2.0 / total_steps), 0.5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                                    pct_start=pct, anneal_strategy="cos")
    return optimizer, scheduler


def _precision(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    return autocast(device) if amp else contextlib.nullcontext()


def train_epoch(student: nn.Module, teacher: nn.Module, batches: torch.utils.data.DataLoader,
                optimizer: torch.optim.Optimizer, scheduler: Any, *, alpha: float,
                temperature: float, clip_norm: float, device: torch.device, amp: bool = False,
                max_steps: int | None = None) -> dict[str, Any]:
    """One seed-style training epoch (or its first ``max_steps`` steps), timed on the device."""
    student.train()
    teacher.eval()
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    synchronize(device)
    t0 = time.perf_counter()
    for input_ids, mask, labels in batches:
        if max_steps is not None and steps >= max_steps:
            break
        input_ids, mask, labels = input_ids.to(device), mask.to(device), labels.to(device)
        with torch.no_grad(), _precision(device, amp):
            teacher_logits = teacher(input_ids=input_ids, attention_mask=mask).logits
        with _precision(device, amp):
            logits = student(input_ids=input_ids, attention_mask=mask).logits
        loss, _, _ = kd_loss(logits, teacher_logits, labels, alpha, temperature)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), clip_norm)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(-1) == labels).sum().item()
        seen += len(labels)
        steps += 1
    synchronize(device)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "examples": seen, "steps": steps,
            "loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


@torch.no_grad()
def teacher_pass(teacher: nn.Module, batches: torch.utils.data.DataLoader, device: torch.device,
                 amp: bool = False, max_steps: int | None = None) -> dict[str, Any]:
    """The teacher's share of seed-style training: its forward on each padded batch, timed."""
    teacher.eval()
    seen, steps = 0, 0
    synchronize(device)
    t0 = time.perf_counter()
    for input_ids, mask, _ in batches:
        if max_steps is not None and steps >= max_steps:
            break
        with _precision(device, amp):
            teacher(input_ids=input_ids.to(device), attention_mask=mask.to(device))
        seen, steps = seen + len(input_ids), steps + 1
    synchronize(device)
    return {"seconds": time.perf_counter() - t0, "examples": seen, "steps": steps}


@torch.no_grad()
def predict(model: nn.Module, batches: torch.utils.data.DataLoader, device: torch.device,
            amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, predictions)`` over the seed's padded batches."""
    model.eval()
    preds, gold = [], []
    for input_ids, mask, labels in batches:
        with _precision(device, amp):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        preds.append(logits.argmax(-1).cpu().numpy())
        gold.append(labels.numpy())
    return np.concatenate(gold), np.concatenate(preds)


def evaluate(model: nn.Module, batches: torch.utils.data.DataLoader, device: torch.device,
             label_names: Sequence[str], amp: bool = False) -> dict[str, Any]:
    """Accuracy and macro-F1 (``kdtune.trainer.classification_metrics``, scikit-learn)."""
    from kdtune.trainer import classification_metrics

    gold, preds = predict(model, batches, device, amp)
    return classification_metrics(gold, preds, label_names)


def train(student: nn.Module, teacher: nn.Module, train_data: Encoded, val_data: Encoded | None,
          *, epochs: int, batch_size: int, lr: float, alpha: float, temperature: float,
          clip_norm: float = 1.0, seed: int = 0, device: torch.device,
          label_names: Sequence[str] = (), amp: bool = False,
          max_length: int = SEED_MAX_LENGTH) -> list[dict[str, Any]]:
    """The seed's whole run: ``epochs`` of :func:`train_epoch`, each followed by a validation
    pass (when ``val_data`` is given); per epoch its seconds (training + validation), loss,
    accuracies and validation macro-F1."""
    student.to(device)
    teacher.to(device)
    train_batches = loader(train_data, batch_size, shuffle=True, seed=seed, max_length=max_length)
    val_batches = None if val_data is None else loader(val_data, batch_size, shuffle=False,
                                                       max_length=max_length)
    optimizer, scheduler = optimizer_and_schedule(student, lr, len(train_batches) * epochs)
    out = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        stats = train_epoch(student, teacher, train_batches, optimizer, scheduler, alpha=alpha,
                            temperature=temperature, clip_norm=clip_norm, device=device, amp=amp)
        stats["train_seconds"] = stats.pop("seconds")
        if val_batches is not None:
            metrics = evaluate(student, val_batches, device, label_names, amp)
            stats.update(val_accuracy=metrics["accuracy"], val_macro_f1=metrics["macro_f1"])
        synchronize(device)
        stats.update(epoch=epoch, seconds=time.perf_counter() - t0)
        out.append(stats)
    return out


def padding_share(data: Encoded, max_length: int = SEED_MAX_LENGTH) -> float:
    """Share of the seed's token positions that are padding."""
    n = len(data)
    return math.nan if n == 0 else 1.0 - float(data.lengths.sum()) / (n * max_length)
