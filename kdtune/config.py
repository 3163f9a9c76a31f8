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

#: Hyperparameters a search space may tune; each is also a field of :class:`TrainConfig`.
SEARCHABLE = ("alpha", "temperature", "learning_rate", "weight_decay", "warmup_fraction",
              "clip_norm", "batch_size", "dropout", "beta", "teacher_weight", "layers")
OBJECTIVES = ("val_macro_f1", "val_accuracy", "latency_ms", "params")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "quniform")
METRICS = ("val_macro_f1", "val_accuracy")
EMBEDDED_MODEL = "embedded:all-MiniLM-L6-v2"


class ConfigError(ValueError):
    """A configuration problem; ``str(err)`` is one line naming the field and the fix."""

    def __init__(self, field_name: str, message: str):
        # One line whatever the input held: keys and values from a file may contain newlines.
        self.field = " ".join(str(field_name).split()) or repr(field_name)
        super().__init__(f"{self.field}: {' '.join(str(message).split())}")


def _check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ConfigError(field_name, message)


@dataclass
class DataConfig:
    """Where the rows come from and how they are split and tokenised."""

    path: str | None = None  # local CSV/JSON/JSONL/Parquet, used when it exists
    hub: str | None = None  # a `datasets` name (e.g. ag_news), used when `path` is absent
    hub_split: str = "train"
    text_column: str = "text"
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
        _check(self.path is not None or self.hub is not None, "data.path",
               "give a local file in data.path or a datasets name in data.hub")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            _check(0.0 < v < 1.0, f"data.{name}", f"must be in (0, 1), got {v}")
        _check(self.val_fraction + self.test_fraction < 0.9, "data.val_fraction",
               "val_fraction + test_fraction must leave at least 10% for training")
        for name in ("max_train", "max_val", "max_test"):
            v = getattr(self, name)
            _check(v is None or v >= 8, f"data.{name}", f"must be >= 8 or null, got {v}")
        _check(8 <= self.max_length <= 8192, "data.max_length",
               f"must be in [8, 8192], got {self.max_length}")
        if self.label_names is not None:
            _check(len(self.label_names) >= 2, "data.label_names", "needs at least two names")
            _check(len(set(self.label_names)) == len(self.label_names), "data.label_names",
                   "names must be unique")


