"""Build the tabular benchmark: every grid point x seed trained with kdtune's own recipe.

``python -m benchmarks.bench_search --build [--workers 2]`` runs the grid of
:mod:`benchmarks.search.grid` in ``--workers`` processes (one torch thread each). Each run is
``kdtune.recipe.build_trainer`` on ``kdtune.stages.prepare(cfg).trial_data(cfg)``, exactly
what a kdtune trial trains, with a callback that records every rung (``train.eval_every`` 0.25:
progress 0.25, 0.5, ..., 3.0). At every rung it scores the WHOLE validation split itself
(``predict_logits`` + ``classification_metrics``) besides what a search would see there: the
trainer's fixed stratified subset between epoch ends (for eval_every 0.25, and the larger subset
eval_every 0.5 would use, from the same logits), the whole split at epoch ends. That extra
scoring costs time here, never in a replay.

A finished run is appended to the CSV at once (under a file lock); runs already present are
skipped, so a killed build continues where it stopped. The CSV holds metrics only.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.search import grid

ROOT = Path(__file__).resolve().parents[2]


def bench_config(overrides: dict[str, Any] | None = None):
    """The benchmark's ExperimentConfig: the quickstart space with the table's data size."""
    from kdtune.config import load_config

    return load_config(ROOT / grid.BASE_SPACE, {**grid.OVERRIDES, **(overrides or {})})


def done_runs(path: Path) -> set[tuple[float, float, float, int]]:
    """(alpha, T, lr, seed) of every complete run already in the table."""
    if not path.exists():
        return set()
    counts: dict[tuple, int] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (float(row["alpha"]), float(row["temperature"]), float(row["learning_rate"]),
                   int(row["seed"]))
            counts[key] = counts.get(key, 0) + 1
    need = round(grid.EPOCHS / grid.FINEST_EVAL_EVERY)
    return {k for k, n in counts.items() if n >= need}


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append one run's rows (header first on a new file) under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            writer = csv.DictWriter(f, fieldnames=list(grid.COLUMNS))
            if f.tell() == 0:
                writer.writeheader()
            writer.writerows(rows)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Recorder:
    """Trainer callback: one table row per rung, scoring the whole validation split too."""

    def __init__(self, n_train: int, val_labels, label_names: list[str], seed: int):
        from kdtune.batches import stratified_subset
        from kdtune.trainer import intermediate_rows

        c = len(label_names)
        self.label_names = label_names
        self.subsets = {}
        for evals in (4, 2):  # eval_every 0.25 and 0.5
            rows = intermediate_rows(n_train, len(val_labels), evals, c)
            self.subsets[evals] = stratified_subset(val_labels, rows, seed=seed)
        self.rows: list[dict[str, Any]] = []

    def __call__(self, m, trainer) -> None:
        import numpy as np
        import torch

        from kdtune.trainer import classification_metrics, predict_logits

        t0 = time.perf_counter()
        labels = np.asarray(trainer.val_labels)
        if m.full_val:  # the trainer has just scored the whole split: nothing to add
            full, loss, logits = {"macro_f1": m.val_macro_f1, "accuracy": m.val_accuracy}, m.val_loss, None
        else:
            logits = predict_logits(trainer.model, trainer.val, trainer.params.eval_batch_size,
                                    trainer.device)
            full = classification_metrics(labels, logits.argmax(-1), self.label_names)
            log_p = torch.log_softmax(torch.from_numpy(logits), dim=-1)
            loss = float(-log_p[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
        sub = {}
        for evals, index in self.subsets.items():
            on_rung = abs(m.progress * evals - round(m.progress * evals)) < 1e-6
            if m.full_val:
                sub[evals] = (full["macro_f1"], len(labels))
            elif on_rung:
                s = classification_metrics(labels[index], logits[index].argmax(-1), self.label_names)
                sub[evals] = (s["macro_f1"], len(index))
            else:
                sub[evals] = (math.nan, 0)
        if not m.full_val and abs(sub[4][0] - m.val_macro_f1) > 1e-9:
            raise RuntimeError(f"subset F1 {sub[4][0]} != trainer's {m.val_macro_f1}: the table "
                               "would not show what the search sees")
        p = trainer.params
        self.rows.append({
            "alpha": p.alpha, "temperature": p.temperature, "learning_rate": p.learning_rate,
            "seed": p.seed, "progress": round(m.progress, 6), "epoch": m.epoch,
            "full_val": int(m.full_val), "val_macro_f1_full": round(full["macro_f1"], 6),
            "val_accuracy_full": round(full["accuracy"], 6), "val_loss": round(loss, 6),
            "val_macro_f1_rung_e4": round(sub[4][0], 6), "val_rows_e4": sub[4][1],
            "val_macro_f1_rung_e2": round(sub[2][0], 6), "val_rows_e2": sub[2][1],
            "seconds": round(m.seconds, 3), "eval_seconds": round(time.perf_counter() - t0, 3)})


def train_one(data, run: tuple[float, float, float, int]) -> list[dict[str, Any]]:
    """One grid run with kdtune's trial recipe; its rows."""
    import torch

    from kdtune.recipe import build_trainer

    alpha, temperature, lr, seed = run
    rec = Recorder(len(data.train), data.val.labels, data.label_names, seed)
    hparams = {"alpha": alpha, "temperature": temperature, "learning_rate": lr, "seed": seed}
    trainer = build_trainer(hparams, data, callbacks=[rec], device=torch.device("cpu"))
    trainer.fit()
    return rec.rows


