"""The re-training: fresh seeds, both models side by side, the decision, the model to ship.

:func:`run_retrain` trains the recommended KD configuration and the tuned CE-only baseline,
each at its own hyperparameters, on the same *fresh* seeds (none the search or the confirm
stage ran, :mod:`kdtune.retrain.seeds`), round by round (:mod:`kdtune.retrain.rounds`) on the
available slots (:mod:`kdtune.retrain.pool`); decides (:mod:`kdtune.retrain.decision`), saves
both models' best seeds with the one to ship named (:mod:`kdtune.retrain.ship`), and writes
``retrain/``: ``retrain.json``, ``per_seed.csv``, ``summary.md``, ``model/`` and
``alternative/``. Checking that the search trial reproduces is its own run, outside the
verdict's seeds (``check_reproduction``). With a self-training pick (``search.self_training``) it
trains on the same seeds too and a second paired decision, KD vs self-training, is read at the
look where the KD-vs-CE one stopped (:func:`versus_self_training`); the model to ship is still
chosen between the KD student and the CE baseline.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from kdtune.config import ExperimentConfig
from kdtune.params import EXECUTION, Trial
from kdtune.record import record as R
from kdtune.record.picks import SELF_TRAINING
from kdtune.record.record import Record
from kdtune.retrain.choose import Choice
from kdtune.retrain.decision import decide, kd_is_ce, vote_sentence
from kdtune.retrain.pool import Job, RunPool
from kdtune.retrain.report import RetrainReport
from kdtune.retrain.rounds import MODELS, Outcome, run_rounds
from kdtune.retrain.runs import Run, metric_columns, reproduction
from kdtune.retrain.seeds import fresh_seeds, search_seeds
from kdtune.retrain.sequential import Design
from kdtune.retrain.ship import folders, ship_choice
from kdtune.retrain.stats import example_level_tests, majority_vote, mean_std, seed_level_tests

log = logging.getLogger("kdtune.retrain")


def summarise(runs: dict[str, list[Run]], names: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """per_seed.csv and mean ± std (ddof 1) of every metric, with the paired differences
    (over the seeds where neither model diverged); with a self-training model also its own and
    the student's difference from it (``self_training``, ``difference_self_training``)."""
    frame = pd.DataFrame([r.row(names) for model in runs for r in runs[model]])
    summary = _paired_summary(frame, runs, "baseline", names)
    if SELF_TRAINING in runs:
        second = _paired_summary(frame, runs, SELF_TRAINING, names)
        summary[SELF_TRAINING] = second[SELF_TRAINING]
        summary["difference_self_training"] = second["difference"]
    return frame, summary


def _paired_summary(frame: pd.DataFrame, runs: dict[str, list[Run]], other: str,
                    names: list[str]) -> dict[str, dict[str, Any]]:
    """The student and ``other``: mean ± std per metric and of their per-seed differences."""
    ok = [not (s.diverged or o.diverged) for s, o in zip(runs["student"], runs[other], strict=True)]
    summary: dict[str, dict[str, Any]] = {"student": {}, other: {}, "difference": {}}
    for col in metric_columns(names):
        s_vals = [v for v, k in zip(frame.loc[frame["model"] == "student", col], ok, strict=True) if k]
        o_vals = [v for v, k in zip(frame.loc[frame["model"] == other, col], ok, strict=True) if k]
        if not s_vals:
            continue
        summary["student"][col] = mean_std(s_vals)
        summary[other][col] = mean_std(o_vals)
        summary["difference"][col] = mean_std([s - o for s, o in zip(s_vals, o_vals, strict=True)])
    return summary


def versus_self_training(outcome: Outcome, design: Design, choice: Choice) -> dict[str, Any]:
    """KD vs self-training on the same fresh seeds: the four-way decision of
    :func:`~kdtune.retrain.decision.decide` at the look where the KD-vs-CE question stopped
    (that question alone drives the stopping; a look's repeated CI holds at any look)."""
    if choice.self_training is None:
        return {}
    if choice.student.is_ce:
        return {"kind": None, "text": "Not compared: the chosen configuration is CE-only, so there "
                "is no KD student to set against self-training."}
    student, other = outcome.paired(other=SELF_TRAINING)
    out = decide([s - o for s, o in zip(student, other, strict=True)], design,
                 look=len(outcome.looks) - 1, other="self-training")
    out["failures"] = outcome.failures()[SELF_TRAINING]
    if out["failures"]:
        out["text"] += (f" Self-training diverged on seed(s) {', '.join(map(str, out['failures']))}:"
                        " those seeds are left out of this comparison.")
    return out


