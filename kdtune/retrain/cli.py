"""``python -m kdtune.retrain results/<experiment>``: the final, multi-seed verdict.

:func:`run_retrain` trains the recommended KD configuration and the tuned CE-only baseline,
each at its own hyperparameters, with the same seeds; compares them on the held-out test split;
exports the best KD seed with a model card; and writes ``retrain/``: ``retrain.json``,
``per_seed.csv``, ``summary.md`` and ``model/``. :func:`main` is the command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from kdtune.cli import ArgumentParser, fail
from kdtune.config import ExperimentConfig
from kdtune.errors import ConfigError
from kdtune.formatting import pm
from kdtune.logs import setup_logging
from kdtune.record import record as R
from kdtune.record.record import Record
from kdtune.retrain.choose import Choice
from kdtune.retrain.report import RetrainReport
from kdtune.retrain.runs import REPRODUCTION_TOLERANCE, Run, metric_columns, reproduction, train_run
from kdtune.retrain.stats import (
    example_level_tests,
    majority_vote,
    mean_std,
    seed_level_tests,
    verdict_statement,
)

log = logging.getLogger("kdtune.retrain")

PROG = "kdtune.retrain"
EXIT_NOT_REPRODUCED = 1
MODEL_DIR = f"{R.RETRAIN}/model"


def train_all(prep: Any, cfg: ExperimentConfig, choice: Choice, seeds: list[int], epochs: int,
              device: Any) -> tuple[dict[str, list[Run]], Any, int]:
    """Every seed of both models; returns (runs, the best KD seed's model, its seed)."""
    runs: dict[str, list[Run]] = {"student": [], "baseline": []}
    best_model, best_val, best_seed = None, -np.inf, seeds[0]
    same = choice.student.hparams == choice.baseline.hparams
    for i, seed in enumerate(seeds):
        for name, pick in (("student", choice.student), ("baseline", choice.baseline)):
            if name == "baseline" and same:
                runs["baseline"].append(Run(**{**runs["student"][-1].__dict__, "model": "baseline"}))
                continue
            log.info("seed %d (%d/%d): %s", seed, i + 1, len(seeds), name)
            run, model = train_run(prep, cfg, name, {**pick.hparams, "epochs": epochs, "seed": seed},
                                   device)
            runs[name].append(run)
            if name == "student" and run.val["macro_f1"] > best_val:
                best_model, best_val, best_seed = model.to("cpu"), run.val["macro_f1"], seed
    return runs, best_model, best_seed


def summarise(runs: dict[str, list[Run]], names: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """per_seed.csv and mean ± std (ddof 1) of every metric, with the paired differences."""
    frame = pd.DataFrame([r.row(names) for model in ("student", "baseline") for r in runs[model]])
    summary: dict[str, dict[str, Any]] = {"student": {}, "baseline": {}, "difference": {}}
    for col in metric_columns(names):
        s_vals = frame.loc[frame["model"] == "student", col].tolist()
        b_vals = frame.loc[frame["model"] == "baseline", col].tolist()
        summary["student"][col] = mean_std(s_vals)
        summary["baseline"][col] = mean_std(b_vals)
        summary["difference"][col] = mean_std([s - b for s, b in zip(s_vals, b_vals, strict=True)])
    return frame, summary


def compare(runs: dict[str, list[Run]], labels: np.ndarray, num_classes: int, n_resamples: int,
            seed: int, kd_is_ce: bool) -> dict[str, Any]:
    """Paired tests over seeds and over test examples, and the verdict."""
    seed_tests = seed_level_tests([r.test["macro_f1"] for r in runs["student"]],
                                  [r.test["macro_f1"] for r in runs["baseline"]])

    def stacked(model: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([r.test_predictions for r in runs[model]]),
                np.stack([r.test_probs for r in runs[model]]))

    def best_of(model: str) -> Run:
        return max(runs[model], key=lambda r: r.val["macro_f1"])  # first seed wins ties

    vote = example_level_tests(labels, majority_vote(*stacked("student")),
                               majority_vote(*stacked("baseline")), num_classes, n_resamples, seed)
    best = {"student_seed": best_of("student").seed, "baseline_seed": best_of("baseline").seed,
            **example_level_tests(labels, best_of("student").test_predictions,
                                  best_of("baseline").test_predictions, num_classes, n_resamples,
                                  seed)}
    return {"metric": "test_macro_f1", "seed_level": seed_tests,
            "example_level": {"majority_vote": vote, "best_seed": best},
            "verdict": verdict_statement(seed_tests, vote, kd_is_ce=kd_is_ce)}


def _pick_info(pick: Any) -> dict[str, Any]:
    return {"trial_id": pick.trial_id, "source": pick.source, "arm": pick.arm, "anchor": pick.anchor,
            "status": pick.status, "best_progress": pick.best_progress, "val_score": pick.val_score}


def run_retrain(record: Record, cfg: ExperimentConfig, choice: Choice, *, seeds: int,
                epochs: int | None = None, n_resamples: int = 1000,
                check_reproduction: bool = False, threads: int | None = None) -> RetrainReport:
    """Re-train, evaluate, compare, export; writes ``retrain/`` and returns its report."""
    import torch

    from kdtune.devices import best_device
    from kdtune.pipeline import prepare

    t0 = time.perf_counter()
    prep, device = prepare(cfg), best_device()
    threads = threads or max(1, int(cfg.search.cpus_per_trial))  # what a search trial used
    trial_epochs = int(choice.student.hparams["epochs"])
    epochs = int(epochs or trial_epochs)
    seed_list = [int(choice.student.hparams["seed"]) + i for i in range(seeds)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # as a search trial: torch.set_num_threads(cpus_per_trial)
    try:
        runs, best_model, best_seed = train_all(prep, cfg, choice, seed_list, epochs, device)
        repro = _reproduction(prep, cfg, choice, runs, epochs, trial_epochs, check_reproduction,
                              threads, device)
    finally:
        torch.set_num_threads(previous)
    frame, summary = summarise(runs, prep.label_names)
    comparison = compare(runs, prep.encoded["test"].labels, len(prep.label_names), n_resamples,
                         seed_list[0], choice.student.is_ce)
    report = RetrainReport(
        experiment=record.root, experiment_name=cfg.name, student=_pick_info(choice.student),
        baseline=_pick_info(choice.baseline), config={**choice.student.hparams, "epochs": epochs},
        baseline_config={**choice.baseline.hparams, "epochs": epochs}, seeds=seed_list,
        epochs=epochs, selection_metric=cfg.search.metric, threads=threads, device=str(device),
        data=_data_facts(prep), per_seed=frame.to_dict("records"), summary=summary,
        runs=_runs_dict(runs), test_labels=prep.encoded["test"].labels.tolist(),
        comparison=comparison, verdict=comparison["verdict"], reproduction=repro)
    _export(record, cfg, prep, best_model, best_seed, report)
    report.seconds = time.perf_counter() - t0
    _write(record, report, frame, prep.label_names)
    return report


def _data_facts(prep: Any) -> dict[str, Any]:
    return {"source": prep.splits.source, "label_names": prep.label_names,
            "rows": {k: len(v) for k, v in prep.encoded.items()},
            "fingerprint": prep.splits.fingerprint(), "teacher_key": prep.teacher.key,
            "teacher_test": prep.teacher.metrics.get("test")}


def _runs_dict(runs: dict[str, list[Run]]) -> dict[str, Any]:
    return {m: [{"seed": r.seed, "best_progress": r.best_progress, "diverged": r.diverged,
                 "val": r.val, "test": r.test, "history": r.history,
                 "test_predictions": r.test_predictions.tolist()} for r in rs]
            for m, rs in runs.items()}


def _reproduction(prep: Any, cfg: ExperimentConfig, choice: Choice, runs: dict[str, list[Run]],
                  epochs: int, trial_epochs: int, check: bool, threads: int, device: Any) -> dict:
    """Seed 0 of the student is the trial re-run (re-run it when --epochs changed it)."""
    run, note = runs["student"][0], ""
    if epochs != trial_epochs:
        run = None
        if check:
            run, _ = train_run(prep, cfg, "student", dict(choice.student.hparams), device)
        else:
            note = (f"--epochs {epochs} differs from the trial's {trial_epochs}; pass "
                    "--check-reproduction to re-run the trial itself")
    if choice.student.trial_id is None:
        note = "the student is not a trial of the search"
    return reproduction(choice.student, run if choice.student.trial_id else None, threads,
                        str(device), note)


def _export(record: Record, cfg: ExperimentConfig, prep: Any, model: Any, seed: int,
            report: RetrainReport) -> None:
    """The best KD seed, saved with its tokenizer and model card into ``retrain/model/``."""
    from kdtune.evaluate import export_model
    from kdtune.latency import DEFAULT, measure_torch
    from kdtune.models import count_parameters
    from kdtune.retrain.card import card_facts

    report.model = {"seed": seed, "params": count_parameters(model),
                    "weights_mb": sum(p.numel() * p.element_size()
                                      for p in model.state_dict().values()) / 1e6,
                    "latency": measure_torch(model.eval(), prep.encoded["test"], DEFAULT)}
    report.model["dir"] = export_model(record, MODEL_DIR, model, prep.student_tokenizer,
                                       report.student["trial_id"], card_facts(report, cfg, prep))


def _write(record: Record, report: RetrainReport, frame: pd.DataFrame, names: list[str]) -> None:
    from kdtune.retrain.summary import render_summary

    record.write_csv(f"{R.RETRAIN}/per_seed.csv", frame)
    record.write_text(f"{R.RETRAIN}/summary.md", render_summary(report, names))
    record.write_json(f"{R.RETRAIN}/retrain.json", report.as_dict())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a usage error exits 2 with one line."""
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("experiment", help="a finished search: results/<experiment> or its URI")
    p.add_argument("--trial", help="KD trial id from trials.csv (default: the recommended one)")
    p.add_argument("--baseline-trial", help="CE-only trial id (default: the tuned CE baseline)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model: seed, seed + 1, ... (default 3)")
    p.add_argument("--epochs", type=int, help="epochs of every run (default: the trial's)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired bootstrap resamples over test examples (default 1000)")
    p.add_argument("--threads", type=int, help="torch threads of every run (default: "
                                               "search.cpus_per_trial, as the search's trials)")
    p.add_argument("--check-reproduction", action="store_true",
                   help="re-run the trial even when --epochs differs, and exit 1 if it does not "
                        "reproduce the trial's validation macro-F1 within 0.5 points")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express, as :class:`ConfigError` naming the flag."""
    for flag, value, least in (("--seeds", args.seeds, 1), ("--epochs", args.epochs, 1),
                               ("--threads", args.threads, 1), ("--bootstrap", args.bootstrap, 100)):
        if value is not None and value < least:
            raise ConfigError(flag, f"must be at least {least}, got {value}")


def print_report(report: RetrainReport) -> None:
    summary = report.summary
    print(f"re-trained trial {report.student['trial_id']} (KD) and "
          f"{report.baseline['trial_id'] or 'CE at its hyperparameters'} (CE-only baseline) with "
          f"seeds {report.seeds} in {report.seconds:.0f} s")
    for model in ("student", "baseline"):
        print(f"  {model:>8}: test macro-F1 {pm(summary[model]['test_macro_f1'])}, "
              f"accuracy {pm(summary[model]['test_accuracy'])}")
    rep = report.reproduction
    if rep["checked"]:
        print(f"  reproduction: val macro-F1 {rep['retrained_val_macro_f1']:.4f} vs "
              f"{rep['trial_val_macro_f1']:.4f} recorded ({100 * rep['difference']:+.2f} points)")
    print(f"  {report.verdict['text']}")
    print(f"  results: {report.experiment}/{R.RETRAIN}; model: {report.model['dir']}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0, 1 when --check-reproduction fails, 2 on bad input."""
    from kdtune.api import retrain_experiment

    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        check_args(args)
        report = retrain_experiment(args.experiment, seeds=args.seeds, trial=args.trial,
                                    baseline_trial=args.baseline_trial, epochs=args.epochs,
                                    bootstrap=args.bootstrap, threads=args.threads,
                                    check_reproduction=args.check_reproduction)
    except ConfigError as exc:
        return fail(PROG, exc)
    print_report(report)
    rep = report.reproduction
    if args.check_reproduction and not rep["within_tolerance"]:
        print(f"{PROG}: error: reproduction: trial {rep['trial_id']} was not reproduced within "
              f"{100 * REPRODUCTION_TOLERANCE:.1f} points ({rep['note'] or 'see retrain.json'})",
              file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    return 0
