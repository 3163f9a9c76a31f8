"""``python -m benchmarks.bench_kd --quick`` runs every row, and its numbers add up.

One quick run (module fixture, in this process) is checked for structure
(every row printed with both measurements, a numeric ratio, a target and PASS/FAIL) and for
consistency: each ratio is kdtune / reference of the printed measurements; stdout, the markdown
file and the JSON agree; row 3's numbers are the sums and maxima of the two searches' own
trials.csv and run_info.json; row 4's are those of history.csv; rows 1-2 share their KD runs;
row 5's trial process built exactly its student. The timings themselves are not checked.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import HEADER, fmt, parse_table  # noqa: E402

ROW_IDS = {"1", "2", "2b", "3a", "3b", "3c", "4", "5a", "5b"}
COL = {name: i for i, name in enumerate(HEADER)}


def number(cell: str) -> float:
    """The measurement of a 'reference' / 'kdtune' cell ('12.35 s' -> 12.35)."""
    return float(cell.split()[0])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, text_data):
    """``python -m benchmarks.bench_kd --quick --data <the generated data set>``, run in this
    process (its searches then use the session's running Ray instead of starting their own)."""
    import contextlib
    import io

    from benchmarks.bench_kd import main

    out = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["--quick", "--out", str(out), "--data", str(text_data)]) == 0
    raw = json.loads((out / "bench_kd_quick.json").read_text())
    return {"stdout": stdout.getvalue(), "out": out, "raw": raw,
            "rows": {r["id"]: r for r in raw["rows"]},
            "printed": parse_table(stdout.getvalue()),
            "md": (out / "bench_kd_quick.md").read_text()}


def test_every_row_prints_measurements_ratio_target_and_result(quick_run):
    printed = quick_run["printed"]
    assert set(printed) == ROW_IDS
    for rid, cells in printed.items():
        assert len(cells) == len(HEADER), (rid, cells)
        ref, kd = number(cells[COL["reference"]]), number(cells[COL["kdtune"]])
        ratio = float(cells[COL["ratio"]])
        assert math.isfinite(ref) and math.isfinite(kd) and math.isfinite(ratio), cells
        assert cells[COL["target"]], cells
        assert cells[COL["result"]] in {"PASS", "FAIL"}, cells


def test_printed_ratio_is_kdtune_over_reference(quick_run):
    for rid, cells in quick_run["printed"].items():
        ref, kd = number(cells[COL["reference"]]), number(cells[COL["kdtune"]])
        ratio = float(cells[COL["ratio"]])
        # both measurements and the ratio are printed to 4 significant digits
        assert ratio == pytest.approx(kd / ref, rel=2e-3), (rid, cells)
    for rid, row in quick_run["rows"].items():
        assert row["ratio"] == pytest.approx(row["kdtune"] / row["reference"], rel=1e-12), rid


def test_result_follows_the_target(quick_run):
    for rid, row in quick_run["rows"].items():
        target, ratio = row["target"], row["ratio"]
        m = re.fullmatch(r"ratio (<=|<|>=) ([0-9.]+)", target)
        if m:
            op, limit = m.group(1), float(m.group(2))
            expect = {"<=": ratio <= limit, "<": ratio < limit, ">=": ratio >= limit}[op]
        else:  # 3b: a difference in points of macro-F1
            assert rid == "3b" and "0.5 pt" in target
            expect = row["kdtune"] >= row["reference"] - 0.005 - 1e-12
        assert row["result"] == ("PASS" if expect else "FAIL"), row


def test_stdout_markdown_and_json_agree(quick_run):
    md_rows = parse_table(quick_run["md"])
    assert md_rows == quick_run["printed"]
    for rid, row in quick_run["rows"].items():
        cells = md_rows[rid]
        assert row["cells"] == cells
        assert cells[COL["reference"]] == f"{fmt(row['reference'])} {row['unit']}"
        assert cells[COL["kdtune"]] == f"{fmt(row['kdtune'])} {row['unit']}"
        assert cells[COL["ratio"]] == fmt(row["ratio"])
        assert cells[COL["result"]] == row["result"]
    raw = quick_run["raw"]
    assert {"date", "command", "machine", "mode", "config", "stage_seconds", "searches"} <= set(raw)
    assert raw["machine"]["cpu_count"] and raw["machine"]["torch"]


