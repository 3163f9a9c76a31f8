"""Efficiency of the saved models, timed with kdtune's one latency protocol (:mod:`kdtune.latency`).

Parameters, weight files on disk, latency and throughput of the teacher, the CE-only baseline
and the distilled student on this machine's CPU, each timed by
``measure_torch(model, encoded test split, DEFAULT)`` (the same numbers a trial, the model card
and ``kdtune.export`` give). Cached in ``report/efficiency.csv`` while the weights and the
protocol are unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kdtune.record import Experiment
from kdtune.record import record as R
from kdtune.report.outputs import Outputs

if TYPE_CHECKING:  # kdtune.latency imports torch: only when something is measured
    from kdtune.latency import Protocol

log = logging.getLogger("kdtune.report")

WEIGHT_SUFFIXES = (".safetensors", ".bin")
MODELS = ("teacher", "baseline", "distilled")
CACHE = "efficiency.csv"


def _resolve_dir(path: str | None, exp: Experiment) -> Path | None:
    """A model folder recorded relative to the experiment (the kept teacher), or, by older
    records, to the search's working directory, found from here."""
    if not path:
        return None
    p = Path(path)
    # older records: relative to where the search ran, usually the project root, which is also
    # the parent of results/ when the report runs from elsewhere
    candidates = [p] if p.is_absolute() else [exp.dir / p, p, exp.dir.resolve().parent.parent / p]
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def model_dirs(exp: Experiment) -> dict[str, Path]:
    """Saved folders of teacher, baseline and distilled student (a remote record's are fetched)."""
    found = (exp.evaluation or {}).get("models") or {}
    out: dict[str, Path] = {}
    for name in MODELS:
        recorded = (found.get(name) or {}).get("dir")
        if name == "teacher" and recorded is None and exp.info.get("teacher_dir"):
            recorded = str(Path(exp.info["teacher_dir"]) / "model")
        folder = _resolve_dir(recorded, exp)
        if folder is None and name != "teacher":
            folder = _resolve_dir(str(exp.dir / R.MODELS / name), exp) or _fetch(exp, name)
        if folder is not None:
            out[name] = folder
    return out


def _fetch(exp: Experiment, name: str) -> Path | None:
    """``models/<name>`` of a record on object storage, copied into its working folder."""
    store, rel = exp.record.store, f"{R.MODELS}/{name}"
    if not store.remote or not store.is_file(f"{rel}/config.json"):
        return None
    return store.download(rel, exp.dir / R.MODELS / name)


def weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def protocol_fields() -> tuple[str, ...]:
    """The fields of :class:`kdtune.latency.Protocol` (stored beside each measurement)."""
    from kdtune.latency import Protocol

    return tuple(f.name for f in dataclasses.fields(Protocol))


