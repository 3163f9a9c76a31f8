"""``benchmarks/bench_gpu.py``: the one-shot GPU check, tested on the CPU.

The script is run as it is on the GPU machine (``PYTHONPATH=. python benchmarks/bench_gpu.py
--device cpu --tiny``), with a ``sitecustomize`` shim first on PYTHONPATH that makes Ray,
Optuna, scikit-learn, pandas and datasets look not installed (``import`` raises
ModuleNotFoundError and ``importlib.util.find_spec`` returns None, in the trial processes
too), proving it needs none of them: the CUDA-only rows read ``n/a (no CUDA)``,
every other row is measured, and the markdown file and the JSON agree. The parts of the
CUDA-only rows that the CPU can run (sync attribution, cache placements, kdtune's hidden-state
pass, FLOP counts), the deadline, the error path and a dead worker are tested in-process.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import HEADER, parse_table  # noqa: E402

BLOCKED = ("ray", "optuna", "sklearn", "pandas", "datasets")
CUDA_ONLY = {"1a", "1c", "1d", "1e", "5c"}
MEASURED = {"1b", "1f", "1g", "2a", "2b", "2c", "2d", "3a", "3b", "4a", "5a", "5b"}
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
            "TOKENIZERS_PARALLELISM": "false"}


def test_the_shim_hides_the_tuning_stack(shim_env):
    probe = ("import importlib.util, sys\n"
             f"for name in {BLOCKED!r}:\n"
             "    assert importlib.util.find_spec(name) is None, name\n"
             "    try:\n"
             "        __import__(name)\n"
             "    except ModuleNotFoundError:\n"
             "        continue\n"
             "    sys.exit(f'{name} imported')\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=shim_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_run(shim_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_gpu")
    env = {k: v for k, v in shim_env.items() if k != "HF_HUB_OFFLINE"}  # the script sets it
    # a deadline far above the normal run: a loaded shared machine must not turn rows into n/a
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--tiny",
                           "--deadline", "900", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    raw = json.loads((out / "bench_gpu.json").read_text())
    return {"stdout": proc.stdout, "printed": parse_table(proc.stdout), "raw": raw,
            "rows": {r["id"]: r for r in raw["rows"]}, "md": (out / "bench_gpu.md").read_text()}


def test_tiny_mode_prints_every_row(tiny_run):
    printed = tiny_run["printed"]
    assert set(printed) == CUDA_ONLY | MEASURED
    for rid in CUDA_ONLY:
        cells = printed[rid]
        assert cells[COL["result"]] == "n/a (no CUDA)", cells
        assert cells[COL["reference"]] == cells[COL["kdtune"]] == "n/a", cells
    for rid in MEASURED:
        cells = printed[rid]
        assert len(cells) == len(HEADER), cells
        assert cells[COL["result"]] in {"PASS", "FAIL"}, cells
        kd = number(cells[COL["kdtune"]])
        assert math.isfinite(kd), cells
        if cells[COL["ratio"]] != "-":
            ratio, ref = float(cells[COL["ratio"]]), number(cells[COL["reference"]])
            assert ratio == pytest.approx(kd / ref, rel=2e-3), cells


def test_tiny_mode_files_agree(tiny_run):
    md_rows = parse_table(tiny_run["md"])
    assert md_rows == tiny_run["printed"]
    raw = tiny_run["raw"]
    assert raw["tiny"] is True and raw["machine"]["device"] == "cpu"
    assert raw["hf_hub_offline"] == "1" and raw["tf32"] is None
    assert [r["id"] for r in raw["rows"]] == sorted(CUDA_ONLY | MEASURED)  # plan order
    for rid, row in tiny_run["rows"].items():
        assert row["cells"] == md_rows[rid]
        assert (row.get("missing") == "no CUDA") == (rid in CUDA_ONLY)


def test_tiny_mode_numbers_add_up(tiny_run):
    rows = tiny_run["rows"]
    for fp32_id, bf16_id in (("2a", "2b"), ("2c", "2d")):
        raw = rows[fp32_id]["raw"]
        runs, s, w = raw["runs"], raw["summary"], raw["work_flops"]
        assert rows[fp32_id]["reference"] == pytest.approx(runs["seed_fp32"][0]["epoch_seconds"])
        assert rows[bf16_id]["reference"] == pytest.approx(runs["seed_bf16"][0]["epoch_seconds"])
        assert rows[fp32_id]["kdtune"] == rows[bf16_id]["kdtune"] == pytest.approx(
            runs["kdtune"][0]["epoch_seconds"])
        assert runs["kdtune"][0]["examples"] == runs["seed_fp32"][0]["examples"] > 0
        kd = s["kdtune"]
        assert kd["tokens_per_s"] == pytest.approx(w["tokens"] / kd["seconds"])
        assert kd["useful_tflops"] == pytest.approx(w["useful"] / kd["seconds"] / 1e12)
        # the seed pads to 150 and runs the teacher: it executes more FLOPs than kdtune
        assert w["seed_executed"] > w["kdtune_executed"] >= w["useful"] > 0
    rounds = {int(k): v for k, v in rows["4a"]["raw"]["rounds"].items()}
    assert sorted(rounds) == [1, 2]
    for n, r in rounds.items():
        assert r["trials"] == n  # one trial per process per round in tiny mode
        assert r["trials_per_hour"] == pytest.approx(3600 * r["trials"] / r["wall_seconds"])
    assert rows["4a"]["reference"] == pytest.approx(rounds[1]["trials_per_hour"])
    assert rows["4a"]["kdtune"] == pytest.approx(rounds[2]["trials_per_hour"])
    for rid in ("3a", "3b"):
        cache = rows[rid]["raw"]
        assert rows[rid]["kdtune"] == pytest.approx(cache["kdtune"]["rows"] / cache["kdtune"]["seconds"])
        assert rows[rid]["reference"] == pytest.approx(cache["seed"]["examples"] / cache["seed"]["seconds"])
    assert rows["1b"]["kdtune"] == rows["1b"]["reference"] > 0  # every tensor round-tripped
    assert len(rows["1g"]["raw"]["fp32"]) == len(rows["1g"]["raw"]["bf16"]) == 6


# ---------------------------------------------------------------------------------------------
# In-process: the deadline, the error path, bad arguments, a dead worker, and the CPU-runnable
# parts of the CUDA-only rows
# ---------------------------------------------------------------------------------------------

# The alarm raises wherever it strikes, in any code: inside the logging module's lock it leaves
# that lock held, and every other thread of the process then blocks on its next log line (the
# test session hung twice so, in ray.shutdown() and in a thread pool). The alarm's tests
# therefore run in child processes.

def test_the_deadline_ends_the_run_with_every_remaining_row_na(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--tiny",
                           "--deadline", "0.001", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - t0 < 60  # the full tiny run takes minutes on this machine
    rows = {r["id"]: r for r in json.loads((tmp_path / "bench_gpu.json").read_text())["rows"]}
    assert set(rows) == CUDA_ONLY | MEASURED
    later = {"2a", "2b", "2c", "2d", "3a", "3b", "4a", "5a", "5b"}
    assert all(rows[i]["result"] == "n/a (deadline)" for i in later)
    assert {rows[i]["result"] for i in MEASURED} <= {"n/a (deadline)", "PASS", "FAIL"}
    assert all(rows[i]["result"] == "n/a (no CUDA)" for i in CUDA_ONLY)
    printed = parse_table(proc.stdout)
    assert printed["5b"][COL["result"]] == "n/a (deadline)"


ALARM = """
import sys, time
sys.path.insert(0, {root!r})
from benchmarks.gpu.deadline import Deadline

