"""Performance rows 4a-4b: trials per hour with 1, 4 and 8 concurrent trial processes.

Each process is one fractional-GPU trial slot, as Ray runs them: it builds a DistilBERT-base
student from its config and trains it for a fixed number of steps through kdtune's Trainer
(cached logits), trial after trial. Processes are started (spawned on CUDA; on the CPU from a
fork server that imported torch, transformers and kdtune once, :mod:`benchmarks.gpu.preload`),
warmed up, then released together per round. The parent checks every worker is alive while
it waits (a dead one fails the row at once with its exit code) and never waits past the
overall deadline. Each trial reports its peak GPU memory (allocated and reserved); the
utilisation sampler adds nvidia-smi's memory per process (CUDA context included).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from benchmarks.common import at_least, median, say
from benchmarks.gpu.context import Ctx, Sizes
from benchmarks.gpu.kd import kdtune_epoch, make_trainer, random_logits
from benchmarks.gpu.probes import PeakMemory, UtilSampler
from benchmarks.gpu.shapes import build_model, model_config, synthetic_split
from kdtune.params import TrainParams

PROG = "bench_gpu"
STUDENT = "distilbert-base"
LIVE: set[Any] = set()  # worker processes now running: the watchdog stops them
#: On CUDA every trial process starts fresh (spawn): a fork server that imported transformers
#: may have asked the CUDA runtime for its devices, and a process forked after that can fail
#: to initialise CUDA (PyTorch's PYTORCH_NVML_BASED_CUDA_CHECK note). On the CPU the fork
#: server imports once for all trial processes, which keeps the tiny CPU test short.
START_METHOD = {"cuda": "spawn", "cpu": "forkserver"}


def stop_all() -> None:
    for p in list(LIVE):
        if p.is_alive():
            p.terminate()
        LIVE.discard(p)


def one_trial(tiny: bool, train: Any, logits: np.ndarray, device: torch.device,
              seed: int) -> dict[str, Any]:
    """The fixed trial: build the student, train one epoch, free it (as kd_trial ends)."""
    meter = PeakMemory(device)
    meter.reset()
    t0 = time.perf_counter()
    student = build_model(STUDENT, tiny, seed=seed).to(device)
    run = kdtune_epoch(make_trainer(student, train, logits, TrainParams(epochs=1), device))
    out = {"seconds": time.perf_counter() - t0, "train_seconds": run["seconds"],
           "steps": run["steps"], "peak_mb": meter.peak_mb(), "reserved_mb": meter.reserved_mb()}
    del student
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def trial_worker(rank: int, conn: Any, events: list[Any], device_name: str, tiny: bool,
                 sizes_dict: dict[str, Any]) -> None:
    """One process = one trial slot: a warm-up trial, then rounds on the parent's signal."""
    sizes = Sizes(**{**sizes_dict, "concurrency": tuple(sizes_dict["concurrency"])})
    torch.set_num_threads(1)
    device = torch.device(device_name)
    vocab = int(model_config(STUDENT, tiny).vocab_size)
    train = synthetic_split(sizes.trial_steps * TrainParams().batch_size, vocab, seed=100 + rank)
    logits = random_logits(len(train), rank)
    try:
        conn.send(("ready", one_trial(tiny, train, logits, device, seed=0)))
        while (msg := conn.recv())[0] != "stop":
            _, round_index, n_trials = msg
            conn.send(("armed",))
            events[round_index].wait()
            t0 = time.perf_counter()
            results = [one_trial(tiny, train, logits, device, rank * 100 + i) for i in range(n_trials)]
            conn.send(("done", results, time.perf_counter() - t0))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the row
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def receive(conn: Any, proc: Any, expect: str, timeout: float, poll: float = 0.5) -> tuple:
    """The next message of one worker, checking all the while that it is alive."""
    end = time.monotonic() + timeout
    while not conn.poll(poll):
        if not proc.is_alive() and not conn.poll(0):
            raise RuntimeError(f"trial process {proc.name} died (exit code {proc.exitcode}) "
                               f"before sending {expect!r}")
        if time.monotonic() > end:
            raise TimeoutError(f"no {expect!r} from trial process {proc.name} within {timeout:.0f} s")
    msg = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"trial process {proc.name} failed: {msg[1]}")
    if msg[0] != expect:
        raise RuntimeError(f"trial process {proc.name} sent {msg[0]!r}, expected {expect!r}")
    return msg


