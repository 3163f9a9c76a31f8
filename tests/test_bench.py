"""The benchmark script runs end to end in quick mode and reports every row (timings unchecked)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_kd.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_kd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def table_rows(text: str) -> dict[int, list[str]]:
    """Markdown table rows keyed by their '#' cell."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, ag_news):
    out = tmp_path_factory.mktemp("bench")
    bench = load_bench()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = bench.main(["--quick", "--out", str(out)])
    return rc, stdout.getvalue(), out, bench


def test_quick_mode_prints_every_row(quick_run):
    rc, printed, _, bench = quick_run
    assert rc == 0
    rows = table_rows(printed)
    assert sorted(rows) == [1, 2, 3, 4, 5]
    header = bench.HEADER
    for number, cells in rows.items():
        assert len(cells) == len(header), (number, cells)
        assert math.isfinite(float(cells[header.index("ratio")])), cells
        assert cells[header.index("result")] in {"PASS", "FAIL"}, cells
        assert cells[header.index("target")], cells


def test_quick_mode_writes_table_and_json(quick_run):
    _, printed, out, _ = quick_run
    md = (out / "bench_kd_quick.md").read_text()
    assert sorted(table_rows(md)) == [1, 2, 3, 4, 5]
    raw = json.loads((out / "bench_kd_quick.json").read_text())
    assert {"date", "command", "machine", "mode", "rows"} <= set(raw)
    assert raw["machine"]["cpu_count"] and raw["machine"]["torch"]
    assert [r["number"] for r in raw["rows"]] == [1, 2, 3, 4, 5]
    for row in raw["rows"]:
        assert row["result"] in {"PASS", "FAIL"} and isinstance(row["ratio"], float)
    by_number = {r["number"]: r["raw"] for r in raw["rows"]}
    assert by_number[1]["seed"] and by_number[1]["kdtune_kd"]  # raw timings of every repeat
    assert by_number[3]["asha"]["trial_epochs"] <= by_number[3]["complete"]["trial_epochs"]
    trial = by_number[5]["trial"]
    assert trial["max_model_params"] < by_number[5]["teacher_params"]  # no teacher in a trial
