"""The one latency protocol: how kdtune times a model, wherever the number is shown.

Trials (the size search's ``latency_ms`` objective), the report's efficiency table, the model
card and ``kdtune.export`` all call :func:`measure`, so their numbers compare:

* inputs are pre-tokenised rows of a split (tokenisation is excluded), taken in a fixed order:
  ``examples`` rows evenly spaced over the split sorted by length, so short and long texts
  both count;
* latency: ``warmup`` untimed calls, then one call per row at batch size 1; the median in ms;
* throughput: ``throughput_batches`` batches of ``throughput_batch`` consecutive rows of that
  order (dynamically padded) after one untimed batch; rows per second;
* on the CPU, ``threads`` torch (or onnxruntime) threads, 1 by default: on a shared machine
  several threads contend and the timings swing tenfold, one thread gives comparable numbers;
  on CUDA the device is synchronised before each clock read.

``run`` is any callable taking a dict of int64 numpy arrays (``input_ids``,
``attention_mask``, maybe ``token_type_ids``): a torch model (:func:`torch_runner`) or an
onnxruntime session.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kdtune.batches import Encoded

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Protocol:
    examples: int = 32
    warmup: int = 3
    throughput_batch: int = 32
    throughput_batches: int = 3
    threads: int = 1


DEFAULT = Protocol()
TRIAL = Protocol(examples=16, throughput_batches=0)  # inside a trial: latency only, quickly


def fixed_rows(data: Encoded, n: int) -> np.ndarray:
    """``n`` row indices evenly spaced over the split sorted by length (deterministic)."""
    order = np.argsort(data.lengths, kind="stable")
    if n >= len(order):
        return order
    return order[np.linspace(0, len(order) - 1, n).round().astype(int)]


def numpy_batch(data: Encoded, index: np.ndarray) -> Batch:
    return {k: v.numpy() for k, v in data.collate(index).items()}


def measure(run: Callable[[Batch], Any], data: Encoded, protocol: Protocol = DEFAULT,
            sync: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Latency (median ms at batch 1) and throughput (rows/s) of ``run`` under ``protocol``."""
    rows = fixed_rows(data, max(protocol.examples, protocol.throughput_batch *
                                (protocol.throughput_batches + 1)))
    singles = [numpy_batch(data, rows[i:i + 1]) for i in range(min(protocol.examples, len(rows)))]
    for batch in singles[:protocol.warmup]:
        run(batch)
    times = []
    for batch in singles:
        sync()
        t0 = time.perf_counter()
        run(batch)
        sync()
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"latency_ms": 1000.0 * statistics.median(times), "examples": len(singles),
                           **asdict(protocol), "cpu": platform.processor() or platform.machine()}
    size = protocol.throughput_batch
    groups = [numpy_batch(data, rows[i:i + size]) for i in range(0, len(rows) - size + 1, size)]
    groups = groups[:protocol.throughput_batches + 1]
    if len(groups) >= 2:
        run(groups[0])
        sync()
        t0 = time.perf_counter()
        for batch in groups[1:]:
            run(batch)
        sync()
        out["throughput"] = size * (len(groups) - 1) / (time.perf_counter() - t0)
    return out


def torch_runner(model: Any) -> tuple[Callable[[Batch], Any], Callable[[], None]]:
    """(run, sync) for a torch model on its own device, in inference mode."""
    import torch

    from kdtune.devices import autocast, synchronize

    device = next(model.parameters()).device
    model.eval()

    def run(batch: Batch) -> Any:
        # as a user runs the exported model: fp32 on the CPU, bf16 autocast on a GPU that has it
        with torch.inference_mode(), autocast(device, "fp32" if device.type == "cpu" else "auto"):
            return model(**{k: torch.from_numpy(v).to(device) for k, v in batch.items()})

    return run, lambda: synchronize(device)


def measure_torch(model: Any, data: Encoded, protocol: Protocol = DEFAULT) -> dict[str, Any]:
    """:func:`measure` of a torch model, with ``protocol.threads`` torch threads on the CPU."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(protocol.threads)
    try:
        run, sync = torch_runner(model)
        out = measure(run, data, protocol, sync)
    finally:
        torch.set_num_threads(previous)
    out["device"] = str(next(model.parameters()).device)
    return out
