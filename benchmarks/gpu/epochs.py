"""Performance rows: a student's epoch and the teacher's logits pass, kdtune against the seed.

Rows 2a-2d: one epoch of the same synthetic rows, seed-style (``benchmarks.reference``:
teacher forward every step, every batch padded to 150) in fp32 as the seed ran and with bf16
autocast (``amp=True``), against kdtune's Trainer (cached logits, length-grouped batches on the
device, bf16 autocast): the fp32 row is the whole gain, the bf16 row kdtune's own at one
precision. Rows 3a-3b: caching the teacher's logits, ``predict_logits`` against the
seed-style teacher forwards, again at both precisions. Each run's tokens/s (real tokens) and
achieved TFLOP/s (:func:`benchmarks.gpu.shapes.flops`) are in the notes and the JSON.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from benchmarks import reference
from benchmarks.common import at_least, at_most, median, timed
from benchmarks.gpu.context import Ctx
from benchmarks.gpu.kd import cache_logits, kdtune_epoch, make_trainer
from benchmarks.gpu.probes import PeakMemory, free
from benchmarks.gpu.shapes import (
    FORWARD,
    TRAIN,
    batch_widths,
    build_model,
    count_parameters,
    flops,
    shape_of,
    synthetic_split,
    vocab_of,
)
from kdtune.batches import Encoded, batch_indices
from kdtune.devices import inference_batch_size, precision
from kdtune.params import TrainParams

PAIRS = (("2a", "2b", "minilm-2", "minilm-6", "2-layer MiniLM slice, 6-layer MiniLM teacher"),
         ("2c", "2d", "distilbert-base", "bert-base", "DistilBERT-base student, BERT-base teacher"))
SEED_RUNS = (("seed_fp32", False), ("seed_bf16", True))


def seed_style_run(student: torch.nn.Module, teacher: torch.nn.Module, train: Encoded,
                   params: TrainParams, ctx: Ctx, seed: int, amp: bool,
                   meter: PeakMemory) -> dict[str, Any]:
    """A seed-style epoch over ``train``; every step has the same shape (150 wide), so a run
    longer than ``seed_run_seconds`` is timed over its first steps and extrapolated."""
    sizes, device = ctx.sizes, ctx.device
    batches = reference.loader(train, params.batch_size, shuffle=True, seed=seed)
    kw = {"alpha": params.alpha, "temperature": params.temperature, "clip_norm": params.clip_norm,
          "device": device, "amp": amp}
    opt, sched = reference.optimizer_and_schedule(student, params.learning_rate, sizes.warmup_steps + 1)
    warm = reference.train_epoch(student, teacher, batches, opt, sched, max_steps=sizes.warmup_steps, **kw)
    per_step = warm["seconds"] / max(warm["steps"], 1)
    steps = len(batches)
    cap = max(sizes.warmup_steps, int(sizes.seed_run_seconds / per_step)) if per_step > 0 else steps
    meter.reset()
    opt, sched = reference.optimizer_and_schedule(student, params.learning_rate, steps)
    run = reference.train_epoch(student, teacher, batches, opt, sched, max_steps=min(cap, steps), **kw)
    epoch_seconds = run["seconds"] * len(train) / max(run["examples"], 1)
    return {**run, "epoch_seconds": epoch_seconds, "extrapolated": run["steps"] < steps,
            "examples_per_s": run["examples"] / run["seconds"], "peak_mb": meter.peak_mb()}


def kdtune_style_run(student: torch.nn.Module, train: Encoded, logits: np.ndarray,
                     params: TrainParams, device: torch.device, sizes: Any,
                     meter: PeakMemory) -> dict[str, Any]:
    warm = make_trainer(student, train, logits, params, device)
    kdtune_epoch(warm, max_steps=sizes.warmup_steps)
    del warm
    meter.reset()
    run = kdtune_epoch(make_trainer(student, train, logits, params, device))
    return {**run, "epoch_seconds": run["seconds"], "examples_per_s": run["examples"] / run["seconds"],
            "peak_mb": meter.peak_mb()}


def work(student: torch.nn.Module, teacher: torch.nn.Module, train: Encoded,
         params: TrainParams) -> dict[str, float]:
    """FLOPs of one epoch: useful (the student trained on real tokens) and as executed by each
    loop (seed-style: student and teacher at 150; kdtune: the trainer's own batches' widths)."""
    s, t, lengths = shape_of(student), shape_of(teacher), train.lengths
    seed_w = np.full(len(train), reference.SEED_MAX_LENGTH)
    kd_batches = batch_indices(lengths, params.batch_size, shuffle=True, seed=params.seed * 1000 + 1,
                               group_by_length=params.group_by_length)  # as Trainer epoch 1
    return {"tokens": float(train.tokens), "useful": flops(s, lengths, TRAIN),
            "seed_executed": flops(s, seed_w, TRAIN) + flops(t, seed_w, FORWARD),
            "kdtune_executed": flops(s, batch_widths(lengths, kd_batches), TRAIN)}


def _rates(seconds: float, w: dict[str, float], executed: str) -> dict[str, float]:
    return {"tokens_per_s": w["tokens"] / seconds, "useful_tflops": w["useful"] / seconds / 1e12,
            "executed_tflops": w[executed] / seconds / 1e12}


def _pair_runs(ctx: Ctx, student_name: str, teacher_name: str, meter: PeakMemory
               ) -> tuple[dict[str, list[dict[str, Any]]], Encoded, dict[str, float]]:
    params = TrainParams(epochs=1)
    teacher = build_model(teacher_name, ctx.tiny, seed=1).to(ctx.device).eval()
    train = synthetic_split(ctx.sizes.train_rows, vocab_of(teacher), seed=0)
    logits = cache_logits(teacher, train, params, ctx.device)  # untimed here: rows 3 time it
    runs: dict[str, list[dict[str, Any]]] = {"seed_fp32": [], "seed_bf16": [], "kdtune": []}
    for r in range(ctx.sizes.repeats):
        for key, amp in SEED_RUNS:
            teacher.to(ctx.device)
            student = build_model(student_name, ctx.tiny, seed=0).to(ctx.device)
            runs[key].append(seed_style_run(student, teacher, train, params, ctx, r, amp, meter))
        teacher.to("cpu")  # kdtune's trial never holds the teacher
        student = build_model(student_name, ctx.tiny, seed=0).to(ctx.device)
        runs["kdtune"].append(kdtune_style_run(student, train, logits, params, ctx.device,
                                               ctx.sizes, meter))
    w = work(student, teacher, train, params)
    del teacher, student
    free(ctx.device)
    return runs, train, w


def _summary(runs: list[dict[str, Any]], w: dict[str, float], executed: str) -> dict[str, float]:
    seconds = median(r["epoch_seconds"] for r in runs)
    return {"seconds": seconds, **_rates(seconds, w, executed),
            "peak_mb": median(r["peak_mb"] for r in runs)}


def _perf(label: str, s: dict[str, float]) -> str:
    return (f"{label} {s['tokens_per_s']:.0f} tokens/s, {s['useful_tflops']:.3g} useful / "
            f"{s['executed_tflops']:.3g} executed TFLOP/s")


def row_epochs(ctx: Ctx) -> None:
    """Rows 2a-2d: per pair, seed-style fp32 and bf16 against kdtune; memory kept for 5a."""
    meter = PeakMemory(ctx.device)
    for fp32_id, bf16_id, student_name, teacher_name, label in PAIRS:
        label = f"{label} (tiny stand-ins)" if ctx.tiny else label
        runs, train, w = _pair_runs(ctx, student_name, teacher_name, meter)
        s = {k: _summary(v, w, "kdtune_executed" if k == "kdtune" else "seed_executed")
             for k, v in runs.items()}
        cut = (", timed over its first steps and extrapolated (constant step shape)"
               if any(r["extrapolated"] for k in ("seed_fp32", "seed_bf16") for r in runs[k]) else "")
        how = f"median of {ctx.sizes.repeats}" if ctx.sizes.repeats > 1 else "1 run"
        common = (f"{how}; one "
                  f"epoch of {len(train)} synthetic rows (AG News lengths, mean "
                  f"{train.lengths.mean():.0f} tokens), batch 32; seed-style: teacher forward each "
                  f"step, padded to {reference.SEED_MAX_LENGTH} ({reference.padding_share(train):.0%} "
                  f"padding){cut}; kdtune: cached logits, length-grouped batches built on the device, "
                  f"{precision(ctx.device)}; ")
        raw = {"runs": runs, "work_flops": w, "summary": s, "student": student_name,
               "teacher": teacher_name, "mean_length": float(train.lengths.mean())}
        ctx.emit(at_most(fp32_id, f"student epoch: seed-style fp32 vs kdtune, {label}",
                         s["seed_fp32"]["seconds"], s["kdtune"]["seconds"], "s", 0.3,
                         common + _perf("seed fp32", s["seed_fp32"]) + "; "
                         + _perf("kdtune", s["kdtune"]), raw))
        ctx.emit(at_most(bf16_id, f"student epoch: seed-style bf16 autocast vs kdtune (one "
                         f"precision: kdtune's own gain), {label}", s["seed_bf16"]["seconds"],
                         s["kdtune"]["seconds"], "s", 0.5,
                         common + _perf("seed bf16", s["seed_bf16"]), {"summary": s}))
        ctx.state[f"memory_{student_name}"] = {k: v["peak_mb"] for k, v in s.items()}


def _seed_teacher(ctx: Ctx, teacher: torch.nn.Module, amp: bool) -> dict[str, Any]:
    data = synthetic_split(ctx.sizes.seed_teacher_rows, vocab_of(teacher), seed=8)
    batches = reference.loader(data, 32, shuffle=False)
    reference.teacher_pass(teacher, batches, ctx.device, amp=amp, max_steps=ctx.sizes.warmup_steps)
    out = reference.teacher_pass(teacher, batches, ctx.device, amp=amp)
    seed_w = np.full(out["examples"], reference.SEED_MAX_LENGTH)
    return {**out, "tokens": float(data.lengths[:out["examples"]].sum()),
            "executed_tflops": flops(shape_of(teacher), seed_w, FORWARD) / out["seconds"] / 1e12}


def row_cache(ctx: Ctx) -> None:
    """Rows 3a-3b: examples/s of caching BERT-base logits, seed-style fp32 / bf16 vs kdtune."""
    params = TrainParams()
    teacher = build_model("bert-base", ctx.tiny, seed=1).to(ctx.device).eval()
    data = synthetic_split(ctx.sizes.cache_rows, vocab_of(teacher), seed=7)
    cache_logits(teacher, data.subset(np.arange(min(len(data), 1024))), params, ctx.device)  # warm-up
    _, kd_s = timed(partial(cache_logits, teacher, data, params, ctx.device), ctx.device)
    batch = inference_batch_size(ctx.device, params.eval_batch_size)
    kd = {"seconds": kd_s, "rows": len(data), "examples_per_s": len(data) / kd_s,
          "tokens_per_s": data.tokens / kd_s,
          "useful_tflops": flops(shape_of(teacher), data.lengths, FORWARD) / kd_s / 1e12}
    tiny = ", tiny stand-in" if ctx.tiny else ""
    for rid, amp in (("3a", False), ("3b", True)):
        seed = _seed_teacher(ctx, teacher, amp)
        seed_x = seed["examples"] / seed["seconds"]
        what = "bf16 autocast" if amp else "fp32"
        ctx.emit(at_least(
            rid, f"caching teacher logits: seed-style {what} forwards vs kdtune (BERT-base{tiny})",
            seed_x, kd["examples_per_s"], "examples/s", 2.0 if amp else 5.0,
            f"kdtune: predict_logits over {len(data)} rows, batches of {batch} by a token budget, "
            f"{precision(ctx.device)}, upload included, {kd['tokens_per_s']:.0f} tokens/s, "
            f"{kd['useful_tflops']:.3g} TFLOP/s; seed-style: {seed['examples']} rows in batches of "
            f"32 padded to {reference.SEED_MAX_LENGTH}, {what}, {seed['executed_tflops']:.3g} "
            f"executed TFLOP/s; {count_parameters(teacher) / 1e6:.0f}M parameters",
            {"kdtune": kd, "seed": seed, "batch": batch}))
    del teacher
    free(ctx.device)
