"""The provisional verdict, written from plain numbers (no experiment, no files: unit-testable).

It compares the picked distilled student with the picked baseline on test and validation and
judges each gap against the noise of the search (the confirm runs' seed spread, else the
spread of the top trials' best scores): a gap no larger than the noise is "within the noise".
With a tuned CE-only arm the baseline is that arm's best trial, so a gain that came from
tuning alone (say the learning rate) is not credited to distillation; the untuned CE anchor is
then compared with the tuned baseline to show what tuning alone gained.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdtune.formatting import num, points


@dataclass(frozen=True)
class Pick:
    """A picked model: its trial, its scores (the search metric) and how it was picked."""

    trial_id: str
    val: float | None
    test: float | None = None  # None before the search finished (no test evaluation yet)
    seeds: int = 1  # 1: a single search run; more: the confirm stage's mean over seeds
    mean: float | None = None  # over those seeds, on validation
    std: float | None = None
    learning_rate: float | None = None


@dataclass(frozen=True)
class Anchor:
    """The untuned CE-only anchor: alpha = 1 at train.learning_rate."""

    trial_id: str
    val: float
    learning_rate: float | None = None
    progress: float | None = None  # epochs it trained (ASHA may have stopped it early)
    epochs: int | None = None  # the full length


@dataclass(frozen=True)
class Noise:
    """What a gap is compared with: a standard deviation and where it comes from."""

    value: float
    source: str


@dataclass(frozen=True)
class VerdictInput:
    metric: str  # "macro-F1" or "accuracy"
    baseline_mode: str  # tuned / fixed / none
    distilled: Pick | None
    baseline: Pick | None
    noise: Noise | None
    anchor: Anchor | None = None
    tuned: str = "learning rate"  # what the tuned CE arm searched, in words
    teacher_test: float | None = None
    n_test: int | None = None
    command: str = "python -m kdtune.retrain <experiment>"


def provisional_verdict(v: VerdictInput) -> list[str]:
    """Paragraphs: the label, the picks, the gaps against the noise, what tuning alone gained."""
    paras = [f"**Provisional verdict.** One search, its picks scored on the validation split they "
             f"were chosen on: the final verdict comes from `{v.command}` on the test split over "
             "several seeds."]
    if v.distilled is None:
        paras.append("No distilled (KD) trial has a usable score yet, so there is nothing to judge.")
    elif v.baseline is None:
        paras.append(_no_baseline(v))
    else:
        paras.append(_picks(v))
        paras.append(_gaps(v))
    tuning = _tuning_gain(v)
    if tuning:
        paras.append(tuning)
    return paras


def _how(p: Pick, metric: str) -> str:
    if p.seeds > 1 and p.mean is not None:
        spread = f" ± {p.std:.4f}" if p.std is not None else ""
        return (f"the mean over {p.seeds} seeds from the confirm stage (val {metric} "
                f"{p.mean:.4f}{spread})")
    return "a single seed (its one search run)"


def _picks(v: VerdictInput) -> str:
    d, b = v.distilled, v.baseline
    what = {"tuned": f"the best trial of the tuned CE-only arm (alpha = 1, its {v.tuned} searched "
                     "like the student's)",
            "fixed": "the CE-only anchor (alpha = 1 at train.learning_rate, not tuned)"}
    text = (f"The distilled student is trial `{d.trial_id}`, picked by {_how(d, v.metric)}; the "
            f"baseline is trial `{b.trial_id}`, {what.get(v.baseline_mode, 'the CE-only baseline')}, "
            f"picked by {_how(b, v.metric)}.")
    if d.learning_rate is not None and b.learning_rate is not None:
        same = abs(d.learning_rate - b.learning_rate) <= 1e-12 + 1e-6 * abs(b.learning_rate)
        text += (f" Both train at learning rate {num(d.learning_rate)}." if same else
                 f" Learning rates: student {num(d.learning_rate)}, baseline {num(b.learning_rate)}.")
    return text


def _split_gaps(v: VerdictInput) -> list[tuple[str, float, float]]:
    """(split name, student score, baseline score) for each split both have."""
    d, b = v.distilled, v.baseline
    out = []
    if d.test is not None and b.test is not None:
        n = f" ({v.n_test} examples)" if v.n_test else ""
        out.append((f"the held-out test split{n}", d.test, b.test))
    if d.val is not None and b.val is not None:
        out.append(("validation", d.val, b.val))
    return out


def _gaps(v: VerdictInput) -> str:
    gaps = _split_gaps(v)
    if not gaps:
        return "The picks have no scores to compare yet."
    text = "; ".join(f"on {name} the distilled student scores {s:.4f} against {b:.4f} for the "
                     f"baseline, a gap of {points(s - b)} points" for name, s, b in gaps)
    text = text[0].upper() + text[1:] + f" ({v.metric})."
    if v.distilled.test is None:
        text += " Test-split numbers come when the search finishes."
    if v.teacher_test is not None and v.distilled.test is not None:
        text += (f" Against the teacher the student is {points(v.distilled.test - v.teacher_test)} "
                 "points on test.")
    if v.noise is None:
        return text + (" There is no estimate of the noise (fewer than 2 scored trials and no "
                       "confirm runs), so the gap cannot be judged.")
    text += f" The noise to compare with is {v.noise.source}: {100 * v.noise.value:.2f} points."
    return text + " " + _judge([s - b for _, s, b in gaps], v.noise.value)


def _judge(diffs: list[float], noise: float) -> str:
    beyond = [abs(d) > noise for d in diffs]
    if not any(beyond):
        return ("Every gap is within the noise (|gap| <= spread): **no difference beyond the "
                "noise** between the distilled student and the CE-only baseline.")
    if all(beyond) and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        who = "the distilled student" if diffs[0] > 0 else "the CE-only baseline"
        return (f"Every gap exceeds the noise in the same direction: **{who} is ahead** beyond the "
                "noise of this search (re-training over seeds confirms or refutes it).")
    return ("Only some gaps exceed the noise, or they disagree in sign: weak evidence, **no "
            "reliable difference** yet.")


def _no_baseline(v: VerdictInput) -> str:
    d = v.distilled
    scores = f"val {v.metric} {d.val:.4f}" if d.val is not None else "no val score yet"
    if d.test is not None:
        scores += f", test {v.metric} {d.test:.4f}"
    if v.baseline_mode == "none":
        why = ("There is no CE-only baseline (search.baseline: none), so this search cannot say "
               "whether distillation beats plain fine-tuning")
    else:
        why = ("No CE-only baseline trial has a usable score, so the distillation-vs-baseline "
               "comparison cannot be made from this search")
    return f"{why}. The distilled student is trial `{d.trial_id}` ({scores})."


def _tuning_gain(v: VerdictInput) -> str:
    """The untuned CE anchor against the tuned CE baseline: what tuning alone gained."""
    a, b, d = v.anchor, v.baseline, v.distilled
    if (v.baseline_mode != "tuned" or a is None or b is None or b.val is None
            or a.trial_id == b.trial_id):
        return ""
    lr = f" at train.learning_rate {num(a.learning_rate)}" if a.learning_rate is not None else ""
    text = (f"The untuned CE anchor (trial `{a.trial_id}`, alpha = 1{lr}) reached val {v.metric} "
            f"{a.val:.4f}; tuning the CE-only baseline's {v.tuned} gained {points(b.val - a.val)} "
            f"points (to {b.val:.4f}).")
    if a.progress is not None and a.epochs and a.progress < a.epochs - 1e-9:
        text += (f" The anchor was stopped early by ASHA after {a.progress:.2f} of {a.epochs} "
                 "epochs, so part of that gain is training length.")
    if d is not None and d.val is not None and d.val > a.val:
        text += (f" Measured against the untuned anchor instead, the distilled student would look "
                 f"{points(d.val - a.val)} points better, but tuning the baseline alone gained "
                 f"{points(b.val - a.val)}: that is why the verdict compares it with the tuned "
                 "baseline, not with the anchor.")
    return text
