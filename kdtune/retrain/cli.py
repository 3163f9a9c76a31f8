"""``python -m kdtune.retrain results/<experiment>``: arguments, the re-training, its files.

:func:`run_retrain` trains the chosen configuration and the CE-only baseline with the same
seeds, compares them, exports the best student and writes ``<exp>/retrain/``: ``retrain.json``,
``per_seed.csv``, ``summary.md`` and ``model/``. :func:`main` is the command line.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdtune.cli import EXIT_BAD_INPUT, ArgumentParser
from kdtune.config import ConfigError, ExperimentConfig
from kdtune.files import atomic_write_csv, atomic_write_json
from kdtune.retrain.card import export_model, write_model_card
from kdtune.retrain.choose import Choice, choose_config, load_experiment, to_py
from kdtune.retrain.formatting import pm
from kdtune.retrain.runs import (
    REPRODUCTION_TOLERANCE,
    Run,
    metric_columns,
    reproduction,
    train_device,
    train_run,
)
from kdtune.retrain.stats import example_level_tests, majority_vote, mean_std, seed_level_tests, verdict
from kdtune.retrain.summary import write_summary

log = logging.getLogger("kdtune.retrain")

PROG = "kdtune.retrain"
DESCRIPTION = "``python -m kdtune.retrain results/<experiment>``: is the distillation gain real?"
EXIT_NOT_REPRODUCED = 1


def _clean(obj: Any) -> Any:
    """``obj`` with NaN / inf floats replaced by None, recursively (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    obj = to_py(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_retrain(cfg: ExperimentConfig, exp_dir: Path, choice: Choice, *, seeds: int,
                epochs: int | None = None, n_resamples: int = 1000,
                check_reproduction: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Re-train, evaluate, compare, export; writes ``<exp_dir>/retrain/`` and returns the report."""
    import torch

    from kdtune.pipeline import prepare

    t_start = time.perf_counter()
    out_dir = exp_dir / "retrain"
    prep = prepare(cfg)
    names = prep.label_names
    device = train_device(cfg)
    threads = threads or max(1, int(cfg.search.cpus_per_trial))  # what a search trial used
    trial_epochs = int(choice.config["epochs"])
    epochs = int(epochs or trial_epochs)
    student_values = {**choice.config, "epochs": epochs}
    baseline_values = {**student_values, "alpha": 1.0, "beta": 0.0,  # CE only: no teacher signal
                       "learning_rate": choice.baseline_learning_rate}
    same = baseline_values == student_values
    if same:
        log.warning("the chosen configuration is the CE-only baseline; its runs serve as both")
    base_seed = int(choice.config["seed"])
    seed_list = [base_seed + i for i in range(seeds)]

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # as a search trial: torch.set_num_threads(cpus_per_trial)
    try:
        runs: dict[str, list[Run]] = {"student": [], "baseline": []}
        best_model, best_val, best_seed = None, -math.inf, seed_list[0]
        for i, seed in enumerate(seed_list):
            log.info("seed %d (%d/%d): KD student", seed, i + 1, seeds)
            run, model = train_run(prep, cfg, "student", {**student_values, "seed": seed}, device)
            runs["student"].append(run)
            if run.val["macro_f1"] > best_val:
                best_model, best_val, best_seed = model.to("cpu"), run.val["macro_f1"], seed
            del model
            if same:
                runs["baseline"].append(Run(**{**run.__dict__, "model": "baseline"}))
                continue
            log.info("seed %d (%d/%d): CE-only baseline", seed, i + 1, seeds)
            run, model = train_run(prep, cfg, "baseline", {**baseline_values, "seed": seed},
                                   device)
            runs["baseline"].append(run)
            del model
        repro_run, note = runs["student"][0], ""
        if epochs != trial_epochs:
            repro_run = None
            if check_reproduction:
                log.info("reproduction run: trial %s with its own %d epochs", choice.trial_id,
                         trial_epochs)
                repro_run, _ = train_run(prep, cfg, "student", dict(choice.config), device)
            else:
                note = (f"--epochs {epochs} differs from the trial's {trial_epochs}; pass "
                        "--check-reproduction to re-run the trial itself")
        repro = reproduction(choice, repro_run, threads, str(device), note)
        model_info = export_model(best_model, prep, out_dir / "model")
    finally:
        torch.set_num_threads(previous_threads)
    model_info["seed"] = best_seed
    if repro["checked"]:
        log.log(logging.INFO if repro["within_tolerance"] else logging.WARNING,
                "reproduction of trial %s: val macro-F1 %.4f vs %.4f recorded (%+.2f points)",
                choice.trial_id, repro["retrained_val_macro_f1"], repro["trial_val_macro_f1"],
                100 * repro["difference"])

    # Summaries and paired comparisons.
    per_seed = [r.row(names) for model in ("student", "baseline") for r in runs[model]]
    frame = pd.DataFrame(per_seed)
    summary: dict[str, dict[str, Any]] = {"student": {}, "baseline": {}, "difference": {}}
    for col in metric_columns(names):
        s_vals = frame.loc[frame["model"] == "student", col].tolist()
        b_vals = frame.loc[frame["model"] == "baseline", col].tolist()
        summary["student"][col] = mean_std(s_vals)
        summary["baseline"][col] = mean_std(b_vals)
        summary["difference"][col] = mean_std([s - b for s, b in zip(s_vals, b_vals, strict=True)])
    seed_tests = seed_level_tests([r.test["macro_f1"] for r in runs["student"]],
                                  [r.test["macro_f1"] for r in runs["baseline"]])
    labels = prep.encoded["test"].labels

    def stacked(model: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([r.test_predictions for r in runs[model]]),
                np.stack([r.test_probs for r in runs[model]]))

    def best_of(model: str) -> Run:
        return max(runs[model], key=lambda r: r.val["macro_f1"])  # first seed wins ties

    example = {
        "majority_vote": example_level_tests(labels, majority_vote(*stacked("student")),
                                             majority_vote(*stacked("baseline")), len(names),
                                             n_resamples, base_seed),
        "best_seed": {"student_seed": best_of("student").seed,
                      "baseline_seed": best_of("baseline").seed,
                      **example_level_tests(labels, best_of("student").test_predictions,
                                            best_of("baseline").test_predictions, len(names),
                                            n_resamples, base_seed)}}
    real, text = verdict(float(student_values["alpha"]), seed_tests, example["majority_vote"])

    report: dict[str, Any] = {
        "experiment": str(exp_dir), "experiment_name": cfg.name,
        "trial": {"trial_id": choice.trial_id, "source": choice.source, "anchor": choice.anchor,
                  "status": choice.status, "best_epoch": choice.best_epoch,
                  "best_val_macro_f1": choice.trial_val_macro_f1},
        "config": student_values, "baseline_config": baseline_values,
        "baseline_lr_source": choice.baseline_lr_source, "seeds": seed_list, "epochs": epochs,
        "selection_metric": cfg.search.metric, "threads": threads, "device": str(device),
        "data": {"source": prep.splits.source, "label_names": names,
                 "rows": {k: len(v) for k, v in prep.encoded.items()},
                 "fingerprint": prep.splits.fingerprint(), "teacher_key": prep.teacher.key},
        "per_seed": per_seed, "summary": summary,
        "runs": {m: [{"seed": r.seed, "best_epoch": r.best_epoch, "diverged": r.diverged,
                      "val": r.val, "test": r.test, "history": r.history,
                      "test_predictions": r.test_predictions.tolist()} for r in rs]
                 for m, rs in runs.items()},
        "test_labels": labels.tolist(),
        "comparison": {"metric": "test_macro_f1", "seed_level": seed_tests,
                       "example_level": example},
        "verdict": {"kd_gain_real": real, "text": text},
        "reproduction": repro, "model": model_info}
    report["seconds"] = time.perf_counter() - t_start
    report = _clean(report)
    atomic_write_csv(out_dir / "per_seed.csv", frame)
    write_model_card(out_dir / "model", report, cfg, prep)
    write_summary(out_dir / "summary.md", report, names)
    atomic_write_json(out_dir / "retrain.json", report)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a usage error exits 2 with one line."""
    p = ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("experiment", help="a finished search: results/<experiment>")
    p.add_argument("--trial", help="trial id from trials.csv (default: the best trial)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per model: train.seed, train.seed + 1, ... (default 3)")
    p.add_argument("--epochs", type=int,
                   help="epochs of every run (default: the chosen configuration's)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired bootstrap resamples over test examples (default 1000)")
    p.add_argument("--threads", type=int,
                   help="torch threads of every run (default: search.cpus_per_trial, as the "
                        "search's trials; another count may change results in the last digits)")
    p.add_argument("--check-reproduction", action="store_true",
                   help="re-run the trial even when --epochs differs, and exit 1 if it does not "
                        "reproduce the trial's validation macro-F1 within 0.5 points")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express, as :class:`ConfigError`."""
    if args.seeds < 1:
        raise ConfigError("--seeds", f"must be a positive number of seeds, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError("--epochs", f"must be a positive number of epochs, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads", f"must be a positive number of threads, got {args.threads}")
    if args.bootstrap < 100:
        raise ConfigError("--bootstrap", f"needs at least 100 resamples, got {args.bootstrap}")


def _setup_logging(verbose: bool) -> None:
    """INFO (or DEBUG) logging, with the chatty HTTP / datasets loggers quieted."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "httpx", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0, 1 when --check-reproduction fails, 2 on bad input."""
    args = parse_args(argv)
    try:
        _check_args(args)
        exp_dir = Path(args.experiment)
        cfg = load_experiment(exp_dir)
        choice = choose_config(exp_dir, cfg, args.trial)
        _setup_logging(args.verbose)
        report = run_retrain(cfg, exp_dir, choice, seeds=args.seeds, epochs=args.epochs,
                             n_resamples=args.bootstrap,
                             check_reproduction=args.check_reproduction, threads=args.threads)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = report["summary"]
    print(f"re-trained trial {choice.trial_id} and the CE-only baseline with seeds "
          f"{report['seeds']} in {report['seconds']:.0f} s")
    for model in ("student", "baseline"):
        print(f"  {model:>8}: test macro-F1 {pm(summary[model]['test_macro_f1'])}, "
              f"accuracy {pm(summary[model]['test_accuracy'])}")
    rep = report["reproduction"]
    if rep["checked"]:
        print(f"  reproduction: val macro-F1 {rep['retrained_val_macro_f1']:.4f} vs "
              f"{rep['trial_val_macro_f1']:.4f} recorded ({100 * rep['difference']:+.2f} points)")
    print(f"  {report['verdict']['text']}")
    print(f"  results: {exp_dir / 'retrain'}; model: {report['model']['dir']}")
    if args.check_reproduction and not rep["within_tolerance"]:
        print(f"{PROG}: error: reproduction: trial {choice.trial_id} was not reproduced within "
              f"{100 * REPRODUCTION_TOLERANCE:.1f} points ({rep['note'] or 'see retrain.json'})",
              file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    return 0
