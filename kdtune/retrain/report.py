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
    seeds: list[int]  # the verdict's seeds: fresh, none of them in search_seeds
    search_seeds: list[int]  # every seed the search and its confirm stage trained with
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
    verdict: dict[str, Any]  # kdtune.retrain.decision.decide at the last look
    design: dict[str, Any]  # kdtune.retrain.sequential.Design: looks, margin, levels
    looks: list[dict[str, Any]]  # the decision at every look taken
    failures: dict[str, list[int]]  # seeds on which each model diverged
    reproduction: dict[str, Any]
    execution: str = "Ray tasks"  # or "sequential (this process)"
    models: dict[str, Any] = field(default_factory=dict)  # both saved seeds: size, latency, dir
    ship: dict[str, Any] = field(default_factory=dict)  # the model to ship and why
    model: dict[str, Any] = field(default_factory=dict)  # the shipped one of ``models``
    seconds: float = 0.0
    # With a self-training pick: its trial, hparams as re-trained, and KD vs self-training on the
    # same seeds (kdtune.retrain.decision.decide; it never drives the stopping)
    self_training: dict[str, Any] = field(default_factory=dict)
    self_training_config: dict[str, Any] = field(default_factory=dict)
    versus_self_training: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
