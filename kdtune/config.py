"""Typed, validated configuration for a kdtune experiment.

A search-space YAML file is plain data (read with ``yaml.safe_load``) with the sections
``data``, ``teacher``, ``student``, ``train``, ``search`` and ``space``. Each section maps onto a
dataclass below whose ``__post_init__`` validates it, in the style of transformers'
``run_glue.py`` argument dataclasses. Any problem raises :class:`ConfigError`, whose message is a
single line naming the field and the fix; the CLIs turn it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdtune.errors import ConfigError, check
from kdtune.params import CE_ALPHA, KD_ONLY, SEED_ALPHA, SEED_TEMPERATURE, TrainParams, validate_hparams
from kdtune.strategies import STRATEGIES, strategy

#: Hyperparameters a search space may tune; each is also a field of :class:`TrainParams`.
SEARCHABLE = ("alpha", "temperature", "learning_rate", "weight_decay", "warmup_fraction",
              "clip_norm", "batch_size", "dropout", "beta", "teacher_weight", "layers")
OBJECTIVES = ("val_macro_f1", "val_accuracy", "latency_ms", "params")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "quniform")
METRICS = ("val_macro_f1", "val_accuracy")
EMBEDDED_MODEL = "embedded:all-MiniLM-L6-v2"
BASELINES = ("tuned", "fixed", "none")
#: ASHA's default first rung in epochs (set from benchmarks/bench_search.py's replays).
RUNG_GRACE = 0.5
#: The tuned CE-only arm gets this share of num_samples by default, and at least this many trials.
BASELINE_SHARE, BASELINE_MIN_TRIALS = 0.25, 3


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
    weighted by inverse class frequency, all 1 on balanced data) are sized so that the teacher
    predicts a class of 2% of the rows (tests/test_teacher_defaults.py); the cost is in the
    README ("A teacher worth distilling").
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
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    anchors: bool = True  # also run the CE-only anchor and the seed default (0.7, 3)
    baseline: str = "tuned"  # tuned: a CE-only arm with its own TPE study; fixed; none
    baseline_share: float = BASELINE_SHARE  # the tuned CE arm's share of num_samples
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
        check(self.cpus_per_trial > 0, "search.cpus_per_trial", "must be > 0")
        check(0 <= self.gpus_per_trial <= 1, "search.gpus_per_trial",
              f"must be in [0, 1] (a trial trains on one GPU; a fraction shares one between "
              f"trials), got {self.gpus_per_trial:g}")
        check(self.max_failures >= 0, "search.max_failures", "must be >= 0")
        check(self.baseline in BASELINES, "search.baseline",
              f"must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        check(0 < self.baseline_share < 1, "search.baseline_share",
              f"must be in (0, 1), got {self.baseline_share}")
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


@dataclass(frozen=True)
class Arm:
    """One arm of a search: its own space, share of trials and first points (anchors).

    ``kd`` searches the whole space. ``ce``, the tuned CE-only baseline, pins alpha = 1 and
    beta = 0 and searches what is left once the KD-only parameters are removed, with its own
    TPE study, so the baseline gets tuned like the student.
    """

    name: str
    space: tuple[ParamSpace, ...]
    num_samples: int
    points: tuple[dict[str, Any], ...] = ()
    pinned: tuple[tuple[str, Any], ...] = ()  # values every trial of the arm trains with


ARM_KD, ARM_CE = "kd", "ce"


@dataclass
class ExperimentConfig:
    """The whole resolved experiment."""

    name: str = "experiment"
    results_dir: str = "results"
    cache_dir: str = ".cache/kdtune"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainParams = field(default_factory=TrainParams)
    search: SearchConfig = field(default_factory=SearchConfig)
    space: list[ParamSpace] = field(default_factory=list)
    extra_teachers: list[TeacherConfig] = field(default_factory=list)  # multi-teacher KD

    @property
    def searched(self) -> set[str]:
        return {p.name for p in self.space}

    @property
    def num_teachers(self) -> int:
        return 1 + len(self.extra_teachers)

    @property
    def uses_features(self) -> bool:
        """Whether any trial can have a hidden-state loss (beta > 0 fixed, or beta searched)."""
        return self.train.beta > 0 or "beta" in self.searched

    @property
    def base_hparams(self) -> dict[str, Any]:
        """The fixed part of every trial's hparams: the training values that are not searched."""
        return {k: v for k, v in self.trial_base().items() if k not in self.searched}

    def trial_base(self) -> dict[str, Any]:
        """Every trial's starting hparams: the train section, with ``student.dropout`` as the
        dropout unless ``train.dropout`` (or the space) sets one."""
        base = self.train.as_hparams()
        if base["dropout"] is None:
            base["dropout"] = self.student.dropout
        return base

    def __post_init__(self) -> None:
        check(bool(self.name) and all(c.isalnum() or c in "-_." for c in self.name), "name",
              f"use letters, digits, '-', '_' or '.', got {self.name!r}")
        check(bool(self.space), "space", "give at least one parameter to search")
        for p in self.space:
            if p.name in ("batch_size", "layers") and p.type != "choice":
                raise ConfigError(f"space.{p.name}", f"use type: choice for {p.name}")
        if "layers" in self.searched:
            check(self.student.model is None, "space.layers",
                  "searching layers needs a student sliced from the teacher (student.model: null)")
        self._check_teachers()
        self._check_rungs()
        if self.search.anchors:
            for point in self.anchor_points():
                for p in self.space:
                    if p.name in point:
                        check(p.contains(point[p.name]), f"space.{p.name}",
                              f"range must contain the anchor value {point[p.name]} (from "
                              f"train.{p.name}); widen it or set search.anchors: false")
        self._check_budget()
        strategy(self.search.strategy).check(self)

    def _check_teachers(self) -> None:
        t = self.train
        if t.teacher_weights is not None:
            check(len(t.teacher_weights) == self.num_teachers, "train.teacher_weights",
                  f"give {self.num_teachers} weights (main teacher first), got "
                  f"{len(t.teacher_weights)}")
        if t.teacher_weight is not None or "teacher_weight" in self.searched:
            check(self.num_teachers == 2, "train.teacher_weight",
                  "teacher_weight is for exactly two teachers (teacher + one extra_teachers "
                  "entry); use teacher_weights for more")

    def _check_rungs(self) -> None:
        """ASHA's rungs fall on evaluations, after the warm-up, before the last epoch."""
        t = self.train
        evals = round(1.0 / t.eval_every)
        check(abs(evals * t.eval_every - 1.0) < 0.01, "train.eval_every",
              f"must be 1/n of an epoch (1, 0.5, 0.25, 0.2, ...), got {t.eval_every}")
        grace = self.grace_period
        steps = grace * evals
        check(abs(steps - round(steps)) < 1e-4, "search.grace_period",
              f"must be a multiple of train.eval_every ({t.eval_every:g}), got {grace}")
        warmup = t.warmup_fraction * t.epochs
        check(grace >= warmup - 1e-9, "search.grace_period",
              f"the first rung ({grace:g} epochs) comes before the end of the warm-up "
              f"({warmup:g} epochs); raise it or lower train.warmup_fraction")

    @property
    def grace_period(self) -> float:
        """ASHA's first rung in epochs: ``search.grace_period``, or when null the first
        evaluation at or after max(0.5 epochs, the warm-up's end). Validation leaves the
        section as written; this is the value the scheduler and the report use."""
        s, t = self.search, self.train
        if s.grace_period is not None:
            return s.grace_period
        evals = round(1.0 / t.eval_every)
        first = max(RUNG_GRACE, t.warmup_fraction * t.epochs)
        return round(math.ceil(first * evals - 1e-9) / evals, 6)

    def _check_budget(self) -> None:
        arms = self._default_arms()
        ce = next((a for a in arms if a.name == ARM_CE), None)
        kd = next(a for a in arms if a.name == ARM_KD)
        n = self.search.num_samples
        if ce is not None:
            need = ce.num_samples + len(kd.points) + 1
            check(n >= need, "search.num_samples",
                  f"{n} trials cannot hold the tuned CE-only arm ({ce.num_samples} trials) and "
                  f"the KD arm ({len(kd.points)} anchor(s) + at least 1 searched trial); use at "
                  f"least {need}, or search.baseline: fixed")
        else:
            check(n > len(kd.points), "search.num_samples",
                  f"must exceed the {len(kd.points)} anchor trials")

    @property
    def ce_space(self) -> list[ParamSpace]:
        """What the CE-only arm searches: the space without the KD-only parameters."""
        return [p for p in self.space if p.name not in KD_ONLY]

    def _fixed_point(self, space: list[ParamSpace]) -> dict[str, Any]:
        """The fixed training values, expressed over ``space``."""
        defaults = {"layers": self.student.layers,
                    "teacher_weight": 0.5 if self.train.teacher_weight is None
                    else self.train.teacher_weight}
        return {p.name: defaults[p.name] if p.name in defaults else getattr(self.train, p.name)
                for p in space}

    def ce_anchor(self, space: list[ParamSpace] | None = None) -> dict[str, Any]:
        """The CE-only anchor: alpha = 1 (temperature then has no effect), beta = 0."""
        point = self._fixed_point(self.space if space is None else space)
        point.update({k: v for k, v in (("alpha", CE_ALPHA), ("beta", 0.0)) if k in point})
        return point

    def seed_anchor(self) -> dict[str, Any]:
        """The seed report's default (alpha 0.7, T 3), logits only (beta = 0)."""
        point = self._fixed_point(self.space)
        point.update({k: v for k, v in (("alpha", SEED_ALPHA), ("temperature", SEED_TEMPERATURE),
                                        ("beta", 0.0)) if k in point})
        return point

    @property
    def baseline_mode(self) -> str:
        """tuned (a CE arm), fixed (the CE anchor), none; a space without alpha has none."""
        if "alpha" not in self.searched:
            return "none"
        if self.search.baseline == "tuned" and not self.ce_space:
            return "fixed"  # nothing but KD-only parameters is searched: nothing to tune for CE
        return self.search.baseline

    def arms(self) -> list[Arm]:
        """The arms as ``search.strategy`` plans them (kdtune.strategies): by default the KD arm
        and, with a tuned baseline, the CE-only arm, anchors first."""
        return strategy(self.search.strategy).plan(self, self._default_arms())

    def _default_arms(self) -> list[Arm]:
        """The KD arm and, with a tuned baseline, the CE-only arm (its share of num_samples)."""
        s, anchors, mode = self.search, self.search.anchors, self.baseline_mode
        if "alpha" not in self.searched:
            points = (self._fixed_point(self.space),) if anchors else ()
            return [Arm(ARM_KD, tuple(self.space), s.num_samples, points)]
        if mode != "tuned":
            points = ((self.ce_anchor(),) if mode == "fixed" else ()) + (self.seed_anchor(),)
            return [Arm(ARM_KD, tuple(self.space), s.num_samples, points if anchors else ())]
        n_ce = max(BASELINE_MIN_TRIALS, round(s.baseline_share * s.num_samples))
        pinned = (("alpha", CE_ALPHA), ("beta", 0.0))
        ce = Arm(ARM_CE, tuple(self.ce_space), n_ce,
                 (self.ce_anchor(self.ce_space),) if anchors else (), pinned)
        kd = Arm(ARM_KD, tuple(self.space), s.num_samples - n_ce,
                 (self.seed_anchor(),) if anchors else ())
        return [kd, ce]

    def anchor_points(self) -> list[dict[str, Any]]:
        """Every anchor of every arm (as the arms' trials see them, pinned values included)."""
        return [{**dict(a.pinned), **p} for a in self._default_arms() for p in a.points]

    def protected_anchors(self) -> list[dict[str, Any]]:
        """Anchors ASHA never stops: with a fixed baseline the report compares against them.

        A tuned CE arm is compared through its best trial (and the confirm stage re-runs the
        top trials at full length), so no anchor needs to run to the end there.
        """
        return self.anchor_points() if self.baseline_mode == "fixed" else []

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["search"]["grace_period"] = self.grace_period  # the resolved config: the value used
        d["space"] = {p["name"]: {k: v for k, v in p.items() if k != "name" and v is not None}
                      for p in d["space"]}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _type_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Check/coerce ``value`` against a dataclass annotation. Returns (ok, coerced)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None:
            return (type(None) in args), None
        for arg in args:
            if arg is type(None):
                continue
            ok, coerced = _type_ok(value, arg)
            if ok:
                return True, coerced
        return False, value
    if origin is dict:
        return _dict_ok(value, *(typing.get_args(annotation) or (Any, Any)))
    if origin is list:
        return _list_ok(value, (typing.get_args(annotation) or (Any,))[0])
    return _scalar_ok(value, annotation)