def worker(index: int, workers: int, table: Path, limit: int | None) -> None:
    """Train this worker's share of the runs not yet in the table."""
    import torch

    from kdtune.stages import prepare

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    cfg = bench_config()
    data = prepare(cfg, device=torch.device("cpu")).trial_data(cfg)
    todo = [r for i, r in enumerate(grid.runs()) if i % workers == index]
    for n, run in enumerate(todo):
        if limit is not None and n >= limit:
            break
        if run in done_runs(table):
            continue
        t0 = time.perf_counter()
        rows = train_one(data, run)
        append_rows(table, rows)
        print(f"[worker {index}] {run} -> final F1 {rows[-1]['val_macro_f1_full']:.4f} "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)


def build(table: Path = grid.TABLE, workers: int = 2, limit: int | None = None) -> dict[str, Any]:
    """Prepare the teacher once, then train the missing runs in ``workers`` processes."""
    import torch

    from kdtune.stages import prepare

    t0 = time.perf_counter()
    if len(done_runs(table)) >= len(grid.runs()):
        return {"runs": len(done_runs(table)), "runs_this_call": 0, "note": "the table is complete"}
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg = bench_config()
    prep = prepare(cfg, device=torch.device("cpu"))  # fine-tunes and caches the teacher once
    teacher_s = time.perf_counter() - t0
    before = len(done_runs(table))
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.search.build", "--worker", str(i),
                               "--workers", str(workers), "--table", str(table)]
                              + (["--limit", str(limit)] if limit is not None else []), cwd=ROOT)
             for i in range(workers)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a build worker failed (exit codes {codes}); run --build again to resume")
    info = {"runs": len(done_runs(table)), "runs_this_call": len(done_runs(table)) - before,
            "planned_runs": len(grid.runs()), "workers": workers,
            "wall_s_this_call": round(time.perf_counter() - t0, 1),
            "teacher_stage_s": round(teacher_s, 1), "rows": {k: len(v) for k, v in prep.encoded.items()},
            "teacher_val_macro_f1": prep.teacher.metrics.get("val", {}).get("macro_f1"),
            "torch": torch.__version__, "cpu_count": os.cpu_count()}
    log_path = table.with_name("bench_search_build.jsonl")
    with open(log_path, "a") as f:  # one line per (resumed) build call
        f.write(json.dumps(info) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="benchmarks.search.build")
    ap.add_argument("--worker", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table", type=Path, default=grid.TABLE)
    ap.add_argument("--limit", type=int, default=None, help="at most this many runs (timing)")
    a = ap.parse_args(argv)
    worker(a.worker, a.workers, a.table, a.limit)


if __name__ == "__main__":
    main()
