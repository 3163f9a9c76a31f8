"""The arms of a search and their first points: what the strategy plans from the config.

The KD arm searches the whole space; with ``search.baseline: tuned`` a CE-only arm (alpha 1,
beta 0) searches what is left without the KD-only parameters, with its own share of the trials;
with ``search.self_training`` a self-training arm (alpha 1, beta 0, CE on the teacher's argmax of
the transfer rows) searches the space without alpha, T and beta, with a share of its own.
Anchors (the CE-only point and the seed report's alpha 0.7 / T 3) run first. Anchor trials are
labelled in the record by :func:`anchor_label`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdtune.config.sections import BASELINE_MIN_TRIALS, ParamSpace
from kdtune.errors import check
from kdtune.params import (
    CE_ALPHA,
    HARD_TARGETS,
    KD_ONLY,
    SEED_ALPHA,
    SEED_TEMPERATURE,
    SELF_TRAINING_UNUSED,
    SOFT_TARGETS,
    is_ce_only,
)
from kdtune.strategies import strategy


@dataclass(frozen=True)
class Arm:
    """One arm of a search: its own space, share of trials and first points (anchors).

    ``kd`` searches the whole space. ``ce``, the tuned CE-only baseline, pins alpha = 1 and
    beta = 0 and searches what is left once the KD-only parameters are removed, with its own
    TPE study, so the baseline gets tuned like the student. ``self`` (self-training) pins
    alpha = 1, beta = 0 and hard transfer targets, and searches the rest but alpha, T and beta
    (the transfer rows' ratio and weight included), with its own study too.
    """

    name: str
    space: tuple[ParamSpace, ...]
    num_samples: int
    points: tuple[dict[str, Any], ...] = ()
    pinned: tuple[tuple[str, Any], ...] = ()  # values every trial of the arm trains with


ARM_KD, ARM_CE, ARM_SELF = "kd", "ce", "self"


def study_name(experiment: str, arm: str) -> str:
    """An arm's Optuna study in ``optuna.db``: the experiment's name for the KD arm,
    ``<name>-<arm>`` for the others (``<name>-ce``, ``<name>-self``)."""
    return experiment if arm == ARM_KD else f"{experiment}-{arm}"


#: Labels of the anchor trials in the record (trials.csv's ``anchor`` column).
ANCHOR_CE, ANCHOR_SEED = "CE anchor", "seed default"



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
    return ANCHOR_CE if is_ce_only(hparams) else ANCHOR_SEED




def _share(share: float, num_samples: int) -> int:
    """An arm's trials: its share of num_samples, at least BASELINE_MIN_TRIALS."""
    return max(BASELINE_MIN_TRIALS, round(share * num_samples))


class ArmPlanning:
    """The planning half of :class:`~kdtune.config.experiment_config.ExperimentConfig`: its
    arms, anchors and the budget check (it reads ``space``, ``search`` and ``train``)."""

    def _check_budget(self) -> None:
        arms = self._default_arms()
        kd = next(a for a in arms if a.name == ARM_KD)
        others = [a for a in arms if a.name != ARM_KD]
        n = self.search.num_samples
        if others:
            need = sum(a.num_samples for a in others) + len(kd.points) + 1
            held = " and ".join(f"the {a.name} arm ({a.num_samples} trials)" for a in others)
            check(n >= need, "search.num_samples",
                  f"{n} trials cannot hold {held} and the KD arm ({len(kd.points)} anchor(s) + "
                  f"at least 1 searched trial); use at least {need}, or "
                  + ("search.self_training: false" if len(others) > 1 else "search.baseline: fixed"))
        else:
            check(n > len(kd.points), "search.num_samples",
                  f"must exceed the {len(kd.points)} anchor trials")

    @property
    def ce_space(self) -> list[ParamSpace]:
        """What the CE-only arm searches: the space without the KD-only parameters."""
        return [p for p in self.space if p.name not in KD_ONLY]

    @property
    def self_training_space(self) -> list[ParamSpace]:
        """What the self-training arm searches: the space without alpha, T and beta (the
        transfer rows' ratio and weight, and a teacher weight, stay: they change its targets)."""
        return [p for p in self.space if p.name not in SELF_TRAINING_UNUSED]

    def _check_self_training(self) -> None:
        """search.self_training needs a transfer set, the tuned CE arm and transfer weight."""
        if self.train.unlabeled_targets == HARD_TARGETS:
            check(self.data.unlabeled is not None, "train.unlabeled_targets",
                  "hard targets are for transfer rows: set data.unlabeled, or use soft")
        if not self.search.self_training:
            return
        check(self.data.unlabeled is not None, "search.self_training",
              "self-training learns the teacher's labels of a transfer set: set data.unlabeled "
              "(remainder, a file, or hub:<name>) or self_training: false")
        check(self.baseline_mode == "tuned", "search.self_training",
              "the self-training arm runs beside the tuned CE-only arm: set search.baseline: "
              "tuned with alpha and a non-KD parameter (e.g. learning_rate) in space")
        weight = next((p for p in self.space if p.name == "unlabeled_weight"), None)
        check(not weight.contains(0.0) if weight else self.train.unlabeled_weight > 0,
              "space.unlabeled_weight" if weight else "train.unlabeled_weight",
              "self-training needs transfer rows with a weight > 0: "
              + ("keep 0 out of its range" if weight else "set it above 0"))

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
        ce = Arm(ARM_CE, tuple(self.ce_space), _share(s.baseline_share, s.num_samples),
                 (self.ce_anchor(self.ce_space),) if anchors else (), self.ce_pinned())
        others = [ce, *([self._self_training_arm()] if s.self_training else [])]
        kd = Arm(ARM_KD, tuple(self.space), s.num_samples - sum(a.num_samples for a in others),
                 (self.seed_anchor(),) if anchors else ())
        return [kd, *others]

    def ce_pinned(self) -> tuple[tuple[str, Any], ...]:
        """alpha 1, beta 0; with a transfer set also soft transfer targets, so that no CE trial
        is self-training whatever train.unlabeled_targets says (it never sees transfer rows)."""
        transfer = (("unlabeled_targets", SOFT_TARGETS),) if self.data.unlabeled else ()
        return (("alpha", CE_ALPHA), ("beta", 0.0), *transfer)

    def _self_training_arm(self) -> Arm:
        """Self-training: no anchor (its TPE study starts at random like the others' rest)."""
        s = self.search
        pinned = (("alpha", CE_ALPHA), ("beta", 0.0), ("unlabeled_targets", HARD_TARGETS))
        return Arm(ARM_SELF, tuple(self.self_training_space),
                   _share(s.self_training_share, s.num_samples), (), pinned)

    def anchor_points(self) -> list[dict[str, Any]]:
        """Every anchor of every arm (as the arms' trials see them, pinned values included)."""
        return [{**dict(a.pinned), **p} for a in self._default_arms() for p in a.points]

    def protected_anchors(self) -> list[dict[str, Any]]:
        """Anchors ASHA never stops: with a fixed baseline the report compares against them.

        A tuned CE arm is compared through its best trial (and the confirm stage re-runs the
        top trials at full length), so no anchor needs to run to the end there.
        """
        return self.anchor_points() if self.baseline_mode == "fixed" else []
