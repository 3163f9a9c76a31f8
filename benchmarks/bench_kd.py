"""Ratio benchmarks: kdtune against the seed-style KD loop, and kdtune's Ray Tune machinery.

``python benchmarks/bench_kd.py [--quick|--full] [--device cpu|cuda] [--out DIR]``

Everything runs in one process on the same data, model pair (fine-tuned 6-layer MiniLM teacher,
2-layer student sliced from it) and hardware, and the targets are ratios measured side by side:

1. seed-style KD epoch (teacher forward in every step, every batch padded to ``max_length`` 150,
   no length grouping; the reference loop is in this file) vs kdtune's KD epoch (cached teacher
   logits, dynamic padding, length-grouped batches): kdtune <= 0.5x.
2. kdtune KD epoch vs kdtune CE-only epoch (alpha = 1, no teacher logits): <= 1.1x.
3. an ASHA search vs the same number of trials run to completion (same seeds and space):
   <= 0.4x the trial-epochs, best macro-F1 no more than 0.5 points lower.
4. Ray Tune overhead: Ray's per-trial ``time_total_s`` vs the trainer's own ``epoch_seconds``
   (training + validation) summed over the trial's epochs: < 10 %.
5. peak RSS of a process doing a trial's work (never loads the teacher) vs one that loads the
   teacher too, and a check that no teacher-sized model is built in the trial.

Rows 1-2 time whole epochs (training + validation), median over ``--repeats`` interleaved
repeats (seed, kdtune KD, kdtune CE, seed, ...), with ``torch.set_num_threads(os.cpu_count())``.
A markdown table goes to stdout and, with a JSON of every raw number, to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import json
import math
import os
import pickle
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: kdtune is beside this folder
    sys.path.insert(0, str(ROOT))

from kdtune.config import ExperimentConfig, load_config  # noqa: E402
from kdtune.data import Encoded, batch_indices  # noqa: E402
from kdtune.losses import kd_loss  # noqa: E402
from kdtune.models import count_parameters, pick_device  # noqa: E402
from kdtune.trainer import Trainer, TrainParams, classification_metrics, seed_everything  # noqa: E402

CACHE_DIR = ROOT / ".cache" / "kdtune"  # shared with kdtune.search: the teacher is tuned once
SEED_PAD = 150  # the seed tokenised with padding='max_length', max_length=150


@dataclass
class Mode:
    """Sizes of one benchmark mode; command-line flags override single fields.

    Data sizes, ``max_length`` and the teacher's fine-tuning come from ``space`` unchanged, so
    the teacher cache it shares with that space's searches (and tests) is reused.
    """

    name: str
    space: str  # the search-space YAML the config derives from
    seed_pad: int  # the seed-style loop pads every batch to this length
    repeats: int
    epochs: int  # epochs per timed run in rows 1-2
    search_trials: int
    search_epochs: int
    reduction_factor: int
    grace_period: int
    anchors: bool
    max_concurrent: int


MODES = {
    # Tiny (smoke.yaml's 160 train / 80 val rows, max_length 64): checks that every row runs;
    # the test uses it. Its timings mean little; the seed-style loop pads to 64 here, not 150.
    # Its search runs without anchors, so that ASHA has trials it may stop among only three.
    "quick": Mode("quick", "search_spaces/smoke.yaml", seed_pad=64, repeats=1, epochs=1,
                  search_trials=3, search_epochs=2, reduction_factor=2, grace_period=1,
                  anchors=False, max_concurrent=2),
    # The quickstart (alpha_temp.yaml): 1200 train / 400 val rows, a 14-trial search.
    "full": Mode("full", "search_spaces/alpha_temp.yaml", seed_pad=SEED_PAD, repeats=3, epochs=1,
                 search_trials=14, search_epochs=3, reduction_factor=3, grace_period=1,
                 anchors=True, max_concurrent=2),
}


@dataclass
class Row:
    """One line of the results table."""

    number: int
    name: str
    reference: str  # the reference measurement, formatted with its unit
    kdtune: str
    ratio: float
    target: str
    passed: bool
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        ratio = f"{self.ratio:.3f}" if math.isfinite(self.ratio) else "nan"
        return [str(self.number), self.name, self.reference, self.kdtune, ratio, self.target,
                "PASS" if self.passed else "FAIL", self.notes]


HEADER = ["#", "benchmark", "reference", "kdtune", "ratio", "target", "result", "notes"]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Configuration and data
# --------------------------------------------------------------------------------------------

def bench_config_dict(mode: Mode, device: torch.device) -> dict[str, Any]:
    """The experiment every row uses, derived from a shipped space with absolute paths."""
    d = load_config(ROOT / mode.space).to_dict()
    d["name"] = f"bench_{mode.name}"
    d["cache_dir"] = str(CACHE_DIR)
    if d["data"].get("path") and not Path(d["data"]["path"]).is_absolute():
        d["data"]["path"] = str((ROOT / d["data"]["path"]).resolve())  # ../shared, never copied
    d["train"]["epochs"] = mode.search_epochs
    d["search"].update(num_samples=mode.search_trials, reduction_factor=mode.reduction_factor,
                       grace_period=mode.grace_period, anchors=mode.anchors,
                       max_concurrent=mode.max_concurrent)
    if device.type == "cuda":  # trials must be given the GPU, or Ray hides it from them
        d["search"]["gpus_per_trial"] = round(1.0 / mode.max_concurrent, 4)
    return d


def write_space(d: dict[str, Any], folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**d, "name": name}, sort_keys=False))
    load_config(path)  # validate now: a bad edit fails here, not inside the search
    return path


def seed_style_loader(texts: Iterable[str], labels: np.ndarray, tokenizer, pad_to: int,
                      batch_size: int, shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    """The seed's batches: tokenised with padding='max_length', a shuffling DataLoader."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=pad_to,
                    return_tensors="pt")
    dataset = torch.utils.data.TensorDataset(enc["input_ids"], enc["attention_mask"],
                                             torch.tensor(np.asarray(labels), dtype=torch.long))
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator)