def compare(outcome: Outcome, labels: np.ndarray, num_classes: int, n_resamples: int,
            seed: int) -> dict[str, Any]:
    """Seed-level tests over the paired seeds, example-level tests over the test examples."""
    student, baseline = outcome.paired()
    ok = {m: [r for r in outcome.runs[m] if not r.diverged] for m in MODELS}
    out: dict[str, Any] = {"metric": "test_macro_f1", "seed_level": seed_level_tests(student, baseline),
                           "example_level": {}}
    if not ok["student"] or not ok["baseline"]:
        return out

    def stacked(model: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([r.test_predictions for r in ok[model]]),
                np.stack([r.test_probs for r in ok[model]]))

    best = {m: outcome.best[m][0] for m in MODELS}
    out["example_level"] = {
        "majority_vote": example_level_tests(labels, majority_vote(*stacked("student")),
                                             majority_vote(*stacked("baseline")), num_classes,
                                             n_resamples, seed),
        "best_seed": {"student_seed": best["student"].seed, "baseline_seed": best["baseline"].seed,
                      **example_level_tests(labels, best["student"].test_predictions,
                                            best["baseline"].test_predictions, num_classes,
                                            n_resamples, seed)}}
    return out


def _failure_sentence(failures: dict[str, list[int]], n: int) -> str:
    parts = [f"the {'KD student' if m == 'student' else 'CE baseline'} diverged on seed(s) "
             f"{', '.join(map(str, s))} of {n}" for m, s in failures.items() if s and m in MODELS]
    if not parts:
        return ""
    return (" " + "; ".join(parts).capitalize() + ": those seeds are left out of the paired test "
            "and counted as failures of that model.")


def _pick_info(pick: Any) -> dict[str, Any]:
    return {"trial_id": pick.trial_id, "source": pick.source, "arm": pick.arm, "anchor": pick.anchor,
            "status": pick.status, "best_progress": pick.best_progress, "val_score": pick.val_score}


def make_pool(prep: Any, cfg: ExperimentConfig, threads: int, device: Any, sequential: bool) -> RunPool:
    return RunPool(prep.trial_data(cfg), prep.encoded["test"], threads=threads,
                   cpus=cfg.search.cpus_per_trial, gpus=cfg.search.gpus_per_trial,
                   metric=cfg.search.metric, mode=cfg.search.mode, device=device,
                   sequential=sequential)


def run_retrain(record: Record, cfg: ExperimentConfig, choice: Choice, **kwargs: Any) -> RetrainReport:
    """Re-train, evaluate, decide, save both models; writes ``retrain/`` (its log in
    ``retrain/driver.log``) and returns its report. Options as :func:`_run_retrain`."""
    from kdtune.logs import kept_log

    with kept_log(record, f"{R.RETRAIN}/{R.DRIVER_LOG}"):
        return _run_retrain(record, cfg, choice, **kwargs)


def _run_retrain(record: Record, cfg: ExperimentConfig, choice: Choice, *, design: Design,
                 epochs: int | None = None, n_resamples: int = 1000, check_reproduction: bool = False,
                 threads: int | None = None, sequential: bool = False,
                 address: str | None = None) -> RetrainReport:
    from kdtune.cluster import ray_session
    from kdtune.devices import best_device
    from kdtune.stages import prepare

    t0 = time.perf_counter()
    prep, device = prepare(cfg, record=record), best_device()  # the search's own teacher
    threads = threads or max(1, int(cfg.search.cpus_per_trial))  # what a search trial used
    trial_epochs = int(choice.student.hparams["epochs"])
    epochs = int(epochs or trial_epochs)
    used = search_seeds(record, *(p for p in (choice.student, choice.baseline, choice.self_training)
                                  if p is not None))
    seeds = fresh_seeds(used, design.looks[-1])
    picks = {"student": choice.student, "baseline": choice.baseline,
             **({SELF_TRAINING: choice.self_training} if choice.self_training else {})}
    pool = make_pool(prep, cfg, threads, device, sequential)
    execution = {k: getattr(cfg.train, k) for k in EXECUTION}  # --set may change these
    with ray_session(address) if not sequential else contextlib.nullcontext():
        outcome = run_rounds(pool, picks, design, seeds, epochs, execution)
        repro = _reproduction(pool, choice, threads, device, check_reproduction)
    seeds = seeds[:outcome.decision["seeds_run"]]
    frame, summary = summarise(outcome.runs, prep.label_names)
    comparison = compare(outcome, prep.encoded["test"].labels, len(prep.label_names), n_resamples,
                         seeds[0])
    verdict = _verdict(outcome, design, choice, comparison["example_level"].get("majority_vote"))
    comparison["verdict"] = verdict
    report = RetrainReport(
        experiment=record.root, experiment_name=cfg.name, student=_pick_info(choice.student),
        baseline=_pick_info(choice.baseline),
        config={**choice.student.hparams, **execution, "epochs": epochs},
        baseline_config={**choice.baseline.hparams, **execution, "epochs": epochs}, seeds=seeds,
        search_seeds=used, epochs=epochs, selection_metric=cfg.search.metric, threads=threads,
        device=str(device), data=_data_facts(prep), per_seed=frame.to_dict("records"),
        summary=summary, runs=_runs_dict(outcome.runs),
        test_labels=prep.encoded["test"].labels.tolist(), comparison=comparison, verdict=verdict,
        design=design.as_dict(), looks=[_look_row(x) for x in outcome.looks],
        failures=outcome.failures(), reproduction=repro,
        execution="sequential (this process)" if sequential else "Ray tasks")
    if choice.self_training is not None:
        report.self_training = _pick_info(choice.self_training)
        report.self_training_config = {**choice.self_training.hparams, **execution, "epochs": epochs}
        report.versus_self_training = versus_self_training(outcome, design, choice)
    _save_models(record, cfg, prep, pool.data, outcome, report)
    report.seconds = time.perf_counter() - t0
    _write(record, report, frame, prep.label_names)
    return report


