"""The re-training's report: one typed object, written as ``retrain/retrain.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RetrainReport:
    """What ``kdtune.retrain`` found; ``summary.md`` and the model card are written from it."""

    experiment: str  # the record's root (folder or URI)
    experiment_name: str
    student: dict[str, Any]  # the KD pick: trial id, source, arm, anchor, status, best progress
    baseline: dict[str, Any]  # the CE-only pick, likewise
    config: dict[str, Any]  # the KD student's hparams as re-trained
    baseline_config: dict[str, Any]  # the baseline's own hparams as re-trained
    seeds: list[int]
    epochs: int
    selection_metric: str
    threads: int
    device: str
    data: dict[str, Any]  # source, rows, label names, fingerprint, teacher key and test metrics
    per_seed: list[dict[str, Any]]  # per_seed.csv's rows
    summary: dict[str, Any]  # mean ± std per metric: student, baseline, difference
    runs: dict[str, Any]  # every run's history, metrics and test predictions
    test_labels: list[int]
    comparison: dict[str, Any]  # seed-level and example-level paired tests
    verdict: dict[str, Any]  # kdtune.retrain.stats.verdict_statement
    reproduction: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)  # the exported seed: size, latency, dir
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