def dynamic_batches(data: Encoded, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """kdtune's batches (length-grouped, padded per batch) in the seed loop's tuple shape."""
    labels = torch.tensor(np.asarray(data.labels), dtype=torch.long)
    for index in batch_indices(data.lengths, batch_size, shuffle=True, seed=seed):
        b = data.collate(index)
        yield b["input_ids"], b["attention_mask"], labels[index]


# --------------------------------------------------------------------------------------------
# The seed-style reference loop
# --------------------------------------------------------------------------------------------

def autocast(device: torch.device):
    """The same autocast kdtune's trainer uses: bf16 on CUDA, fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_style_train(student: nn.Module, teacher: nn.Module,
                     make_batches, steps_per_epoch: int, val_batches, *, epochs: int, lr: float,
                     alpha: float, temperature: float, clip_norm: float, device: torch.device,
                     label_names: list[str], warmup_fraction: float = 0.1) -> dict[str, Any]:
    """The seed's KD loop: the frozen teacher runs under no_grad in every training step.

    AdamW, OneCycleLR (max_lr = lr, total_steps = batches * epochs, pct_start 0.1, cosine),
    gradient-norm clip 1.0, ``kdtune.losses.kd_loss``; per-step ``.item()`` bookkeeping and a
    validation pass over the seed's padded batches after each epoch. ``make_batches(epoch)``
    yields ``(input_ids, attention_mask, labels)``. Returns per-epoch seconds and metrics.
    """
    student.to(device)
    teacher.to(device).eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    total = steps_per_epoch * epochs
    # The seed's pct_start 0.1; tiny runs need >= 2 warm-up steps for OneCycleLR to interpolate.
    pct = min(max(warmup_fraction, 2.0 / total), 0.5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total,
                                                    pct_start=pct, anneal_strategy="cos")
    epochs_out = []
    for epoch in range(1, epochs + 1):
        sync(device)
        t0 = time.perf_counter()
        student.train()
        total_loss, correct, seen = 0.0, 0, 0
        for input_ids, mask, labels in make_batches(epoch):
            input_ids, mask = input_ids.to(device), mask.to(device)
            labels = labels.to(device)
            with torch.no_grad(), autocast(device):
                teacher_logits = teacher(input_ids=input_ids, attention_mask=mask).logits
            with autocast(device):
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
        metrics = seed_style_evaluate(student, val_batches, device, label_names)
        sync(device)
        epochs_out.append({"epoch": epoch, "seconds": time.perf_counter() - t0,
                           "loss": total_loss / seen, "train_accuracy": correct / seen,
                           "val_accuracy": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"]})
    return {"epochs": epochs_out}


@torch.no_grad()
def seed_style_evaluate(model: nn.Module, batches, device: torch.device,
                        label_names: list[str]) -> dict[str, Any]:
    model.eval()
    preds, gold = [], []
    for input_ids, mask, labels in batches:
        with autocast(device):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        preds.append(logits.argmax(-1).cpu().numpy())
        gold.append(labels.numpy())
    return classification_metrics(np.concatenate(gold), np.concatenate(preds), label_names)


def load_teacher(model_dir: Path, device: torch.device) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(device).eval()


# --------------------------------------------------------------------------------------------
# Rows 1-2: epoch timings
# --------------------------------------------------------------------------------------------

def kdtune_run(prep, params: TrainParams, device: torch.device, teacher_logits) -> dict[str, Any]:
    seed_everything(params.seed)
    model = prep.student_init.build()
    trainer = Trainer(model, prep.encoded["train"], prep.encoded["val"], params, prep.label_names,
                      teacher_logits=teacher_logits, device=device)
    sync(device)
    t0 = time.perf_counter()
    history = trainer.fit()
    sync(device)
    seconds = time.perf_counter() - t0
    return {"seconds_per_epoch": seconds / params.epochs,
            "epoch_seconds": [h.epoch_seconds for h in history],
            "val_macro_f1": history[-1].val_macro_f1, "val_accuracy": history[-1].val_accuracy}


def seed_run(prep, teacher: nn.Module, params: TrainParams, device: torch.device,
             loaders: dict[str, Any], repeat: int) -> dict[str, Any]:
    seed_everything(params.seed)
    student = prep.student_init.build()
    train_loader = loaders["train"]
    train_loader.generator.manual_seed(params.seed * 1000 + repeat)
    out = seed_style_train(
        student, teacher, lambda _epoch: train_loader, len(train_loader), loaders["val"],
        epochs=params.epochs, lr=params.learning_rate, alpha=params.alpha,
        temperature=params.temperature, clip_norm=params.clip_norm, device=device,
        label_names=prep.label_names, warmup_fraction=params.warmup_fraction)
    seconds = sum(e["seconds"] for e in out["epochs"])
    last = out["epochs"][-1]
    return {"seconds_per_epoch": seconds / params.epochs,
            "epoch_seconds": [e["seconds"] for e in out["epochs"]],
            "val_macro_f1": last["val_macro_f1"], "val_accuracy": last["val_accuracy"]}


def warm_up(prep, teacher: nn.Module, loaders: dict[str, Any], device: torch.device) -> None:
    """One untimed forward/backward per batch shape, so first-call costs hit no timed run."""
    student = prep.student_init.build().to(device)
    ids, mask, _ = next(iter(loaders["train"]))
    dyn_ids, dyn_mask, _ = next(dynamic_batches(prep.encoded["train"], len(ids), seed=0))
    for i, m in ((ids, mask), (dyn_ids, dyn_mask)):
        i, m = i.to(device), m.to(device)
        with torch.no_grad(), autocast(device):
            teacher(input_ids=i, attention_mask=m)
        with autocast(device):
            student(input_ids=i, attention_mask=m).logits.float().sum().backward()
    sync(device)
    del student


def epoch_rows(prep, cfg: ExperimentConfig, mode: Mode, device: torch.device) -> list[Row]:
    """Rows 1 and 2, interleaved: seed-style, kdtune KD, kdtune CE, seed-style, ..."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        params = TrainParams.from_dict({**asdict(cfg.train), "epochs": mode.epochs})
        ce_params = TrainParams.from_dict({**asdict(params), "alpha": 1.0})
        teacher = load_teacher(prep.teacher.model_dir, device)
        splits = prep.splits
        loaders = {
            "train": seed_style_loader(splits.train["text"], splits.train["label"].to_numpy(),
                                       prep.teacher_tokenizer, mode.seed_pad, params.batch_size,
                                       shuffle=True, seed=params.seed),
            "val": seed_style_loader(splits.val["text"], splits.val["label"].to_numpy(),
                                     prep.teacher_tokenizer, mode.seed_pad, params.batch_size,
                                     shuffle=False, seed=params.seed)}
        warm_up(prep, teacher, loaders, device)
        runs: dict[str, list[dict[str, Any]]] = {"seed": [], "kd": [], "ce": []}
        logits = prep.teacher.logits["train"]
        for r in range(mode.repeats):
            runs["seed"].append(seed_run(prep, teacher, params, device, loaders, r))
            runs["kd"].append(kdtune_run(prep, params, device, logits))
            runs["ce"].append(kdtune_run(prep, ce_params, device, None))
            print(f"bench_kd: repeat {r + 1}/{mode.repeats}: seed-style "
                  f"{runs['seed'][-1]['seconds_per_epoch']:.2f} s, kdtune KD "
                  f"{runs['kd'][-1]['seconds_per_epoch']:.2f} s, CE "
                  f"{runs['ce'][-1]['seconds_per_epoch']:.2f} s per epoch", flush=True)
        del teacher
    finally:
        torch.set_num_threads(previous_threads)

    def med(name: str, key: str = "seconds_per_epoch") -> float:
        return statistics.median(r[key] for r in runs[name])

    seed_s, kd_s, ce_s = med("seed"), med("kd"), med("ce")
    f1 = {k: med(k, "val_macro_f1") for k in runs}
    pad_mean = float(np.mean(prep.encoded["train"].lengths))
    n = f"median of {mode.repeats}" if mode.repeats > 1 else "1 run"
    if len(splits.train) < 10 * params.batch_size * mode.epochs:
        n += " (too few steps for the F1 to mean much)"
    row1 = Row(1, "KD epoch: seed-style loop vs kdtune Trainer", f"{seed_s:.2f} s", f"{kd_s:.2f} s",
               kd_s / seed_s, "<= 0.5", kd_s / seed_s <= 0.5,
               f"{n}; {mode.epochs} epoch(s) of {len(splits.train)} rows + val {len(splits.val)}; "
               f"seed pads to {mode.seed_pad} (kdtune mean length {pad_mean:.0f}); "
               f"val macro-F1 seed {f1['seed']:.4f} / kdtune {f1['kd']:.4f}",
               raw={"seed": runs["seed"], "kdtune_kd": runs["kd"], "seed_pad": mode.seed_pad,
                    "kdtune_mean_length": pad_mean, "val_macro_f1": f1})
    row2 = Row(2, "kdtune epoch: KD (cached logits) vs CE-only", f"{ce_s:.2f} s (CE)",
               f"{kd_s:.2f} s (KD)", kd_s / ce_s, "<= 1.1", kd_s / ce_s <= 1.1,
               f"{n}; val macro-F1 CE {f1['ce']:.4f} / KD {f1['kd']:.4f}",
               raw={"kdtune_ce": runs["ce"], "kdtune_kd": runs["kd"]})
    return [row1, row2]


# --------------------------------------------------------------------------------------------
# Row 5: peak memory of a trial process (measured in child processes)
# --------------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    Linux: ``VmHWM`` from /proc/self/status, the high-water mark of this program's own address
    space. ``getrusage(RUSAGE_SELF).ru_maxrss`` is kept across fork + exec, so in a child of a
    large process it reports at least the parent's size; it is the fallback elsewhere.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def memory_child(kind: str, inputs_path: str, out_path: str) -> int:
    """Do one trial's work (``kind='trial'``) or it plus the teacher (``'teacher'``); report RSS.

    The trial side is what ``kdtune.trainable.kd_trial`` runs, minus Ray:
    ``kdtune.recipe.build_trainer`` on the search's ``TrialData`` (student built from the
    ``StudentInit``, cached teacher logits), then one epoch. The reference side builds the same
    student, loads the fine-tuned teacher and runs it on every batch, as the seed did.
    """
    from transformers import PreTrainedModel

    from kdtune.recipe import TrialData, build_model, build_trainer

    with open(inputs_path, "rb") as f:
        inp = pickle.load(f)
    torch.set_num_threads(inp["threads"])
    device = torch.device(inp["device"])
    data: TrialData = inp["data"]
    values = {"epochs": 1}
    built: list[int] = []  # parameters of every transformers model constructed from here on
    original = PreTrainedModel.post_init

    def recording_post_init(self: PreTrainedModel) -> None:
        original(self)
        built.append(count_parameters(self))

    PreTrainedModel.post_init = recording_post_init  # type: ignore[method-assign]
    gc.collect()
    baseline = peak_rss_mb()  # imports and the trial's inputs, before any model exists
    t0 = time.perf_counter()
    if kind == "trial":
        trainer = build_trainer(values, data, device=device)
        student = trainer.model
        trainer.fit()
    else:
        params = TrainParams.from_dict({**data.fixed, **values})
        seed_everything(params.seed)
        student = build_model(data, {**data.fixed, **values})
        teacher = load_teacher(Path(inp["teacher_dir"]), device)
        train, val = data.train, data.val
        steps = math.ceil(len(train) / params.batch_size)
        val_labels = torch.tensor(np.asarray(val.labels), dtype=torch.long)

        def val_batches() -> Iterator[tuple[torch.Tensor, ...]]:
            for index in batch_indices(val.lengths, params.eval_batch_size, shuffle=False):
                b = val.collate(index)
                yield b["input_ids"], b["attention_mask"], val_labels[index]

        seed_style_train(student, teacher, lambda e: dynamic_batches(train, params.batch_size, e),
                         steps, val_batches(), epochs=params.epochs, lr=params.learning_rate,
                         alpha=params.alpha, temperature=params.temperature,
                         clip_norm=params.clip_norm, device=device, label_names=data.label_names)
    seconds = time.perf_counter() - t0
    live = [count_parameters(o) for o in gc.get_objects()
            if isinstance(o, PreTrainedModel) and o.base_model is not o]
    out = {"kind": kind, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
           "ru_maxrss_mb": ru_maxrss_mb(),
           "seconds": seconds, "models_built_params": built,
           "max_model_params": max(built + live, default=0), "live_model_params": live,
           "student_params": count_parameters(student)}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    Path(out_path).write_text(json.dumps(out))
    return 0


def memory_row(prep, cfg: ExperimentConfig, device: torch.device, workdir: Path) -> Row:
    threads = max(1, int(cfg.search.cpus_per_trial))
    inputs = {"data": prep.trial_data(cfg), "teacher_dir": str(prep.teacher.model_dir),
              "device": str(device), "threads": threads}
    inputs_path = workdir / "memory_inputs.pkl"
    with open(inputs_path, "wb") as f:
        pickle.dump(inputs, f, protocol=pickle.HIGHEST_PROTOCOL)
    results = {}
    for kind in ("trial", "teacher"):
        out_path = workdir / f"memory_{kind}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", kind,
               str(inputs_path), str(out_path)]
        proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True)
        if proc.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"memory child {kind!r} failed ({proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        results[kind] = json.loads(out_path.read_text())
    trial, teach = results["trial"], results["teacher"]
    teacher_params = int(prep.teacher.metrics.get("params") or 0)
    no_teacher_sized = trial["max_model_params"] < teacher_params
    ratio = trial["peak_rss_mb"] / teach["peak_rss_mb"]
    notes = (f"1 epoch, {threads} thread(s), in child processes; both start at "
             f"~{trial['baseline_rss_mb']:.0f} MB (imports + inputs); largest model built in the "
             f"trial {trial['max_model_params'] / 1e6:.1f}M params vs teacher "
             f"{teacher_params / 1e6:.1f}M: {'no' if no_teacher_sized else 'A'} teacher-sized "
             "model; the reference also runs the teacher on the same batches")
    return Row(5, "peak RSS: trial process vs process with teacher",
               f"{teach['peak_rss_mb']:.0f} MB", f"{trial['peak_rss_mb']:.0f} MB", ratio,
               "< 1, no teacher-sized model", ratio < 1.0 and no_teacher_sized, notes,
               raw={"trial": trial, "teacher_process": teach, "teacher_params": teacher_params})