hung = []
deadline = Deadline({seconds!r}, lambda: hung.append(True), grace=0.5)
t0 = time.perf_counter()
assert deadline.run(lambda: time.sleep(10)) is False  # no exception escapes
assert time.perf_counter() - t0 < 5 and deadline.passed()
time.sleep(0.7)
assert not hung  # disarmed: the watchdog never fires after a clean stop
assert Deadline(30, lambda: None).run(lambda: None) is True
print("ok")
"""


@pytest.mark.parametrize("seconds", [1e-6, 0.05])
def test_the_alarm_cuts_a_stuck_row_wherever_it_strikes(seconds):
    proc = subprocess.run([sys.executable, "-c", ALARM.format(root=str(ROOT), seconds=seconds)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_a_row_that_raises_reads_na_with_its_reason(tmp_path):
    from benchmarks.gpu.checks import Planned
    from benchmarks.gpu.context import TINY, Ctx
    from benchmarks.gpu.deadline import Deadline
    from benchmarks.gpu.runner import Results, Step, run_step

    def broken(ctx):
        raise ZeroDivisionError("division by zero in the row")

    step = Step(1, (Planned("9z", "a broken row", "none"),), broken)
    results = Results(str(tmp_path), "t", {"row_seconds": {}, "date": "d", "command": "c",
                                           "machine": {"cpu_count": 1, "processor": "p",
                                                       "platform": "x", "torch": "t",
                                                       "device": "cpu"}}, [step], time.perf_counter())
    deadline = Deadline(60, lambda: None)
    run_step(Ctx(torch.device("cpu"), True, TINY, deadline, results.add), step, results)
    row = results.rows["9z"]
    assert row.result == "n/a (error)" and "ZeroDivisionError: division by zero" in row.notes
    assert row.cells()[2:5] == ["n/a", "n/a", "n/a"]


@pytest.mark.parametrize("argv, field", [(["--deadline", "0"], "--deadline"),
                                         (["--rows", "1,7"], "--rows")])
def test_bad_arguments_are_one_line_and_exit_2(argv, field, tmp_path, capsys):
    from benchmarks.gpu.runner import main

    assert main([*argv, "--device", "cpu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err
    assert not (tmp_path / "bench_gpu.json").exists()


def _exit_at_once(conn) -> None:
    os._exit(3)


def test_a_dead_worker_is_noticed_at_once():
    from benchmarks.gpu.concurrency import receive

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_exit_at_once, args=(child,), name="trial-0")
    proc.start()
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"trial process trial-0 died \(exit code 3\)"):
        receive(parent, proc, "ready", timeout=60, poll=0.05)
    assert time.perf_counter() - t0 < 10


def test_syncs_are_counted_and_attributed_by_package():
    import kdtune
    from benchmarks.gpu.probes import SYNC_MESSAGE, SyncCounter

    kd_file = str(Path(kdtune.__file__).resolve().parent / "trainer.py")
    ns = {"warnings": warnings, "SYNC_MESSAGE": SYNC_MESSAGE}
    exec(compile("def step():\n    warnings.warn(SYNC_MESSAGE, stacklevel=1)\n", kd_file, "exec"), ns)  # noqa: S102
    modes = []
    with SyncCounter(toggle=modes.append) as counter:
        for _ in range(3):
            ns["step"]()  # a sync on a kdtune line
        warnings.warn(SYNC_MESSAGE, stacklevel=1)  # one on this test's own line
        warnings.warn("something else", stacklevel=1)  # not a sync: not counted
    assert modes == [True, False]
    assert counter.by_package() == {"kdtune": 3, "other": 1}
    line = next(iter(counter.by_line()))
    assert line.startswith("kdtune/trainer.py:2 via kdtune/trainer.py:2 (step)")
    assert counter.by_line()[line] == 3


class _Named(torch.nn.Module):
    """Parameters named like a BERT classifier's, with the config shape_of reads."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"num_hidden_layers": 2, "hidden_size": 4})()
        self.embeddings = torch.nn.Embedding(50, 4)  # a lookup: no FLOPs per token
        self.layer = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(2))  # 2 x 20
        self.pooler = torch.nn.Linear(4, 4)  # once per row
        self.classifier = torch.nn.Linear(4, 3)


