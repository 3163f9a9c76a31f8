"""The scaling projection (``benchmarks/scaling_projection.py``) against hand-computed numbers.

No training and no timing: the projection is a pure function of measured figures and a
space's config, so a small made-up job is computed here by hand, line by line; then the
committed ``benchmarks/results/scaling.md`` / ``.json`` must be what the code renders from the
committed measurements.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scaling_projection import (  # noqa: E402
    Job,
    Node,
    asha_levels,
    continue_probability,
    estimates,
    eval_rows,
    evaluations,
    gpu_rows,
    object_store,
    placement,
    promoted,
    rung_points,
    search_cost,
    teacher_cost,
    trial_epochs,
)

#: A small job: 1,000 training rows, 3 trials of 3 epochs, rungs at 0.5 and 1.5 epochs, Ray's
#: promotion rule (the cost tests below use its numbers; kdtune's top_k is checked on its own).
JOB = Job(train_rows=1000, val_rows=100, test_rows=50, classes=4, batch=10, num_samples=3,
          epochs=3, grace_period=0.5, reduction_factor=3, eval_every=0.5, cpus_per_trial=2,
          max_concurrent=4, teacher_epochs=2, confirm_runs=2, promotion="percentile")
# Ray's rule, by hand: the m-th arrival at a rung (0-based) continues with probability
# (m - (2/3)(m - 1)) / (m + 1): 1, 1/2, 4/9, 5/12, ...
P0, P1, P2 = 1.0, 0.5, 4 / 9
TO_15 = P0 + P1 + P2  # 3 trials reach 0.5: 1.9444 expected go on to 1.5
TO_3 = P0 + (TO_15 - 1) * P1  # 1.9444 reach 1.5: 1 + 0.9444 * 0.5 = 1.4722 go on to 3
TRIAL_EPOCHS = 3 * 0.5 + TO_15 * (1.5 - 0.5) + TO_3 * (3 - 1.5)  # 5.6528


def test_asha_is_rays_rule_in_expectation():
    assert rung_points(JOB) == [0.5, 1.5]
    assert [continue_probability(m, 3, "percentile") for m in range(4)] == pytest.approx(
        [1, 0.5, 4 / 9, 5 / 12])
    assert promoted(3, 3, "percentile") == pytest.approx(TO_15)
    assert promoted(2.5, 3, "percentile") == pytest.approx(1 + 0.5 + 0.5 * 4 / 9)
    levels = asha_levels(JOB)
    assert [p for p, _ in levels] == [0.5, 1.5, 3.0]
    assert [c for _, c in levels] == pytest.approx([3, TO_15, TO_3])
    assert trial_epochs(levels) == pytest.approx(TRIAL_EPOCHS) == pytest.approx(5.6528, abs=1e-4)


def test_asha_is_kdtunes_top_k_rule_in_expectation():
    """The (m+1)-th arrival goes on when among the top max(1, floor((m+1)/3)) of m+1 ranks:
    1, 1/2, 1/3, 1/4, 1/5, 2/6, 2/7, ..."""
    from dataclasses import replace

    assert [continue_probability(m, 3) for m in range(7)] == pytest.approx(
        [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 2 / 6, 2 / 7])
    to_15 = 1 + 1 / 2 + 1 / 3  # 3 trials reach 0.5: 1.8333 go on
    to_3 = 1 + (to_15 - 1) * 1 / 2  # 1.4167
    levels = asha_levels(replace(JOB, promotion="top_k"))
    assert [c for _, c in levels] == pytest.approx([3, to_15, to_3])
    assert trial_epochs(levels) == pytest.approx(1.5 + to_15 * 1 + to_3 * 1.5)  # 5.4583
    quick = replace(JOB, num_samples=14, promotion="top_k")
    share = trial_epochs(asha_levels(quick)) / 42
    assert share == pytest.approx(0.367, abs=1e-3)  # against 0.425 under Ray's rule (below)


def test_asha_share_depends_on_the_searchs_own_settings():
    from dataclasses import replace

    share = {n: trial_epochs(asha_levels(replace(JOB, num_samples=n))) / (3 * n) for n in (14, 24)}
    assert share[14] == pytest.approx(0.425, abs=1e-3)  # the quickstart's 14 trials
    assert share[24] == pytest.approx(0.393, abs=1e-3)  # the seed job's 24: more competition
    wider = replace(JOB, num_samples=24, grace_period=1.0)  # a first rung after a whole epoch
    assert rung_points(wider) == [1.0, 3.0]  # as Ray builds them: the last at max_t
    assert trial_epochs(asha_levels(wider)) / 72 > share[24]


def test_evaluations_are_counted_per_rung_reached():
    subset, whole = evaluations(JOB, asha_levels(JOB))
    # evaluations at 0.5 (subset), 1.0 (whole), 1.5 (subset), 2.0, 2.5 (subset), 3.0:
    # 3 trials reach 0.5; 1.9444 train on to 1.0 and 1.5; 1.4722 to 2.0, 2.5 and 3.0
    assert subset == pytest.approx(3 + TO_15 + TO_3)
    assert whole == pytest.approx(TO_15 + 2 * TO_3)
    # kdtune.trainer.intermediate_rows: 0.1 * 1000 / (0.5 * 1) = 200 rows, at most the split
    assert eval_rows(JOB) == (100, 100)
    from dataclasses import replace

    assert eval_rows(replace(JOB, train_rows=10_000, val_rows=5_000)) == (2000, 5000)


def test_search_and_teacher_costs_by_hand():
    s = search_cost(JOB, row_s=0.01)  # an epoch of 1,000 rows: 10 s; an eval row 0.005 s
    assert s["train_s"] == pytest.approx(10 * TRIAL_EPOCHS)
    assert s["eval_s"] == pytest.approx(((3 + TO_15 + TO_3) + (TO_15 + 2 * TO_3)) * 100 * 0.005)
    assert s["confirm_s"] == pytest.approx(2 * 3 * (10 + (100 + 100) * 0.005))  # 66 s
    assert s["eval_share_per_epoch"] == pytest.approx(0.1)  # 200 rows x 0.5 / 1000
    assert s["asha_share"] == pytest.approx(TRIAL_EPOCHS / 9)
    t = teacher_cost(JOB, train_step_s=2.0, infer_step_s=0.5)
    assert t["teacher_s"] == pytest.approx(2 * (100 * 2.0 + 20 * 0.5))  # 420 s
    assert t["logits_s"] == pytest.approx(115 * 0.5)  # 1,150 rows in batches of 10


def test_cpus_per_trial_decides_how_many_trials_run_at_once():
    p = placement(JOB, Node(cpus=5, ram_gb=8), thread_s=7200)
    assert p["slots"] == 2  # 5 CPUs // 2 per trial, under max_concurrent 4
    assert p["best_h"] == pytest.approx(0.5) and p["worst_h"] == pytest.approx(1.0)
    assert placement(JOB, Node(cpus=64, ram_gb=8), thread_s=7200)["slots"] == 4
    assert math.isinf(placement(JOB, Node(cpus=1, ram_gb=8), thread_s=7200)["best_h"])


def test_the_object_store_holds_the_students_weights():
    st = object_store(JOB, mean_tokens=50, student_params=1e6)
    assert st["splits_mb"] == pytest.approx(1100 * (50 * 4 + 16) / 1e6)
    assert st["logits_mb"] == pytest.approx(1000 * 4 * 4 / 1e6)
    assert st["student_mb"] == pytest.approx(4.0)
    assert st["total_mb"] == pytest.approx(st["splits_mb"] + st["logits_mb"] + 4.0)
    assert st["hidden_block_gb"] == pytest.approx(1000 * 50 * 768 * 2 / 1e9)


def test_estimates_add_the_parts_up():
    measured = {"sizes": [{"mean_tokens": 50.0, "student_weights_mb": 4.0}],
                "steps": [{"model": "distilbert-base", "what": "KD train step", "batch": 10,
                           "seconds_per_batch": 0.1, "params_m": 3.0},
                          {"model": "bert-base", "what": "train step", "seconds_per_batch": 2.0},
                          {"model": "bert-base", "what": "inference batch", "seconds_per_batch": 0.5}]}
    e = estimates(measured, JOB, Node(cpus=4, ram_gb=10), trial_rss_mb=1000)
    s = e["search"]
    assert e["thread_h"] == pytest.approx((s["train_s"] + s["eval_s"] + s["confirm_s"]) / 3600)
    assert s["train_s"] == pytest.approx(10 * TRIAL_EPOCHS)  # 0.1 s per batch of 10: 0.01 s a row
    assert e["here"]["slots"] == 2 and e["sized"]["slots"] == 4 and e["sized_cpus"] == 8
    assert e["store"]["student_mb"] == pytest.approx(12.0)  # 3M fp32 parameters
    assert e["trial_gb"] == pytest.approx(1.0 + (3e6 - 1e6) * 16 / 1e9)  # + the extra parameters
    assert e["store_gb"] == pytest.approx(3.0)


def test_gpu_quantities_are_kept_apart():
    rows = gpu_rows(JOB, 0.125)
    assert rows and all(r[1].startswith("needs ") for r in rows)
    assert any("bench_gpu.py row 5c" in r[1] for r in rows)


def test_the_seed_job_and_the_committed_projection():
    from benchmarks.scaling import job_of, markdown, project

    job = job_of()
    assert (job.train_rows, job.val_rows, job.cpus_per_trial, job.max_concurrent) == (108_000, 12_000, 2, 8)
    assert (job.num_samples, job.epochs, job.teacher_epochs, job.confirm_runs) == (24, 3, 4, 8)
    committed = json.loads((ROOT / "benchmarks/results/scaling.json").read_text())
    again = {k: committed[k] for k in ("date", "machine", "sizes", "steps", "node")}
    project(again)
    assert again["projection"] == committed["projection"]
    assert again["projection_gpu"] == committed["projection_gpu"]
    assert markdown(again) == (ROOT / "benchmarks/results/scaling.md").read_text()
