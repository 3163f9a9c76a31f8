"""CLI: ``python -m kdtune.retrain results/<experiment>``: is the distillation gain real?

The search ranks trials by one seed's validation score, so its winner is partly luck. This
module re-trains the chosen configuration (the search's best trial, or ``--trial ID``) with
``--seeds`` seeds, and the CE-only baseline (alpha = 1) with the same seeds, data, epochs and
batch size; evaluates every run on the validation split and on the held-out test split the
search never saw; and compares student and baseline *paired*:

* over seeds, on test macro-F1: paired t-test and Wilcoxon signed-rank test;
* over test examples, on the seeds' majority-vote predictions (and on the best seeds'): a paired
  bootstrap confidence interval of the macro-F1 difference and the exact McNemar test on
  per-example correctness (a binomial test on the discordant pairs).

Every run keeps the weights of its best validation epoch, as the search's own evaluation does;
the test split is never used to choose anything. The first seed of the chosen configuration is
the trial re-run (same seed, epochs, torch threads and device as a search trial), so
``retrain.json`` records how closely it reproduces the trial's validation macro-F1. The best seed's
student (by validation macro-F1) is exported with ``save_pretrained`` and a model card.

Writes ``<exp>/retrain/``: ``retrain.json``, ``per_seed.csv``, ``summary.md`` and ``model/``. No Ray
here: the stages come from :func:`kdtune.pipeline.prepare`, the training from
:mod:`kdtune.trainer`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kdtune.cli import ArgumentParser
from kdtune.config import ConfigError, ExperimentConfig, load_config, validate_hparams
from kdtune.files import atomic_write_csv, atomic_write_json, atomic_write_text
from kdtune.results import OK_STATUSES

if TYPE_CHECKING:  # heavy imports are deferred so that bad input fails fast
    import torch

    from kdtune.data import Encoded
    from kdtune.pipeline import Prepared
    from kdtune.recipe import TrialData

log = logging.getLogger("kdtune.retrain")

PROG = "kdtune.retrain"
EXIT_NOT_REPRODUCED = 1
EXIT_BAD_INPUT = 2
# The statuses kdtune.results writes for trials that have a usable best epoch (kdtune.results
# is not imported: it pulls in Ray through kdtune.trainable).
REPRODUCTION_TOLERANCE = 0.005  # 0.5 macro-F1 points
CONFIDENCE = 0.95
LATENCY_EXAMPLES = 100
LATENCY_WARMUP = 5


# --------------------------------------------------------------------------------------------
# Choosing the configuration


@dataclass
class Choice:
    """The configuration to re-train and what the search recorded about its trial."""

    trial_id: str
    source: str  # "best_trial.json" or "trials.csv"
    config: dict[str, Any]  # fixed + searched values, as the search trainable received them
    anchor: str
    status: str
    best_epoch: int | None
    trial_val_macro_f1: float | None
    baseline_learning_rate: float
    baseline_lr_source: str


def _py(value: Any) -> Any:
    """A JSON-friendly Python value: numpy scalars unwrapped, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clean(obj: Any) -> Any:
    """``obj`` with NaN / inf floats replaced by None, recursively (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    obj = _py(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_experiment(exp_dir: Path) -> ExperimentConfig:
    """The experiment's resolved config; a :class:`ConfigError` if ``exp_dir`` is not one."""
    if not exp_dir.is_dir():
        raise ConfigError("experiment", f"folder not found: {str(exp_dir)!r}; give "
                          "results/<experiment> of a finished kdtune.search")
    if not (exp_dir / "config.yaml").is_file():
        raise ConfigError("experiment", f"{str(exp_dir)!r} is not a kdtune experiment (no "
                          "config.yaml); give results/<experiment>")
    return load_config(exp_dir / "config.yaml")


