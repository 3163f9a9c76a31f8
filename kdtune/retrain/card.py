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


def card_facts(report: RetrainReport, cfg: ExperimentConfig, prep: Any) -> CardFacts:
    """Everything the exported student's card states."""
    names, mdl = prep.label_names, report.model
    best = next(r for r in report.per_seed if r["model"] == "student" and r["seed"] == mdl["seed"])
    s, n = report.summary, len(report.seeds)
    teacher = cfg.teacher.finetuned or cfg.teacher.model
    cols = ("test_accuracy", "test_macro_f1", *(f"test_f1_{c}" for c in names))
    metrics = [EvalMetric("accuracy" if c == "test_accuracy" else "f1", metric_title(c), best[c])
               for c in cols]
    seeds = [SeedSummary(metric_title(c), s["student"][c]["mean"], s["student"][c]["std"] or 0.0,
                         s["baseline"][c]["mean"], s["baseline"][c]["std"] or 0.0) for c in cols]
    source = report.data["source"]
    return CardFacts(
        name=f"kdtune-{cfg.name}",
        description=(f"A student classifier ({prep.student_init.description}) distilled from the "
                     f"fine-tuned teacher `{teacher}` with the configuration of search trial "
                     f"`{report.student['trial_id']}`, re-trained by `python -m kdtune.retrain`. "
                     f"This is seed {mdl['seed']} of {n}, picked by validation macro-F1 (the test "
                     "split picked nothing). loss = alpha * CE + (1 - alpha) * T^2 * "
                     "KL(teacher_T || student_T)."),
        base_model=_hub_id(teacher),
        datasets=[cfg.data.hub] if source.startswith("hub:") and cfg.data.hub else [],
        dataset_name=source, label_names=names,
        hyperparameters={k: report.config[k] for k in CARD_KEYS if k in report.config},
        test_metrics=metrics, verdict=report.verdict["text"], seed_summary=seeds, seeds=n,
        params=mdl["params"], weights_mb=mdl["weights_mb"], latency=mdl["latency"],
        how_to_load=("from transformers import pipeline\n\nclassifier = pipeline("
                     "\"text-classification\", model=\"<this folder>\")\nclassifier(\"An example "
                     f"text to classify.\", truncation=True, max_length={cfg.data.max_length})"))
