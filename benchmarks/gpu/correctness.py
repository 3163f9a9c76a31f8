"""Correctness rows, run before any timing: what must be right on a GPU before speed matters.

1a host syncs per training step, 1b a checkpoint round trip, 1c feature KD with caches on
``cuda`` / ``cuda:0`` / the host, 1d ``latency.measure_torch`` on CUDA. Rows 1e-1g (hidden
states, bf16 vs fp32 logits, KD loss trajectories) are in :mod:`benchmarks.gpu.precision`.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import reference
from benchmarks.gpu.checks import Planned, verdict
from benchmarks.gpu.context import Ctx
from benchmarks.gpu.kd import make_trainer, random_logits
from benchmarks.gpu.probes import SyncCounter
from benchmarks.gpu.shapes import build_model, synthetic_split, vocab_of
from kdtune.batches import Encoded
from kdtune.feature_kd import FeatureKD, RaggedStates
from kdtune.latency import Protocol, measure_torch
from kdtune.params import TrainParams

PLAN = {
    "1a": Planned("1a", "host syncs per training step: seed-style loop vs kdtune's Trainer "
                        "(DistilBERT-base student)",
                  "kdtune's own <= 1 per nan_check_every steps"),
    "1b": Planned("1b", "checkpoint round trip on the device: weights, logits, step, lr",
                  "all identical"),
    "1c": Planned("1c", "feature KD, hidden-state cache on cuda / cuda:0 / host: rows gathered, "
                        "syncs per step", "identical rows; 0 syncs on cuda and cuda:0"),
    "1d": Planned("1d", "latency.measure_torch on CUDA (BERT-base, batch 1)",
                  "runs on cuda, finite"),
}


def _student_split(ctx: Ctx, name: str, batches: int, seed: int) -> tuple[torch.nn.Module, Encoded]:
    student = build_model(name, ctx.tiny, seed=0)
    return student, synthetic_split(batches * TrainParams().batch_size, vocab_of(student), seed)


def count_kdtune_syncs(trainer: Any, steps: int, toggle: Any = None) -> SyncCounter:
    """Syncs of ``steps`` of kdtune's training steps (after 2 warm-up steps in epoch 1)."""
    trainer.train_steps(1, max_steps=2)  # cuBLAS handles, kernels, the allocator
    counter = SyncCounter() if toggle is None else SyncCounter(toggle)
    with counter:
        trainer.train_steps(2, max_steps=steps)
    return counter


def _seed_syncs(ctx: Ctx, train: Encoded, steps: int) -> SyncCounter:
    student = build_model("distilbert-base", ctx.tiny, seed=0).to(ctx.device)
    teacher = build_model("bert-base", ctx.tiny, seed=1).to(ctx.device).eval()
    batches = reference.loader(train, 32, shuffle=True)
    opt, sched = reference.optimizer_and_schedule(student, 1e-4, len(batches))
    kw = {"alpha": 0.7, "temperature": 3.0, "clip_norm": 1.0, "device": ctx.device}
    reference.train_epoch(student, teacher, batches, opt, sched, max_steps=2, **kw)
    with SyncCounter() as counter:
        reference.train_epoch(student, teacher, batches, opt, sched, max_steps=steps, **kw)
    return counter


