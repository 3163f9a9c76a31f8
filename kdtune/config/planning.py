"""The arms of a search and their first points: what the strategy plans from the config.

The KD arm searches the whole space; with ``search.baseline: tuned`` a CE-only arm (alpha 1,
beta 0) searches what is left without the KD-only parameters, with its own share of the trials.
Anchors (the CE-only point and the seed report's alpha 0.7 / T 3) run first. Anchor trials are
labelled in the record by :func:`anchor_label`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdtune.config.sections import BASELINE_MIN_TRIALS, ParamSpace
from kdtune.errors import check
from kdtune.params import CE_ALPHA, KD_ONLY, SEED_ALPHA, SEED_TEMPERATURE, is_ce_only
from kdtune.strategies import strategy


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




class ArmPlanning:
    """The planning half of :class:`~kdtune.config.experiment_config.ExperimentConfig`: its
    arms, anchors and the budget check (it reads ``space``, ``search`` and ``train``)."""

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
