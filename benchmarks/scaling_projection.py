"""The seed report's full job projected from measured CPU figures: a pure function, no timing.

``benchmarks.scaling`` measures (``benchmarks/results/scaling.json``); this module turns those
figures and the space's config (:class:`Job`, from ``search_spaces/seed_report.yaml``) into
the projection, so it can be recomputed and checked by hand without training anything:

* ASHA's share of trial-epochs is derived for the job's own grace period, reduction factor,
  promotion rule, trial count and epochs (:func:`asha_levels`: the asynchronous rule in
  expectation), not copied from the quickstart;
* evaluation is counted: every rung inside an epoch scores a stratified validation subset
  (``kdtune.trainer.intermediate_rows``), every epoch end the whole split, each row at
  ``kdtune.trainer.EVAL_ROW_COST`` of a training row;
* a trial holds ``cpus_per_trial`` CPUs (its torch threads): the trials that run at once on a
  node are ``min(max_concurrent, cpus // cpus_per_trial)``, and since the steps were timed on
  one thread, a trial-epoch's wall time is given between perfect thread scaling and none;
* the object store holds the tokenised splits, the cached logits and the student's initial
  weights (``TrialData.student_init``, put once per node by ``tune.with_parameters``);
* what only a GPU can tell is kept apart (:func:`gpu_rows`: "needs bench_gpu.py").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdtune.trainer import EVAL_ROW_COST, intermediate_rows

#: Bytes per trainable parameter in a trial: fp32 weights, gradients and AdamW's two moments.
BYTES_PER_PARAM = 16
#: Ray's default object store takes this share of a node's memory.
OBJECT_STORE_SHARE = 0.3


@dataclass(frozen=True)
class Job:
    """What the projected search does, from its space's config."""

    train_rows: int
    val_rows: int
    test_rows: int
    classes: int
    batch: int
    num_samples: int
    epochs: int
    grace_period: float
    reduction_factor: int
    eval_every: float
    cpus_per_trial: int
    max_concurrent: int
    teacher_epochs: int  # every teacher epoch trained: epochs x learning rates tried
    confirm_runs: int  # full-length runs of the confirm stage, both arms
    promotion: str = "top_k"  # search.promotion: kdtune.tuning.scheduler's rule or Ray's


@dataclass(frozen=True)
class Node:
    cpus: int
    ram_gb: float


def rung_points(job: Job) -> list[float]:
    """ASHA's milestones in epochs, as Ray builds them (``grace * rf^k`` below ``max_t``)."""
    n = int(math.log(job.epochs / job.grace_period) / math.log(job.reduction_factor) + 1)
    return [job.grace_period * job.reduction_factor ** k for k in range(n)]


def continue_probability(m: int, rf: int, promotion: str = "top_k") -> float:
    """The chance that a trial reaching a rung after ``m`` others continues, for exchangeable
    scores (its rank among the ``m + 1`` is uniform).

    ``top_k`` (kdtune.tuning.scheduler.keeps): it goes on when among the top
    ``max(1, floor((m + 1) / rf))``, which gives that count over ``m + 1``. The scheduler also
    judges a first arrival again (while fewer than ``rf`` trials have reached the rung) at its
    later results; that can only stop more, so for ``top_k`` this is an upper bound.
    ``percentile`` (Ray's): it stops when below ``np.nanpercentile`` (linear interpolation) at
    ``q = 1 - 1/rf`` of the ``m`` scores recorded before it, which gives
    ``(m - q (m - 1)) / (m + 1)``. Both are 1 for the first.
    """
    if m == 0:
        return 1.0
    if promotion == "top_k":
        return max(1, (m + 1) // rf) / (m + 1)
    q = 1.0 - 1.0 / rf
    return (m - q * (m - 1)) / (m + 1)


def promoted(arrivals: float, rf: int, promotion: str = "top_k") -> float:
    """Expected trials that continue past a rung ``arrivals`` trials reach one after another
    (linear between whole numbers of arrivals)."""
    whole = int(math.floor(arrivals))
    total = sum(continue_probability(m, rf, promotion) for m in range(whole))
    return total + (arrivals - whole) * continue_probability(whole, rf, promotion)


def asha_levels(job: Job) -> list[tuple[float, float]]:
    """(progress, expected trials that train to it): every trial to the first rung, the
    promoted ones to the next, the last survivors to ``epochs``."""
    points = rung_points(job) + [float(job.epochs)]
    counts = [float(job.num_samples)]
    for _ in points[1:]:
        counts.append(promoted(counts[-1], job.reduction_factor, job.promotion))
    return list(zip(points, counts, strict=True))


def trial_epochs(levels: list[tuple[float, float]]) -> float:
    done, total = 0.0, 0.0
    for point, count in levels:
        total += count * (point - done)
        done = point
    return total


def evaluations(job: Job, levels: list[tuple[float, float]]) -> tuple[float, float]:
    """(expected subset evaluations, whole-split evaluations) of the search: an evaluation at
    progress ``e`` is run by every trial that trains to the first level at or after ``e``."""
    per_epoch = max(1, round(1.0 / job.eval_every))
    subset, whole = 0.0, 0.0
    for k in range(1, job.epochs * per_epoch + 1):
        e = k / per_epoch
        count = next(c for p, c in levels if p >= e - 1e-9)
        if k % per_epoch == 0:
            whole += count
        else:
            subset += count
    return subset, whole


def eval_rows(job: Job) -> tuple[int, int]:
    """(rows of the subset scored inside an epoch, rows of the whole validation split)."""
    per_epoch = max(1, round(1.0 / job.eval_every))
    return intermediate_rows(job.train_rows, job.val_rows, per_epoch, job.classes), job.val_rows


def _steps(measured: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["model"], s["what"].split(" ")[0]): s for s in measured["steps"]}