@dataclass
class TeacherConfig:
    """The teacher: a base model fine-tuned once, or an already fine-tuned model."""

    model: str = EMBEDDED_MODEL  # hub name, local folder, or embedded:all-MiniLM-L6-v2
    finetuned: str | None = None  # folder of an already fine-tuned teacher: skips fine-tuning
    epochs: int = 2
    learning_rate: float = 5e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        _check(1 <= self.epochs <= 100, "teacher.epochs", f"must be in [1, 100], got {self.epochs}")
        _check(self.learning_rate > 0, "teacher.learning_rate",
               f"must be > 0, got {self.learning_rate}")
        _check(self.batch_size >= 1, "teacher.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.weight_decay >= 0, "teacher.weight_decay", "must be >= 0")
        _check(0 <= self.warmup_fraction < 1, "teacher.warmup_fraction", "must be in [0, 1)")
        if self.finetuned is not None:
            _check(Path(self.finetuned).is_dir(), "teacher.finetuned",
                   f"folder not found: {self.finetuned!r}; give a save_pretrained folder or null")


@dataclass
class StudentConfig:
    """The student: a hub model, or a slice of the teacher's layers (as DistilBERT was made)."""

    model: str | None = None  # null: slice the teacher's base model
    layers: list[int] | None = field(default_factory=lambda: [0, 5])
    init: str = "pretrained"  # slice the pre-trained base ("pretrained") or the fine-tuned teacher
    dropout: float | None = None  # hidden/attention dropout; null keeps the model's own

    def __post_init__(self) -> None:
        _check(self.init in ("pretrained", "finetuned"), "student.init",
               f"must be 'pretrained' or 'finetuned', got {self.init!r}")
        if self.model is None:
            _check(bool(self.layers), "student.layers",
                   "give teacher layer indices to keep (e.g. [0, 5]) or a student.model")
        if self.layers is not None:
            _check(all(isinstance(i, int) and i >= 0 for i in self.layers), "student.layers",
                   f"must be non-negative integers, got {self.layers}")
            _check(list(self.layers) == sorted(set(self.layers)), "student.layers",
                   f"must be strictly increasing without repeats, got {self.layers}")
        if self.dropout is not None:
            _check(0 <= self.dropout < 1, "student.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass
class TrainConfig:
    """Fixed KD training values; a space entry with the same name overrides one per trial."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 1e-4
    alpha: float = 0.7
    temperature: float = 3.0
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clip_norm: float = 1.0
    dropout: float | None = None
    seed: int = 0
    group_by_length: bool = True
    beta: float = 0.0  # weight of the hidden-state (feature) loss; 0 = logits-only KD
    feature_loss: str = "mse"  # mse or cosine, between projected student and teacher states
    teacher_combine: str = "weighted"  # several teachers: weighted logits, or by confidence
    teacher_weights: list[float] | None = None  # one per teacher (main first); null = equal
    teacher_weight: float | None = None  # two teachers: the main one's weight (searchable)
    feature_cache_max_mb: float = 4096.0  # larger hidden-state caches are computed online

    def __post_init__(self) -> None:
        validate_hparams(dataclasses.asdict(self), "train")
        _check(1 <= self.epochs <= 1000, "train.epochs", f"must be in [1, 1000], got {self.epochs}")
        _check(self.eval_batch_size >= 1, "train.eval_batch_size", "must be >= 1")
        _check(self.feature_cache_max_mb >= 0, "train.feature_cache_max_mb", "must be >= 0")
        _check(self.feature_loss in ("mse", "cosine"), "train.feature_loss",
               f"must be 'mse' or 'cosine', got {self.feature_loss!r}")
        _check(self.teacher_combine in ("weighted", "confidence"), "train.teacher_combine",
               f"must be 'weighted' or 'confidence', got {self.teacher_combine!r}")
        if self.teacher_weights is not None:
            _check(all(w >= 0 for w in self.teacher_weights), "train.teacher_weights",
                   "weights must be >= 0")
            _check(abs(sum(self.teacher_weights) - 1.0) < 1e-6, "train.teacher_weights",
                   f"weights must sum to 1, got {sum(self.teacher_weights):g}")


def validate_hparams(values: dict[str, Any], prefix: str) -> None:
    """Range checks shared by fixed training values and sampled trial configs."""
    checks = {
        "alpha": (lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
        "temperature": (lambda v: v > 0, "must be > 0"),
        "learning_rate": (lambda v: v > 0, "must be > 0"),
        "weight_decay": (lambda v: v >= 0, "must be >= 0"),
        "warmup_fraction": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
        "clip_norm": (lambda v: v > 0, "must be > 0"),
        "batch_size": (lambda v: v >= 1 and float(v).is_integer(), "must be an integer >= 1"),
        "dropout": (lambda v: v is None or 0 <= v < 1, "must be in [0, 1)"),
        "beta": (lambda v: v >= 0, "must be >= 0"),
        "teacher_weight": (lambda v: v is None or 0 <= v <= 1, "must be in [0, 1]"),
        "layers": (lambda v: isinstance(v, list) and len(v) > 0
                   and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
                   and v == sorted(set(v)), "must be increasing non-negative layer indices"),
    }
    for name, value in values.items():
        if name not in checks:
            continue
        ok, message = checks[name]
        if value is not None and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}.{name}", f"must be finite, got {value}")
        if not ok(value):
            raise ConfigError(f"{prefix}.{name}", f"{message}, got {value}")


@dataclass
class SearchConfig:
    """How Ray Tune runs the search."""

    metric: str = "val_macro_f1"
    mode: str = "max"
    num_samples: int = 14
    max_concurrent: int = 2
    seed: int = 0
    grace_period: int = 1
    reduction_factor: int = 3
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    anchors: bool = True  # also run the CE-only baseline and the seed default (0.7, 3)
    objectives: list[str] | None = None  # multi-objective, e.g. [val_macro_f1, latency_ms]
    f1_tolerance: float = 0.005  # Pareto choice: fastest point within this of the best metric

    def __post_init__(self) -> None:
        _check(self.metric in METRICS, "search.metric", f"must be one of {METRICS}")
        _check(self.mode in ("max", "min"), "search.mode", "must be 'max' or 'min'")
        _check(self.num_samples >= 1, "search.num_samples", "must be >= 1")
        _check(self.max_concurrent >= 1, "search.max_concurrent", "must be >= 1")
        _check(self.grace_period >= 1, "search.grace_period", "must be >= 1")
        _check(self.reduction_factor >= 2, "search.reduction_factor", "must be >= 2")
        _check(self.cpus_per_trial > 0, "search.cpus_per_trial", "must be > 0")
        _check(self.gpus_per_trial >= 0, "search.gpus_per_trial", "must be >= 0")
        _check(self.max_failures >= 0, "search.max_failures", "must be >= 0")
        if self.objectives is not None:
            _check(len(self.objectives) >= 2, "search.objectives",
                   "give two or more objectives, or null for a single metric")
            for o in self.objectives:
                _check(o in OBJECTIVES, "search.objectives", f"{o!r} is not one of {OBJECTIVES}")
            _check(self.objectives[0] == self.metric, "search.objectives",
                   f"the first objective must be search.metric ({self.metric})")
        _check(self.f1_tolerance >= 0, "search.f1_tolerance", "must be >= 0")

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
        _check(self.name in SEARCHABLE, where,
               f"unknown parameter; searchable ones are {', '.join(SEARCHABLE)}")
        _check(self.type in DISTRIBUTIONS, f"{where}.type",
               f"must be one of {', '.join(DISTRIBUTIONS)}, got {self.type!r}")
        if self.type == "choice":
            _check(bool(self.values), f"{where}.values", "choice needs a non-empty list of values")
            if self.name not in ("layers", "batch_size"):  # PyYAML reads 1e-4 as a string
                kind = float | None if self.name == "dropout" else float
                coerced = [_type_ok(v, kind) for v in self.values]
                bad = [v for (ok, _), v in zip(coerced, self.values, strict=True) if not ok]
                _check(not bad, f"{where}.values", f"must be numbers, got {bad[0]!r}" if bad else "")
                self.values = [c for _, c in coerced]
            for v in self.values:
                try:
                    validate_hparams({self.name: v}, "space")
                except TypeError:
                    raise ConfigError(f"{where}.values", f"{v!r} is not a valid {self.name}") from None
            return
        _check(self.low is not None and self.high is not None, where,
               f"{self.type} needs numeric low and high")
        _check(self.low < self.high, where, f"low must be < high, got {self.low} >= {self.high}")
        if self.type == "loguniform":
            _check(self.low > 0, f"{where}.low", "loguniform needs low > 0")
        if self.type == "quniform":
            _check(self.q is not None and self.q > 0, f"{where}.q", "quniform needs q > 0")
        if self.type == "randint":
            _check(float(self.low).is_integer() and float(self.high).is_integer(), where,
                   "randint needs integer low and high")
        validate_hparams({self.name: self.low}, "space")
        validate_hparams({self.name: self.high}, "space")

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return value in self.values
        return value is not None and self.low <= value <= self.high


@dataclass
class ExperimentConfig:
    """The whole resolved experiment."""

    name: str = "experiment"
    results_dir: str = "results"
    cache_dir: str = ".cache/kdtune"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
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

    def __post_init__(self) -> None:
        _check(bool(self.name) and all(c.isalnum() or c in "-_." for c in self.name), "name",
               f"use letters, digits, '-', '_' or '.', got {self.name!r}")
        _check(bool(self.space), "space", "give at least one parameter to search")
        for p in self.space:
            if p.name in ("batch_size", "layers") and p.type != "choice":
                raise ConfigError(f"space.{p.name}", f"use type: choice for {p.name}")
        if "layers" in self.searched:
            _check(self.student.model is None, "space.layers",
                   "searching layers needs a student sliced from the teacher (student.model: null)")
        t = self.train
        if t.teacher_weights is not None:
            _check(len(t.teacher_weights) == self.num_teachers, "train.teacher_weights",
                   f"give {self.num_teachers} weights (main teacher first), got "
                   f"{len(t.teacher_weights)}")
        if t.teacher_weight is not None or "teacher_weight" in self.searched:
            _check(self.num_teachers == 2, "train.teacher_weight",
                   "teacher_weight is for exactly two teachers (teacher + one extra_teachers "
                   "entry); use teacher_weights for more")
        if self.search.anchors:
            anchors = self.anchor_points()
            for anchor in anchors:
                for p in self.space:
                    _check(p.contains(anchor[p.name]), f"space.{p.name}",
                           f"range must contain the anchor value {anchor[p.name]} (from "
                           f"train.{p.name}); widen it or set search.anchors: false")
            _check(self.search.num_samples > len(anchors), "search.num_samples",
                   f"must exceed the {len(anchors)} anchor trials")

    @property
    def fixed(self) -> dict[str, Any]:
        """Training values that are not searched."""
        searched = {p.name for p in self.space}
        return {k: v for k, v in dataclasses.asdict(self.train).items() if k not in searched}

    def anchor_points(self) -> list[dict[str, Any]]:
        """The CE-only baseline and the seed's default, expressed over the searched parameters.

        Both use the fixed training values for every other searched parameter. The baseline is
        alpha = 1 (pure cross-entropy; temperature then has no effect).
        """
        defaults = {"layers": self.student.layers,
                    "teacher_weight": 0.5 if self.train.teacher_weight is None
                    else self.train.teacher_weight}
        base = {p.name: defaults[p.name] if p.name in defaults else getattr(self.train, p.name)
                for p in self.space}
        baseline = dict(base)
        seed_default = dict(base)
        if "alpha" in base:
            baseline["alpha"] = 1.0
            seed_default["alpha"] = 0.7
        if "temperature" in base:
            seed_default["temperature"] = 3.0
        if "beta" in base:  # both references distil logits only: no hidden-state loss
            baseline["beta"] = seed_default["beta"] = 0.0
        return [baseline, seed_default] if baseline != seed_default else [baseline]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
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
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (item_t,) = typing.get_args(annotation) or (Any,)
        out = []
        for item in value:
            ok, coerced = _type_ok(item, item_t)
            if not ok:
                return False, value
            out.append(coerced)
        return True, out
    if annotation is Any:
        return True, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if annotation is float:
        if isinstance(value, bool):
            return False, value
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
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), prefix, f"must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            allowed = ", ".join(sorted(names))
            raise ConfigError(where, f"unknown key; allowed keys are {allowed}")
        ok, coerced = _type_ok(value, hints[key])
        _check(ok, where, f"must be {_describe(hints[key])}, got {value!r}")
        kwargs[key] = coerced
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ConfigError(f"{prefix}.{f.name}", "is required")
    return cls(**kwargs)


def parse_config(raw: Any) -> ExperimentConfig:
    """Validate a raw mapping (from YAML) into an :class:`ExperimentConfig`."""
    _check(isinstance(raw, dict), "(top level)", "the file must be a YAML mapping of sections")
    sections = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig,
                "train": TrainConfig, "search": SearchConfig}
    top = {"name", "results_dir", "cache_dir", "space", "extra_teachers", *sections}
    for key in raw:
        _check(key in top, str(key), f"unknown section; allowed are {', '.join(sorted(top))}")
    kwargs: dict[str, Any] = {}
    for key in ("name", "results_dir", "cache_dir"):
        if key in raw:
            _check(isinstance(raw[key], str) and raw[key] != "", key, "must be a non-empty string")
            kwargs[key] = raw[key]
    for key, cls in sections.items():
        kwargs[key] = build_section(cls, raw.get(key), key)
    space_raw = raw.get("space")
    _check(isinstance(space_raw, dict) and space_raw, "space",
           "must map parameter names to distributions, e.g. alpha: {type: uniform, low: 0, high: 1}")
    space = []
    for name, spec in space_raw.items():
        _check(isinstance(spec, dict), f"space.{name}",
               "must be a mapping like {type: uniform, low: 0, high: 1}")
        _check("name" not in spec, f"space.{name}.name", "remove it; the key names the parameter")
        space.append(build_section(ParamSpace, {**spec, "name": name}, f"space.{name}"))
    kwargs["space"] = space
    extra = raw.get("extra_teachers") or []
    _check(isinstance(extra, list), "extra_teachers", "must be a list of teacher sections")
    kwargs["extra_teachers"] = [build_section(TeacherConfig, t, f"extra_teachers.{i}")
                                for i, t in enumerate(extra)]
    return ExperimentConfig(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a search-space YAML file (safe_load only) and validate it.

    ``overrides`` maps dotted keys (``search.num_samples``) to values, applied before validation.
    """
    path = Path(path)
    _check(path.is_file(), "--space", f"file not found: {str(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(str(path), f"not valid YAML ({first}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text; save the file as UTF-8") from None
    for dotted, value in (overrides or {}).items():
        if not isinstance(raw, dict):
            break
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[leaf] = value
    return parse_config(raw)


def is_anchor(config: dict[str, Any], anchors: list[dict[str, Any]]) -> bool:
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        return a == b

    return any(all(k in config and same(config[k], v) for k, v in a.items()) for a in anchors)


def anchor_label(config: dict[str, Any], anchors: list[dict[str, Any]]) -> str:
    """'baseline' for the CE-only anchor (alpha = 1), 'seed default' for the other anchor.

    An anchor is a baseline only when its own alpha is 1: with alpha not searched there is no
    CE-only run, and the fixed-values anchor is labelled 'seed default'.
    """
    if not is_anchor(config, anchors):
        return ""
    return "baseline" if config.get("alpha") == 1.0 else "seed default"
