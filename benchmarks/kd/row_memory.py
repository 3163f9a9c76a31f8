"""Row 5: memory of a trial-equivalent process against one that loads the teacher.

Each side runs in a fresh child process (``python -m benchmarks.kd.row_memory KIND INPUTS
OUT``) from the same pickled inputs and imports, with the trial's thread count:

* ``trial``: what ``kdtune.trainable.kd_trial`` does, minus Ray: ``kdtune.recipe.build_trainer``
  on the search's ``TrialData`` (the student built from its ``StudentInit``, cached teacher
  logits), then one epoch of ``Trainer.fit``. It never loads the teacher.
* ``teacher``: the same student and the fine-tuned teacher (``from_pretrained`` of the cached
  teacher folder), one epoch of the seed-style loop (``benchmarks.reference``).

5a: peak RSS (``VmHWM``), trial < teacher process. 5b: parameters the trial process
constructs, counted with torch's global parameter-registration hook (a public torch API, no
patching), against the teacher's parameters: below one teacher, i.e. no teacher-sized model is
ever built in a trial.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Row, below, peak_rss_mb
from benchmarks.kd.context import Bench
from benchmarks.reference import SEED_MAX_LENGTH

KINDS = ("trial", "teacher")


def child(kind: str, inputs_path: str, out_path: str) -> int:
    import torch
    from torch.nn.modules import module as torch_module
    from transformers import AutoModelForSequenceClassification, PreTrainedModel

    from benchmarks import reference
    from kdtune.models import count_parameters
    from kdtune.params import TrainParams
    from kdtune.recipe import build_model, build_trainer
    from kdtune.trainer import seed_everything

    with open(inputs_path, "rb") as f:
        inp = pickle.load(f)
    torch.set_num_threads(inp["threads"])
    device = torch.device(inp["device"])
    data = inp["data"]
    hparams = {**data.base, "epochs": 1, "eval_every": 1.0}
    constructed = [0]

    def count(_module: Any, _name: str, param: Any) -> None:
        if param is not None and param.device.type != "meta":  # meta tensors hold no memory
            constructed[0] += param.numel()

    hook = torch_module.register_module_parameter_registration_hook(count)
    gc.collect()
    baseline = peak_rss_mb()  # imports and inputs, before any model exists
    teacher_params = None
    if kind == "trial":
        trainer = build_trainer(hparams, data, device=device)
        student = trainer.model
        trainer.fit()
    else:
        params = TrainParams.from_hparams(hparams)
        seed_everything(params.seed)
        student = build_model(data, hparams)
        teacher = AutoModelForSequenceClassification.from_pretrained(inp["teacher_dir"]).to(device)
        teacher_params = count_parameters(teacher)
        seed = inp["seed_encoded"]
        reference.train(student, teacher, seed["train"], seed["val"], epochs=1,
                        batch_size=params.batch_size, lr=params.learning_rate, alpha=params.alpha,
                        temperature=params.temperature, clip_norm=params.clip_norm, seed=params.seed,
                        device=device, label_names=data.label_names)
    hook.remove()
    live = [count_parameters(o) for o in gc.get_objects()
            if isinstance(o, PreTrainedModel) and o.base_model is not o]
    out = {"kind": kind, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
           "constructed_params": constructed[0], "live_model_params": live,
           "student_params": count_parameters(student), "teacher_params": teacher_params,
           "threads": inp["threads"]}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    Path(out_path).write_text(json.dumps(out))
    return 0


def run(bench: Bench) -> list[Row]:
    cfg = bench.cfg
    threads = max(1, int(cfg.search.cpus_per_trial))
    inputs = {"data": bench.trial_data, "teacher_dir": str(bench.prep.teacher.model_dir),
              "seed_encoded": bench.seed_encoded, "device": str(bench.device), "threads": threads}
    inputs_path = bench.workdir / "memory_inputs.pkl"
    with open(inputs_path, "wb") as f:
        pickle.dump(inputs, f, protocol=pickle.HIGHEST_PROTOCOL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # Both children run at once (each with the trial's threads): peak RSS does not depend on
    # the neighbour, and the row takes half the time.
    procs, results = {}, {}
    for kind in KINDS:
        out_path = bench.workdir / f"memory_{kind}.json"
        cmd = [sys.executable, "-m", "benchmarks.kd.row_memory", kind, str(inputs_path), str(out_path)]
        procs[kind] = (subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True), out_path)
    for kind, (proc, out_path) in procs.items():
        _, stderr = proc.communicate()
        if proc.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"memory child {kind!r} failed ({proc.returncode}):\n{stderr[-3000:]}")
        results[kind] = json.loads(out_path.read_text())
    trial, teach = results["trial"], results["teacher"]
    teacher_params = teach["teacher_params"]
    both = (f"one epoch of {len(bench.trial_data.train)} rows, {threads} thread(s) "
            "(search.cpus_per_trial), two fresh child processes at once from the same inputs; they "
            f"start at {trial['baseline_rss_mb']:.0f} / {teach['baseline_rss_mb']:.0f} MB (imports + inputs)")
    row_a = below(
        "5a", "peak RSS: process with the teacher vs trial process", teach["peak_rss_mb"],
        trial["peak_rss_mb"], "MB", 1.0,
        f"{both}; the teacher process runs the seed-style loop (teacher forward each step, padded "
        f"to {SEED_MAX_LENGTH})", raw={"trial": trial, "teacher_process": teach})
    row_b = below(
        "5b", "parameters built: one teacher vs all the trial process built", teacher_params / 1e6,
        trial["constructed_params"] / 1e6, "M params", 1.0,
        "every parameter registered in the trial process (torch's global registration hook; "
        f"meta-device placeholders not counted): the student's {trial['student_params'] / 1e6:.2f}M; "
        f"the teacher process built {teach['constructed_params'] / 1e6:.2f}M (its student + the "
        "teacher); below 1: no teacher-sized model in a trial",
        raw={"trial_constructed_params": trial["constructed_params"], "teacher_params": teacher_params,
             "teacher_process_constructed_params": teach["constructed_params"]})
    return [row_a, row_b]


def note_ray_rss(rows: list[Row], ray_stats: dict[str, Any]) -> None:
    """Add the peak RSS Ray trials reported (history.csv ``peak_rss_mb``) to row 5a."""
    peaks = {k: v["trial_peak_rss_mb"] for k, v in ray_stats.items() if "trial_peak_rss_mb" in v}
    row = next((r for r in rows if r.id == "5a"), None)
    if row is None or not peaks:
        return
    row.raw["ray_trial_peak_rss_mb"] = peaks
    row.notes += (f"; Ray trial workers reported ru_maxrss up to {max(peaks.values()):.0f} MB (a reused "
                  "worker's peak over its trials, Ray's own memory included)")


if __name__ == "__main__":
    sys.exit(child(*sys.argv[1:4]))