def row_syncs(ctx: Ctx) -> None:
    """1a: every sync torch's debug mode reports, by whose line it is."""
    steps = ctx.sizes.sync_steps
    student, train = _student_split(ctx, "distilbert-base", steps + 4, seed=3)
    params = TrainParams(epochs=1)
    trainer = make_trainer(student.to(ctx.device), train, random_logits(len(train), 3), params,
                           ctx.device)
    kd = count_kdtune_syncs(trainer, steps)
    seed = _seed_syncs(ctx, train, steps)
    own = kd.by_package().get("kdtune", 0)
    allowed = steps // params.nan_check_every + 2  # + train_steps' final check and loss read
    notes = (f"{steps} steps each, syncs counted by torch.cuda.set_sync_debug_mode('warn'); kdtune: "
             f"{len(kd.events)} ({_packages(kd)}), its own {own} (allowed {allowed}: one per "
             f"{params.nan_check_every} steps + 2 at the end); seed-style: {len(seed.events)} "
             f"({_packages(seed)}); kdtune's lines: {_top(kd)}")
    ctx.emit(verdict(PLAN["1a"], len(seed.events) / steps, len(kd.events) / steps, "syncs/step",
                     own <= allowed, notes, {"steps": steps, "allowed_own": allowed,
                                             "kdtune": _sync_raw(kd), "seed": _sync_raw(seed)},
                     show_ratio=True))


def _packages(counter: SyncCounter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.by_package().items())) or "none"


def _top(counter: SyncCounter, n: int = 3) -> str:
    return "; ".join(f"{line} x{c}" for line, c in list(counter.by_line().items())[:n]) or "none"


def _sync_raw(counter: SyncCounter) -> dict[str, Any]:
    return {"total": len(counter.events), "by_package": counter.by_package(),
            "by_line": counter.by_line()}


def round_trip(trainer: Any, fresh: Any, folder: Path) -> dict[str, Any]:
    """Save ``trainer`` as ``kdtune.trainable.save_checkpoint`` does (that module imports Ray,
    so its two lines are repeated here), restore into ``fresh`` as ``restore_checkpoint``
    does, and compare."""
    from safetensors.torch import load_file, save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in trainer.checkpoint_state().items()}
    save_file(state, str(folder / "trainer.safetensors"))
    (folder / "trainer.json").write_text(json.dumps({"step": trainer.step, "history": []}))
    fresh.load_checkpoint_state(load_file(str(folder / "trainer.safetensors")))
    saved = json.loads((folder / "trainer.json").read_text())
    fresh.restore(saved["history"], int(saved["step"]))
    a, b = trainer.checkpoint_state(), fresh.checkpoint_state()
    equal = sum(bool(torch.equal(a[k], b[k])) for k in a)
    return {"tensors": len(a), "equal": equal, "logit_diff": _logit_diff(trainer, fresh),
            "step": (trainer.step, fresh.step),
            "lr": (trainer.optimizer.param_groups[0]["lr"], fresh.optimizer.param_groups[0]["lr"])}


@torch.inference_mode()
def _logit_diff(a: Any, b: Any) -> float:
    batch = a.train.batch(np.arange(min(len(a.train), 16)))
    a.model.eval()
    b.model.eval()
    diff = (a.model(**batch).logits.float() - b.model(**batch).logits.float()).abs().max()
    a.model.train()
    b.model.train()
    return float(diff)


def row_checkpoint(ctx: Ctx) -> None:
    """1b: a trained student saved and restored into a differently initialised one."""
    student, train = _student_split(ctx, "distilbert-base", 8, seed=4)
    logits, params = random_logits(len(train), 4), TrainParams(epochs=1)
    trainer = make_trainer(student.to(ctx.device), train, logits, params, ctx.device)
    trainer.train_steps(1, max_steps=3)
    fresh = make_trainer(build_model("distilbert-base", ctx.tiny, seed=9).to(ctx.device), train,
                         logits, params, ctx.device)
    with tempfile.TemporaryDirectory() as tmp:
        r = round_trip(trainer, fresh, Path(tmp))
    ok = (r["equal"] == r["tensors"] and r["logit_diff"] <= 1e-6 and r["step"][0] == r["step"][1]
          and r["lr"][0] == r["lr"][1])
    notes = (f"DistilBERT-base after 3 steps on {ctx.device}: {r['equal']} of {r['tensors']} tensors "
             f"identical, max logit difference {r['logit_diff']:.2g}, step {r['step'][1]}, lr "
             f"{r['lr'][1]:.3g} (saved {r['lr'][0]:.3g}); safetensors + trainer.json as "
             "kdtune.trainable writes them")
    ctx.emit(verdict(PLAN["1b"], r["tensors"], r["equal"], "tensors", ok, notes, r))


