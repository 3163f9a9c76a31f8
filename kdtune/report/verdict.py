"""The provisional verdict, written from plain numbers (no experiment, no files: unit-testable).

It compares the picked distilled student with the picked baseline on test and validation and
judges each gap against the noise of the search (the confirm runs' seed spread, else the
spread of the top trials' best scores): a gap no larger than the noise is "within the noise".
With a tuned CE-only arm the baseline is that arm's best trial, so a gain that came from
tuning alone (say the learning rate) is not credited to distillation; the untuned CE anchor is
then compared with the tuned baseline to show what tuning alone gained. With a self-training arm
its pick is compared with the distilled student the same way (gaps against the same noise), which
says whether the teacher's soft targets matter or only the extra text.
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
    self_training: Pick | None = None  # the self-training arm's pick (search.self_training)
    self_training_on: bool = False  # the search has a self-training arm


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
    if v.self_training_on and v.distilled is not None:
        paras.append(_versus_self_training(v))
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


def _split_gaps(v: VerdictInput, other: Pick, means: bool = False) -> list[tuple[str, float, float]]:
    """(split name, student score, ``other``'s score) for each split both have; with ``means``
    also the validation mean over the confirm stage's seeds when both were confirmed."""
    d = v.distilled
    out = []
    if d.test is not None and other.test is not None:
        n = f" ({v.n_test} examples)" if v.n_test else ""
        out.append((f"the held-out test split{n}", d.test, other.test))
    if d.val is not None and other.val is not None:
        out.append(("validation", d.val, other.val))
    if means and d.seeds > 1 and other.seeds > 1 and None not in (d.mean, other.mean):
        out.append(("validation, mean over the confirm stage's seeds", d.mean, other.mean))
    return out


def _gap_sentences(gaps: list[tuple[str, float, float]], other: str, metric: str) -> str:
    text = "; ".join(f"on {name} the distilled student scores {s:.4f} against {b:.4f} for "
                     f"{other}, a gap of {points(s - b)} points" for name, s, b in gaps)
    return text[0].upper() + text[1:] + f" ({metric})."


def _against_noise(gaps: list[tuple[str, float, float]], noise: Noise | None, other: str) -> str:
    """The noise and the judgement of the gaps against it ("" and a warning without noise)."""
    if noise is None:
        return (" There is no estimate of the noise (fewer than 2 scored trials and no "
                "confirm runs), so the gap cannot be judged.")
    return (f" The noise to compare with is {noise.source}: {100 * noise.value:.2f} points. "
            + _judge([s - b for _, s, b in gaps], noise.value, other))


def _gaps(v: VerdictInput) -> str:
    gaps = _split_gaps(v, v.baseline)
    if not gaps:
        return "The picks have no scores to compare yet."
    text = _gap_sentences(gaps, "the baseline", v.metric)
    if v.distilled.test is None:
        text += " Test-split numbers come when the search finishes."
    if v.teacher_test is not None and v.distilled.test is not None:
        text += (f" Against the teacher the student is {points(v.distilled.test - v.teacher_test)} "
                 "points on test.")
    return text + _against_noise(gaps, v.noise, "the CE-only baseline")


def _versus_self_training(v: VerdictInput) -> str:
    """KD against self-training (CE on the teacher's argmax of the transfer rows): whether the
    soft targets matter or only the extra text, judged against the same noise as KD vs CE."""
    s, head = v.self_training, "**KD vs self-training.**"
    if s is None:
        return (f"{head} No self-training trial has a usable score, so this search cannot say "
                "whether the teacher's soft targets matter or only the extra text.")
    text = (f"{head} The self-training student (alpha = 1, CE on the teacher's argmax of the "
            f"transfer rows, no temperature) is trial `{s.trial_id}`, picked by "
            f"{_how(s, v.metric)}.")
    gaps = _split_gaps(v, s, means=True)
    if not gaps:
        return text + " The two picks have no scores to compare yet."
    text += " " + _gap_sentences(gaps, "self-training", v.metric)
    text += _against_noise(gaps, v.noise, "the self-training student")
    return text + (" A distilled student ahead of self-training says the soft targets add to "
                   "what the extra text gives; no difference says the extra text does the work.")


def _judge(diffs: list[float], noise: float, other: str = "the CE-only baseline") -> str:
    """The gaps (distilled minus ``other``) against the noise, in one sentence."""
    beyond = [abs(d) > noise for d in diffs]
    if not any(beyond):
        return ("Every gap is within the noise (|gap| <= spread): **no difference beyond the "
                f"noise** between the distilled student and {other}.")
    if all(beyond) and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        who = "the distilled student" if diffs[0] > 0 else other
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
