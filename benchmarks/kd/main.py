"""``python -m benchmarks.bench_kd [--quick|--full|--tiny] [--device cpu|cuda] [--out DIR]
[--rows N,...] [--data PATH] [--teacher-model NAME]``: the rows, in the order that needs the
least memory."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Row, Stages, machine_info, now, render, say, write_results

PROG = "bench_kd"
ROWS = (1, 2, 3, 4, 5, 6, 7)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_kd",
                                description="kdtune against the seed-style KD loop, and kdtune's "
                                            "Ray Tune machinery: ratios measured side by side")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="smoke.yaml's teacher and data cut to 64 training rows, 4 trials of 1 "
                           "epoch per search: checks every row (default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the quickstart (alpha_temp.yaml): 1200/400 rows, 14-trial searches, "
                           "and rows 6-7 (transformers.Trainer, utilisation)")
    size.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                      help="rows 6-7 only, at a test's size (48/24 rows, max_length 16)")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"],
                   help="default: kdtune.devices.best_device()")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                   help="folder for bench_kd_<mode>.md / .json and the searches' record files")
    p.add_argument("--rows", help="rows to run, e.g. 1,2 (rows 3-4 need Ray; 4 alone runs one "
                                  "search); default: the mode's (--quick 1-5, --full 1-7, --tiny 6-7)")
    p.add_argument("--data", help="data file instead of the space's data.path")
    p.add_argument("--teacher-model", help="teacher base model (hub name or folder) instead of the "
                                           "embedded MiniLM; the student is sliced from it")
    p.add_argument("--repeats", type=int, help="timed repeats of rows 1-2 (the median is reported)")
    p.add_argument("--epochs", type=int, help="epochs per timed run in rows 1-2")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    from benchmarks.kd.context import MODES

    if args.rows is None:
        args.rows = ",".join(map(str, MODES[args.mode].rows))
    try:
        args.rows = sorted({int(r) for r in args.rows.split(",") if r.strip()})
    except ValueError:
        p.error(f"--rows takes row numbers such as 1,2,5, got {args.rows!r}")
    if not set(args.rows) <= set(ROWS):
        p.error(f"--rows: rows are {', '.join(map(str, ROWS))}")
    return args


def results_stem(mode: str, rows: set[int]) -> str:
    """``bench_kd_<mode>``, with the rows named when they are not the mode's own set (a partial
    run never overwrites a whole one)."""
    from benchmarks.kd.context import MODES

    stem = f"bench_kd_{mode}"
    return stem if rows == set(MODES[mode].rows) else f"{stem}_rows_{'_'.join(map(str, sorted(rows)))}"


def data_rows(bench: Any, wanted: set[int], stages: Stages, rows: list[Row],
              save: Callable[[], None]) -> None:
    """Rows 1-2 and 5-7, which share one prepared data set (and its cached teacher)."""
    from benchmarks.kd import row_epoch, row_memory, row_trainer, row_trainer_quality, row_utilisation

    if not wanted & {1, 2, 5, 6, 7}:
        return
    prep = stages.run("prepare", lambda: bench.prep)
    cache = "hit" if prep.teacher.cache_hit else "built"
    say(PROG, f"{bench.mode.name} mode on {bench.device}: {len(prep.splits.train)} train / "
        f"{len(prep.splits.val)} val rows, teacher cache {cache}")
    if wanted & {1, 2}:
        rows += [r for r in stages.run("rows 1-2", row_epoch.run, bench) if r.number in wanted]
        save()
    for name, module in (("5", row_memory), ("6", row_trainer), ("6c", row_trainer_quality),
                         ("7", row_utilisation)):
        if int(name[0]) in wanted:
            rows += stages.run(f"row {name}", module.run, bench)
            save()


def search_rows(bench: Any, wanted: set[int], stages: Stages, rows: list[Row],
                meta: dict[str, Any]) -> None:
    """Rows 3-4, from two searches (one when row 4 runs alone)."""
    from benchmarks.kd import row_asha, row_memory, row_overhead

    if not wanted & {3, 4}:
        return
    kinds = row_asha.KINDS if 3 in wanted else ("complete",)
    searches = stages.run("searches (rows 3-4)", row_asha.run_searches, bench, kinds)
    meta["searches"] = {k: str(s.folder) for k, s in searches.items()}
    if 3 in wanted:
        rows += row_asha.rows(searches)
    if 4 in wanted:
        rows += row_overhead.rows(searches)
    row_memory.note_ray_rss(rows, {k: row_overhead.stats(s) for k, s in searches.items()})


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.kd.context import Bench, base_overrides, resolve_mode
    from kdtune.devices import best_device

    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    mode = resolve_mode(args.mode, args.repeats, args.epochs)
    device = torch.device(args.device) if args.device else best_device()
    command = "python -m benchmarks.bench_kd " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out).resolve()
    wanted = set(args.rows)
    t0 = time.perf_counter()
    stages = Stages(PROG)
    rows: list[Row] = []
    meta: dict[str, Any] = {"date": now().isoformat(timespec="seconds"), "command": command,
                            "machine": machine_info(device), "mode": dataclasses.asdict(mode),
                            "rows_run": sorted(wanted), "stage_seconds": stages.seconds}
    stem, title = results_stem(mode.name, wanted), f"kdtune benchmark ({mode.name})"

    def save() -> None:
        rows.sort(key=lambda r: (r.number, r.id))
        meta["runtime_seconds"] = time.perf_counter() - t0
        write_results(out, stem, title, rows, meta)

    with tempfile.TemporaryDirectory(prefix="kdtune-bench-") as tmp:
        bench = Bench(mode, device, base_overrides(mode, device, args.data, args.teacher_model),
                      Path(tmp), out)
        meta["overrides"] = bench.overrides
        meta["config"] = bench.cfg.to_dict()
        data_rows(bench, wanted, stages, rows, save)
        bench.release()
        search_rows(bench, wanted, stages, rows, meta)
    save()
    print("\n" + render(title, rows, meta), flush=True)
    say(PROG, f"wrote {out / (stem + '.md')} and .json")
    return 0
