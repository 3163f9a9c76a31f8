"""The training fields of one KD run: their one definition, defaults and range checks.

:class:`TrainParams` is the ``train:`` section of a search space, the fixed values every trial
starts from, and what :class:`kdtune.trainer.Trainer` reads. A trial's *hparams* is one flat
dict: the fixed values with the sampled ones merged over them.
Torch-free, so that bad input is refused before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from kdtune.errors import ConfigError, check
from kdtune.losses import FEATURE_LOSSES, LOGIT_LOSSES

#: The seed report's recipe, kdtune's "seed default" reference point (alpha 0.7, T 3).
SEED_ALPHA = 0.7
SEED_TEMPERATURE = 3.0
#: alpha = 1 is plain cross-entropy fine-tuning: the CE-only baseline.
CE_ALPHA = 1.0
#: Parameters that only matter when a teacher signal is used (alpha < 1 or beta > 0); the
#: CE-only arm of a search leaves them out, and duplicate detection ignores them at alpha = 1.
KD_ONLY = ("alpha", "temperature", "beta", "teacher_weight", "unlabeled_weight", "unlabeled_ratio")
#: ``unlabeled_targets``: the KD term on transfer rows, or (self-training) CE on the teacher's
#: argmax of each.
SOFT_TARGETS, HARD_TARGETS = "soft", "hard"
#: What self-training does not search: alpha and beta are pinned (1, 0: no teacher signal on the
#: labelled rows) and the temperature does not change an argmax.
SELF_TRAINING_UNUSED = ("alpha", "temperature", "beta")
#: Training fields that change how a run executes, not the recipe it follows: a retrain takes
#: them from the (possibly ``--set``) config, not from the trial it re-trains.
EXECUTION = ("precision", "eval_batch_size", "nan_check_every")


def _layers_ok(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
            and v == sorted(set(v)))


#: name -> (predicate, what a valid value is); shared by fixed values and sampled ones.
_RANGES = {
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
    "layers": (_layers_ok, "must be increasing non-negative layer indices"),
    "eval_every": (lambda v: 0 < v <= 1, "must be a fraction of an epoch in (0, 1]"),
    "unlabeled_weight": (lambda v: v >= 0, "must be >= 0"),
    "unlabeled_ratio": (lambda v: 0 < v <= 64, "must be in (0, 64]"),
}


def validate_hparams(values: dict[str, Any], prefix: str) -> None:
    """Range checks shared by fixed training values and sampled trial hparams."""
    for name, value in values.items():
        if name not in _RANGES:
            continue
        ok, message = _RANGES[name]
        if value is not None and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}.{name}", f"must be finite, got {value}")
        if not ok(value):
            raise ConfigError(f"{prefix}.{name}", f"{message}, got {value}")


@dataclass
class TrainParams:
    """Values of one KD training run; a search-space entry of the same name overrides one."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 1e-4
    alpha: float = SEED_ALPHA
    temperature: float = SEED_TEMPERATURE
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clip_norm: float = 1.0
    dropout: float | None = None
    seed: int = 0
    group_by_length: bool = True
    beta: float = 0.0  # weight of the hidden-state (feature) loss; 0 = logits-only KD
    logit_loss: str = "kl"  # kdtune.losses.LOGIT_LOSSES: kl (Hinton) or mse (logit matching)
    feature_loss: str = "mse"  # kdtune.losses.FEATURE_LOSSES: mse or cosine
    teacher_combine: str = "weighted"  # several teachers: weighted logits, or by confidence
    teacher_weights: list[float] | None = None  # one per teacher (main first); null = equal
    teacher_weight: float | None = None  # two teachers: the main one's weight (searchable)
    feature_cache_max_mb: float = 4096.0  # larger hidden-state caches are computed online
    eval_every: float = 0.5  # validate (an ASHA rung) every this fraction of an epoch
    precision: str = "auto"  # auto: bf16 autocast where the CPU / GPU has bf16, else fp32
    nan_check_every: int = 16  # steps between checks for a NaN / inf loss (one host sync)
    # With a transfer set (data.unlabeled): each labelled batch of batch_size rows is joined by
    # round(unlabeled_ratio * batch_size) transfer rows, whose KD term is weighted by this.
    unlabeled_weight: float = 1.0
    unlabeled_ratio: float = 1.0
    unlabeled_targets: str = SOFT_TARGETS  # soft: the KD term; hard: CE on the teacher's argmax

    def __post_init__(self) -> None:
        self.validate("train")

    def validate(self, prefix: str) -> None:
        validate_hparams(dataclasses.asdict(self), prefix)
        check(1 <= self.epochs <= 1000, f"{prefix}.epochs", f"must be in [1, 1000], got {self.epochs}")
        check(self.eval_batch_size >= 1, f"{prefix}.eval_batch_size", "must be >= 1")
        check(self.nan_check_every >= 1, f"{prefix}.nan_check_every", "must be >= 1")
        check(self.feature_cache_max_mb >= 0, f"{prefix}.feature_cache_max_mb", "must be >= 0")
        for name, registry in (("logit_loss", LOGIT_LOSSES), ("feature_loss", FEATURE_LOSSES)):
            value = getattr(self, name)
            check(value in registry, f"{prefix}.{name}",
                  f"must be one of {', '.join(map(repr, registry))}, got {value!r}")
        check(self.precision in ("auto", "bf16", "fp32"), f"{prefix}.precision",
              f"must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        check(self.unlabeled_targets in (SOFT_TARGETS, HARD_TARGETS), f"{prefix}.unlabeled_targets",
              f"must be 'soft' (distil) or 'hard' (self-training), got {self.unlabeled_targets!r}")
        check(self.teacher_combine in ("weighted", "confidence"), f"{prefix}.teacher_combine",
              f"must be 'weighted' or 'confidence', got {self.teacher_combine!r}")
        if self.teacher_weights is not None:
            check(all(w >= 0 for w in self.teacher_weights), f"{prefix}.teacher_weights",
                  "weights must be >= 0")
            check(abs(sum(self.teacher_weights) - 1.0) < 1e-6, f"{prefix}.teacher_weights",
                  f"weights must sum to 1, got {sum(self.teacher_weights):g}")

    def as_hparams(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> TrainParams:
        """The training fields of a trial's hparams (other keys, e.g. ``layers``, are ignored)."""
        return cls(**{k: v for k, v in hparams.items() if k in cls.__dataclass_fields__})



#: Trial values that are integers whatever the sampler or a CSV round trip made of them.
INTEGERS = ("batch_size", "epochs", "seed")


@dataclass(frozen=True)
class Trial:
    """One training's hyperparameters: the fixed base with the trial's own values merged over,
    types coerced once. The path is YAML -> the space -> the sampler's dict -> ``Trial.of`` ->
    the trainer (:func:`kdtune.recipe.build_trainer`), and the record reads a trial back the
    same way (``trials.csv`` / ``picks.json`` -> ``Trial.of``)."""

    values: dict[str, Any]

    @classmethod
    def of(cls, base: dict[str, Any], own: dict[str, Any] | None = None) -> Trial:
        values = {**base, **(own or {})}
        for name in INTEGERS:
            if values.get(name) is not None:
                values[name] = int(values[name])
        if values.get("layers") is not None:
            values["layers"] = [int(i) for i in values["layers"]]
        return cls(values)

    @property
    def ce_only(self) -> bool:
        return is_ce_only(self.values)

    @property
    def self_training(self) -> bool:
        return is_self_training(self.values)

    @property
    def no_effect(self) -> tuple[str, ...]:
        """Values this training ignores, left out wherever it is shown: CE-only, the KD-only
        ones and the transfer targets; self-training, the temperature and beta (alpha is kept:
        its 1 says what the training was)."""
        if self.ce_only:
            return tuple(k for k in (*KD_ONLY, "unlabeled_targets") if k != "alpha")
        if self.self_training:
            return tuple(k for k in SELF_TRAINING_UNUSED if k != "alpha")
        return ()

    @property
    def distils(self) -> bool:
        """Trains on the teacher's soft targets (or hidden states): neither CE-only nor
        self-training. The KD arm's picks are these."""
        return not (self.ce_only or self.self_training)

    def train(self) -> TrainParams:
        """The training fields (other keys, e.g. ``layers``, are the model's)."""
        return TrainParams.from_hparams(self.values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _no_labelled_kd(hparams: dict[str, Any]) -> bool:
    """alpha = 1 and no feature loss (beta 0 or absent): plain CE on the labelled rows. A trial
    missing ``alpha`` takes the seed default (0.7): KD."""
    return (float(hparams.get("alpha", SEED_ALPHA)) >= CE_ALPHA
            and float(hparams.get("beta") or 0.0) == 0.0)


def is_self_training(hparams: dict[str, Any]) -> bool:
    """The one rule for "self-training": plain CE on the labelled rows and CE on the teacher's
    hard labels of the transfer rows (``unlabeled_targets: hard`` with a weight > 0). The config
    refuses hard targets without a transfer set, so such a trial always has transfer rows."""
    return (_no_labelled_kd(hparams) and hparams.get("unlabeled_targets") == HARD_TARGETS
            and float(hparams.get("unlabeled_weight", TrainParams.unlabeled_weight)) > 0)


def is_ce_only(hparams: dict[str, Any]) -> bool:
    """The one rule for "this training uses no teacher signal": plain CE on the labelled rows
    (alpha = 1, beta 0) and no self-training on transfer rows (:func:`is_self_training`)."""
    return _no_labelled_kd(hparams) and not is_self_training(hparams)


def effective(hparams: dict[str, Any]) -> dict[str, Any]:
    """The hparams that change training: at alpha = 1 with beta = 0 no teacher signal is used,
    so the KD-only values (temperature, teacher weights) are dropped. Used to spot duplicates."""
    out = dict(hparams)
    if is_ce_only(out):
        for name in KD_ONLY:
            out.pop(name, None)
        out["alpha"] = CE_ALPHA
    return out
