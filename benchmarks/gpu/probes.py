"""What the GPU check measures beside time: host syncs, peak memory, utilisation, TF32.

* :class:`SyncCounter`: ``torch.cuda.set_sync_debug_mode("warn")`` makes torch warn at every
  synchronising CUDA call (``.item()``, ``bool(tensor)``, blocking copies); each warning is
  counted and attributed to the Python line that made it and the first kdtune frame above it.
* :class:`PeakMemory`: ``torch.cuda.max_memory_allocated`` (peak RSS on the CPU stand-in).
* :class:`UtilSampler`: GPU utilisation and per-process GPU memory from ``nvidia-smi`` in a
  thread (``torch.cuda.utilization()`` as the fallback; the CPU's busy share on the CPU).
"""

from __future__ import annotations

import gc
import math
import shutil
import subprocess
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import peak_rss_mb

SYNC_MESSAGE = "called a synchronizing CUDA operation"
_HERE = Path(__file__).resolve()


def _set_cuda_sync_mode(on: bool) -> None:
    torch.cuda.set_sync_debug_mode("warn" if on else "default")


def _package_dirs() -> dict[str, str]:
    import transformers

    import kdtune

    return {name: str(Path(mod.__file__).resolve().parent) + "/"
            for name, mod in (("kdtune", kdtune), ("transformers", transformers), ("torch", torch))}


def package(filename: str, dirs: dict[str, str]) -> str:
    """kdtune, transformers, torch or other: whose code ``filename`` is."""
    path = str(Path(filename).resolve())
    return next((name for name, d in dirs.items() if path.startswith(d)), "other")


def origin(stack: list[traceback.FrameSummary], dirs: dict[str, str]) -> tuple[str, str, str]:
    """(whose line synced, that line, the first kdtune frame above it) for one sync."""
    frames = [f for f in stack  # the warnings machinery and this module are not the cause
              if not f.filename.endswith("warnings.py") and Path(f.filename).resolve() != _HERE]
    if not frames:
        return "other", "unknown", "none"
    inner = frames[-1]
    kd = next((f for f in reversed(frames) if package(f.filename, dirs) == "kdtune"), None)
    return (package(inner.filename, dirs), _short(inner),
            "none" if kd is None else f"{_short(kd)} ({kd.name})")


def _short(frame: traceback.FrameSummary) -> str:
    return f"{'/'.join(Path(frame.filename).parts[-2:])}:{frame.lineno}"


class SyncCounter:
    """Counts host syncs inside a ``with`` block; ``toggle(True/False)`` turns torch's sync
    debug mode on and off (replaceable, so the counting logic is tested on the CPU)."""

    def __init__(self, toggle: Callable[[bool], None] = _set_cuda_sync_mode):
        self.toggle = toggle
        self.events: list[tuple[str, str, str]] = []
        self._catch: Any = None
        self._dirs = _package_dirs()

    def __enter__(self) -> SyncCounter:
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always")  # every sync warns, not only the first per line
        warnings.showwarning = self._record
        self.toggle(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.toggle(False)
        self._catch.__exit__(*exc)

    def _record(self, message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                line: Any = None) -> None:
        if SYNC_MESSAGE in str(message):
            self.events.append(origin(traceback.extract_stack(), self._dirs))

    def by_package(self) -> dict[str, int]:
        return dict(Counter(pkg for pkg, _, _ in self.events))

    def by_line(self) -> dict[str, int]:
        return dict(Counter(f"{line} via {kd}" for _, line, kd in self.events).most_common())


def free(device: torch.device) -> None:
    """Release the last run's GPU memory before the next one is measured. Only on CUDA: on
    the CPU a full collection costs seconds and the peak RSS is reset by the kernel instead."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


class PeakMemory:
    """Peak memory of one run: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the
    process's peak RSS, reset through ``/proc/self/clear_refs`` (a stand-in for --tiny)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.what = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                     else "peak RSS of the process (VmHWM, reset before the run)")

    def reset(self) -> None:
        if self.device.type == "cuda":
            free(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not Linux, or not allowed: the peak then covers the whole process
            pass

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return peak_rss_mb()

    def reserved_mb(self) -> float:
        """The allocator's peak reservation: what other processes on the GPU cannot use."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_reserved(self.device) / 2**20
        return math.nan


def tf32_settings() -> dict[str, Any]:
    """Whether fp32 matmuls and convolutions may run as TF32 (fp32 rows depend on it)."""
    return {"matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def _nvidia_smi(query: str, what: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", f"--query-{what}={query}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=5).stdout
    return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]


def process_memory_mb() -> dict[str, float]:
    """GPU memory of every compute process nvidia-smi lists (pid -> MB, CUDA context
    included); empty where nvidia-smi is missing or lists none (e.g. inside some containers)."""
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        rows = _nvidia_smi("pid,used_memory", "compute-apps")
        return {pid: float(mb) for pid, mb in rows if mb.replace(".", "", 1).isdigit()}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


class UtilSampler:
    """Samples device utilisation (%) and per-process GPU memory in a thread."""

    def __init__(self, device: torch.device, interval: float):
        self.device, self.interval = device, interval
        self.samples: dict[str, list[float]] = {}
        self.process_mb: dict[str, dict[str, float]] = {}  # label -> pid -> peak MB
        self._label: str | None = None
        self._stop = threading.Event()
        self._cpu_last: tuple[int, int] | None = None
        self._uuid = ""
        self.source = self._pick_source()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _pick_source(self) -> str:
        if self.device.type != "cuda":
            return "/proc/stat (CPU busy share)" if Path("/proc/stat").is_file() else "none"
        self._uuid = str(getattr(torch.cuda.get_device_properties(self.device), "uuid", "") or "")
        for source in ("nvidia-smi", "torch.cuda.utilization"):
            if source == "nvidia-smi" and not shutil.which("nvidia-smi"):
                continue
            self.source = source
            if self.sample() is not None:  # e.g. "[N/A]" under MIG gives none
                return source
        return "none (nvidia-smi and torch.cuda.utilization gave no value)"

    def sample(self) -> float | None:
        try:
            if self.source == "nvidia-smi":
                rows = _nvidia_smi("uuid,utilization.gpu", "gpu")
                mine = [v for u, v in rows if self._uuid and self._uuid in u] or [rows[0][1]]
                return float(mine[0])
            if self.source == "torch.cuda.utilization":
                return float(torch.cuda.utilization(self.device))
            if self.source.startswith("/proc/stat"):
                return self._cpu_busy()
        except Exception:  # noqa: BLE001 - no utilisation value now: the sample is skipped
            return None
        return None

    def _cpu_busy(self) -> float | None:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle, total = fields[3] + fields[4], sum(fields)
        last, self._cpu_last = self._cpu_last, (idle, total)
        if last is None or total == last[1]:
            return None
        return 100.0 * (1 - (idle - last[0]) / (total - last[1]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            label = self._label
            value = self.sample()
            if label is None or self._label != label:
                continue
            if value is not None:
                self.samples.setdefault(label, []).append(value)
            if self.source == "nvidia-smi":
                peaks = self.process_mb.setdefault(label, {})
                for pid, mb in process_memory_mb().items():
                    peaks[pid] = max(mb, peaks.get(pid, 0.0))

    def start(self, label: str) -> None:
        self.sample()  # /proc/stat: start the delta here
        self._label = label

    def stop(self) -> None:
        self._label = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def mean(self, label: str) -> float:
        values = self.samples.get(label) or []
        return float(np.mean(values)) if values else math.nan