def measure_model(folder: Path, test: pd.DataFrame, max_length: int,
                  protocol: Protocol) -> dict[str, Any]:
    """Parameters, weights size, latency and throughput of one saved model on the CPU."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from kdtune.batches import encode
    from kdtune.latency import measure_torch

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to("cpu").eval()
    pairs = test["text_pair"].astype(str).tolist() if "text_pair" in test else None
    data = encode(test["text"].astype(str).tolist(), test["label"].to_numpy(), tok, max_length, pairs)
    m = measure_torch(model, data, protocol)
    return {"params": int(sum(p.numel() for p in model.parameters())),
            "size_mb": weights_bytes(folder) / 1e6, "latency_ms": m["latency_ms"],
            "throughput": m.get("throughput"), "test_rows": len(data),
            **{k: m[k] for k in protocol_fields()}, "device": m["device"],
            "weights_bytes": weights_bytes(folder), "dir": str(folder)}


def _cached(cache: Path, dirs: dict[str, Path], protocol: Protocol) -> pd.DataFrame | None:
    """The cached rows when they measured the same weights under the same protocol."""
    if not cache.is_file():
        return None
    cached = pd.read_csv(cache)
    fields = protocol_fields()
    if any(c not in cached for c in ("model", "weights_bytes", *fields)):
        return None
    if sorted(cached["model"]) != sorted(dirs):
        return None
    by_model = cached.set_index("model")
    same = all(int(by_model.loc[m, "weights_bytes"]) == weights_bytes(d) for m, d in dirs.items())
    same_protocol = all(int(by_model[f].iloc[0]) == getattr(protocol, f) for f in fields)
    return cached if same and same_protocol else None


def _without_models(cache: Path) -> tuple[pd.DataFrame | None, str]:
    """A record kept without its weights (results/example): its earlier measurement, said as
    such, since nothing is here to re-measure or to check it against."""
    cached = pd.read_csv(cache) if cache.is_file() else None
    if cached is None or "model" not in cached or cached.empty:
        return None, "No saved model folder was found, so nothing was measured."
    return cached, ("Measured when the record still had its model folders (report/efficiency.csv); "
                    "they are not here, so it is shown as measured then, not re-measured or "
                    "checked against the weights.")


def _test_split(exp: Experiment) -> pd.DataFrame:
    """The held-out test split, the data file found from the project root or beside results/."""
    from kdtune.data import load_splits

    data = exp.cfg.data
    if data.path and not Path(data.path).is_absolute() and not Path(data.path).is_file():
        beside = exp.dir.resolve().parent.parent / data.path  # run from outside the project
        if beside.is_file():
            data = dataclasses.replace(data, path=str(beside))
    return load_splits(data).test


def efficiency_table(exp: Experiment, out: Outputs, remeasure: bool = False,
                     protocol: Protocol | None = None) -> tuple[pd.DataFrame | None, str]:
    """Measured (or cached) efficiency rows and a note saying how they were obtained."""
    from kdtune.latency import DEFAULT

    protocol = protocol or DEFAULT
    dirs = model_dirs(exp)
    if not dirs:
        return _without_models(out.path(CACHE))
    cached = None if remeasure else _cached(out.path(CACHE), dirs, protocol)
    if cached is not None:
        return cached, "Cached measurement from report/efficiency.csv (pass --remeasure to redo it)."
    try:
        test = _test_split(exp)
    except Exception as exc:  # noqa: BLE001 - e.g. the hub is unreachable; the report goes on
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"Efficiency not measured: the data could not be loaded ({first})."
    rows = []
    for name, folder in dirs.items():
        t0 = time.perf_counter()
        try:
            rows.append({"model": name, **measure_model(folder, test, exp.cfg.data.max_length,
                                                          protocol)})
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not measure %s in %s: %s", name, folder, exc)
            continue
        log.info("measured %s in %.1f s", name, time.perf_counter() - t0)
    if not rows:
        return None, "Efficiency not measured: no model could be loaded."
    frame = pd.DataFrame(rows)
    teacher = frame[frame["model"] == "teacher"]
    if len(teacher):
        frame["speed-up vs teacher"] = teacher["latency_ms"].iloc[0] / frame["latency_ms"]
        frame["size ratio vs teacher"] = frame["size_mb"] / teacher["size_mb"].iloc[0]
    out.csv(CACHE, frame)
    return frame, "Measured now."


def efficiency_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The measured rows with readable column names and ratios printed as ``1.23x``."""
    batch = int(frame["throughput_batch"].iloc[0])
    out = pd.DataFrame({"model": frame["model"], "params (M)": frame["params"] / 1e6,
                        "size on disk (MB)": frame["size_mb"],
                        "latency (ms/example, batch 1)": frame["latency_ms"],
                        f"throughput (examples/s, batch {batch})": frame["throughput"]})
    for col in ("speed-up vs teacher", "size ratio vs teacher"):
        if col in frame:
            out[col] = frame[col].map(lambda v: f"{v:.2f}x")
    return out


def protocol_note(frame: pd.DataFrame) -> str:
    """What the numbers measure, from the protocol they were measured with."""
    p = {f: int(frame[f].iloc[0]) for f in protocol_fields()}
    rows = int(frame["test_rows"].iloc[0])
    n = min(rows, max(p["examples"], p["throughput_batch"] * (p["throughput_batches"] + 1)))
    timed = max(0, min(n // p["throughput_batch"], p["throughput_batches"] + 1) - 1)
    return (f"Timed with kdtune's latency protocol (`kdtune.latency`, the one trials, the model "
            f"card and `kdtune.export` use): model forward pass only, test texts tokenised "
            f"beforehand, {p['threads']} CPU thread(s). Latency is the median over "
            f"{min(p['examples'], rows)} test rows at batch 1 (evenly spaced over the split sorted "
            f"by length) after {p['warmup']} warm-up calls; throughput is over {timed} timed "
            f"batch(es) of {p['throughput_batch']} rows after one untimed batch. Size is the weight "
            "files on disk. On a shared machine these numbers are noisy; compare ratios, not "
            "absolutes.")
