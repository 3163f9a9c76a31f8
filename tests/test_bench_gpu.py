"""``benchmarks/bench_gpu.py --device cpu --tiny`` runs every row without the tuning stack.

The script is run as it is on the GPU machine (``PYTHONPATH=. python benchmarks/bench_gpu.py``),
with a ``sitecustomize`` shim first on PYTHONPATH that makes Ray, Optuna, scikit-learn,
pandas and datasets look not installed (``import`` raises ModuleNotFoundError and
``importlib.util.find_spec`` returns None, in the spawned trial processes too), proving it needs
none of them. Then every row, the markdown file and the JSON are checked against each other.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import HEADER, fmt, parse_table  # noqa: E402

BLOCKED = ("ray", "optuna", "sklearn", "pandas", "datasets")
ROW_IDS = {"1a", "1b", "2a", "2b", "3a", "3b", "4"}
COL = {name: i for i, name in enumerate(HEADER)}

SHIM = f'''"""Test shim: {", ".join(BLOCKED)} look not installed."""
import sys

BLOCKED = {set(BLOCKED)!r}
DISTRIBUTIONS = {set(BLOCKED) | {"scikit-learn"}!r}


class _Hidden:
    """Wraps a meta-path finder; finds nothing for the blocked packages."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        find = getattr(self.finder, "find_spec", None)
        return None if find is None else find(name, path, target)

    def find_distributions(self, context=None, **kwargs):  # importlib.metadata
        find = getattr(self.finder, "find_distributions", None)
        if find is None:
            return []
        name = getattr(context, "name", None) or kwargs.get("name")
        if name and name.lower().replace("_", "-") in DISTRIBUTIONS:
            return []
        return find(context, **kwargs) if context is not None else find(**kwargs)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [_Hidden(f) for f in sys.meta_path]
'''


def number(cell: str) -> float:
    return float(cell.split()[0])


@pytest.fixture(scope="module")
def shim_env(tmp_path_factory) -> dict[str, str]:
    shim = tmp_path_factory.mktemp("shim")
    (shim / "sitecustomize.py").write_text(SHIM)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_the_shim_hides_the_tuning_stack(shim_env):
    probe = ("import importlib.util, sys\n"
             f"for name in {BLOCKED!r}:\n"
             "    assert importlib.util.find_spec(name) is None, name\n"
             "    try:\n"
             "        __import__(name)\n"
             "    except ModuleNotFoundError:\n"
             "        continue\n"
             "    sys.exit(f'{name} imported')\n"
             "import torch, transformers, numpy\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=shim_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_run(shim_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_gpu")
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--tiny",
                           "--out", str(out)], cwd=ROOT, env=shim_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    raw = json.loads((out / "bench_gpu.json").read_text())
    return {"stdout": proc.stdout, "printed": parse_table(proc.stdout), "raw": raw,
            "rows": {r["id"]: r for r in raw["rows"]}, "md": (out / "bench_gpu.md").read_text()}


def test_tiny_mode_prints_every_row(tiny_run):
    printed = tiny_run["printed"]
    assert set(printed) == ROW_IDS
    for cells in printed.values():
        assert len(cells) == len(HEADER), cells
        ref, kd = number(cells[COL["reference"]]), number(cells[COL["kdtune"]])
        ratio = float(cells[COL["ratio"]])
        assert all(math.isfinite(v) for v in (ref, kd, ratio)), cells
        assert ratio == pytest.approx(kd / ref, rel=2e-3), cells
        assert cells[COL["target"]] and cells[COL["result"]] in {"PASS", "FAIL"}, cells


def test_tiny_mode_files_agree(tiny_run):
    md_rows = parse_table(tiny_run["md"])
    assert md_rows == tiny_run["printed"]
    raw = tiny_run["raw"]
    assert raw["tiny"] is True and raw["machine"]["device"] == "cpu" and not raw["skipped"]
    assert set(raw["row_seconds"]) == {"1", "2", "3", "4"}
    for rid, row in tiny_run["rows"].items():
        assert row["cells"] == md_rows[rid]
        assert md_rows[rid][COL["reference"]] == f"{fmt(row['reference'])} {row['unit']}"
        assert md_rows[rid][COL["kdtune"]] == f"{fmt(row['kdtune'])} {row['unit']}"
        assert row["ratio"] == pytest.approx(row["kdtune"] / row["reference"], rel=1e-12)


def test_tiny_mode_numbers_add_up(tiny_run):
    rows = tiny_run["rows"]
    for rid in ("1a", "1b"):
        runs = rows[rid]["raw"]["runs"]
        assert rows[rid]["kdtune"] == pytest.approx(runs["kdtune"][0]["epoch_seconds"])
        assert rows[rid]["reference"] == pytest.approx(runs["seed"][0]["epoch_seconds"])
        assert runs["kdtune"][0]["examples"] == runs["seed"][0]["examples"] > 0  # same rows, one epoch
    rounds = {int(k): v for k, v in rows["2b"]["raw"]["rounds"].items()}
    assert sorted(rounds) == [1, 2, 3]
    for n, r in rounds.items():
        assert r["trials"] == n  # one trial per process per round in tiny mode
        assert r["trials_per_hour"] == pytest.approx(3600 * r["trials"] / r["wall_seconds"])
    assert rows["2a"]["reference"] == pytest.approx(rounds[1]["trials_per_hour"])
    assert rows["2a"]["kdtune"] == pytest.approx(rounds[2]["trials_per_hour"])
    assert rows["2b"]["kdtune"] == pytest.approx(rounds[3]["trials_per_hour"])
    cache = rows["4"]["raw"]
    assert rows["4"]["kdtune"] == pytest.approx(cache["kdtune_rows"] / cache["kdtune_seconds"])
    assert rows["4"]["reference"] == pytest.approx(cache["seed"]["examples"] / cache["seed"]["seconds"])