def _start(ctx: Ctx, events: list[Any], n: int, mpctx: Any) -> list[tuple[Any, Any]]:
    workers = []
    for rank in range(n):
        parent, child = mpctx.Pipe()
        p = mpctx.Process(target=trial_worker, name=f"trial-{rank}", daemon=True,
                          args=(rank, child, events, str(ctx.device), ctx.tiny, asdict(ctx.sizes)))
        p.start()
        LIVE.add(p)
        workers.append((p, parent))
    return workers


def _round(ctx: Ctx, workers: list[tuple[Any, Any]], events: list[Any], i: int, n: int,
           sampler: UtilSampler) -> dict[str, Any]:
    for _, c in workers[:n]:
        c.send(("run", i, ctx.sizes.trials_per_worker))
    for p, c in workers[:n]:
        receive(c, p, "armed", min(60.0, ctx.deadline.left()))
    sampler.start(f"c{n}")
    t0 = time.perf_counter()
    events[i].set()
    done = [receive(c, p, "done", ctx.deadline.left()) for p, c in workers[:n]]
    wall = time.perf_counter() - t0
    sampler.stop()
    trials = [t for d in done for t in d[1]]
    smi = sampler.process_mb.get(f"c{n}", {})
    return {"processes": n, "trials": len(trials), "wall_seconds": wall,
            "trials_per_hour": 3600 * len(trials) / wall,
            "trial_seconds": median(t["seconds"] for t in trials),
            "peak_mb": max(t["peak_mb"] for t in trials),
            "reserved_mb": max(t["reserved_mb"] for t in trials),
            "smi_process_mb": max(smi.values()) if smi else None, "smi_processes": len(smi),
            "utilisation": sampler.mean(f"c{n}"),
            "utilisation_samples": len(sampler.samples.get(f"c{n}", []))}


def run_rounds(ctx: Ctx) -> dict[int, dict[str, Any]]:
    """Spawn the largest round's processes, warm them up, run each round; always clean up."""
    mpctx = mp.get_context(START_METHOD[ctx.device.type])
    if mpctx.get_start_method() == "forkserver":
        mpctx.set_forkserver_preload(["benchmarks.gpu.preload"])
    events = [mpctx.Event() for _ in ctx.sizes.concurrency]
    sampler = UtilSampler(ctx.device, ctx.sizes.util_interval_s)
    workers: list[tuple[Any, Any]] = []
    clean = False
    try:
        workers = _start(ctx, events, max(ctx.sizes.concurrency), mpctx)
        warm = [receive(c, p, "ready", ctx.deadline.left())[1] for p, c in workers]
        rounds = {}
        for i, n in enumerate(ctx.sizes.concurrency):
            rounds[n] = _round(ctx, workers, events, i, n, sampler)
            say(PROG, f"row 4: {n} concurrent: {rounds[n]['trials_per_hour']:.0f} trials/h, "
                f"utilisation {rounds[n]['utilisation']:.0f} %")
        for _, c in workers:
            c.send(("stop",))
        clean = True
    finally:
        sampler.close()
        for p, _ in workers:  # stopped workers exit by themselves; on an error or the
            p.join(timeout=5 if clean else 0)  # deadline they are terminated at once
        stop_all()
    ctx.state["concurrency"] = {"rounds": rounds, "warm_trial": warm[0], "sampler": sampler.source,
                                "interval": ctx.sizes.util_interval_s}
    return rounds


def row_concurrency(ctx: Ctx) -> None:
    rounds = run_rounds(ctx)
    one, sizes = rounds[ctx.sizes.concurrency[0]], ctx.sizes
    for rid, n in zip(("4a", "4b"), sizes.concurrency[1:], strict=False):
        r = rounds[n]
        ctx.emit(at_least(
            rid, f"trials per hour: 1 trial vs {n} concurrent trial processes (DistilBERT-base)",
            one["trials_per_hour"], r["trials_per_hour"], "trials/h", n / 2,
            f"fixed trial: DistilBERT-base student built from its config, one epoch of "
            f"{sizes.trial_steps} batches of 32 (kdtune's Trainer, cached logits), build included; "
            f"each of {n} trial processes (1 torch thread) runs {sizes.trials_per_worker} back to "
            f"back after a warm-up trial; median trial {one['trial_seconds']:.2f} s alone, "
            f"{r['trial_seconds']:.2f} s with {n}; target: at least half of linear scaling",
            {"rounds": rounds}))