def test_rows_1_and_2_share_their_kd_runs(quick_run):
    r1, r2 = quick_run["rows"]["1"], quick_run["rows"]["2"]
    kd = [r["seconds_per_epoch"] for r in r1["raw"]["kdtune_kd"]]
    seed = [r["seconds_per_epoch"] for r in r1["raw"]["seed"]]
    ce = [r["seconds_per_epoch"] for r in r2["raw"]["kdtune_ce"]]
    assert len(kd) == len(seed) == len(ce) == quick_run["raw"]["mode"]["repeats"]
    assert r1["kdtune"] == pytest.approx(statistics.median(kd)) == r2["kdtune"]
    assert r1["reference"] == pytest.approx(statistics.median(seed))
    assert r2["reference"] == pytest.approx(statistics.median(ce))


def test_row_2b_times_rungs_inside_the_epoch_against_row_1s_runs(quick_run):
    r1, r2b = quick_run["rows"]["1"], quick_run["rows"]["2b"]
    once, rungs = r2b["raw"]["kdtune_kd"], r2b["raw"]["kdtune_rungs"]
    assert r2b["reference"] == pytest.approx(r1["kdtune"])
    assert r2b["kdtune"] == pytest.approx(statistics.median(r["seconds_per_epoch"] for r in rungs))
    epochs = quick_run["raw"]["mode"]["epochs"]
    assert r2b["raw"]["eval_every"] == 0.5  # smoke.yaml's
    assert all(r["evaluations"] == r["full_evaluations"] == epochs for r in once)
    # two rungs per epoch: a subset mid-epoch, the whole split at the end
    assert all(r["evaluations"] == 2 * epochs and r["full_evaluations"] == epochs for r in rungs)
    # smoke.yaml: 160 train rows -> 0.1 * 160 / 0.5 = 32 rows, which is also the 8-per-class floor
    assert [r["subset_rows"] for r in rungs] == [32] * len(rungs)
    assert all(r["subset_rows"] == 0 for r in once)


def test_row_3_is_computed_from_the_two_searches_records(quick_run):
    rows, folders = quick_run["rows"], quick_run["raw"]["searches"]
    trials = {k: pd.read_csv(Path(folders[k]) / "trials.csv") for k in ("asha", "complete")}
    info = {k: json.loads((Path(folders[k]) / "run_info.json").read_text()) for k in trials}
    assert rows["3a"]["reference"] == pytest.approx(trials["complete"]["progress"].sum())
    assert rows["3a"]["kdtune"] == pytest.approx(trials["asha"]["progress"].sum())
    assert rows["3b"]["reference"] == pytest.approx(trials["complete"]["best_val_macro_f1"].max())
    assert rows["3b"]["kdtune"] == pytest.approx(trials["asha"]["best_val_macro_f1"].max())
    assert rows["3c"]["reference"] == pytest.approx(info["complete"]["search_seconds"])
    assert rows["3c"]["kdtune"] == pytest.approx(info["asha"]["search_seconds"])
    # Same space, arms and trial count; nothing stopped in the run-to-completion search.
    assert len(trials["asha"]) == len(trials["complete"])
    assert sorted(trials["asha"]["arm"]) == sorted(trials["complete"]["arm"])
    epochs = quick_run["raw"]["config"]["train"]["epochs"]
    done = trials["complete"][trials["complete"]["status"] != "duplicate"]
    assert (done["status"] == "completed").all() and (done["progress"] == epochs).all()
    assert rows["3a"]["kdtune"] <= rows["3a"]["reference"]


def test_row_4_is_computed_from_history(quick_run):
    folder = Path(quick_run["raw"]["searches"]["complete"])
    history = pd.read_csv(folder / "history.csv", dtype={"trial_id": str})
    bare = history["seconds"].sum()
    ray = sum(h.sort_values("training_iteration")["time_total_s"].iloc[-1]
              for _, h in history.groupby("trial_id"))
    row = quick_run["rows"]["4"]
    assert row["reference"] == pytest.approx(bare)
    assert row["kdtune"] == pytest.approx(ray)


def test_row_5_trial_process_builds_only_its_student(quick_run):
    rows = quick_run["rows"]
    mem = rows["5a"]["raw"]
    assert rows["5a"]["reference"] == mem["teacher_process"]["peak_rss_mb"]
    assert rows["5a"]["kdtune"] == mem["trial"]["peak_rss_mb"]
    b = rows["5b"]["raw"]
    assert rows["5b"]["reference"] == pytest.approx(b["teacher_params"] / 1e6)
    assert b["trial_constructed_params"] == mem["trial"]["student_params"]
    assert b["teacher_process_constructed_params"] == mem["trial"]["student_params"] + b["teacher_params"]
    assert rows["5b"]["result"] == "PASS"
