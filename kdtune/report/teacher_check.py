"""Signs that the teacher is under-trained, from plain numbers (unit-testable).

A weak teacher caps what distillation can give, so the verdict names each sign with its
numbers and what to do:

* its validation macro-F1 was still rising at its last epoch: the last epoch beats every
  earlier one by more than :data:`RISE_POINTS`. A last epoch that is best by less is a plateau,
  not a trend: on a validation split of a few hundred rows one example moves macro-F1 by about
  a quarter of a point, and a plateau's epochs wobble by that much either way (a late rise that
  stays below an earlier epoch, the one kept, is no sign either);
* some class has F1 0 on validation or test (the teacher never gets it right);
* the distilled student beats it on validation macro-F1 by more than the seed spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kdtune.formatting import num, points
from kdtune.report.verdict import Noise

RISE_POINTS = 0.5  # a last-epoch gain over every earlier epoch above this (points): still learning


@dataclass(frozen=True)
class TeacherNumbers:
    epoch_scores: Sequence[float] = ()  # validation macro-F1 after each fine-tuning epoch
    zero_f1: dict[str, list[str]] = field(default_factory=dict)  # split -> classes with F1 0
    val: float | None = None  # the teacher's validation macro-F1
    student_val: float | None = None  # the distilled student's validation macro-F1
    noise: Noise | None = None
    epochs: int | None = None  # teacher.epochs
    learning_rates: Sequence[float] = ()  # teacher.learning_rate (one or several)


def _rising(scores: Sequence[float]) -> str | None:
    if len(scores) < 2:
        return None
    last, n = scores[-1], len(scores)
    best_before = max(range(n - 1), key=lambda i: scores[i])
    gain = last - scores[best_before]
    if 100 * gain <= RISE_POINTS:  # below an earlier epoch, or best by a plateau's wobble
        return None
    return (f"its validation macro-F1 was still rising at its last epoch ({last:.4f} at epoch "
            f"{n} of {n}, {points(gain)} points over its best earlier epoch, "
            f"{scores[best_before]:.4f} at epoch {best_before + 1})")


def teacher_signs(t: TeacherNumbers) -> list[str]:
    """Each sign of an under-trained teacher, with its numbers."""
    signs = []
    rising = _rising(list(t.epoch_scores))
    if rising:
        signs.append(rising)
    for split, classes in t.zero_f1.items():
        if classes:
            signs.append(f"class(es) {', '.join(classes)} get F1 0 on {split} (never predicted "
                         "correctly)")
    if t.val is not None and t.student_val is not None and t.noise is not None:
        gap = t.student_val - t.val
        if gap > t.noise.value:
            signs.append(f"the distilled student beats it on validation macro-F1 ({t.student_val:.4f} "
                         f"vs {t.val:.4f}, {points(gap)} points), more than the noise "
                         f"({100 * t.noise.value:.2f} points: {t.noise.source})")
    return signs


def _suggested_rates(rates: Sequence[float]) -> str:
    if len(rates) > 1:
        return f"other rates than the {len(rates)} tried ({', '.join(num(r) for r in rates)})"
    base = rates[0] if rates else 5e-5
    return "e.g. [" + ", ".join(num(base * f) for f in (0.5, 1.0, 2.0)) + "]"


def teacher_warning(t: TeacherNumbers) -> str | None:
    """A paragraph naming every sign and what to do, or None when there is none."""
    signs = teacher_signs(t)
    if not signs:
        return None
    listed = "; ".join(f"({i}) {s}" for i, s in enumerate(signs, start=1))
    now = f", now {t.epochs}" if t.epochs else ""
    return (f"**Teacher**: the teacher looks under-trained: {listed}. A weak teacher caps what "
            f"distillation can give: train it for more epochs (teacher.epochs{now}) and give "
            f"teacher.learning_rate as a list to try several rates ({_suggested_rates(t.learning_rates)}); "
            "the best on validation is kept.")