# --------------------------------------------------------------------------------------------
# Rows 3-4: searches
# --------------------------------------------------------------------------------------------

def run_search(space: Path, results_dir: Path, name: str) -> dict[str, Any]:
    from kdtune import search

    t0 = time.perf_counter()
    rc = search.main(["--space", str(space), "--results-dir", str(results_dir), "--name", name,
                      "--no-report"])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"kdtune.search exited with {rc} for {space}")
    exp = results_dir / name
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    info = json.loads((exp / "run_info.json").read_text())
    return {"trials": trials, "history": history, "info": info, "wall_seconds": wall}


def overhead_stats(history: pd.DataFrame, max_concurrent: int,
                   search_seconds: float) -> dict[str, Any]:
    """Per trial: Ray's time_total_s at its last report vs the sum of the trainer's epochs."""
    per_trial = []
    for tid, h in history.groupby("trial_id"):
        h = h.sort_values("training_iteration")
        bare = float(h["epoch_seconds"].fillna(0).sum())
        ray_s = float(h["time_total_s"].iloc[-1])
        per_trial.append({"trial_id": tid, "epochs": len(h), "ray_time_total_s": ray_s,
                          "bare_epoch_seconds": bare,
                          "first_iter_extra_s": float(h["time_this_iter_s"].iloc[0]
                                                      - h["epoch_seconds"].iloc[0]),
                          "overhead": ray_s / bare - 1 if bare > 0 else math.nan})
    ray_sum = sum(t["ray_time_total_s"] for t in per_trial)
    bare_sum = sum(t["bare_epoch_seconds"] for t in per_trial)
    out: dict[str, Any] = {"per_trial": per_trial, "ray_time_total_s": ray_sum,
                           "bare_epoch_seconds": bare_sum,
                           "overhead": ray_sum / bare_sum - 1 if bare_sum > 0 else math.nan,
                           "median_trial_overhead": statistics.median(
                               t["overhead"] for t in per_trial) if per_trial else math.nan,
                           "search_seconds": search_seconds,
                           "bare_over_concurrency_s": bare_sum / max_concurrent}
    out["wall_overhead"] = search_seconds / out["bare_over_concurrency_s"] - 1
    if "peak_rss_mb" in history:  # reported by trials when kdtune.trainable records it
        out["trial_peak_rss_mb"] = float(history["peak_rss_mb"].max())
    return out