def _dict_ok(value: Any, key_t: Any, item_t: Any) -> tuple[bool, Any]:
    if not isinstance(value, dict):
        return False, value
    out = {}
    for k, item in value.items():
        (ok_k, k2), (ok, coerced) = _type_ok(k, key_t), _type_ok(item, item_t)
        if not (ok_k and ok):
            return False, value
        out[k2] = coerced
    return True, out


def _list_ok(value: Any, item_t: Any) -> tuple[bool, Any]:
    if not isinstance(value, list):
        return False, value
    out = []
    for item in value:
        ok, coerced = _type_ok(item, item_t)
        if not ok:
            return False, value
        out.append(coerced)
    return True, out


def _scalar_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    if annotation is Any:
        return True, value
    if annotation is bool or isinstance(value, bool):
        return annotation is bool and isinstance(value, bool), value
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if annotation is float:
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if annotation is str:
        return isinstance(value, str), value
    return isinstance(value, annotation), value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts) + " or null"
    if origin is list:
        (item_t,) = typing.get_args(annotation)
        return f"a list of {_describe(item_t).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        _, item_t = typing.get_args(annotation)
        return f"a mapping of names to {_describe(item_t).removeprefix('a ')}"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    check(isinstance(raw, dict), prefix, f"must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            allowed = ", ".join(sorted(names))
            raise ConfigError(where, f"unknown key; allowed keys are {allowed}")
        if dataclasses.is_dataclass(hints[key]):  # a nested section, e.g. search.confirm
            kwargs[key] = build_section(hints[key], value, where)
            continue
        ok, coerced = _type_ok(value, hints[key])
        check(ok, where, f"must be {_describe(hints[key])}, got {value!r}")
        kwargs[key] = coerced
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ConfigError(f"{prefix}.{f.name}", "is required")
    return cls(**kwargs)


def parse_config(raw: Any) -> ExperimentConfig:
    """Validate a raw mapping (from YAML) into an :class:`ExperimentConfig`."""
    check(isinstance(raw, dict), "(top level)", "the file must be a YAML mapping of sections")
    sections = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig,
                "train": TrainParams, "search": SearchConfig}
    top = {"name", "results_dir", "cache_dir", "space", "extra_teachers", *sections}
    for key in raw:
        check(key in top, str(key), f"unknown section; allowed are {', '.join(sorted(top))}")
    kwargs: dict[str, Any] = {}
    for key in ("name", "results_dir", "cache_dir"):
        if key in raw:
            check(isinstance(raw[key], str) and raw[key] != "", key, "must be a non-empty string")
            kwargs[key] = raw[key]
    for key, cls in sections.items():
        kwargs[key] = build_section(cls, raw.get(key), key)
    space_raw = raw.get("space")
    check(isinstance(space_raw, dict) and space_raw, "space",
           "must map parameter names to distributions, e.g. alpha: {type: uniform, low: 0, high: 1}")
    space = []
    for name, spec in space_raw.items():
        check(isinstance(spec, dict), f"space.{name}",
               "must be a mapping like {type: uniform, low: 0, high: 1}")
        check("name" not in spec, f"space.{name}.name", "remove it; the key names the parameter")
        space.append(build_section(ParamSpace, {**spec, "name": name}, f"space.{name}"))
    kwargs["space"] = space
    extra = raw.get("extra_teachers") or []
    check(isinstance(extra, list), "extra_teachers", "must be a list of teacher sections")
    kwargs["extra_teachers"] = [build_section(TeacherConfig, t, f"extra_teachers.{i}")
                                for i, t in enumerate(extra)]
    return ExperimentConfig(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a search-space YAML file (safe_load only) and validate it.

    ``overrides`` maps dotted keys (``search.num_samples``) to values, applied before validation.
    """
    path = Path(path)
    check(path.is_file(), "--space", f"file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text; save the file as UTF-8") from None
    return config_from_yaml(text, str(path), overrides)


def read_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with a one-line error naming ``source``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(source, f"not valid YAML ({first}); fix the syntax") from None


def config_from_yaml(text: str, source: str, overrides: dict[str, Any] | None = None
                     ) -> ExperimentConfig:
    raw = read_yaml(text, source)
    if isinstance(raw, dict):
        for dotted, value in (overrides or {}).items():
            set_dotted(raw, dotted, value)
    return parse_config(raw)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """``raw["a"]["b"] = value`` for ``dotted = "a.b"``, making the sections on the way."""
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
    node[leaf] = value


def merge_sections(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with nested ``overrides`` merged in (``search={"num_samples": 6}`` keeps the rest)."""
    out = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "space":
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


#: Labels of the anchor trials in the record (trials.csv's ``anchor`` column).
ANCHOR_CE, ANCHOR_SEED = "CE anchor", "seed default"


def is_hub_id(name: str) -> bool:
    """``name`` reads as a Hugging Face hub model id (``org/name`` or ``name``), not a path."""
    import re

    return (not Path(name).exists() and not name.startswith((".", "/", "~"))
            and re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) is not None)


