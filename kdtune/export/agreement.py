"""One artefact against the torch model: test predictions, agreement, macro-F1, timing.

Every artefact (torch fp32, ONNX fp32, ONNX int8) predicts the whole held-out test split in
length-sorted batches; its row of the result table holds the share of predictions equal to the
torch model's, its macro-F1 and (filled in by :func:`compare`) the macro-F1 delta in points and
the latency speed-up against the torch row. Timing is :func:`kdtune.latency.measure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kdtune.batches import Encoded, batch_indices
from kdtune.latency import numpy_batch
from kdtune.logs import progress_bar

Logits = Callable[[dict[str, np.ndarray]], Any]
EVAL_BATCH = 64


def predict(logits: Logits, data: Encoded, batch_size: int = EVAL_BATCH,
            progress: str | None = None) -> np.ndarray:
    """Predicted class of every row of ``data`` (length-sorted batches, original order back);
    ``progress`` names a bar with an ETA, shown on a terminal only."""
    preds = np.empty(len(data), dtype=np.int64)
    with progress_bar(len(data), progress or "", "row", enabled=progress is not None) as bar:
        for index in batch_indices(data.lengths, batch_size, shuffle=False):
            preds[index] = np.asarray(logits(numpy_batch(data, index))).argmax(axis=-1)
            if bar is not None:
                bar.update(len(index))
    return preds


def torch_logits(model: Any) -> Logits:
    """``logits(batch)`` of a torch classifier on the CPU, as a numpy array."""
    import torch

    model = model.to("cpu").eval()

    def logits(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return out.logits.float().numpy()

    return logits


def macro_f1(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> float:
    from kdtune.metrics import confusion, macro_f1_of_confusions

    return float(macro_f1_of_confusions(confusion(labels, preds, num_labels)))


def artefact_row(name: str, file: str, size_mb: float, preds: np.ndarray, reference: np.ndarray,
                 labels: np.ndarray, num_labels: int, timing: dict[str, Any]) -> dict[str, Any]:
    """One row of the table; ``reference`` is the torch model's predictions."""
    return {"artefact": name, "file": file, "size_mb": float(size_mb),
            "agreement_pct": 100.0 * float(np.mean(preds == reference)),
            "macro_f1": macro_f1(labels, preds, num_labels),
            "latency_ms": float(timing["latency_ms"]),
            "throughput": None if timing.get("throughput") is None else float(timing["throughput"])}


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``delta_f1_points`` and ``speedup`` (latency at batch 1) against the first (torch) row."""
    ref = rows[0]
    for row in rows:
        row["delta_f1_points"] = 100.0 * (row["macro_f1"] - ref["macro_f1"])
        row["speedup"] = ref["latency_ms"] / row["latency_ms"] if row["latency_ms"] > 0 else None
    return rows