def gathers_agree(places: list[str], target: torch.device, rows: int = 64,
                  width: int = 24) -> dict[str, bool]:
    """Per cache placement, whether ``RaggedStates.gather`` returns exactly the rows a CPU
    gather does (indices on ``target``, as the trainer passes them)."""
    data = synthetic_split(rows, 1000, seed=5)
    flat = np.random.default_rng(5).normal(size=(data.tokens, width)).astype(np.float16)
    index = np.arange(0, rows, 3)
    pad = int(data.lengths[index].max())
    cpu = torch.device("cpu")
    want = RaggedStates(flat, data.offsets, cpu).gather(index, torch.from_numpy(index), pad, cpu)
    index_t = torch.from_numpy(index).to(target)
    return {p: bool(torch.equal(RaggedStates(flat, data.offsets, torch.device(p))
                                .gather(index, index_t, pad, target).cpu(), want))
            for p in places}


def _feature_syncs(ctx: Ctx, place: str, steps: int) -> int:
    """Syncs on feature_kd.py's lines in ``steps`` training steps with the cache on ``place``."""
    student, train = _student_split(ctx, "minilm-2", steps + 4, seed=6)
    width = 2 * student.config.hidden_size  # a wider teacher: the projection is exercised
    flat = np.random.default_rng(6).normal(size=(train.tokens, width)).astype(np.float16)
    features = FeatureKD([(0, 0)], student.config.hidden_size, "mse",
                         cached={0: RaggedStates(flat, train.offsets, torch.device(place))})
    trainer = make_trainer(student, train, random_logits(len(train), 6),
                           TrainParams(epochs=1, beta=1.0), ctx.device, features)
    counter = count_kdtune_syncs(trainer, steps)
    return sum(c for line, c in counter.by_line().items() if line.startswith("kdtune/feature_kd.py"))


def row_feature_cache(ctx: Ctx) -> None:
    """1c: the cache on ``cuda`` and ``cuda:0`` must take the device path (no sync)."""
    places = ["cuda", "cuda:0", "cpu"]
    agree = gathers_agree(places, torch.device("cuda", 0))
    steps = ctx.sizes.sync_steps // 3
    syncs = {p: _feature_syncs(ctx, p, steps) for p in places}
    ok = all(agree.values()) and syncs["cuda"] == 0 and syncs["cuda:0"] == 0
    notes = (f"rows identical to a CPU gather: {agree}; syncs on feature_kd.py's lines in {steps} "
             f"steps: {syncs} (the host cache copies each batch's rows over, blocking)")
    ctx.emit(verdict(PLAN["1c"], 0, syncs["cuda"] + syncs["cuda:0"], "syncs", ok, notes,
                     {"identical": agree, "syncs": syncs, "steps": steps}))


def row_latency(ctx: Ctx) -> None:
    """1d: the one latency protocol on a CUDA model (synchronised clock reads)."""
    model = build_model("bert-base", ctx.tiny, seed=1).to(ctx.device)
    data = synthetic_split(64, vocab_of(model), seed=7)
    protocol = Protocol(examples=16, warmup=3, throughput_batch=16, throughput_batches=2)
    out = measure_torch(model, data, protocol)
    ok = (out["device"].startswith("cuda") and math.isfinite(out["latency_ms"])
          and out["latency_ms"] > 0 and out.get("throughput", 0) > 0)
    notes = (f"device {out['device']}, median latency {out['latency_ms']:.2f} ms over "
             f"{out['examples']} rows at batch 1, throughput {out.get('throughput', math.nan):.0f} "
             "rows/s at batch 16 (bf16 autocast where the GPU has it)")
    ctx.emit(verdict(PLAN["1d"], math.nan, out["latency_ms"], "ms", ok, notes, out))
