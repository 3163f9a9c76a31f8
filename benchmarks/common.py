"""What every benchmark shares: the result row, the markdown table, machine facts, the files.

A benchmark prints RATIOS measured side by side in one process (the machines it runs on are
shared and their absolute timings drift): each :class:`Row` holds a reference measurement and
kdtune's, both in the same unit, and its ratio is always ``kdtune / reference``. Rows are
written as a markdown table and, with every raw number, as JSON (``kdtune.files.dumps``:
numpy values unwrapped, NaN as null). Device handling (synchronisation, autocast) is
``kdtune.devices``'; nothing here duplicates kdtune.

Importable with numpy and torch alone (no pandas, scikit-learn or Ray), so the GPU benchmark
can use it on a machine that has nothing else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdtune.devices import synchronize
from kdtune.files import dumps

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["#", "benchmark", "reference", "kdtune", "ratio", "target", "result", "notes"]
RATIO_NOTE = "ratio = kdtune / reference, both measured in this run on this machine"


def fmt(value: float) -> str:
    """A measurement as printed: 4 significant digits (whole numbers from 1000 on); nan."""
    if value is None or not math.isfinite(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


@dataclass
class Row:
    """One benchmark line: a reference measurement, kdtune's, their ratio and a target.

    ``id`` is the row number, with a letter where one benchmark has several measurements
    (``3a``, ``3b``). ``passed`` is decided by whoever builds the row, from the ratio or, where
    the target is a difference (e.g. "within 0.5 points"), from the two measurements.
    """

    id: str
    name: str
    reference: float
    kdtune: float
    unit: str
    target: str
    passed: bool
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return int("".join(c for c in self.id if c.isdigit()))

    @property
    def ratio(self) -> float:
        if not self.reference or not math.isfinite(self.reference) or not math.isfinite(self.kdtune):
            return math.nan
        return self.kdtune / self.reference

    @property
    def result(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def cells(self) -> list[str]:
        return [self.id, self.name, f"{fmt(self.reference)} {self.unit}",
                f"{fmt(self.kdtune)} {self.unit}", fmt(self.ratio), self.target, self.result,
                self.notes]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "number": self.number, "name": self.name,
                "reference": self.reference, "kdtune": self.kdtune, "unit": self.unit,
                "ratio": self.ratio, "target": self.target, "result": self.result,
                "notes": self.notes, "cells": self.cells(), "raw": self.raw}


def at_most(id: str, name: str, reference: float, kdtune: float, unit: str, limit: float,
            notes: str = "", raw: dict[str, Any] | None = None) -> Row:
    """A row whose target is ``ratio <= limit``."""
    row = Row(id, name, reference, kdtune, unit, f"ratio <= {limit:g}", False, notes, raw or {})
    row.passed = math.isfinite(row.ratio) and row.ratio <= limit
    return row


def below(id: str, name: str, reference: float, kdtune: float, unit: str, limit: float,
          notes: str = "", raw: dict[str, Any] | None = None) -> Row:
    """A row whose target is ``ratio < limit``."""
    row = Row(id, name, reference, kdtune, unit, f"ratio < {limit:g}", False, notes, raw or {})
    row.passed = math.isfinite(row.ratio) and row.ratio < limit
    return row


def at_least(id: str, name: str, reference: float, kdtune: float, unit: str, limit: float,
             notes: str = "", raw: dict[str, Any] | None = None) -> Row:
    """A row whose target is ``ratio >= limit``."""
    row = Row(id, name, reference, kdtune, unit, f"ratio >= {limit:g}", False, notes, raw or {})
    row.passed = math.isfinite(row.ratio) and row.ratio >= limit
    return row


def markdown_table(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in r.cells()) + " |"
              for r in rows]
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, list[str]]:
    """The rows of a table printed by :func:`markdown_table`, keyed by their ``#`` cell."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0][:1].isdigit():
            rows[cells[0]] = cells
    return rows


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "device": str(device),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - every benchmark builds transformers models
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = props.total_memory / 2**30
    return info


def machine_line(info: dict[str, Any]) -> str:
    where = info.get("gpu") or info["device"]
    return (f"{info['cpu_count']} CPUs, {info['processor']}, {info['platform']}, torch "
            f"{info['torch']}, device {where}")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def render(title: str, rows: list[Row], meta: dict[str, Any]) -> str:
    """The markdown file: title, facts about the run, the table."""
    lines = [f"# {title}", "", f"- date: {meta['date']}", f"- machine: {machine_line(meta['machine'])}",
             f"- command: `{meta['command']}`"]
    if meta.get("runtime_seconds") is not None:
        lines.append(f"- runtime: {meta['runtime_seconds']:.0f} s")
    lines += [f"- {RATIO_NOTE}", "", markdown_table(rows), ""]
    return "\n".join(lines)


def write_results(out: str | Path, stem: str, title: str, rows: list[Row],
                  meta: dict[str, Any]) -> tuple[Path, Path]:
    """``<out>/<stem>.md`` (the table) and ``<out>/<stem>.json`` (every number), both rewritten
    whole, so a benchmark can call this after each row and keep what it has if it is killed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(render(title, rows, meta))
    js.write_text(dumps({**meta, "title": title, "rows": [r.as_dict() for r in rows]}))
    return md, js


def timed(fn: Callable[[], Any], device: torch.device | None = None) -> tuple[Any, float]:
    """``(fn(), seconds)``, the device synchronised before and after (``kdtune.devices``)."""
    if device is not None:
        synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device is not None:
        synchronize(device)
    return out, time.perf_counter() - t0


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside, restored after (rows time a trial's
    thread count: ``search.cpus_per_trial``, as ``kdtune.trainable`` sets it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def clocks() -> dict[str, float]:
    """Now on both clocks the rows report: wall (``perf_counter``) and this process's CPU time
    (``process_time``). With one torch thread and no worker processes, CPU time is what the
    wall time would be on an idle machine; on a shared one it stays near that while the wall
    time grows with every other process's load (both are kept, the load beside them)."""
    return {"wall": time.perf_counter(), "cpu": time.process_time()}


def since(start: dict[str, float]) -> dict[str, float]:
    """Seconds on each clock since ``start`` (a :func:`clocks` reading)."""
    now_ = clocks()
    return {k: now_[k] - v for k, v in start.items()}


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


class Stages:
    """Wall time of each stage of a benchmark, printed as it ends."""

    def __init__(self, prog: str):
        self.prog, self.seconds = prog, {}

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = time.perf_counter() - t0
            say(self.prog, f"{name} took {self.seconds[name]:.0f} s")


def say(prog: str, message: str) -> None:
    print(f"{prog}: {message}", flush=True)


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else math.nan


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``VmHWM`` is the high-water mark of this program's own address space; ``ru_maxrss`` of a
    child started by fork + exec keeps the parent's peak, so it is only the fallback.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024
