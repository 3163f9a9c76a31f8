"""Rows 1-2: whole KD epochs (training + validation), kdtune against the seed-style loop and
against its own CE-only training.

1. seed-style KD epoch (``benchmarks.reference``: teacher forward on every step, every batch
   padded to 150, no length grouping) vs kdtune's (``kdtune.recipe.build_trainer`` +
   ``Trainer.fit``: cached teacher logits, dynamic padding, length-grouped batches built on the
   device): kdtune <= 0.5x.
2. kdtune KD epoch vs kdtune CE-only epoch (alpha = 1 and no teacher logits at all): <= 1.1x,
   i.e. distilling from cached logits costs at most 10 % over plain fine-tuning.
2b. kdtune KD epoch with intermediate rungs (the space's ``train.eval_every``, 0.5 if it is 1 or
   off: a stratified validation subset mid-epoch, the whole split at the epoch end) vs one
   validation per epoch: <= 1.1x, i.e. the rungs ASHA stops on cost at most 10 %.

All three start from the same student weights (the trial's ``StudentInit``) with the config's
training values, ``train.eval_every`` 1 (one full validation per epoch, as the seed-style loop
does) except row 2b's rung run. Runs are interleaved (seed, KD, CE, seed, ...) and each takes the median over
``repeats``; torch uses the trial's threads (``search.cpus_per_trial``, 1 in the shipped spaces:
on a shared machine more threads contend and the timings swing, as ``kdtune.latency`` notes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from benchmarks import reference
from benchmarks.common import Row, at_most, median, say, timed
from benchmarks.kd.context import Bench


def kdtune_run(data: Any, hparams: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """One trial's training as a search runs it (``build_trainer`` + ``fit``), timed."""
    from kdtune.recipe import build_trainer

    trainer = build_trainer(hparams, data, device=device)
    history, seconds = timed(trainer.fit, device)
    full = [h for h in history if h.full_val]
    epochs = trainer.params.epochs
    return {"seconds": seconds, "seconds_per_epoch": seconds / epochs,
            "epoch_seconds": [sum(h.seconds for h in history if h.epoch == e) for e in range(1, epochs + 1)],
            "val_macro_f1": full[-1].val_macro_f1, "val_accuracy": full[-1].val_accuracy,
            "evaluations": len(history), "full_evaluations": len(full),
            "subset_rows": 0 if trainer.val_subset is None else len(trainer.val_subset[1])}


def seed_run(data: Any, hparams: dict[str, Any], teacher: torch.nn.Module, seed_encoded: dict[str, Any],
             device: torch.device, repeat: int) -> dict[str, Any]:
    """The seed-style loop from the same student init and training values."""
    from kdtune.params import TrainParams
    from kdtune.recipe import build_model
    from kdtune.trainer import seed_everything

    params = TrainParams.from_hparams(hparams)
    seed_everything(params.seed)
    student = build_model(data, hparams)
    epochs = reference.train(
        student, teacher, seed_encoded["train"], seed_encoded["val"], epochs=params.epochs,
        batch_size=params.batch_size, lr=params.learning_rate, alpha=params.alpha,
        temperature=params.temperature, clip_norm=params.clip_norm, seed=params.seed * 1000 + repeat,
        device=device, label_names=data.label_names)
    seconds = sum(e["seconds"] for e in epochs)
    return {"seconds": seconds, "seconds_per_epoch": seconds / params.epochs,
            "epoch_seconds": [e["seconds"] for e in epochs],
            "val_macro_f1": epochs[-1]["val_macro_f1"], "val_accuracy": epochs[-1]["val_accuracy"]}


def warm_up(data: Any, hparams: dict[str, Any], teacher: torch.nn.Module, seed_encoded: dict[str, Any],
            device: torch.device) -> None:
    """One untimed forward/backward per batch shape, so first-call costs hit no timed run."""
    from kdtune.batches import DeviceSplit
    from kdtune.devices import autocast, synchronize
    from kdtune.recipe import build_model

    student = build_model(data, hparams).to(device)
    ids, mask, _ = next(iter(reference.loader(seed_encoded["train"], 32, shuffle=False)))
    dynamic = DeviceSplit(data.train, device).batch(np.arange(min(32, len(data.train))))
    for batch in ({"input_ids": ids.to(device), "attention_mask": mask.to(device)}, dynamic):
        with torch.no_grad(), autocast(device):
            teacher(**batch)
        with autocast(device):
            student(**batch).logits.float().sum().backward()
    synchronize(device)