def _verdict(outcome: Outcome, design: Design, choice: Choice,
             vote: dict[str, Any] | None) -> dict[str, Any]:
    n = outcome.decision["seeds_run"]
    if choice.student.is_ce:
        return kd_is_ce(design, n)
    verdict = dict(outcome.decision)
    verdict["failures"] = outcome.failures()
    verdict["text"] += _failure_sentence(verdict["failures"], n)
    verdict["text"] += vote_sentence(vote) if vote is not None else ""
    return verdict


def _look_row(look: dict[str, Any]) -> dict[str, Any]:
    keys = ("look", "seeds_run", "n", "kind", "mean_difference", "ci_low", "ci_high",
            "equivalence_ci_low", "equivalence_ci_high", "pvalue", "equivalence_pvalue",
            "superiority_t", "equivalence_t")
    return {k: look.get(k) for k in keys}


def _data_facts(prep: Any) -> dict[str, Any]:
    return {"source": prep.splits.source, "label_names": prep.label_names,
            "rows": {k: len(v) for k, v in prep.encoded.items()},
            "fingerprint": prep.splits.fingerprint(), "teacher_key": prep.teacher.key,
            "teacher_test": prep.teacher.metrics.get("test"),
            "transfer": prep.transfer_info()}


def _runs_dict(runs: dict[str, list[Run]]) -> dict[str, Any]:
    return {m: [{"seed": r.seed, "best_progress": r.best_progress, "diverged": r.diverged,
                 "val": r.val, "test": r.test, "history": r.history,
                 "test_predictions": r.test_predictions.tolist()} for r in rs]
            for m, rs in runs.items()}


def _reproduction(pool: RunPool, choice: Choice, threads: int, device: Any, check: bool) -> dict:
    """The search trial re-run at its own seed and epochs: its own run, never a verdict seed."""
    pick = choice.student
    if pick.trial_id is None:
        return reproduction(pick, None, threads, str(device), "the student is not a trial of the search")
    if not check:
        return reproduction(pick, None, threads, str(device),
                            "not run: pass --check-reproduction to re-run the trial at its own seed")
    [(run, _)] = pool.run([Job("student", dict(pick.hparams))])
    return reproduction(pick, run, threads, str(device))


def _save_models(record: Record, cfg: ExperimentConfig, prep: Any, data: Any, outcome: Outcome,
                 report: RetrainReport) -> None:
    """Both models' best seeds, with cards; the one the decision ships in ``retrain/model``."""
    from kdtune.latency import DEFAULT, measure_torch
    from kdtune.models import count_parameters
    from kdtune.recipe import build_model
    from kdtune.retrain.card import card_facts
    from kdtune.score_picks import export_model

    models = {}  # built from the runs' own TrialData (the pool's), not a second copy
    for name in MODELS:
        run, state = outcome.best[name]
        own = report.config if name == "student" else report.baseline_config
        model = build_model(data, Trial.of(data.base, own).values)
        model.load_state_dict(state)
        models[name] = model.eval()
        report.models[name] = {
            "seed": run.seed, "params": count_parameters(model), "diverged": run.diverged,
            "weights_mb": sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1e6,
            "latency": measure_torch(model, prep.encoded["test"], DEFAULT)}
    report.ship = ship_choice(report.verdict, report.failures,
                              {m: report.models[m]["params"] for m in MODELS})
    for name, rel in folders(report.ship["model"]).items():
        trial = report.student["trial_id"] if name == "student" else report.baseline["trial_id"]
        export_model(record, rel, models[name], prep.student_tokenizer, trial,
                     card_facts(report, cfg, prep, name))
        report.models[name]["dir"] = rel  # relative to the experiment: the record moves whole
    report.model = report.models[report.ship["model"]]


def _write(record: Record, report: RetrainReport, frame: pd.DataFrame, names: list[str]) -> None:
    from kdtune.retrain.retrain_page import render_summary

    record.write_csv(f"{R.RETRAIN}/per_seed.csv", frame)
    record.write_text(f"{R.RETRAIN}/summary.md", render_summary(report, names))
    record.write_json(f"{R.RETRAIN}/retrain.json", report.as_dict())
