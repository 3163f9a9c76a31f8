"""The model card facts of the re-trained student, from the finished ``retrain.json`` report."""

from __future__ import annotations

from typing import Any

from kdtune.config import ExperimentConfig
from kdtune.formatting import metric_title
from kdtune.modelcard import CardFacts, EvalMetric, SeedSummary
from kdtune.retrain.report import RetrainReport

CARD_KEYS = ("alpha", "temperature", "learning_rate", "epochs", "batch_size", "weight_decay",
             "warmup_fraction", "clip_norm", "dropout", "beta", "seed")


def _hub_id(name: str) -> str | None:
    """A hub model id for the card's ``base_model`` (None for the embedded or a local model)."""
    from pathlib import Path

    if name.startswith("embedded:"):
        return "sentence-transformers/all-MiniLM-L6-v2"
    return None if Path(name).exists() else name


def _description(report: RetrainReport, prep: Any, teacher: str, which: str) -> str:
    mdl, n, ship = report.models[which], len(report.seeds), report.ship
    status = ("This is the model to ship" if ship["model"] == which else
              "This is NOT the model kdtune recommends shipping (see retrain/model)")
    if which == "student":
        what = (f"A student classifier ({prep.student_init.description}) distilled from the "
                f"fine-tuned teacher `{teacher}` with the configuration of search trial "
                f"`{report.student['trial_id']}`. loss = alpha * CE + (1 - alpha) * T^2 * "
                "KL(teacher_T || student_T).")
    else:
        what = (f"The tuned CE-only baseline: the same student ({prep.student_init.description}) "
                "fine-tuned with cross-entropy alone at the hyperparameters of search trial "
                f"`{report.baseline['trial_id']}` (its own tuned learning rate).")
    return (f"{what} Re-trained by `python -m kdtune.retrain`: seed {mdl['seed']} of {n} fresh "
            f"seeds, picked by validation macro-F1 (the test split picked nothing). {status}: "
            f"{ship['reason']}.")


def card_facts(report: RetrainReport, cfg: ExperimentConfig, prep: Any,
               which: str = "student") -> CardFacts:
    """Everything the card of ``which`` ("student" or "baseline") states."""
    names, mdl = prep.label_names, report.models[which]
    best = next(r for r in report.per_seed if r["model"] == which and r["seed"] == mdl["seed"])
    s, n = report.summary, len(report.seeds)
    teacher = cfg.teacher.finetuned or cfg.teacher.model
    config = report.config if which == "student" else report.baseline_config
    cols = ("test_accuracy", "test_macro_f1", *(f"test_f1_{c}" for c in names))
    metrics = [EvalMetric("accuracy" if c == "test_accuracy" else "f1", metric_title(c), best[c])
               for c in cols]
    seeds = [SeedSummary(metric_title(c), s["student"][c]["mean"], s["student"][c]["std"] or 0.0,
                         s["baseline"][c]["mean"], s["baseline"][c]["std"] or 0.0)
             for c in cols if c in s["student"]]
    source = report.data["source"]
    return CardFacts(
        name=f"kdtune-{cfg.name}" + ("" if which == "student" else "-ce-baseline"),
        description=_description(report, prep, teacher, which),
        base_model=_hub_id(teacher),
        datasets=[cfg.data.hub] if source.startswith("hub:") and cfg.data.hub else [],
        dataset_name=source, label_names=names,
        hyperparameters={k: config[k] for k in CARD_KEYS if k in config},
        test_metrics=metrics, verdict=report.verdict["text"], seed_summary=seeds, seeds=n,
        params=mdl["params"], weights_mb=mdl["weights_mb"], latency=mdl["latency"],
        how_to_load=("from transformers import pipeline\n\nclassifier = pipeline("
                     "\"text-classification\", model=\"<this folder>\")\nclassifier(\"An example "
                     f"text to classify.\", truncation=True, max_length={cfg.data.max_length})"))
