"""The GPU check's plan and command line: which rows run, in which order, and what is written.

Correctness rows first (1), then performance (2-4), then what rows 2 and 4 say about
resources (5). Each row runs in its own ``try``: one that raises reads ``n/a (error)`` with
the reason, a CUDA-only row on the CPU ``n/a (no CUDA)``, and when the overall deadline passes
the row running and all after it read ``n/a (deadline)``; the run still exits 0 and writes
``bench_gpu.md`` / ``bench_gpu.json`` under ``--out`` (rewritten after every row).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from benchmarks import reference
from benchmarks.common import ROOT, Row, machine_info, now, render, say, write_results
from benchmarks.gpu import concurrency, correctness, epochs, precision, resources
from benchmarks.gpu.checks import DEADLINE, ERROR, NO_CUDA, Planned, missing, one_line
from benchmarks.gpu.context import FULL, TINY, Ctx, Sizes
from benchmarks.gpu.deadline import Deadline
from benchmarks.gpu.probes import tf32_settings
from benchmarks.gpu.shapes import AG_NEWS_LOG_MEAN, AG_NEWS_LOG_STD, AG_NEWS_MIN_TOKENS
from kdtune.devices import precision as precision_of

PROG = "bench_gpu"
DEFAULT_DEADLINE_S = 240.0
NO_CUDA_DETAIL = "needs a CUDA device; this run is on the CPU"


@dataclass(frozen=True)
class Step:
    """One ``try`` of the run: a function that emits ``rows``; ``group`` is its --rows number."""

    group: int
    rows: tuple[Planned, ...]
    run: Callable[[Ctx], None]
    cuda_only: bool = False


def _epoch_plans() -> tuple[Planned, ...]:
    out = []
    for fp32_id, bf16_id, _, _, label in epochs.PAIRS:
        out += [Planned(fp32_id, f"student epoch: seed-style fp32 vs kdtune, {label}", "ratio <= 0.3"),
                Planned(bf16_id, f"student epoch: seed-style bf16 autocast vs kdtune, {label}",
                        "ratio <= 0.5")]
    return tuple(out)


def plan(sizes: Sizes) -> list[Step]:
    c, p, r = correctness.PLAN, precision.PLAN, resources.PLAN
    conc = [Planned(rid, f"trials per hour: 1 trial vs {n} concurrent trial processes", f"ratio >= {n / 2:g}")
            for rid, n in zip(("4a", "4b"), sizes.concurrency[1:], strict=False)]
    return [Step(1, (c["1a"],), correctness.row_syncs, cuda_only=True),
            Step(1, (c["1b"],), correctness.row_checkpoint),
            Step(1, (c["1c"],), correctness.row_feature_cache, cuda_only=True),
            Step(1, (c["1d"],), correctness.row_latency, cuda_only=True),
            Step(1, (p["1e"],), precision.row_hidden_states, cuda_only=True),
            Step(1, (p["1f"],), precision.row_logits),
            Step(1, (p["1g"],), precision.row_trajectory),
            Step(2, _epoch_plans(), epochs.row_epochs),
            Step(3, (Planned("3a", "caching teacher logits: seed-style fp32 vs kdtune", "ratio >= 5"),
                     Planned("3b", "caching teacher logits: seed-style bf16 vs kdtune", "ratio >= 2")),
                 epochs.row_cache),
            Step(4, tuple(conc), concurrency.row_concurrency),
            Step(5, (r["5a"],), resources.row_memory),
            Step(5, (r["5b"],), resources.row_utilisation),
            Step(5, (r["5c"],), resources.row_gpu_memory, cuda_only=True)]


class Results:
    """The rows so far, in plan order, written to ``--out`` whenever one is added."""

    def __init__(self, out: str, title: str, meta: dict[str, Any], steps: list[Step], t0: float):
        self.out, self.title, self.meta, self.t0 = out, title, meta, t0
        self.order = [p.id for s in steps for p in s.rows]
        self.rows: dict[str, Row] = {}

    def add(self, row: Row) -> None:
        self.rows[row.id] = row
        self.write()

    def ordered(self) -> list[Row]:
        return [self.rows[i] for i in self.order if i in self.rows]

    def write(self) -> None:
        self.meta["runtime_seconds"] = time.perf_counter() - self.t0
        write_results(self.out, PROG, self.title, self.ordered(), self.meta)

    def fill(self, steps: list[Step], why: str, detail: str, cuda: bool) -> None:
        """Every planned row still without a line reads ``n/a (why)``; a CUDA-only row on
        the CPU ``n/a (no CUDA)``, whenever the run ended."""
        for step in steps:
            for p in step.rows:
                if p.id in self.rows:
                    continue
                self.rows[p.id] = (missing(p, NO_CUDA, NO_CUDA_DETAIL) if step.cuda_only and not cuda
                                   else missing(p, why, detail))
        self.write()


def run_step(ctx: Ctx, step: Step, results: Results) -> None:
    """One step in its own ``try``; the deadline is not caught here (it ends the run)."""
    if step.cuda_only and not ctx.cuda:
        for p in step.rows:
            results.add(missing(p, NO_CUDA, NO_CUDA_DETAIL))
        return
    ctx.deadline.check()
    started = time.perf_counter()
    try:
        step.run(ctx)
    except Exception as exc:  # noqa: BLE001 - a missing measurement reads n/a with its reason
        reason = f"{type(exc).__name__}: {exc}"
        say(PROG, f"rows {', '.join(p.id for p in step.rows)}: no measurement ({one_line(reason)})")
        for p in step.rows:
            if p.id not in results.rows:
                results.add(missing(p, ERROR, reason))
    finally:
        key = ",".join(p.id for p in step.rows)
        results.meta["row_seconds"][key] = time.perf_counter() - started
    say(PROG, f"rows {', '.join(p.id for p in step.rows)} took "
        f"{results.meta['row_seconds'][key]:.1f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_gpu.py",
                                description="kdtune's one-shot GPU check (see benchmarks/gpu/).")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                   help="folder for bench_gpu.md and bench_gpu.json (rewritten after each row)")
    p.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available")
    p.add_argument("--tiny", action="store_true", help="tiny models and sizes: every row in seconds")
    p.add_argument("--rows", default="1,2,3,4,5", help="row groups to run (5 reads 2 and 4)")
    p.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE_S,
                   help="seconds after which the running row and all later ones read n/a")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """One line naming the bad field and the fix, or None."""
    if not args.deadline > 0:
        return f"--deadline must be > 0 seconds, got {args.deadline:g}; e.g. --deadline 240"
    groups = {g.strip() for g in args.rows.split(",") if g.strip()}
    if not groups or not groups <= {"1", "2", "3", "4", "5"}:
        return f"--rows must be row groups from 1-5 separated by commas, got {args.rows!r}"
    if args.device == "cuda" and not torch.cuda.is_available():
        return "--device cuda but torch sees no GPU; install a CUDA build of torch or use --device cpu"
    return None


def run_meta(args: argparse.Namespace, device: torch.device, sizes: Sizes,
             argv: list[str] | None) -> dict[str, Any]:
    command = "python benchmarks/bench_gpu.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return {"date": now().isoformat(timespec="seconds"), "command": command,
            "machine": machine_info(device), "tiny": args.tiny, "sizes": asdict(sizes),
            "deadline_s": args.deadline, "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
            "precision": {"kdtune": precision_of(device), "seed": "fp32 and bf16 autocast"},
            "tf32": tf32_settings() if device.type == "cuda" else None,
            "ag_news_lengths": {"log_mean": AG_NEWS_LOG_MEAN, "log_std": AG_NEWS_LOG_STD,
                                "min": AG_NEWS_MIN_TOKENS, "max": reference.SEED_MAX_LENGTH},
            "row_seconds": {}}


def hang_handler(results: Results, steps: list[Step], deadline_s: float,
                 cuda: bool) -> Callable[[], None]:
    """What the watchdog does when the main thread is stuck past the deadline: write every
    row so far, the rest as n/a, stop the trial processes, print the table, exit 0."""
    def on_hang() -> None:
        results.fill(steps, DEADLINE, f"still running {deadline_s:g} s + grace after the start; "
                     "the run was ended by the watchdog", cuda)
        concurrency.stop_all()
        print("\n" + render(results.title, results.ordered(), results.meta), flush=True)
        os._exit(0)
    return on_hang


def main(argv: list[str] | None = None) -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub: every model is built from a config
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    previous = torch.get_num_threads()
    if args.tiny:  # tiny models: one thread is fastest, and robust on a shared machine
        torch.set_num_threads(1)
    try:
        return run_rows(args, argv)
    finally:  # run in a process that goes on (the tests): leave its threads as they were
        torch.set_num_threads(previous)


def run_rows(args: argparse.Namespace, argv: list[str] | None) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = TINY if args.tiny else FULL
    groups = {int(g) for g in args.rows.split(",") if g.strip()}
    steps = [s for s in plan(sizes) if s.group in groups]
    title = f"kdtune GPU check{' (tiny, CPU)' if args.tiny else ''}"
    results = Results(args.out, title, run_meta(args, device, sizes, argv), steps, time.perf_counter())
    say(PROG, f"on {device} ({results.meta['machine'].get('gpu', results.meta['machine']['processor'])}), "
        f"{'tiny' if args.tiny else 'full'} sizes, deadline {args.deadline:g} s")
    deadline = Deadline(args.deadline, hang_handler(results, steps, args.deadline,
                                                    device.type == "cuda"))
    ctx = Ctx(device, args.tiny, sizes, deadline, results.add)

    def every_row() -> None:
        for step in steps:
            run_step(ctx, step, results)

    if not deadline.run(every_row):
        say(PROG, f"the {args.deadline:g} s deadline passed: the remaining rows read n/a")
    results.fill(steps, DEADLINE, f"not finished within the {args.deadline:g} s deadline",
                 device.type == "cuda")
    print("\n" + render(title, results.ordered(), results.meta), flush=True)
    return 0
