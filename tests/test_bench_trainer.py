"""``python -m benchmarks.bench_kd --tiny``: rows 6 (kdtune against ``transformers.Trainer``)
and 7 (the training step's GFLOP/s against plain matmuls, and its profile) run at a test's size
(48 train / 24 val rows of at most 16 tokens: 2 steps per epoch) and print their fields: a time
or rate on both sides, the F1 beside each time (row 6) or the shares (row 7), a ratio that is
kdtune / reference, and PASS/FAIL as the target says. The timings themselves are not checked.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import HEADER, parse_table  # noqa: E402
from benchmarks.kd import flops, step_profile  # noqa: E402

COL = {name: i for i, name in enumerate(HEADER)}
UNITS = {"6a": "s", "6b": "s", "6c": "macro-F1", "7a": "GFLOP/s", "7b": "ms"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, text_data):
    from benchmarks.bench_kd import main

    out = tmp_path_factory.mktemp("bench_tiny")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["--tiny", "--out", str(out), "--data", str(text_data)]) == 0
    raw = json.loads((out / "bench_kd_tiny.json").read_text())
    return {"printed": parse_table(stdout.getvalue()), "rows": {r["id"]: r for r in raw["rows"]}}


def test_rows_print_measurements_ratio_and_verdict(tiny_run):
    printed = tiny_run["printed"]
    assert set(printed) == set(UNITS)
    for rid, cells in printed.items():
        if rid == "6c":  # a quality row: its target is not a ratio (test_row_6c_...)
            continue
        ref, ours = cells[COL["reference"]].split(), cells[COL["kdtune"]].split()
        assert ref[1] == ours[1] == UNITS[rid], cells
        assert float(ref[0]) > 0 and float(ours[0]) > 0, cells
        assert float(cells[COL["ratio"]]) == pytest.approx(float(ours[0]) / float(ref[0]), rel=2e-3)
        limit = float(re.fullmatch(r"ratio [<>]= ([0-9.]+)", cells[COL["target"]]).group(1))
        ratio = tiny_run["rows"][rid]["ratio"]
        passed = ratio <= limit if "<=" in cells[COL["target"]] else ratio >= limit
        assert cells[COL["result"]] == ("PASS" if passed else "FAIL"), cells


def test_row_6_prints_train_and_eval_times_with_f1(tiny_run):
    for rid in ("6a", "6b"):
        notes = tiny_run["printed"][rid][COL["notes"]]
        # Trainer fp32, Trainer bf16 and kdtune: each "X s (Y train + Z eval, F1 0.xxxx)"
        times = re.findall(r"([0-9.]+) s \(([0-9.]+) train \+ ([0-9.-]+) eval, F1 ([0-9.]+)\)", notes)
        assert len(times) == 3, notes
        assert all(0 <= float(f1) <= 1 for *_, f1 in times)
        assert re.search(r"wall-clock ratio [0-9.]+ \(load [0-9.]+-[0-9.]+ on", notes), notes
        med = tiny_run["rows"][rid]["raw"]["median"]["cpu"]  # rows compare CPU seconds
        kind = "ce" if rid == "6a" else "kd"
        best = min(med[f"trainer_{kind}_fp32"]["epoch"], med[f"trainer_{kind}_bf16"]["epoch"])
        assert tiny_run["rows"][rid]["reference"] == pytest.approx(best)
        assert tiny_run["rows"][rid]["kdtune"] == pytest.approx(med[f"kdtune_{kind}"]["epoch"])
        for runs in tiny_run["rows"][rid]["raw"]["runs"].values():
            assert all(r["threads"] == 1 and r["steps"] == 2 for r in runs)
            for r in runs:  # an epoch is its training plus its validation, on each clock
                for clock in ("cpu", "wall"):
                    assert r[clock]["epoch"] == pytest.approx(r[clock]["train"] + r[clock]["eval"])


def test_row_6c_compares_f1_over_seeds(tiny_run):
    row, cells = tiny_run["rows"]["6c"], tiny_run["printed"]["6c"]
    f1 = row["raw"]["f1"]
    assert len(f1["kdtune"]) == len(f1["trainer_bf16"]) == 2  # the tiny mode's seeds 0-1
    assert row["kdtune"] == pytest.approx(sum(f1["kdtune"]) / 2)
    assert row["reference"] == pytest.approx(sum(f1["trainer_bf16"]) / 2)
    within = abs(row["kdtune"] - row["reference"]) <= row["raw"]["ref_sd"] + 1e-12
    assert cells[COL["result"]] == ("PASS" if within else "FAIL")
    assert "seeds 0-1" in cells[COL["notes"]] and "95% CI" in cells[COL["notes"]]


def test_paired_difference_by_hand():
    from benchmarks.kd.row_trainer_quality import paired

    s = paired([0.80, 0.84, 0.82], [0.81, 0.83, 0.84])
    # differences -1, +1, -2 points: mean -2/3, SD sqrt(7/3) = 1.5275, SEM 0.8819, t(0.975, 2)
    # = 4.3027: half-width 3.7946
    assert s["diff_points"] == pytest.approx(-2 / 3)
    assert s["ci_points"] == pytest.approx([-2 / 3 - 3.7946, -2 / 3 + 3.7946], abs=1e-3)
    assert s["ref_sd"] == pytest.approx(0.015275, abs=1e-5)
    assert s["mean"] == pytest.approx(0.82) and s["ref_mean"] == pytest.approx(0.82667, abs=1e-5)


def test_row_7_prints_rates_and_profile_shares(tiny_run):
    notes_a = tiny_run["printed"]["7a"][COL["notes"]]
    assert re.search(r"matmul loop bf16 [0-9.]+ / fp32 [0-9.]+ GFLOP/s", notes_a), notes_a
    profile = tiny_run["rows"]["7b"]["raw"]["profile"]
    assert set(profile["shares"]) == set(step_profile.GROUPS)
    assert sum(profile["shares"].values()) == pytest.approx(1.0, abs=0.02)
    notes_b = tiny_run["printed"]["7b"][COL["notes"]]
    for group in step_profile.GROUPS:
        assert re.search(re.escape(group) + r" [0-9]+%", notes_b), (group, notes_b)


def test_step_flops_follow_the_formula():
    s = flops.Shapes(hidden=4, intermediate=8, layers=2, classes=3)
    rows, width = 2, 5
    n = rows * width
    per_block = 2 * n * 4 * 12 + 2 * n * 4 * 4 + 2 * n * 4 * 8 * 2 + 2 * 2 * rows * width * width * 4
    forward = 2 * per_block + 2 * rows * 4 * 4 + 2 * rows * 4 * 3
    assert flops.step_flops(s, rows, width) == 3 * forward
    # per linear: forward, input-gradient and weight-gradient GEMMs, once per block
    shapes = flops.gemms(s, n)
    assert sum(c * 2 * m * k * q for (m, k, q), c in shapes.items()) == 3 * 2 * (
        2 * n * 4 * 12 + 2 * n * 4 * 4 + 2 * n * 4 * 8 * 2)