def search_cost(job: Job, row_s: float) -> dict[str, float]:
    """Thread-seconds of the search and the confirm stage from one training row's cost."""
    levels = asha_levels(job)
    te = trial_epochs(levels)
    sub_n, whole_n = evaluations(job, levels)
    sub_rows, whole_rows = eval_rows(job)
    eval_row_s = EVAL_ROW_COST * row_s
    epoch_s = job.train_rows * row_s
    per_epoch = max(1, round(1.0 / job.eval_every))
    confirm_run_s = job.epochs * (epoch_s + ((per_epoch - 1) * sub_rows + whole_rows) * eval_row_s)
    return {"trial_epochs": te, "asha_share": te / (job.num_samples * job.epochs),
            "levels": levels, "subset_evals": sub_n, "whole_evals": whole_n,
            "subset_rows": sub_rows, "whole_rows": whole_rows,
            "train_s": te * epoch_s, "eval_s": (sub_n * sub_rows + whole_n * whole_rows) * eval_row_s,
            "confirm_s": job.confirm_runs * confirm_run_s,
            "eval_share_per_epoch": ((per_epoch - 1) * sub_rows + whole_rows) * EVAL_ROW_COST
            / job.train_rows}


def teacher_cost(job: Job, train_step_s: float, infer_step_s: float) -> dict[str, float]:
    """Thread-seconds of the teacher's fine-tuning (with its own rung evaluations: the
    teacher trains through the same Trainer) and of its logits pass over every split."""
    per_epoch = max(1, round(1.0 / job.eval_every))
    sub_rows, whole_rows = eval_rows(job)
    rows_scored = (per_epoch - 1) * sub_rows + whole_rows
    train = job.teacher_epochs * (job.train_rows / job.batch * train_step_s
                                  + rows_scored / job.batch * infer_step_s)
    logits = (job.train_rows + job.val_rows + job.test_rows) / job.batch * infer_step_s
    return {"teacher_s": train, "logits_s": logits}