def read_trials(exp_dir: Path) -> pd.DataFrame | None:
    """``trials.csv`` (ids and anchors as strings), or None if the search wrote none."""
    path = exp_dir / "trials.csv"
    if not path.is_file():
        return None
    try:
        trials = pd.read_csv(path, dtype={"trial_id": str, "anchor": str, "status": str})
    except pd.errors.EmptyDataError:
        return None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError("trials.csv", f"could not read {str(path)!r} ({exc})") from None
    if "trial_id" not in trials or "status" not in trials:
        raise ConfigError("trials.csv", f"{str(path)!r} lacks the trial_id / status columns")
    if "anchor" in trials:
        trials["anchor"] = trials["anchor"].fillna("")
    return trials


def _completed(trials: pd.DataFrame | None) -> pd.DataFrame | None:
    if trials is None:
        return None
    return trials[trials["status"].isin(OK_STATUSES)]


def _ids(frame: pd.DataFrame, limit: int = 8) -> str:
    ids = list(frame["trial_id"])
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _row_config(row: pd.Series, cfg: ExperimentConfig) -> dict[str, Any]:
    missing = [p.name for p in cfg.space if p.name not in row.index]
    if missing:
        raise ConfigError("trials.csv", f"no column for the searched {', '.join(missing)}; "
                          "the file does not match config.yaml")
    values = {p.name: _py(row[p.name]) for p in cfg.space}
    if isinstance(values.get("layers"), str):  # a list in the CSV: "[0, 5]"
        values["layers"] = [int(i) for i in json.loads(values["layers"])]
    return {**cfg.fixed, **values}


