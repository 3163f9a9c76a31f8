"""The whole experiment's config: its sections, the checks that span them, its resolved form."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from kdtune.config.planning import ArmPlanning
from kdtune.config.sections import (
    RUNG_GRACE,
    DataConfig,
    ParamSpace,
    SearchConfig,
    StudentConfig,
    TeacherConfig,
)
from kdtune.errors import ConfigError, check
from kdtune.params import TrainParams
from kdtune.strategies import strategy


@dataclass
class ExperimentConfig(ArmPlanning):
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
        self._check_self_training()
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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["search"]["grace_period"] = self.grace_period  # the resolved config: the value used
        d["space"] = {p["name"]: {k: v for k, v in p.items() if k != "name" and v is not None}
                      for p in d["space"]}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
