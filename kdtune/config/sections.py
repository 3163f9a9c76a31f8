"""The config's sections as typed dataclasses, each validated on construction.

Every section (``data``, ``teacher``, ``student``, ``search`` and each ``space`` entry; ``train``
is :class:`kdtune.params.TrainParams`) checks itself in ``__post_init__``, in the style of
transformers' ``run_glue.py`` argument dataclasses; a problem raises :class:`ConfigError`, one
line naming the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtune.config.value_types import _type_ok
from kdtune.errors import ConfigError, check
from kdtune.params import validate_hparams
from kdtune.strategies import STRATEGIES

#: Hyperparameters a search space may tune; each is also a field of :class:`TrainParams`.
SEARCHABLE = ("alpha", "temperature", "learning_rate", "weight_decay", "warmup_fraction",
              "clip_norm", "batch_size", "dropout", "beta", "teacher_weight", "layers",
              "unlabeled_weight", "unlabeled_ratio")
OBJECTIVES = ("val_macro_f1", "val_accuracy", "latency_ms", "params")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "quniform")
METRICS = ("val_macro_f1", "val_accuracy")
EMBEDDED_MODEL = "embedded:all-MiniLM-L6-v2"
BASELINES = ("tuned", "fixed", "none")
#: ASHA's rule at a rung (kdtune.tuning.scheduler): the ASHA paper's top-k count, or Ray's
#: percentile cutoff.
PROMOTIONS = ("top_k", "percentile")
#: ASHA's default first rung in epochs (set from benchmarks/bench_search.py's replays).
RUNG_GRACE = 0.5
#: The tuned CE-only arm (and the self-training arm) gets this share of num_samples by default,
#: and at least this many trials.
BASELINE_SHARE, BASELINE_MIN_TRIALS = 0.25, 3


def is_hub_id(name: str) -> bool:
    """``name`` reads as a Hugging Face hub model id (``org/name`` or ``name``), not a path."""
    import re

    return (not Path(name).exists() and not name.startswith((".", "/", "~"))
            and re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) is not None)



@dataclass
class DataConfig:
    """Where the rows come from and how they are split and tokenised."""

    path: str | None = None  # local CSV/TSV/JSON/JSONL/Parquet
    hub: str | None = None  # a `datasets` name (e.g. ag_news, glue)
    hub_config: str | None = None  # the dataset's config name (e.g. sst2 for glue)
    hub_split: str = "train"
    hub_fallback: bool = False  # a missing `path` may fall back to `hub` (else it is an error)
    val_split: str | None = None  # the dataset's own validation split (hub name / file path)
    test_split: str | None = None  # the dataset's own test split (hub name / file path)
    text_column: str = "text"
    text_pair_column: str | None = None  # sentence-pair tasks: the second text
    label_column: str = "label"
    label_names: list[str] | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_train: int | None = None
    max_val: int | None = None
    max_test: int | None = None
    max_length: int = 128
    seed: int = 0
    # A transfer set: text without labels that the teacher labels (kdtune.transfer). `remainder`
    # (the main rows no split took, labels dropped), a local file, or hub:<dataset>[:<split>]
    unlabeled: str | None = None
    unlabeled_text_column: str | None = None  # null: data.text_column
    max_unlabeled: int | None = None  # a seeded sample of at most this many transfer rows

    def __post_init__(self) -> None:
        check(self.path is not None or self.hub is not None, "data.path",
              "give a local file in data.path or a datasets name in data.hub")
        check(not self.hub_fallback or (self.path is not None and self.hub is not None),
              "data.hub_fallback", "needs both data.path and data.hub")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            check(0.0 < v < 1.0, f"data.{name}", f"must be in (0, 1), got {v}")
        check(self.val_fraction + self.test_fraction < 0.9, "data.val_fraction",
              "val_fraction + test_fraction must leave at least 10% for training")
        for name in ("max_train", "max_val", "max_test"):
            v = getattr(self, name)
            check(v is None or v >= 8, f"data.{name}", f"must be >= 8 or null, got {v}")
        check(8 <= self.max_length <= 8192, "data.max_length",
              f"must be in [8, 8192], got {self.max_length}")
        check(self.max_unlabeled is None or self.max_unlabeled >= 1, "data.max_unlabeled",
              f"must be >= 1 or null, got {self.max_unlabeled}")
        check(self.unlabeled is None or bool(self.unlabeled.strip()), "data.unlabeled",
              "give remainder, a file, hub:<dataset>[:<split>], or null")
        check(self.unlabeled is not None or (self.unlabeled_text_column is None
                                            and self.max_unlabeled is None),
              "data.unlabeled", "unlabeled_text_column / max_unlabeled need a transfer set: set "
              "data.unlabeled (remainder, a file, or hub:<name>) or remove them")
        if self.label_names is not None:
            check(len(self.label_names) >= 2, "data.label_names", "needs at least two names")
            check(len(set(self.label_names)) == len(self.label_names), "data.label_names",
                  "names must be unique")


@dataclass
class TeacherConfig:
    """The teacher: a base model fine-tuned once, or an already fine-tuned model.

    Fine-tuning keeps the best whole-validation epoch. ``learning_rate`` may be a short list:
    each rate is tried (a full fine-tune each) and the best on validation macro-F1 is kept. The
    defaults (6 epochs, rates 1e-4 and 2e-4: 12 epochs of fine-tuning in all; cross-entropy
    weighted by inverse class frequency, which changes nothing on balanced data) are sized so
    that the teacher predicts a class of 2% of the rows (tests/test_teacher_defaults.py); the
    cost is in the README ("A teacher worth distilling").
    """

    model: str = EMBEDDED_MODEL  # hub name, local folder, or embedded:all-MiniLM-L6-v2
    finetuned: str | None = None  # an already fine-tuned teacher (folder or hub id): no fine-tuning
    epochs: int = 6  # the best whole-validation epoch is kept
    learning_rate: float | list[float] = field(default_factory=lambda: [1e-4, 2e-4])
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 0
    class_weight: str = "balanced"  # CE weighted n / (classes * n_class) per class, or "none"

    def __post_init__(self) -> None:
        check(1 <= self.epochs <= 100, "teacher.epochs", f"must be in [1, 100], got {self.epochs}")
        rates = self.learning_rates
        check(0 < len(rates) <= 8 and all(r > 0 for r in rates), "teacher.learning_rate",
              f"must be > 0 (or a list of up to 8 rates > 0), got {self.learning_rate}")
        check(self.batch_size >= 1, "teacher.batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.weight_decay >= 0, "teacher.weight_decay", "must be >= 0")
        check(0 <= self.warmup_fraction < 1, "teacher.warmup_fraction", "must be in [0, 1)")
        check(self.class_weight in ("balanced", "none"), "teacher.class_weight",
              f"must be 'balanced' or 'none', got {self.class_weight!r}")
        if self.finetuned is not None:
            check(Path(self.finetuned).is_dir() or is_hub_id(self.finetuned), "teacher.finetuned",
                  f"folder not found: {self.finetuned!r}; give a save_pretrained folder, a hub "
                  "model id (org/name) or null")

    @property
    def learning_rates(self) -> list[float]:
        lr = self.learning_rate
        return [float(x) for x in lr] if isinstance(lr, list) else [float(lr)]


@dataclass
class StudentConfig:
    """The student: a hub model, or a slice of the teacher's layers (as DistilBERT was made)."""

    model: str | None = None  # null: slice the teacher's base model
    layers: list[int] | None = field(default_factory=lambda: [0, 5])
    init: str = "pretrained"  # slice the pre-trained base ("pretrained") or the fine-tuned teacher
    dropout: float | None = None  # hidden/attention dropout; null keeps the model's own

    def __post_init__(self) -> None:
        check(self.init in ("pretrained", "finetuned"), "student.init",
               f"must be 'pretrained' or 'finetuned', got {self.init!r}")
        if self.model is None:
            check(bool(self.layers), "student.layers",
                   "give teacher layer indices to keep (e.g. [0, 5]) or a student.model")
        if self.layers is not None:
            check(all(isinstance(i, int) and i >= 0 for i in self.layers), "student.layers",
                   f"must be non-negative integers, got {self.layers}")
            check(list(self.layers) == sorted(set(self.layers)), "student.layers",
                   f"must be strictly increasing without repeats, got {self.layers}")
        if self.dropout is not None:
            check(0 <= self.dropout < 1, "student.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass
class ConfirmConfig:
    """Re-run the top-k completed trials of each arm with extra seeds after the search."""

    top_k: int = 2
    seeds: int = 1

    def __post_init__(self) -> None:
        check(0 <= self.top_k <= 20, "search.confirm.top_k", f"must be in [0, 20], got {self.top_k}")
        check(0 <= self.seeds <= 20, "search.confirm.seeds", f"must be in [0, 20], got {self.seeds}")

    @property
    def enabled(self) -> bool:
        return self.top_k > 0 and self.seeds > 0


LOGGERS = ("mlflow", "tensorboard", "wandb")


@dataclass
class SearchConfig:
    """How Ray Tune runs the search."""

    metric: str = "val_macro_f1"
    mode: str = "max"
    num_samples: int = 14
    max_concurrent: int | str = 2  # or "auto": as many trials as the cluster's slots hold
    seed: int = 0
    grace_period: float | None = None  # epochs before ASHA's first rung; null: see rung_grace
    reduction_factor: int = 3
    promotion: str = "top_k"  # ASHA's rule at a rung: top_k (the ASHA paper's) or percentile (Ray's)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    anchors: bool = True  # also run the CE-only anchor and the seed default (0.7, 3)
    baseline: str = "tuned"  # tuned: a CE-only arm with its own TPE study; fixed; none
    baseline_share: float = BASELINE_SHARE  # the tuned CE arm's share of num_samples
    self_training: bool = False  # a third arm: CE on the teacher's argmax of the transfer rows
    self_training_share: float = BASELINE_SHARE  # that arm's share of num_samples
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    objectives: list[str] | None = None  # multi-objective, e.g. [val_macro_f1, latency_ms]
    f1_tolerance: float = 0.005  # Pareto choice: fastest point within this of the best metric
    loggers: list[str] = field(default_factory=list)  # mlflow, tensorboard, wandb
    mlflow_tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI, else <experiment>/mlruns
    strategy: str = "tpe_asha"  # kdtune.strategies.STRATEGIES: tpe_asha, random_asha, tpe, grid
    grid: dict[str, list[float]] | None = None  # the grid strategy's values per parameter

    def __post_init__(self) -> None:
        check(self.strategy in STRATEGIES, "search.strategy",
              f"must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        check(self.metric in METRICS, "search.metric", f"must be one of {METRICS}")
        check(self.mode in ("max", "min"), "search.mode", "must be 'max' or 'min'")
        check(self.num_samples >= 1, "search.num_samples", "must be >= 1")
        check(self.max_concurrent == "auto" or (isinstance(self.max_concurrent, int)
                                                 and self.max_concurrent >= 1),
              "search.max_concurrent", f"must be >= 1 or 'auto', got {self.max_concurrent!r}")
        check(self.grace_period is None or self.grace_period > 0, "search.grace_period",
              "must be > 0 (epochs)")
        check(self.reduction_factor >= 2, "search.reduction_factor", "must be >= 2")
        check(self.promotion in PROMOTIONS, "search.promotion",
              f"must be one of {', '.join(PROMOTIONS)}, got {self.promotion!r}")
        check(self.cpus_per_trial > 0, "search.cpus_per_trial", "must be > 0")
        check(0 <= self.gpus_per_trial <= 1, "search.gpus_per_trial",
              f"must be in [0, 1] (a trial trains on one GPU; a fraction shares one between "
              f"trials), got {self.gpus_per_trial:g}")
        check(self.max_failures >= 0, "search.max_failures", "must be >= 0")
        check(self.baseline in BASELINES, "search.baseline",
              f"must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        for name in ("baseline_share", "self_training_share"):
            share = getattr(self, name)
            check(0 < share < 1, f"search.{name}", f"must be in (0, 1), got {share}")
        for name in self.loggers:
            check(name in LOGGERS, "search.loggers", f"{name!r} is not one of {', '.join(LOGGERS)}")
        if self.objectives is not None:
            check(len(self.objectives) >= 2, "search.objectives",
                  "give at least two objectives, or null for a single metric")
            for o in self.objectives:
                check(o in OBJECTIVES, "search.objectives", f"{o!r} is not one of {OBJECTIVES}")
            check(self.objectives[0] == self.metric, "search.objectives",
                  f"the first objective must be search.metric ({self.metric})")
        check(self.f1_tolerance >= 0, "search.f1_tolerance", "must be >= 0")

    @property
    def modes(self) -> list[str]:
        """Direction of each objective: quality up, latency and size down."""
        return [self.mode if o == self.metric else ("max" if o.startswith("val_") else "min")
                for o in (self.objectives or [self.metric])]


@dataclass
class ParamSpace:
    """One searchable parameter and its distribution."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    q: float | None = None
    values: list[Any] | None = None

    def __post_init__(self) -> None:
        where = f"space.{self.name}"
        check(self.name in SEARCHABLE, where,
               f"unknown parameter; searchable ones are {', '.join(SEARCHABLE)}")
        check(self.type in DISTRIBUTIONS, f"{where}.type",
               f"must be one of {', '.join(DISTRIBUTIONS)}, got {self.type!r}")
        if self.type == "choice":
            check(bool(self.values), f"{where}.values", "choice needs a non-empty list of values")
            if self.name not in ("layers", "batch_size"):  # PyYAML reads 1e-4 as a string
                kind = float | None if self.name == "dropout" else float
                coerced = [_type_ok(v, kind) for v in self.values]
                bad = [v for (ok, _), v in zip(coerced, self.values, strict=True) if not ok]
                check(not bad, f"{where}.values", f"must be numbers, got {bad[0]!r}" if bad else "")
                self.values = [c for _, c in coerced]
            for v in self.values:
                try:
                    validate_hparams({self.name: v}, "space")
                except TypeError:
                    raise ConfigError(f"{where}.values", f"{v!r} is not a valid {self.name}") from None
            return
        check(self.low is not None and self.high is not None, where,
               f"{self.type} needs numeric low and high")
        check(self.low < self.high, where, f"low must be < high, got {self.low} >= {self.high}")
        if self.type == "loguniform":
            check(self.low > 0, f"{where}.low", "loguniform needs low > 0")
        if self.type == "quniform":
            check(self.q is not None and self.q > 0, f"{where}.q", "quniform needs q > 0")
        if self.type == "randint":
            check(float(self.low).is_integer() and float(self.high).is_integer(), where,
                   "randint needs integer low and high")
        validate_hparams({self.name: self.low}, "space")
        validate_hparams({self.name: self.high}, "space")

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return value in self.values
        return value is not None and self.low <= value <= self.high