def choose_config(exp_dir: Path, cfg: ExperimentConfig, trial_id: str | None) -> Choice:
    """The best trial (``best_trial.json``) or ``trial_id`` (``trials.csv``), merged over fixed."""
    trials = read_trials(exp_dir)
    ok = _completed(trials)
    no_trial = (f"{str(exp_dir)!r} has no completed trial ({{}}); let the search finish "
                f"(python -m kdtune.search --resume {exp_dir}) before re-training")
    row: pd.Series | None = None
    if trial_id is None:
        best_file = exp_dir / "best_trial.json"
        if not best_file.is_file():
            raise ConfigError("experiment", no_trial.format("no best_trial.json"))
        if ok is not None and not len(ok):
            raise ConfigError("experiment", no_trial.format(
                "trials.csv has no completed or stopped-early trial"))
        try:
            best = json.loads(best_file.read_text(encoding="utf-8"))
            tid, config = str(best["trial_id"]), dict(best["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError("best_trial.json", f"unreadable ({type(exc).__name__}: {exc}); "
                              "re-run the search's results stage or pass --trial") from None
        if trials is not None and (trials["trial_id"] == tid).any():
            row = trials[trials["trial_id"] == tid].iloc[0]
        source = "best_trial.json"
        anchor, status = str(best.get("anchor") or ""), str(best.get("status") or "")
        best_epoch = best.get("best_epoch")
        val_f1 = best.get("score") if best.get("metric") == "val_macro_f1" else None
    else:
        if ok is None or not len(ok):
            raise ConfigError("experiment", no_trial.format(
                "no trials.csv" if trials is None else
                "trials.csv has no completed or stopped-early trial"))
        match = trials[trials["trial_id"] == trial_id]
        if not len(match):
            raise ConfigError("--trial", f"unknown trial {trial_id!r}; completed trials are "
                              f"{_ids(ok)}")
        row = match.iloc[0]
        if row["status"] not in OK_STATUSES:
            raise ConfigError("--trial", f"trial {trial_id!r} {row['status']}; it has no usable "
                              f"result, pick one of {_ids(ok)}")
        tid, config, source = trial_id, _row_config(row, cfg), "trials.csv"
        anchor, status = str(row.get("anchor", "") or ""), str(row["status"])
        best_epoch, val_f1 = None, None
    if row is not None:  # trials.csv is the record of every trial's best epoch
        best_epoch = _py(row.get("best_epoch", best_epoch))
        val_f1 = _py(row.get("best_val_macro_f1", val_f1))
    config = {k: _py(v) for k, v in config.items()}
    config["batch_size"] = int(config["batch_size"])
    config["epochs"] = int(config["epochs"])
    validate_hparams(config, "trial")
    base_lr, base_src = float(config["learning_rate"]), "the chosen configuration's"
    if trials is not None and "anchor" in trials and "learning_rate" in trials:
        anchors = trials[trials["anchor"] == "baseline"]
        if len(anchors):
            base_lr = float(anchors.iloc[0]["learning_rate"])
            base_src = f"baseline anchor trial {anchors.iloc[0]['trial_id']}'s"
    return Choice(tid, source, config, anchor, status,
                  int(best_epoch) if best_epoch is not None else None,
                  float(val_f1) if val_f1 is not None else None, base_lr, base_src)


# --------------------------------------------------------------------------------------------
# Training and evaluation


@dataclass
class Run:
    """One seed of one model, evaluated at its best validation epoch."""

    model: str  # "student" or "baseline"
    seed: int
    epochs: int
    best_epoch: int | None
    diverged: bool
    seconds: float
    history: list[dict[str, Any]]  # per-epoch EpochMetrics
    val: dict[str, Any]  # classification_metrics
    test: dict[str, Any]
    test_predictions: np.ndarray = field(repr=False)
    test_probs: np.ndarray = field(repr=False)

    def row(self, label_names: list[str]) -> dict[str, Any]:
        """The run's line of ``per_seed.csv``."""
        out: dict[str, Any] = {"model": self.model, "seed": self.seed, "epochs": self.epochs,
                               "best_epoch": self.best_epoch, "diverged": self.diverged}
        for split, m in (("val", self.val), ("test", self.test)):
            out[f"{split}_accuracy"] = m["accuracy"]
            out[f"{split}_macro_f1"] = m["macro_f1"]
            out.update({f"{split}_f1_{n}": m["per_class"][n]["f1"] for n in label_names})
        out["train_seconds"] = self.seconds
        return out


def metric_columns(label_names: list[str]) -> list[str]:
    cols = []
    for split in ("test", "val"):
        cols += [f"{split}_macro_f1", f"{split}_accuracy", *(f"{split}_f1_{n}" for n in label_names)]
    return cols


def train_device(cfg: ExperimentConfig) -> torch.device:
    """The device a search trial ran on: Ray hides CUDA from trials when gpus_per_trial is 0."""
    import torch

    from kdtune.models import pick_device

    device = pick_device()
    if device.type == "cuda" and cfg.search.gpus_per_trial <= 0:
        return torch.device("cpu")
    return device


def train_run(prep: Prepared, cfg: ExperimentConfig, name: str, values: dict[str, Any],
              device: torch.device, data: TrialData | None = None) -> tuple[Run, torch.nn.Module]:
    """Train as ``kdtune.trainable.kd_trial`` does, keep the best validation epoch, evaluate."""
    from scipy.special import softmax

    from kdtune.recipe import build_trainer
    from kdtune.trainer import (
        DivergedError,
        EpochMetrics,
        Trainer,
        classification_metrics,
        predict_logits,
    )

    data = data or prep.trial_data(cfg)
    metric, sign = cfg.search.metric, (1.0 if cfg.search.mode == "max" else -1.0)
    best: dict[str, Any] = {}

    def keep_best(m: EpochMetrics, trainer: Trainer) -> None:
        score = sign * float(getattr(m, metric))
        if "score" not in best or score > best["score"]:
            best.update(score=score, epoch=m.epoch, state={
                k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()})

    # The same recipe as a search trial: seeding, student (slice), teachers, feature targets.
    trainer = build_trainer(values, data, callbacks=[keep_best], device=device)
    model, params = trainer.model, trainer.params
    t0 = time.perf_counter()
    diverged = False
    try:
        trainer.fit()
    except DivergedError as exc:
        diverged = True
        log.warning("%s seed %d diverged (%s); evaluating its best finished epoch", name,
                    params.seed, exc)
    seconds = time.perf_counter() - t0
    if "state" in best:
        model.load_state_dict(best["state"])
    metrics: dict[str, dict[str, Any]] = {}
    test_logits = None
    for split in ("val", "test"):
        logits = predict_logits(model, prep.encoded[split], params.eval_batch_size, device)
        metrics[split] = classification_metrics(prep.encoded[split].labels, logits.argmax(-1),
                                                prep.label_names)
        test_logits = logits
    run = Run(name, params.seed, params.epochs, best.get("epoch"), diverged, seconds,
              [h.as_dict() for h in trainer.history], metrics["val"], metrics["test"],
              test_logits.argmax(-1), softmax(test_logits.astype(np.float64), axis=-1))
    log.info("%s seed %d: best epoch %s, val macro-F1 %.4f, test macro-F1 %.4f (%.0f s)", name,
             run.seed, run.best_epoch, run.val["macro_f1"], run.test["macro_f1"], seconds)
    return run, model


# --------------------------------------------------------------------------------------------
# Statistics (scipy / scikit-learn; nothing here but counting is done by hand)


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; None with a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) >= 2 else None,
            "n": len(arr)}