def same_value(a: Any, b: Any) -> bool:
    """Equal hparam values: floats up to rounding, anything else exactly."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def is_anchor(hparams: dict[str, Any], anchors: list[dict[str, Any]]) -> bool:
    return any(all(k in hparams and same_value(hparams[k], v) for k, v in a.items())
               for a in anchors)


def anchor_label(hparams: dict[str, Any], anchors: list[dict[str, Any]]) -> str:
    """'CE anchor' for the CE-only anchor (alpha = 1), 'seed default' for the other anchor.

    An anchor is CE-only only when its own alpha is 1: with alpha not searched there is no
    CE-only run, and the fixed-values anchor is labelled 'seed default'.
    """
    if not is_anchor(hparams, anchors):
        return ""
    return ANCHOR_CE if hparams.get("alpha") == CE_ALPHA else ANCHOR_SEED


def reference_table() -> str:
    """Every configuration key with its default, as the README's table (a test keeps the two
    the same): one row per section, ``key = default``."""
    sections = (("data", DataConfig), ("teacher", TeacherConfig), ("student", StudentConfig),
                ("train", TrainParams), ("search", SearchConfig))
    rows = ["| section | keys = defaults |", "|---|---|"]
    for name, cls in sections:
        items = [f"`{f.name}` = `{_yaml_value(_default(f))}`" for f in dataclasses.fields(cls)]
        rows.append(f"| `{name}` | {', '.join(items)} |")
    return "\n".join(rows)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    value = f.default_factory()  # type: ignore[misc]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()