def test_flops_are_counted_from_the_shapes():
    from benchmarks.gpu.shapes import FORWARD, TRAIN, Shape, batch_widths, flops, shape_of

    shape = Shape(layers=2, width=4, matmul_params=100)
    # 3 * (6 * 100 + 12 * 2 * 4 * 3) + 5 * (6 * 100 + 12 * 2 * 4 * 5)
    assert flops(shape, np.array([3, 5]), TRAIN) == 3 * 888 + 5 * 1080 == 8064
    assert flops(shape, np.array([3, 5]), FORWARD) == 3 * 296 + 5 * 360 == 2688
    assert batch_widths(np.array([3, 5, 2]), [np.array([0, 1]), np.array([2])]).tolist() == [5, 5, 2]
    # two 4 x 4 blocks with biases; embeddings, pooler and the classifier excluded
    assert shape_of(_Named()) == Shape(2, 4, 40)


def test_feature_cache_placements_gather_the_same_rows_on_the_cpu():
    from benchmarks.gpu.correctness import gathers_agree

    assert gathers_agree(["cpu", "cpu:0"], torch.device("cpu")) == {"cpu": True, "cpu:0": True}


class _Encoder(torch.nn.Module):
    """A stand-in teacher with transformers' interface: ``hidden_states`` per block."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"hidden_size": 6})()
        self.embed = torch.nn.Embedding(1000, 6)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(6, 6) for _ in range(3))

    def forward(self, input_ids, attention_mask, output_hidden_states=True):
        h = [self.embed(input_ids)]
        for block in self.blocks:
            h.append(torch.tanh(block(h[-1])) * attention_mask.unsqueeze(-1))
        return type("Out", (), {"hidden_states": tuple(h)})()


def test_the_hidden_state_pass_is_kdtunes_own_code():
    from benchmarks.gpu.hidden import compute_hidden_states
    from benchmarks.gpu.shapes import synthetic_split
    from kdtune import teacher

    torch.manual_seed(0)
    model, data, cpu = _Encoder(), synthetic_split(12, 1000, seed=2), torch.device("cpu")
    ours = compute_hidden_states()(model, data, [0, 2], 4, cpu, "fp32")
    theirs = teacher.compute_hidden_states(model, data, [0, 2], 4, cpu, "fp32")
    assert set(ours) == {0, 2} and ours[2].shape == (data.tokens, 6)
    for block in ours:
        np.testing.assert_array_equal(ours[block], theirs[block])
    # ragged like the tokens: row 0's states are its own tokens', in order
    first = model(**data.collate(np.array([0]))).hidden_states[3][0].detach().numpy()
    np.testing.assert_allclose(ours[2][:data.lengths[0]], first, atol=1e-3)