def placement(job: Job, node: Node, thread_s: float) -> dict[str, Any]:
    """Trials at once on ``node`` and the search's wall time there, as a range: the steps were
    timed on one thread, and a trial's ``cpus_per_trial`` threads speed it up by 1x to
    ``cpus_per_trial``x."""
    slots = min(job.max_concurrent, node.cpus // job.cpus_per_trial)
    if slots == 0:
        return {"slots": 0, "best_h": math.inf, "worst_h": math.inf}
    return {"slots": slots, "best_h": thread_s / (slots * job.cpus_per_trial) / 3600,
            "worst_h": thread_s / slots / 3600}


def object_store(job: Job, mean_tokens: float, student_params: float) -> dict[str, float]:
    """MB a logit-KD search puts in the object store: train and validation splits (int32
    token ids, int64 offsets and labels), fp32 logits of the train rows, the student's fp32
    initial weights; and one cached fp16 BERT-base block of hidden states (feature KD)."""
    rows = job.train_rows + job.val_rows
    splits = rows * (mean_tokens * 4 + 8 + 8) / 1e6
    logits = job.train_rows * job.classes * 4 / 1e6
    student = student_params * 4 / 1e6
    return {"splits_mb": splits, "logits_mb": logits, "student_mb": student,
            "total_mb": splits + logits + student,
            "hidden_block_gb": job.train_rows * mean_tokens * 768 * 2 / 1e9}


def estimates(measured: dict[str, Any], job: Job, node: Node,
              trial_rss_mb: float | None) -> dict[str, Any]:
    """Every projected quantity of ``job`` on ``node`` from ``measured`` (scaling.json)."""
    step = _steps(measured)
    distil = step[("distilbert-base", "KD")]
    mean_tokens = sum(s["mean_tokens"] for s in measured["sizes"]) / len(measured["sizes"])
    search = search_cost(job, distil["seconds_per_batch"] / distil["batch"])
    thread_s = search["train_s"] + search["eval_s"] + search["confirm_s"]
    teacher = teacher_cost(job, step[("bert-base", "train")]["seconds_per_batch"],
                           step[("bert-base", "inference")]["seconds_per_batch"])
    store = object_store(job, mean_tokens, distil["params_m"] * 1e6)
    slice_params = measured["sizes"][0]["student_weights_mb"] * 1e6 / 4
    extra = distil["params_m"] * 1e6 - slice_params
    full = Node(cpus=job.max_concurrent * job.cpus_per_trial, ram_gb=node.ram_gb)
    return {"job": job, "node": node, "mean_tokens": mean_tokens, "search": search,
            "thread_h": thread_s / 3600, "teacher": teacher, "store": store,
            "student_epoch_h": job.train_rows / job.batch * distil["seconds_per_batch"] / 3600,
            "here": placement(job, node, thread_s), "sized": placement(job, full, thread_s),
            "sized_cpus": full.cpus, "store_gb": OBJECT_STORE_SHARE * node.ram_gb,
            "trial_gb": None if trial_rss_mb is None else
            trial_rss_mb / 1e3 + extra * BYTES_PER_PARAM / 1e9}


def _hours(h: float) -> str:
    return "never (no trial fits)" if math.isinf(h) else f"{h:.0f} h"


def _range(p: dict[str, Any]) -> str:
    return f"{_hours(p['best_h'])}-{_hours(p['worst_h'])} with {p['slots']} trial(s) at once"


def asha_row(e: dict[str, Any]) -> list[str]:
    job, s = e["job"], e["search"]
    levels = ", ".join(f"{c:.1f} to {p:g}" for p, c in s["levels"])
    return ["ASHA's share of trial-epochs", f"{s['asha_share']:.2f} ({s['trial_epochs']:.1f} of "
            f"{job.num_samples * job.epochs})",
            f"derived for this search: {job.num_samples} trials, {job.epochs} epochs, grace "
            f"{job.grace_period:g}, reduction factor {job.reduction_factor}, promotion "
            f"{job.promotion}; expected trials training to each point: {levels} (the "
            "asynchronous rule at arrival, in expectation)"]


def cpu_rows(e: dict[str, Any]) -> list[list[str]]:
    """(quantity, projected, from what) on CPUs like the measuring node's, one thread timed."""
    job, s, t, st = e["job"], e["search"], e["teacher"], e["store"]
    here, sized = e["here"], e["sized"]
    trial = "unknown (no results/example)" if e["trial_gb"] is None else f"{e['trial_gb']:.1f} GB"
    return [
        ["rows", f"{job.train_rows:,} train, {job.val_rows:,} validation",
         f"mean {e['mean_tokens']:.1f} tokens per row (measured on the shared file)"],
        ["DistilBERT KD trial-epoch", f"{e['student_epoch_h']:.1f} h on one thread",
         f"the measured step x {job.train_rows / job.batch:,.0f} batches; at most "
         f"{job.cpus_per_trial}x faster on a trial's {job.cpus_per_trial} threads"],
        ["evaluation", f"+{s['eval_share_per_epoch']:.0%} per trial-epoch",
         f"each epoch scores {s['subset_rows']:,} rows at its mid-epoch rung (the stratified subset "
         f"is the whole split at this size) and {s['whole_rows']:,} at its end, a row at "
         f"{EVAL_ROW_COST:g} of a training row's cost"],
        asha_row(e),
        ["search + confirm", f"{e['thread_h']:.0f} thread-hours",
         f"{s['trial_epochs']:.1f} trial-epochs ({s['train_s'] / 3600:.0f} h) + "
         f"{s['subset_evals']:.0f} subset and {s['whole_evals']:.0f} whole-split evaluations "
         f"({s['eval_s'] / 3600:.0f} h) + {job.confirm_runs} confirm runs ({s['confirm_s'] / 3600:.0f} h)"],
        ["search wall time", f"{_range(here)} on this {e['node'].cpus}-CPU node; {_range(sized)} on "
         f"{e['sized_cpus']} CPUs", f"cpus_per_trial {job.cpus_per_trial} (a trial's torch threads), "
         f"max_concurrent {job.max_concurrent}; the range: perfect thread scaling to none"],
        ["BERT-base teacher fine-tuning", f"{t['teacher_s'] / 3600:.0f} thread-hours",
         f"{job.teacher_epochs} epochs in all (epochs x learning rates), with its own rung "
         "evaluations"],
        ["BERT-base logits pass", f"{t['logits_s'] / 3600:.1f} thread-hours",
         f"every row of train, validation and the {job.test_rows:,}-row test split"],
        ["object store, logit KD", f"{st['total_mb']:.0f} MB",
         f"splits {st['splits_mb']:.0f} MB + logits {st['logits_mb']:.0f} MB + the student's initial "
         f"weights {st['student_mb']:.0f} MB (put once per node, shared by its trials)"],
        ["object store, feature KD", f"+{st['hidden_block_gb']:.1f} GB per teacher block",
         f"fp16 hidden states, width 768; Ray's default store on this {e['node'].ram_gb:.0f} GB node "
         f"is {e['store_gb']:.1f} GB"],
        ["RAM per trial", trial,
         f"the quickstart trials' median peak RSS + DistilBERT's extra parameters x {BYTES_PER_PARAM} B"],
        ["runs out first", runs_out_first(e), "from the rows above"],
    ]


def runs_out_first(e: dict[str, Any]) -> str:
    """Which resource a node like the measuring one exhausts first on the job."""
    node, here = e["node"], e["here"]
    driver_h = (e["teacher"]["teacher_s"] + e["teacher"]["logits_s"]) / 3600 / node.cpus
    days = (driver_h + here["best_h"]) / 24
    parts = [f"time: at least {days:.0f} days on this {node.cpus}-CPU node (the teacher on all "
             "its CPUs, then the search), so the job needs a GPU (see the next table)"]
    if e["trial_gb"] is not None:
        fits = int((node.ram_gb - e["store_gb"]) // e["trial_gb"])
        want = e["job"].max_concurrent
        parts.append(f"memory: {want} concurrent trials need ~{want * e['trial_gb']:.0f} GB; beside "
                     f"the object store this node's {node.ram_gb:.0f} GB holds {min(fits, want)}")
    gb = e["store"]["hidden_block_gb"]
    parts.append(f"feature KD: one cached block ({gb:.1f} GB) "
                 + ("exceeds" if gb > e["store_gb"] else "fits")
                 + f" the default object store ({e['store_gb']:.1f} GB); above "
                   "train.feature_cache_max_mb kdtune runs the teacher online in each trial")
    return "; ".join(parts)


#: What only a GPU can tell, what measures it, and what the seed's job needs of it.
GPU_QUANTITIES = (
    ("DistilBERT KD trial-epoch on a GPU", "needs bench_gpu.py rows 2c / 2d (one epoch of 4,096 "
     "rows, seed-style fp32 and bf16 vs kdtune; tokens/s and TFLOP/s)",
     "x {rows_ratio:.1f} for {train_rows:,} rows"),
    ("trials sharing one GPU", "needs bench_gpu.py rows 4a / 4b (1, 4, 8 concurrent DistilBERT "
     "trials) and 5b (utilisation)", "max_concurrent {max_concurrent} at gpus_per_trial {gpus:g}"),
    ("GPU memory per trial process", "needs bench_gpu.py row 5c (8 processes on one GPU)",
     "{max_concurrent} x per-process memory must fit"),
    ("BERT-base logits pass on a GPU", "needs bench_gpu.py rows 3a / 3b (examples/s)",
     "{all_rows:,} rows"),
    ("host syncs per step", "needs bench_gpu.py row 1a",
     "one every train.nan_check_every steps is the claim"),
    ("feature KD cache on the GPU", "needs bench_gpu.py row 1c (cuda / cuda:0 / host placements)",
     "4 GB per GPU, shared by its trials"),
    ("BERT-base teacher fine-tuning on a GPU", "needs a GPU measurement bench_gpu.py does not make "
     "yet (it times BERT-base inference, row 3)", "{teacher_epochs} epochs"),
)


def gpu_rows(job: Job, gpus_per_trial: float) -> list[list[str]]:
    """(quantity, what measures it, what this job needs of it): none is projected from CPUs."""
    facts = {"rows_ratio": job.train_rows / 4096, "train_rows": job.train_rows,
             "max_concurrent": job.max_concurrent, "gpus": gpus_per_trial,
             "all_rows": job.train_rows + job.val_rows + job.test_rows,
             "teacher_epochs": job.teacher_epochs}
    return [[q, needs, use.format(**facts)] for q, needs, use in GPU_QUANTITIES]