def run(bench: Bench) -> list[Row]:
    from transformers import AutoModelForSequenceClassification

    mode, device, data = bench.mode, bench.device, bench.trial_data
    hparams = {**data.base, "epochs": mode.epochs, "eval_every": 1.0}
    ce_hparams = {**hparams, "alpha": 1.0}
    ce_data = dataclasses.replace(data, teacher_logits=[])  # CE-only: no teacher signal at all
    previous_threads = torch.get_num_threads()
    threads = max(1, int(bench.cfg.search.cpus_per_trial))  # as a trial runs (kdtune.trainable)
    torch.set_num_threads(threads)
    every = bench.cfg.train.eval_every
    rung_hparams = {**hparams, "eval_every": every if 0 < every < 1 else 0.5}
    runs: dict[str, list[dict[str, Any]]] = {"seed": [], "kd": [], "ce": [], "rungs": []}
    try:
        teacher = AutoModelForSequenceClassification.from_pretrained(
            str(bench.prep.teacher.model_dir)).to(device).eval()
        warm_up(data, hparams, teacher, bench.seed_encoded, device)
        for r in range(mode.repeats):
            runs["seed"].append(seed_run(data, hparams, teacher, bench.seed_encoded, device, r))
            runs["kd"].append(kdtune_run(data, hparams, device))
            runs["ce"].append(kdtune_run(ce_data, ce_hparams, device))
            runs["rungs"].append(kdtune_run(data, rung_hparams, device))
            say("bench_kd", f"repeat {r + 1}/{mode.repeats}: seed-style "
                f"{runs['seed'][-1]['seconds_per_epoch']:.2f} s, kdtune KD "
                f"{runs['kd'][-1]['seconds_per_epoch']:.2f} s, CE {runs['ce'][-1]['seconds_per_epoch']:.2f} "
                f"s, KD with rungs {runs['rungs'][-1]['seconds_per_epoch']:.2f} s per epoch")
        del teacher
    finally:
        torch.set_num_threads(previous_threads)

    seconds = {k: median(r["seconds_per_epoch"] for r in v) for k, v in runs.items()}
    f1 = {k: median(r["val_macro_f1"] for r in v) for k, v in runs.items()}
    train, val = data.train, data.val
    seed_train = bench.seed_encoded["train"]
    how = f"median of {mode.repeats} interleaved runs" if mode.repeats > 1 else "1 run"
    if len(train) < 10 * int(hparams["batch_size"]) * mode.epochs:
        how += " (too few steps for the F1 to mean much)"
    common = (f"{how}; {mode.epochs} epoch(s) of {len(train)} rows + validation of {len(val)} "
              f"(one per epoch), {threads} torch thread(s) as in a trial")
    raw_lengths = {"kdtune_mean_length": float(np.mean(train.lengths)),
                   "kdtune_max_length": bench.cfg.data.max_length,
                   "seed_pad": reference.SEED_MAX_LENGTH,
                   "seed_padding_share": reference.padding_share(seed_train),
                   "threads": threads}
    row1 = at_most(
        "1", "KD epoch: seed-style loop vs kdtune Trainer", seconds["seed"], seconds["kd"], "s", 0.5,
        f"{common}; seed-style pads every batch to {reference.SEED_MAX_LENGTH} "
        f"({reference.padding_share(seed_train):.0%} padding) and runs the teacher each step, "
        f"kdtune batches by length (mean {np.mean(train.lengths):.0f} tokens, max_length "
        f"{bench.cfg.data.max_length}) with cached logits; val macro-F1 seed {f1['seed']:.4f} / "
        f"kdtune {f1['kd']:.4f}",
        raw={"seed": runs["seed"], "kdtune_kd": runs["kd"], "val_macro_f1": f1, **raw_lengths})
    row2 = at_most(
        "2", "kdtune epoch: CE-only vs KD from cached logits", seconds["ce"], seconds["kd"], "s", 1.1,
        f"{common}; CE-only = alpha 1 and no teacher logits; val macro-F1 CE {f1['ce']:.4f} / "
        f"KD {f1['kd']:.4f}",
        raw={"kdtune_ce": runs["ce"], "kdtune_kd": runs["kd"], "val_macro_f1": f1})
    row2b = at_most(
        "2b", "kdtune KD epoch: one validation vs rungs inside the epoch", seconds["kd"],
        seconds["rungs"], "s", 1.05,  # issue 20: an intermediate rung costs <= 5% of an epoch
        f"{how}; validation every {rung_hparams['eval_every']:g} epoch (a stratified subset of "
        f"{runs['rungs'][0]['subset_rows']} rows between epoch ends, the whole split at them) "
        f"vs once per epoch; val macro-F1 {f1['rungs']:.4f} / {f1['kd']:.4f}",
        raw={"kdtune_kd": runs["kd"], "kdtune_rungs": runs["rungs"],
             "eval_every": rung_hparams["eval_every"]})
    return [row1, row2, row2b]

