"""Row 7: kdtune's training step against the physical limit of this machine.

7a. achieved GFLOP/s of the student's KD training step (one epoch of
    ``Trainer.train_steps``, no evaluation; FLOPs counted from the model's shapes and each
    batch's real padded tokens: :mod:`benchmarks.kd.flops`) against a plain ``torch.matmul``
    loop over the step's dominant GEMM shapes on the same thread(s), at kdtune's precision
    (bf16 where the CPU has it; the fp32 loop is reported beside it). The ratio is the share
    of the matmul rate the whole step achieves: target >= 0.5, i.e. at most half of the step
    is spent off the GEMM rate (issue 20 sets no number; this one is the bench's).
7b. the profile of a few steps (:mod:`benchmarks.kd.step_profile`): the time in matmuls as a
    share of the step (target >= 0.5, the same bar seen from inside), every group's share in
    the notes.

The student, data and values are row 6's (one epoch, lr 2e-4, the trial's torch threads);
matmul loops and epochs are interleaved over ``repeats`` and each takes its median. Rates are
per CPU second, as row 6's times (the wall-time share is in the notes); the profile's shares are
of wall time (torch.profiler's clock) at the load printed beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.common import Row, at_least, clocks, load_average, median, say, since, torch_threads
from benchmarks.kd import flops, step_profile
from benchmarks.kd.context import Bench
from benchmarks.kd.row_trainer import VALUES
from kdtune.devices import synchronize

#: Most steps profiled for 7b (a step is ~0.3 s of training at the quickstart's size).
PROFILE_STEPS = 8


def recorded_epoch(bench: Bench) -> dict[str, Any]:
    """One training epoch of a fresh KD trainer, timed, with each batch's (rows, width)."""
    from kdtune.recipe import build_trainer

    trainer = build_trainer({**bench.trial_data.base, **VALUES}, bench.trial_data, device=bench.device)
    shapes: list[tuple[int, int]] = []
    gather = trainer.train.batch

    def recording(index: np.ndarray, index_t: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        batch = gather(index, index_t)
        shapes.append(tuple(batch["input_ids"].shape))
        return batch

    trainer.train.batch = recording
    start = clocks()
    trainer.train_steps(epoch=1)
    synchronize(bench.device)
    seconds = since(start)
    s = flops.Shapes.of(trainer.model.config)
    total = sum(flops.step_flops(s, b, w) for b, w in shapes)
    return {"seconds": seconds, "steps": len(shapes), "flops": total,
            **{c: total / v / 1e9 for c, v in seconds.items()},
            "tokens": [b * w for b, w in shapes], "shapes": s}


def profile(bench: Bench) -> dict[str, Any]:
    from kdtune.recipe import build_trainer

    trainer = build_trainer({**bench.trial_data.base, **VALUES}, bench.trial_data, device=bench.device)
    warm = 1 if trainer.steps_per_epoch < 4 else 2
    steps = max(1, min(PROFILE_STEPS, trainer.steps_per_epoch - warm))
    return step_profile.profile_steps(trainer, steps, warm)


def measure(bench: Bench) -> dict[str, Any]:
    """Epochs and matmul loops (bf16, fp32) interleaved over ``repeats``, then the profile."""
    from kdtune.devices import resolve_precision

    threads = max(1, int(bench.cfg.search.cpus_per_trial))
    runs: dict[str, list[Any]] = {"epoch": [], "bf16": [], "fp32": []}
    with torch_threads(threads):
        first = recorded_epoch(bench)  # untimed warm-up; its batch shapes size the GEMMs
        gemms = flops.gemms(first["shapes"], int(median(first["tokens"])))
        for r in range(bench.mode.repeats):
            runs["epoch"].append(recorded_epoch(bench))
            for dtype in ("bf16", "fp32"):
                runs[dtype].append(flops.matmul_gflops(
                    gemms, torch.bfloat16 if dtype == "bf16" else torch.float32,
                    bench.mode.matmul_seconds))
            say("bench_kd", f"row 7 repeat {r + 1}/{bench.mode.repeats} (CPU time): step "
                f"{runs['epoch'][-1]['cpu']:.1f} GFLOP/s, matmul bf16 {runs['bf16'][-1]['cpu']:.1f}"
                f" / fp32 {runs['fp32'][-1]['cpu']:.1f} GFLOP/s, load {load_average():.1f}")
        prof, load = profile(bench), load_average()
    precision = resolve_precision(bench.device, bench.trial_data.base.get("precision", "auto"))
    return {"runs": runs, "gemms": {f"{m}x{k}x{n}": c for (m, k, n), c in gemms.items()},
            "profile": prof, "precision": precision, "threads": threads,
            "tokens_per_step": median(first["tokens"]), "steps": first["steps"],
            "profile_load": load}


def rows(m: dict[str, Any], how: str) -> list[Row]:
    step = median(r["cpu"] for r in m["runs"]["epoch"])
    rate = {d: median(r["cpu"] for r in m["runs"][d]) for d in ("bf16", "fp32")}
    wall_share = median(r["wall"] for r in m["runs"]["epoch"]) / median(
        r["wall"] for r in m["runs"][m["precision"]])
    prof = m["profile"]
    shares = ", ".join(f"{g} {s:.0%}" for g, s in prof["shares"].items())
    other = ", ".join(f"{k} {v:.1%}" for k, v in list(prof["top_other_ops"].items())[:4])
    raw = {k: v for k, v in m.items() if k != "runs"} | {
        "epochs": [{k: v for k, v in r.items() if k not in ("tokens", "shapes")}
                   for r in m["runs"]["epoch"]],
        "matmul": {d: m["runs"][d] for d in ("bf16", "fp32")}}
    seconds = median(r["seconds"]["cpu"] for r in m["runs"]["epoch"])
    a = at_least(
        "7a", f"student step GFLOP/s: {m['precision']} matmul loop of its GEMM shapes vs the "
        "KD training step", rate[m["precision"]], step, "GFLOP/s", 0.5,
        f"{how}; CPU time: an epoch of {m['steps']} steps in {seconds:.2f} s (median "
        f"{m['tokens_per_step']:.0f} "
        f"padded tokens per step), FLOPs = 3 x forward matmuls incl. attention (benchmarks/kd/"
        f"flops.py); matmul loop bf16 {rate['bf16']:.1f} / fp32 {rate['fp32']:.1f} GFLOP/s, the "
        f"step reaches {step / rate['bf16']:.0%} / {step / rate['fp32']:.0%} of them; on wall "
        f"time {wall_share:.0%} of the {m['precision']} loop", raw)
    per_step = prof["wall_seconds"] / prof["steps"]
    b = at_least(
        "7b", "step profile: step time vs its time in matmuls (torch.profiler, CPU)",
        per_step * 1e3, prof["seconds"]["matmuls"] / prof["steps"] * 1e3, "ms", 0.5,
        f"{prof['steps']} profiled steps (wall time, load {m['profile_load']:.1f}): {shares}; "
        f"costliest other ops: {other}",
        {"profile": prof})
    return [a, b]


def run(bench: Bench) -> list[Row]:
    m = measure(bench)
    how = (f"median of {bench.mode.repeats} interleaved runs" if bench.mode.repeats > 1
           else "1 run") + f", {m['threads']} torch thread(s), kdtune at {m['precision']}"
    return rows(m, how)
