"""Resource rows 5a-5c, from what rows 2 and 4 measured: memory per trial and utilisation.

5a peak memory of a trial, seed-style (teacher held, 150-wide activations) against kdtune's,
DistilBERT-base / BERT-base; 5b device utilisation with 1 and with the most concurrent trials;
5c GPU memory per trial process with the most concurrent trials (CUDA only): whether that many
fit one GPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmarks.common import Row, below
from benchmarks.gpu.checks import Planned, verdict
from benchmarks.gpu.context import Ctx
from benchmarks.gpu.probes import PeakMemory

PLAN = {
    "5a": Planned("5a", "peak memory per trial: seed-style vs kdtune, DistilBERT-base / BERT-base",
                  "ratio < 1"),
    "5b": Planned("5b", "device utilisation: 1 trial vs the most concurrent trials",
                  "most concurrent >= 80 %"),
    "5c": Planned("5c", "GPU memory per trial process, alone vs the most concurrent",
                  "all of them fit 90 % of the GPU"),
}


class NeedsRow(LookupError):
    """A derived row whose source row did not run: it reads n/a (error) with this line."""


def _rounds(ctx: Ctx) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    conc = ctx.state.get("concurrency")
    if not conc:
        raise NeedsRow("needs row 4 (concurrent trials), which has no measurement")
    return conc, conc["rounds"]


def row_memory(ctx: Ctx) -> None:
    mem = ctx.state.get("memory_distilbert-base")
    if not mem:
        raise NeedsRow("needs rows 2c/2d (DistilBERT-base epochs), which have no measurement")
    small = ctx.state.get("memory_minilm-2", {})
    ctx.emit(below(
        "5a", PLAN["5a"].name, mem["seed_fp32"], mem["kdtune"], "MB", 1.0,
        f"{PeakMemory(ctx.device).what} over the row-2 runs: seed-style fp32 {mem['seed_fp32']:.0f}, "
        f"bf16 {mem['seed_bf16']:.0f}, kdtune {mem['kdtune']:.0f} MB; 2-layer MiniLM pair "
        + ", ".join(f"{k} {v:.0f}" for k, v in small.items()) + " MB",
        {"pairs": {k: v for k, v in ctx.state.items() if k.startswith("memory_")}}))


def row_utilisation(ctx: Ctx) -> None:
    conc, rounds = _rounds(ctx)
    n1, nmax = min(rounds), max(rounds)
    u1, um = rounds[n1]["utilisation"], rounds[nmax]["utilisation"]
    ctx.emit(Row("5b", f"device utilisation: 1 trial vs {nmax} concurrent trials", u1, um, "%",
                 f"{nmax} concurrent >= 80 %", bool(math.isfinite(um) and um >= 80.0),
                 f"mean of samples every {conc['interval']:g} s during row 4's rounds from "
                 f"{conc['sampler']}; samples: " + ", ".join(
                     f"{r['utilisation_samples']} ({n} concurrent)" for n, r in rounds.items()),
                 {"utilisation": {n: r["utilisation"] for n, r in rounds.items()},
                  "source": conc["sampler"]}))


def per_process_mb(r: dict[str, Any]) -> tuple[float, str]:
    """One trial process's GPU memory: nvidia-smi's (context included) when it listed the
    processes, else the allocator's peak reservation."""
    if r.get("smi_process_mb"):
        return float(r["smi_process_mb"]), "nvidia-smi used_memory (CUDA context included)"
    return float(r["reserved_mb"]), "torch.cuda.max_memory_reserved (no CUDA context)"


def row_gpu_memory(ctx: Ctx) -> None:
    _, rounds = _rounds(ctx)
    n1, nmax = min(rounds), max(rounds)
    alone, what = per_process_mb(rounds[n1])
    crowded, what_n = per_process_mb(rounds[nmax])
    total_mb = torch.cuda.get_device_properties(ctx.device).total_memory / 2**20
    ok = nmax * crowded <= 0.9 * total_mb
    ctx.emit(verdict(PLAN["5c"], alone, crowded, "MB", ok,
                     f"{what_n}; {nmax} processes x {crowded:.0f} MB = {nmax * crowded / 1024:.1f} "
                     f"GiB of {total_mb / 1024:.0f} GiB; peak allocated per trial "
                     f"{rounds[nmax]['peak_mb']:.0f} MB, reserved {rounds[nmax]['reserved_mb']:.0f} "
                     f"MB; alone: {what}",
                     {"alone_mb": alone, "crowded_mb": crowded, "total_mb": total_mb,
                      "processes": nmax}, show_ratio=True))