def _warned(caught: list[warnings.WarningMessage]) -> list[str]:
    return sorted({str(w.message).splitlines()[0] for w in caught})


def seed_level_tests(student: list[float], baseline: list[float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of student - baseline over seeds."""
    from scipy import stats

    s, b = np.asarray(student, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    diff = s - b
    out: dict[str, Any] = {"n": len(diff), "differences": diff.tolist(),
                           "mean_difference": float(diff.mean()),
                           "std_difference": float(diff.std(ddof=1)) if len(diff) >= 2 else None}
    if len(diff) < 2:
        note = "needs at least 2 seeds (--seeds 2 or more)"
        out["t_test"] = {"statistic": None, "pvalue": None, "note": note}
        out["wilcoxon"] = {"statistic": None, "pvalue": None, "note": note}
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = stats.ttest_rel(s, b)
        ci = t.confidence_interval(CONFIDENCE)
    out["t_test"] = {"statistic": float(t.statistic), "pvalue": float(t.pvalue), "df": int(t.df),
                     "ci_low": float(ci.low), "ci_high": float(ci.high),
                     "confidence": CONFIDENCE, "warnings": _warned(caught)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            w = stats.wilcoxon(s, b)
            out["wilcoxon"] = {"statistic": float(w.statistic), "pvalue": float(w.pvalue)}
        except ValueError as exc:
            out["wilcoxon"] = {"statistic": None, "pvalue": None, "note": str(exc)}
    out["wilcoxon"]["warnings"] = _warned(caught)
    if len(diff) < 6 and "note" not in out["wilcoxon"]:
        out["wilcoxon"]["note"] = (f"with {len(diff)} seeds the smallest possible two-sided "
                                   "p-value is above 0.05")
    return out


def majority_vote(predictions: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-example majority vote over seeds ([seeds, n]); ties go to the higher mean probability."""
    num_classes = probs.shape[-1]
    votes = (predictions[..., None] == np.arange(num_classes)).sum(axis=0)  # [n, C]
    return (votes + 0.5 * probs.mean(axis=0)).argmax(axis=-1)  # mean prob < 1 only breaks ties


def example_level_tests(labels: np.ndarray, student: np.ndarray, baseline: np.ndarray,
                        num_classes: int, n_resamples: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap CI of the test macro-F1 difference and exact McNemar on correctness.

    The bootstrap resamples test-example indices with a seeded numpy Generator, the same
    indices for student and baseline, and takes the percentile interval of the differences.
    """
    import sklearn
    from scipy import stats
    from sklearn.metrics import f1_score

    classes = list(range(num_classes))

    def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
        return float(f1_score(y, p, labels=classes, average="macro", zero_division=0))

    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for i in range(n_resamples):
            idx = rng.integers(0, len(labels), size=len(labels))
            diffs[i] = macro_f1(labels[idx], student[idx]) - macro_f1(labels[idx], baseline[idx])
    tail = (1.0 - CONFIDENCE) / 2
    ci_low, ci_high = np.quantile(diffs, [tail, 1.0 - tail])
    s_ok, b_ok = student == labels, baseline == labels
    only_s, only_b = int(np.sum(s_ok & ~b_ok)), int(np.sum(~s_ok & b_ok))
    discordant = only_s + only_b
    mcnemar = (float(stats.binomtest(only_s, discordant, 0.5).pvalue) if discordant else 1.0)
    return {"student_macro_f1": macro_f1(labels, student),
            "baseline_macro_f1": macro_f1(labels, baseline),
            "difference": macro_f1(labels, student) - macro_f1(labels, baseline),
            "bootstrap": {"ci_low": float(ci_low), "ci_high": float(ci_high),
                          "standard_error": float(diffs.std(ddof=1)),
                          "confidence": CONFIDENCE, "n_resamples": n_resamples,
                          "method": "percentile, paired over test examples", "seed": seed},
            "mcnemar": {"student_only_correct": only_s, "baseline_only_correct": only_b,
                        "both_correct": int(np.sum(s_ok & b_ok)),
                        "both_wrong": int(np.sum(~s_ok & ~b_ok)), "pvalue": mcnemar,
                        "method": "exact (two-sided binomial test on the discordant pairs)"}}


def verdict(chosen_alpha: float, seed_tests: dict[str, Any],
            vote: dict[str, Any]) -> tuple[bool, str]:
    """(gain is real, one line): real when the mean test macro-F1 gain over seeds is positive,
    the paired t-test over seeds gives p < 0.05 and the bootstrap 95% CI of the majority-vote
    macro-F1 difference lies above 0."""
    alpha_level = 1.0 - CONFIDENCE
    if chosen_alpha >= 1.0:
        return False, ("Verdict: the chosen configuration is the CE-only baseline (alpha = 1); "
                       "there is no KD gain to test.")
    gain = seed_tests["mean_difference"]
    p = seed_tests["t_test"]["pvalue"]
    lo, hi = vote["bootstrap"]["ci_low"], vote["bootstrap"]["ci_high"]
    facts = (f"mean test macro-F1 difference {100 * gain:+.2f} points over {seed_tests['n']} "
             f"seed(s), paired t-test p = {_p(p)}, bootstrap 95% CI of the majority-vote "
             f"difference [{100 * lo:+.2f}, {100 * hi:+.2f}] points")
    significant = p is not None and math.isfinite(p) and p < alpha_level
    if gain > 0 and significant and lo > 0:
        return True, f"Verdict: the KD gain is real at 95% ({facts})."
    if gain < 0 and significant and hi < 0:
        return False, f"Verdict: KD is worse than the CE-only baseline at 95% ({facts})."
    why = ("a seed-level test needs --seeds 2 or more" if p is None else
           "the seed-level t-test is not significant" if not significant else
           "the example-level bootstrap CI includes 0" if lo <= 0 <= hi else
           "the seed-level and example-level results disagree")
    return False, f"Verdict: the KD gain is NOT shown at 95%: {why} ({facts})."


def _p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3g}"


# --------------------------------------------------------------------------------------------
# Reproduction of the trial


def reproduction(choice: Choice, run: Run | None, threads: int, device: str,
                 note: str = "") -> dict[str, Any]:
    """The re-run trial's validation macro-F1 at the trial's best epoch vs trials.csv's."""
    out: dict[str, Any] = {
        "trial_id": choice.trial_id, "seed": int(choice.config["seed"]),
        "epochs": int(choice.config["epochs"]), "best_epoch": choice.best_epoch,
        "trial_val_macro_f1": choice.trial_val_macro_f1, "retrained_val_macro_f1": None,
        "difference": None, "tolerance": REPRODUCTION_TOLERANCE, "within_tolerance": None,
        "checked": False, "threads": threads, "device": device, "note": note}
    if run is None:
        return out
    if choice.best_epoch is None or choice.trial_val_macro_f1 is None:
        out["note"] = "the search recorded no best epoch / validation macro-F1 for this trial"
        return out
    if choice.best_epoch > len(run.history):
        out["note"] = (f"the re-run stopped after {len(run.history)} epoch(s), before the "
                       f"trial's best epoch {choice.best_epoch} (diverged)")
        return out
    value = float(run.history[choice.best_epoch - 1]["val_macro_f1"])
    diff = value - choice.trial_val_macro_f1
    out.update(retrained_val_macro_f1=value, difference=diff, checked=True,
               within_tolerance=bool(abs(diff) <= REPRODUCTION_TOLERANCE + 1e-12))
    return out


# --------------------------------------------------------------------------------------------
# The exported model


def measure_latency(model: torch.nn.Module, data: Encoded,
                    examples: int = LATENCY_EXAMPLES) -> dict[str, Any]:
    """CPU latency of the model's forward pass at batch size 1 on test examples."""
    import torch

    n = min(examples, len(data))
    times = []
    model.eval()
    with torch.inference_mode():
        for i in list(range(min(LATENCY_WARMUP, n))) + list(range(n)):
            batch = data.collate(np.array([i]))
            t0 = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - t0)
    ms = 1000.0 * np.asarray(times[min(LATENCY_WARMUP, n):])
    return {"ms_per_example_mean": float(ms.mean()), "ms_per_example_median": float(np.median(ms)),
            "examples": n, "batch_size": 1, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "measures": "model forward on pre-tokenised test examples (tokenisation excluded)"}


def export_model(model: torch.nn.Module, prep: Prepared, folder: Path) -> dict[str, Any]:
    """``save_pretrained`` the model and tokenizer (label names kept); size and latency."""
    import torch

    from kdtune.models import count_parameters

    names = prep.label_names
    if folder.exists():
        shutil.rmtree(folder)
    model = model.to(torch.device("cpu")).eval()
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(folder)
    prep.student_tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label", {})
    if [saved.get(str(i)) for i in range(len(names))] != names:
        raise RuntimeError(f"label names did not survive save_pretrained: {saved}")
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return {"dir": str(folder), "params": count_parameters(model), "weights_mb": weights / 1e6,
            "latency": measure_latency(model, prep.encoded["test"])}


# --------------------------------------------------------------------------------------------
# Reports


def _pm(stats: dict[str, Any], scale: float = 1.0, digits: int = 4) -> str:
    mean = f"{scale * stats['mean']:.{digits}f}"
    if stats.get("std") is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {scale * stats['std']:.{digits}f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_title(col: str) -> str:
    split, _, rest = col.partition("_")
    name = {"macro_f1": "macro-F1", "accuracy": "accuracy"}.get(rest, rest.replace("f1_", "F1 "))
    return f"{'test' if split == 'test' else 'val'} {name}"


def write_summary(path: Path, report: dict[str, Any], label_names: list[str]) -> None:
    """``summary.md``: what was re-trained, mean ± std, per-seed values, paired tests, verdict."""
    cmp_ = report["comparison"]
    seeds = cmp_["seed_level"]
    trial = report["trial"]
    anchor = f", anchor {trial['anchor']}" if trial["anchor"] else ""
    hp = ", ".join(f"{k} = {_fmt(report['config'][k])}" for k in
                   ("alpha", "temperature", "learning_rate", "epochs", "batch_size"))
    lines = [f"# kdtune retrain of `{report['experiment_name']}`", "",
             f"- configuration: trial `{trial['trial_id']}` (from {trial['source']}{anchor}): {hp}",
             f"- CE-only baseline: alpha = 1, learning_rate = "
             f"{_fmt(report['baseline_config']['learning_rate'])} ({report['baseline_lr_source']} "
             "learning rate), same seeds, data, epochs and batch size",
             f"- seeds: {', '.join(map(str, report['seeds']))}; each run keeps its best "
             f"validation epoch by {report['selection_metric']}; torch threads "
             f"{report['threads']}, device {report['device']}",
             f"- data: `{report['data']['source']}`: {report['data']['rows']['train']} train / "
             f"{report['data']['rows']['val']} validation / {report['data']['rows']['test']} "
             "held-out test rows (the search never saw test)", ""]
    lines += ["## Mean ± std over seeds (sample std, ddof = 1)", ""]
    rows = []
    summary = report["summary"]
    for col in metric_columns(label_names):
        rows.append([_metric_title(col), _pm(summary["student"][col]),
                     _pm(summary["baseline"][col]), _pm(summary["difference"][col])])
    lines += [_table(["metric", "KD student", "CE-only baseline", "difference (paired)"], rows), ""]
    lines += ["## Per seed", ""]
    per_seed = [[r["model"], r["seed"], r["best_epoch"], f"{r['val_macro_f1']:.4f}",
                 f"{r['val_accuracy']:.4f}", f"{r['test_macro_f1']:.4f}",
                 f"{r['test_accuracy']:.4f}"] for r in report["per_seed"]]
    lines += [_table(["model", "seed", "best epoch", "val macro-F1", "val accuracy",
                      "test macro-F1", "test accuracy"], per_seed), ""]
    lines += ["## Paired comparison on test macro-F1 (KD student - baseline)", ""]
    t, w = seeds["t_test"], seeds["wilcoxon"]
    rows = [["over seeds", "paired t-test", f"{100 * seeds['mean_difference']:+.2f} points",
             (f"[{100 * t['ci_low']:+.2f}, {100 * t['ci_high']:+.2f}]" if t.get("ci_low") is not None
              and math.isfinite(t["ci_low"]) else "-"), _p(t["pvalue"])],
            ["over seeds", "Wilcoxon signed-rank", f"{100 * seeds['mean_difference']:+.2f} points",
             "-", _p(w["pvalue"])]]
    for key, label in (("majority_vote", "majority vote of the seeds"),
                       ("best_seed", "best seed of each (by validation)")):
        ex = cmp_["example_level"][key]
        b, m = ex["bootstrap"], ex["mcnemar"]
        rows.append([f"over test examples, {label}", f"paired bootstrap ({b['n_resamples']})",
                     f"{100 * ex['difference']:+.2f} points",
                     f"[{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}]", "-"])
        rows.append([f"over test examples, {label}",
                     f"exact McNemar ({m['student_only_correct']} vs "
                     f"{m['baseline_only_correct']} discordant)", "(accuracy)", "-",
                     _p(m["pvalue"])])
    lines += [_table(["unit", "test", "estimate", "95% CI (points)", "p-value"], rows), ""]
    notes = list(dict.fromkeys(n for n in (t.get("note"), w.get("note")) if n))
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    rep = report["reproduction"]
    lines += ["## Reproduction of the trial", ""]
    if rep["checked"]:
        lines += [f"Seed {rep['seed']} with the trial's {rep['epochs']} epochs reaches validation "
                  f"macro-F1 {rep['retrained_val_macro_f1']:.4f} at the trial's best epoch "
                  f"{rep['best_epoch']}; the search recorded {rep['trial_val_macro_f1']:.4f} "
                  f"(difference {100 * rep['difference']:+.2f} points, tolerance "
                  f"{100 * rep['tolerance']:.1f}): "
                  f"{'reproduced' if rep['within_tolerance'] else 'NOT reproduced'}.", ""]
    else:
        lines += [f"Not checked: {rep['note']}", ""]
    mdl = report["model"]
    lines += ["## Exported model", "",
              f"Seed {mdl['seed']} (best validation macro-F1 of the KD student seeds) in "
              f"`{mdl['dir']}`: {mdl['params']:,} parameters, {mdl['weights_mb']:.1f} MB, "
              f"{mdl['latency']['ms_per_example_mean']:.1f} ms/example on CPU at batch size 1; "
              "see its README.md.", ""]
    lines += ["## Verdict", "", report["verdict"]["text"], ""]
    atomic_write_text(path, "\n".join(lines))


def _fmt_count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else "n/a"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_model_card(folder: Path, report: dict[str, Any], cfg: ExperimentConfig,
                     prep: Prepared) -> None:
    """The exported model's ``README.md`` (Hugging Face model card)."""
    names = prep.label_names
    mdl, summary = report["model"], report["summary"]
    best = next(r for r in report["per_seed"]
                if r["model"] == "student" and r["seed"] == mdl["seed"])
    teacher = cfg.teacher.finetuned or cfg.teacher.model
    t_metrics = prep.teacher.metrics.get("test", {})
    n = len(report["seeds"])
    rows = [[_metric_title(c), f"{best[c]:.4f}", _pm(summary["student"][c]),
             _pm(summary["baseline"][c])]
            for c in ("test_accuracy", "test_macro_f1", *(f"test_f1_{n_}" for n_ in names))]
    hp = report["config"]
    hp_rows = [[k, _fmt(hp[k])] for k in ("alpha", "temperature", "learning_rate", "epochs",
                                          "batch_size", "weight_decay", "warmup_fraction",
                                          "clip_norm", "dropout", "seed") if k in hp]
    lat = mdl["latency"]
    text = f"""---
library_name: transformers
pipeline_tag: text-classification
tags:
- text-classification
- knowledge-distillation
- kdtune
---

# KD student of kdtune experiment `{report['experiment_name']}`

A student classifier ({prep.student_init.description}) distilled from a fine-tuned teacher with the
configuration of search trial `{report['trial']['trial_id']}` and re-trained by
`python -m kdtune.retrain`. This is seed {mdl['seed']} of {n}, picked by validation macro-F1
(the test split was not used to pick it). Labels: {', '.join(names)}.

## Data

- source: `{report['data']['source']}`
- stratified split (seed {cfg.data.seed}): {report['data']['rows']['train']} train /
  {report['data']['rows']['val']} validation / {report['data']['rows']['test']} held-out test rows;
  texts truncated to {cfg.data.max_length} tokens

## Teacher

- `{teacher}`{'' if cfg.teacher.finetuned else f' fine-tuned for {cfg.teacher.epochs} epoch(s)'}
  ({_fmt_count(prep.teacher.metrics.get('params'))} parameters); test accuracy
  {_fmt(t_metrics.get('accuracy', 'n/a'))}, macro-F1 {_fmt(t_metrics.get('macro_f1', 'n/a'))}
- the student learns from the teacher's cached logits:
  loss = alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T)

## Hyperparameters

{_table(['name', 'value'], hp_rows)}

## Test metrics (held-out split)

Mean ± sample std over {n} seed(s); the CE-only baseline (alpha = 1) used the same seeds, data
and budget.

{_table(['metric', 'this model', f'KD student, {n} seeds', f'CE-only baseline, {n} seeds'], rows)}

{report['verdict']['text']}

## Size and speed

- parameters: {mdl['params']:,}; weights: {mdl['weights_mb']:.1f} MB (float32 safetensors)
- CPU latency: {lat['ms_per_example_mean']:.2f} ms/example mean, {lat['ms_per_example_median']:.2f} ms
  median, batch size 1, measured on {lat['examples']} test examples with {lat['threads']} torch
  thread(s) on `{lat['cpu']}` ({lat['measures']})

## How to load

```python
from transformers import pipeline

classifier = pipeline("text-classification", model="{folder}")
classifier("Stocks rallied after the central bank held rates.", truncation=True,
           max_length={cfg.data.max_length})
```

or with `AutoTokenizer.from_pretrained(path)` and
`AutoModelForSequenceClassification.from_pretrained(path)`; `model.config.id2label` maps the
output indices to {', '.join(names)}.
"""
    atomic_write_text(folder / "README.md", text)


# --------------------------------------------------------------------------------------------
# The whole re-training


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


# --------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog="kdtune.retrain",
                                description=__doc__.split("\n")[0].removeprefix("CLI: "))
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
    if args.seeds < 1:
        raise ConfigError("--seeds", f"must be a positive number of seeds, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError("--epochs", f"must be a positive number of epochs, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads", f"must be a positive number of threads, got {args.threads}")
    if args.bootstrap < 100:
        raise ConfigError("--bootstrap", f"needs at least 100 resamples, got {args.bootstrap}")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "httpx", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
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
        print(f"  {model:>8}: test macro-F1 {_pm(summary[model]['test_macro_f1'])}, "
              f"accuracy {_pm(summary[model]['test_accuracy'])}")
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


if __name__ == "__main__":
    sys.exit(main())