def asha_floor(trials: int, epochs: int, grace: int, rf: int, anchors: int) -> float:
    """Trial-epochs of ideal synchronous successive halving over those of full runs.

    A trial reaches epoch ``t`` with probability ``rf ** -(rungs below t)``; anchors run every
    epoch. Asynchronous ASHA with few trials promotes more, so it stays above this floor.
    """
    rungs, r = [], grace
    while r < epochs:
        rungs.append(r)
        r *= rf
    share = sum(rf ** -sum(1 for g in rungs if g < t) for t in range(1, epochs + 1)) / epochs
    anchors = min(anchors, trials)
    return (anchors + (trials - anchors) * share) / trials


def search_rows(cfg_dict: dict[str, Any], mode: Mode, workdir: Path) -> list[Row]:
    """Row 3 (ASHA vs run-to-completion) and row 4 (Ray overhead, from the completed search)."""
    asha = write_space(cfg_dict, workdir, "bench_asha")
    full = copy.deepcopy(cfg_dict)
    full["search"]["grace_period"] = full["train"]["epochs"]  # one rung at max_t: ASHA never stops
    complete = write_space(full, workdir, "bench_complete")
    results_dir = workdir / "results"
    runs = {"asha": run_search(asha, results_dir, "bench_asha"),
            "complete": run_search(complete, results_dir, "bench_complete")}
    epochs = {k: int(r["trials"]["epochs_run"].sum()) for k, r in runs.items()}
    best = {k: float(r["trials"]["best_val_macro_f1"].max()) for k, r in runs.items()}
    ratio = epochs["asha"] / epochs["complete"]
    drop = 100 * (best["complete"] - best["asha"])  # points of macro-F1 ASHA lost (< 0: gained)
    s = cfg_dict["search"]
    anchor_note = ("the 2 anchors (CE baseline, seed default) are never stopped by AnchoredASHA"
                   if s["anchors"] else "search.anchors: false (no unstoppable anchor trials)")
    n_trials = len(runs["asha"]["trials"])
    n_anchors = len(load_config(asha).anchor_points()) if s["anchors"] else 0
    floor = asha_floor(n_trials, cfg_dict["train"]["epochs"], s["grace_period"],
                       s["reduction_factor"], n_anchors)
    row3 = Row(3, "search trial-epochs: ASHA vs run to completion", f"{epochs['complete']}",
               f"{epochs['asha']}", ratio, "<= 0.4, best F1 >= ref - 0.5 pt",
               ratio <= 0.4 and drop <= 0.5,
               f"{n_trials} trials x {cfg_dict['train']['epochs']} epochs, TPE seed {s['seed']}, "
               f"reduction_factor {s['reduction_factor']}, grace {s['grace_period']} (ideal synchronous "
               f"halving floor {floor:.2f}); {anchor_note}; "
               f"best val macro-F1 ASHA {best['asha']:.4f} / complete {best['complete']:.4f} "
               f"({-drop:+.2f} pt); wall {runs['asha']['info']['search_seconds']:.0f} s / "
               f"{runs['complete']['info']['search_seconds']:.0f} s",
               raw={k: {"trials": r["trials"].drop(columns=["path"], errors="ignore")
                        .to_dict(orient="records"), "run_info": r["info"],
                        "wall_seconds": r["wall_seconds"], "trial_epochs": epochs[k],
                        "best_val_macro_f1": best[k]} for k, r in runs.items()}
               | {"ideal_ratio_floor": floor, "f1_drop_points": drop})
    stats = {k: overhead_stats(r["history"], s["max_concurrent"], r["info"]["search_seconds"])
             for k, r in runs.items()}
    st = stats["complete"]
    row4 = Row(4, "Ray Tune overhead: trial time vs bare training time",
               f"{st['bare_epoch_seconds']:.1f} s bare", f"{st['ray_time_total_s']:.1f} s in Ray",
               st["overhead"], "< 0.10 (overhead)", st["overhead"] < 0.10,
               f"completed search, {len(st['per_trial'])} trials: sum of Ray time_total_s vs sum of "
               "trainer epoch_seconds (train+val); counts all of kd_trial outside the epochs (param "
               "fetch, student build, kdtune's size probe, checkpoint + report), not worker "
               f"start; median trial {st['median_trial_overhead']:+.1%}; "
               f"ASHA search {stats['asha']['overhead']:+.1%}; search wall vs bare/"
               f"{s['max_concurrent']} concurrent {st['wall_overhead']:+.1%}",
               raw=stats)
    return [row3, row4]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_kd.py",
                                description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="tiny data and search: checks every row runs (default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the quickstart's data (1200/400 rows) and a 14-trial search")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"],
                   help="default: kdtune.models.pick_device()")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                   help="folder for the table (.md) and raw numbers (.json)")
    p.add_argument("--repeats", type=int, help="timed repeats of rows 1-2 (median is reported)")
    p.add_argument("--epochs", type=int, help="epochs per timed run in rows 1-2")
    p.add_argument("--seed-pad", type=int, help="padding length of the seed-style loop")
    p.add_argument("--search-trials", type=int, help="trials per search (rows 3-4)")
    p.add_argument("--search-epochs", type=int, help="epochs per trial (rows 3-4)")
    p.add_argument("--reduction-factor", type=int, help="ASHA reduction factor (row 3)")
    p.add_argument("--no-anchors", action="store_true",
                   help="search.anchors: false in rows 3-4 (no unstoppable anchor trials)")
    p.add_argument("--rows", default="1,2,3,4,5",
                   help="which rows to run, e.g. 1,2 on a machine without Ray (default: all)")
    p.add_argument("--data", help="data file instead of the space's data.path (e.g. on a GPU box)")
    p.add_argument("--teacher-model", help="teacher base model (hub name or folder) instead of "
                   "the embedded MiniLM")
    p.add_argument("--memory-child", nargs=3, metavar=("KIND", "INPUTS", "OUT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def resolve_mode(args: argparse.Namespace) -> Mode:
    mode = copy.deepcopy(MODES[args.mode])
    for flag, attr in (("repeats", "repeats"), ("epochs", "epochs"), ("seed_pad", "seed_pad"),
                       ("search_trials", "search_trials"), ("search_epochs", "search_epochs"),
                       ("reduction_factor", "reduction_factor")):
        value = getattr(args, flag)
        if value is not None:
            setattr(mode, attr, value)
    if args.no_anchors:
        mode.anchors = False
    return mode


def note_trial_rss(rows: list[Row]) -> None:
    """Add the peak RSS Ray trials reported themselves (if kdtune.trainable reports it) to row 5."""
    numbers = {r.number for r in rows}
    if not {4, 5} <= numbers:
        return
    searches = next(r for r in rows if r.number == 4).raw
    peaks = {k: v["trial_peak_rss_mb"] for k, v in searches.items() if "trial_peak_rss_mb" in v}
    if peaks:
        row5 = next(r for r in rows if r.number == 5)
        row5.raw["ray_trial_peak_rss_mb"] = peaks
        row5.notes += f"; Ray trials reported peak RSS up to {max(peaks.values()):.0f} MB"


def timed(stages: dict[str, float], name: str, fn, *args: Any) -> Any:
    t = time.perf_counter()
    out = fn(*args)
    stages[name] = time.perf_counter() - t
    print(f"bench_kd: {name} took {stages[name]:.0f} s", flush=True)
    return out


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(device),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from kdtune.pipeline import prepare

    mode = resolve_mode(args)
    device = torch.device(args.device) if args.device else pick_device()
    command = ("python benchmarks/bench_kd.py " + shlex.join(sys.argv[1:]) if argv is None
               else "bench_kd.main(" + repr(list(argv)) + ")")
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    cfg_dict = bench_config_dict(mode, device)
    if args.data:
        cfg_dict["data"]["path"] = str(Path(args.data).resolve())
    if args.teacher_model:
        cfg_dict["teacher"]["model"] = args.teacher_model
    wanted = {int(r) for r in args.rows.split(",") if r.strip()}
    with tempfile.TemporaryDirectory(prefix="kdtune-bench-") as tmp:
        workdir = Path(tmp)
        cfg = load_config(write_space(cfg_dict, workdir, cfg_dict["name"]))
        prep = prepare(cfg)  # the teacher is fine-tuned once and cached in .cache/kdtune
        print(f"bench_kd: {mode.name} mode on {device}: {len(prep.splits.train)} train / "
              f"{len(prep.splits.val)} val rows, teacher cache "
              f"{'hit' if prep.teacher.cache_hit else 'built'}", flush=True)
        stages = {"prepare": time.perf_counter() - t0}
        rows = timed(stages, "rows 1-2", epoch_rows, prep, cfg, mode, device) \
            if wanted & {1, 2} else []
        if 5 in wanted:
            rows.append(timed(stages, "row 5", memory_row, prep, cfg, device, workdir))
        del prep
        gc.collect()
        if wanted & {3, 4}:
            rows += timed(stages, "rows 3-4", search_rows, cfg_dict, mode, workdir)
        rows = [r for r in rows if r.number in wanted]
    rows.sort(key=lambda r: r.number)
    note_trial_rss(rows)
    table = markdown_table(rows)
    info = machine_info(device)
    header = (f"# kdtune benchmark ({mode.name})\n\n- date: {started.isoformat(timespec='seconds')}\n"
              f"- machine: {info['cpu_count']} CPUs, {info['processor']}, {info['platform']}, "
              f"torch {info['torch']}, device {info.get('gpu', info['device'])}\n"
              f"- command: `{command}`\n- runtime: {time.perf_counter() - t0:.0f} s\n")
    print("\n" + header + "\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_kd_{mode.name}.md").write_text(header + "\n" + table + "\n")
    raw = {"date": started.isoformat(), "command": command, "machine": info,
           "mode": asdict(mode), "runtime_seconds": time.perf_counter() - t0,
           "stage_seconds": stages,
           "config": cfg_dict,
           "rows": [{"number": r.number, "name": r.name, "reference": r.reference,
                     "kdtune": r.kdtune, "ratio": r.ratio, "target": r.target,
                     "result": "PASS" if r.passed else "FAIL", "notes": r.notes, "raw": r.raw}
                    for r in rows]}
    (out / f"bench_kd_{mode.name}.json").write_text(
        json.dumps(_finite(raw), indent=1, default=_json_default, allow_nan=False) + "\n")
    print(f"\nbench_kd: wrote {out / f'bench_kd_{mode.name}.md'} and .json", flush=True)
    return 0


def _finite(obj: Any) -> Any:
    """NaN and infinities become null, so the JSON is standard."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
