"""Correctness rows about precision: what bf16 autocast changes against fp32.

1e the teacher's hidden states on CUDA (kdtune's pass, bf16) against the CPU's fp32; 1f the
teacher's logits with bf16 autocast against fp32 (max difference, argmax agreement); 1g the KD
loss over the same steps from the same initial weights, bf16 against fp32.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.gpu.checks import Planned, verdict
from benchmarks.gpu.context import Ctx
from benchmarks.gpu.hidden import compute_hidden_states
from benchmarks.gpu.kd import RecordingTrainer, cache_logits, random_logits
from benchmarks.gpu.shapes import LABELS, build_model, synthetic_split, vocab_of
from kdtune.params import TrainParams
from kdtune.trainer import seed_everything

PLAN = {
    "1e": Planned("1e", "teacher hidden states on CUDA (kdtune's pass, bf16) vs the CPU (fp32), "
                        "BERT-base", "mean cosine >= 0.99 per block"),
    "1f": Planned("1f", "teacher logits: bf16 autocast vs fp32 (BERT-base)",
                  "argmax agreement >= 0.99"),
    "1g": Planned("1g", "KD loss over the same steps: bf16 autocast vs fp32 (2-layer MiniLM)",
                  "mean relative difference <= 2 %"),
}


def cosine_per_token(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def row_hidden_states(ctx: Ctx) -> None:
    """1e: two blocks' states, ragged like the tokens, from the device and from the CPU."""
    teacher = build_model("bert-base", ctx.tiny, seed=1)
    data = synthetic_split(ctx.sizes.check_rows // 4, vocab_of(teacher), seed=8)
    blocks = [0, teacher.config.num_hidden_layers - 1]
    fn = compute_hidden_states()
    cpu = fn(teacher, data, blocks, 64, torch.device("cpu"), "fp32")
    gpu = fn(teacher, data, blocks, 64, ctx.device, "auto")
    shapes_ok = all(gpu[b].shape == cpu[b].shape == (data.tokens, teacher.config.hidden_size)
                    for b in blocks)
    cos = {b: cosine_per_token(gpu[b], cpu[b]) for b in blocks}
    worst = min(float(c.mean()) for c in cos.values())
    notes = (f"{len(data)} rows, {data.tokens} tokens; blocks {blocks}: mean cosine "
             + ", ".join(f"{float(c.mean()):.4f} (min {float(c.min()):.4f})" for c in cos.values())
             + f"; shapes {'match' if shapes_ok else 'DIFFER'} ([tokens, width] float16)")
    ctx.emit(verdict(PLAN["1e"], 1.0, worst, "cosine", shapes_ok and worst >= 0.99, notes,
                     {"blocks": blocks, "mean_cosine": {b: float(c.mean()) for b, c in cos.items()},
                      "min_cosine": {b: float(c.min()) for b, c in cos.items()}}))


def spread_head(teacher: torch.nn.Module, logits: np.ndarray, std: float = 3.0) -> float:
    """Scale the random head so the logits spread like a fine-tuned teacher's (std ``std``):
    a random head's near-tied logits would make argmax agreement meaningless."""
    scale = std / max(float(logits.std()), 1e-6)
    with torch.no_grad():
        teacher.classifier.weight.mul_(scale)
        teacher.classifier.bias.mul_(scale)
    return scale


def row_logits(ctx: Ctx) -> None:
    """1f: ``predict_logits`` at both precisions over the same rows."""
    teacher = build_model("bert-base", ctx.tiny, seed=1).to(ctx.device)
    data = synthetic_split(ctx.sizes.check_rows, vocab_of(teacher), seed=9)
    params = TrainParams()
    scale = spread_head(teacher, cache_logits(teacher, data, params, ctx.device, "fp32"))
    fp32 = cache_logits(teacher, data, params, ctx.device, "fp32")
    bf16 = cache_logits(teacher, data, params, ctx.device, "bf16")
    diff = float(np.abs(bf16 - fp32).max())
    agree = float((bf16.argmax(-1) == fp32.argmax(-1)).mean())
    notes = (f"{len(data)} rows on {ctx.device}; max abs(bf16 - fp32) {diff:.3g} with logits of std "
             f"{fp32.std():.2f} (random head scaled x{scale:.3g}); argmax agreement {agree:.4f}")
    ctx.emit(verdict(PLAN["1f"], 1.0, agree, "agreement", agree >= 0.99, notes,
                     {"max_abs_diff": diff, "agreement": agree, "logit_std": float(fp32.std()),
                      "rows": len(data)}))


def trajectory(ctx: Ctx, precision: str, steps: int) -> np.ndarray:
    """Per-step mean KD loss of ``steps`` of kdtune's steps at ``precision``, same start."""
    student = build_model("minilm-2", ctx.tiny, seed=0)
    data = synthetic_split(steps * TrainParams().batch_size, vocab_of(student), seed=10)
    params = TrainParams(epochs=1, precision=precision)
    val = data.subset(np.arange(8))
    trainer = RecordingTrainer(student, data, val, params, LABELS,
                               teacher_logits=random_logits(len(data), 10), device=ctx.device)
    seed_everything(0)  # the same dropout masks in both runs: only the precision differs
    trainer.train_steps(1)
    return trainer.losses()


def row_trajectory(ctx: Ctx) -> None:
    """1g: bf16 and fp32 runs of the same steps; how far their loss curves drift apart."""
    steps = ctx.sizes.trajectory_steps
    fp32, bf16 = trajectory(ctx, "fp32", steps), trajectory(ctx, "bf16", steps)
    rel = np.abs(bf16 - fp32) / np.maximum(np.abs(fp32), 1e-12)
    notes = (f"{steps} steps from the same weights on the same batches, {ctx.device}; loss "
             f"{fp32[0]:.4f} -> {fp32[-1]:.4f} (fp32) vs {bf16[0]:.4f} -> {bf16[-1]:.4f} (bf16); "
             f"relative difference mean {rel.mean():.2%}, max {rel.max():.2%}, last {rel[-1]:.2%}")
    ctx.emit(verdict(PLAN["1g"], 0.0, 100 * float(rel.mean()), "%", float(rel.mean()) <= 0.02, notes,
                     {"fp32": fp32.tolist(), "bf16": bf16.tolist(), "relative": rel.tolist()}))
