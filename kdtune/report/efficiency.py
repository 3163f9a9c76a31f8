"""Efficiency of the saved models measured on this machine's CPU (cached in ``report/efficiency.csv``).

Parameters, weight files on disk, latency at batch 1 and throughput at batch 32 of the teacher,
the CE-only baseline and the best distilled student.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.files import atomic_write_csv
from kdtune.report.experiment import Experiment

log = logging.getLogger("kdtune.report")

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _resolve_dir(path: str | None, exp: Experiment) -> Path | None:
    """A model folder recorded relative to the search's working directory, found from here."""
    if not path:
        return None
    p = Path(path)
    # relative paths are relative to where the search ran: usually the project root, which is
    # also the parent of results/ when the report runs from elsewhere
    candidates = [p] if p.is_absolute() else [p, exp.dir.resolve().parent.parent / p]
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    return None


def model_dirs(exp: Experiment) -> dict[str, Path]:
    """Saved folders of teacher, baseline and distilled student that exist on disk."""
    out: dict[str, Path] = {}
    models = (exp.evaluation or {}).get("models") or {}
    teacher = (models.get("teacher") or {}).get("dir")
    if teacher is None and exp.info.get("teacher_dir"):
        teacher = str(Path(exp.info["teacher_dir"]) / "model")
    for name, recorded in (("teacher", teacher),
                           ("baseline", (models.get("baseline") or {}).get("dir")),
                           ("distilled", (models.get("distilled") or {}).get("dir"))):
        found = _resolve_dir(recorded, exp) or (
            _resolve_dir(str(exp.dir / "models" / name), exp) if name != "teacher" else None)
        if found is not None:
            out[name] = found
    return out


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def measure_model(folder: Path, texts: list[str], max_length: int, latency_n: int = 30,
                  batch: int = 32, batches: int = 2) -> dict[str, Any]:
    """Parameters, weights size and CPU latency (batch 1) / throughput (batch ``batch``).

    Runs on one CPU thread: on a machine other processes share, several threads contend and
    the timings swing tenfold; one thread gives comparable numbers for every model.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(folder, texts, max_length, latency_n, batch, batches)
    finally:
        torch.set_num_threads(threads)


def _measure(folder: Path, texts: list[str], max_length: int, latency_n: int, batch: int,
             batches: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to("cpu").eval()
    singles = [tok(t, truncation=True, max_length=max_length, return_tensors="pt")
               for t in texts[:latency_n]]
    pool = (texts * (batch * (batches + 1) // max(len(texts), 1) + 1))[:batch * (batches + 1)]
    groups = [tok(pool[i:i + batch], truncation=True, max_length=max_length, padding=True,
                  return_tensors="pt") for i in range(0, len(pool), batch)]
    with torch.inference_mode():
        for enc in singles[:3]:  # warm-up
            model(**enc)
        times = []
        for enc in singles:
            t0 = time.perf_counter()
            model(**enc)
            times.append(time.perf_counter() - t0)
        model(**groups[0])  # warm-up
        t0 = time.perf_counter()
        for enc in groups[1:]:
            model(**enc)
        elapsed = time.perf_counter() - t0
    return {"params": int(sum(p.numel() for p in model.parameters())),
            "size_mb": _weights_bytes(folder) / 1e6,
            "latency_ms": 1000.0 * statistics.median(times),
            "throughput": batch * (len(groups) - 1) / elapsed,
            "threads": torch.get_num_threads(), "weights_bytes": _weights_bytes(folder),
            "dir": str(folder)}


def efficiency_table(exp: Experiment, out_dir: Path, remeasure: bool = False
                     ) -> tuple[pd.DataFrame | None, str]:
    """Measured (or cached) efficiency rows and a note saying how they were obtained."""
    dirs = model_dirs(exp)
    if not dirs:
        return None, "No saved model folder was found, so nothing was measured."
    cache = out_dir / "efficiency.csv"
    if cache.is_file() and not remeasure:
        cached = pd.read_csv(cache)
        same = (sorted(cached["model"]) == sorted(dirs)
                and all(int(cached.loc[cached["model"] == m, "weights_bytes"].iloc[0])
                        == _weights_bytes(d) for m, d in dirs.items()))
        if same:
            return cached, "Cached measurement from report/efficiency.csv (pass --remeasure to redo it)."
    from kdtune.data import load_splits

    data = exp.cfg.data
    if data.path and not Path(data.path).is_absolute() and not Path(data.path).is_file():
        beside = exp.dir.resolve().parent.parent / data.path  # run from outside the project
        if beside.is_file():
            data = dataclasses.replace(data, path=str(beside))
    try:
        splits = load_splits(data)
    except Exception as exc:  # noqa: BLE001 - e.g. the hub is unreachable; the report goes on
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"Efficiency not measured: the data could not be loaded ({first})."
    texts = splits.test["text"].astype(str).tolist()
    rows = []
    for name in ("teacher", "baseline", "distilled"):
        if name not in dirs:
            continue
        t0 = time.perf_counter()
        try:
            m = measure_model(dirs[name], texts, exp.cfg.data.max_length)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not measure %s in %s: %s", name, dirs[name], exc)
            continue
        log.info("measured %s in %.1f s", name, time.perf_counter() - t0)
        rows.append({"model": name, **m})
    if not rows:
        return None, "Efficiency not measured: no model could be loaded."
    frame = pd.DataFrame(rows)
    teacher = frame[frame["model"] == "teacher"]
    if len(teacher):
        t = teacher.iloc[0]
        frame["speed-up vs teacher"] = t["latency_ms"] / frame["latency_ms"]
        frame["size ratio vs teacher"] = frame["size_mb"] / t["size_mb"]
    atomic_write_csv(cache, frame)
    return frame, "Measured now."


def efficiency_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The measured rows with readable column names and ratios printed as ``1.23x``."""
    out = pd.DataFrame({"model": frame["model"],
                        "params (M)": frame["params"] / 1e6,
                        "size on disk (MB)": frame["size_mb"],
                        "latency (ms/example, batch 1)": frame["latency_ms"],
                        "throughput (examples/s, batch 32)": frame["throughput"]})
    for col in ("speed-up vs teacher", "size ratio vs teacher"):
        if col in frame:
            out[col] = frame[col].map(lambda v: f"{v:.2f}x")
    return out
