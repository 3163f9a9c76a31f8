"""The stages every entry point shares: data -> tokens -> cached teachers -> student init.

``prepare(cfg)`` is what ``kdtune.search``, ``kdtune.retrain`` and the benchmark call, so all of
them see the same deterministic split, the same tokens and the same cached teacher logits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig

from kdtune.batches import Encoded
from kdtune.config import ExperimentConfig
from kdtune.data import Splits, load_splits
from kdtune.devices import best_device, precision
from kdtune.errors import ConfigError
from kdtune.models import ModelBlob, load_classifier, load_tokenizer, slice_layers
from kdtune.recipe import TrialData, feature_budget_mb, feature_pairs
from kdtune.record import record as R
from kdtune.teacher import (
    Builder,
    TeacherArtifacts,
    hidden_states,
    prepare_teacher,
    transfer_logits,
)
from kdtune.teacher_cache import tokenizer_fingerprint

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    splits: Splits
    teacher_tokenizer: Any
    student_tokenizer: Any
    teacher_encoded: dict[str, Encoded]  # split -> tokens for the teacher
    encoded: dict[str, Encoded]  # split -> tokens for the student
    teacher: TeacherArtifacts  # the main teacher (reports compare against it)
    student_init: ModelBlob
    device: torch.device  # where the teacher stage ran (a cluster GPU node's, possibly)
    teachers: list[TeacherArtifacts] = field(default_factory=list)  # main first, then extras
    slice_in_trial: bool = False
    teacher_layers: int = 0
    feature_targets: dict[int, np.ndarray] = field(default_factory=dict)
    online_teacher: ModelBlob | None = None
    transfer: Encoded | None = None  # the transfer set in the student's tokens
    transfer_logits: list[np.ndarray] = field(default_factory=list)  # per teacher, main first

    @property
    def label_names(self) -> list[str]:
        return self.splits.label_names

    def trial_data(self, cfg: ExperimentConfig) -> TrialData:
        """What every trial (and every re-training) of ``cfg`` reads."""
        return TrialData(
            train=self.encoded["train"], val=self.encoded["val"],
            teacher_logits=[np.ascontiguousarray(t.logits["train"]) for t in self.teachers],
            student_init=self.student_init, label_names=self.label_names,
            base=cfg.trial_base(), slice_in_trial=self.slice_in_trial,
            teacher_layers=self.teacher_layers, feature_targets=self.feature_targets,
            student_layers=list(cfg.student.layers) if cfg.student.model is None else None,
            online_teacher=self.online_teacher,
            measure_size=any(o in ("latency_ms", "params") for o in cfg.search.objectives or []),
            feature_budget_mb=feature_budget_mb(cfg.search.gpus_per_trial),
            transfer=self.transfer, transfer_logits=list(self.transfer_logits))

    def info(self) -> dict[str, Any]:
        """Facts about the run that results files record."""
        t = self.teacher.metrics
        return {"source": self.splits.source, "label_names": self.label_names,
                "rows": {k: len(v) for k, v in self.encoded.items()},
                "teacher_key": self.teacher.key, "teacher_cache_hit": self.teacher.cache_hit,
                "teacher_dir": f"{R.TEACHERS}/{self.teacher.key}",  # the experiment's own copy
                "teacher_learning_rate": t.get("learning_rate"),
                "teacher_best_epoch": t.get("best_epoch"),
                "teacher_learning_rate_trials": t.get("learning_rate_trials"),
                "teacher_epochs": [{"epoch": h["epoch"], "val_macro_f1": h["val_macro_f1"]}
                                   for h in t.get("history") or [] if h.get("full_val", True)],
                "student": self.student_init.description,
                "driver_device": self.device.type,
                "driver_precision": self.teacher.metrics.get("precision") or precision(self.device),
                "teacher_device": t.get("device"), "teacher_precision": t.get("precision"),
                "extra_teachers": [{"key": x.key, "dir": f"{R.TEACHERS}/{x.key}",
                                    "val_accuracy": x.metrics["val"]["accuracy"],
                                    "test_accuracy": x.metrics["test"]["accuracy"]}
                                   for x in self.teachers[1:]],
                "feature_cache_mb": sum(a.nbytes for a in self.feature_targets.values()) / 1e6,
                "feature_states": ("online" if self.online_teacher else
                                   "cached" if self.feature_targets else "none"),
                "data_fingerprint": self.splits.fingerprint(),
                "transfer": self.transfer_info()}

    def transfer_info(self) -> dict[str, Any] | None:
        """The transfer set's source, size and drop counts (None without one)."""
        t = self.splits.transfer
        return None if t is None else {**t.info(), "fingerprint": t.fingerprint()}


def build_student_init(cfg: ExperimentConfig, label_names: list[str],
                       teacher: TeacherArtifacts) -> ModelBlob:
    """The student's initial weights: a slice of teacher layers, or a model of its own."""
    s = cfg.student
    if s.model is not None:
        torch.manual_seed(cfg.train.seed)  # its new classifier head is seeded
        model = load_classifier(s.model, label_names, field_name="student.model")
        return ModelBlob.from_model(model, f"`{s.model}`")
    source = (str(teacher.model_dir) if s.init == "finetuned"
              else cfg.teacher.finetuned or cfg.teacher.model)
    full = load_classifier(source, label_names, field_name="student.init")
    if "layers" in cfg.searched:  # each trial slices its own layers from the full model
        n = block_count(full.config)
        for choice in next(p for p in cfg.space if p.name == "layers").values:
            if max(choice) >= n:
                raise ConfigError("space.layers", f"indices must be < {n} (the teacher has {n} "
                                  f"layers), got {choice}")
        return ModelBlob.from_model(full, f"a searched slice of `{source}` ({s.init})")
    torch.manual_seed(cfg.train.seed)  # the re-initialised classifier head is seeded
    student = slice_layers(full, s.layers)
    return ModelBlob.from_model(student, f"layers {s.layers} of `{source}` ({s.init})")


def block_count(config: Any) -> int:
    return int(getattr(config, "num_hidden_layers", None) or config.n_layers)


def _feature_blocks(cfg: ExperimentConfig, n_student: int, n_teacher: int) -> list[int]:
    """Every teacher block whose hidden states some trial's feature loss can ask for."""
    if cfg.student.model is not None:
        return sorted({t for _, t in feature_pairs(None, n_student, n_teacher)})
    if "layers" in cfg.searched:
        choices = next(p for p in cfg.space if p.name == "layers").values
        return sorted({i for choice in choices for i in choice})
    return list(cfg.student.layers)


def _teachers(cfg: ExperimentConfig, splits: Splits, t_tok, t_enc: dict[str, Encoded],
              device: torch.device, builder: Builder | None, record: Any = None
              ) -> list[TeacherArtifacts]:
    """Each teacher fine-tuned once per teacher + data, cached with its logits. Logits are per
    example, so extra teachers may use tokenizers of their own."""
    fingerprint = splits.fingerprint()
    teachers = [prepare_teacher(cfg, t_enc, splits.label_names, t_tok, fingerprint,
                                device=device, builder=builder, record=record)]
    for i, extra in enumerate(cfg.extra_teachers):
        tok = load_tokenizer(extra.finetuned or extra.model, f"extra_teachers.{i}.model")
        same = tokenizer_fingerprint(tok) == tokenizer_fingerprint(t_tok)
        enc = t_enc if same else splits.encode(tok, cfg.data.max_length)
        teachers.append(prepare_teacher(cfg, enc, splits.label_names, tok, fingerprint,
                                        teacher=extra, device=device, builder=builder,
                                        record=record))
    return teachers


def _features(cfg: ExperimentConfig, prep: Prepared) -> None:
    """Feature KD: the main teacher's hidden states, cached ragged beside its logits, or the
    teacher itself shipped to trials (through the object store) when they are too large."""
    if tokenizer_fingerprint(prep.student_tokenizer) != tokenizer_fingerprint(prep.teacher_tokenizer):
        raise ConfigError("train.beta", "feature KD aligns tokens, so the student needs the "
                          "teacher's tokenizer; use a sliced student or beta: 0")
    teacher_cfg = AutoConfig.from_pretrained(prep.teacher.model_dir)
    n_student = block_count(AutoConfig.for_model(**prep.student_init.config))
    blocks = _feature_blocks(cfg, n_student, prep.teacher_layers)
    train = prep.teacher_encoded["train"]
    size_mb = train.tokens * teacher_cfg.hidden_size * 2 * len(blocks) / 1e6
    if size_mb <= cfg.train.feature_cache_max_mb:
        prep.feature_targets = hidden_states(prep.teacher, train, blocks,
                                             cfg.train.eval_batch_size, best_device(),
                                             cfg.train.precision)
        return
    from transformers import AutoModelForSequenceClassification

    log.warning("teacher hidden states would take %.0f MB (> train.feature_cache_max_mb = %.0f): "
                "each trial computes them online with the teacher", size_mb,
                cfg.train.feature_cache_max_mb)
    model = AutoModelForSequenceClassification.from_pretrained(prep.teacher.model_dir)
    prep.online_teacher = ModelBlob.from_model(model, f"teacher {prep.teacher.key}")


def _transfer(cfg: ExperimentConfig, prep: Prepared) -> None:
    """The transfer set in the student's tokens and every teacher's logits on it (each teacher
    reads it in its own tokens), cached with the teacher."""
    transfer = prep.splits.transfer
    if transfer is None:
        return
    fingerprint, n = transfer.fingerprint(), cfg.data.max_length
    encoded: dict[str, Encoded] = {}
    for art in prep.teachers:
        tok = load_tokenizer(str(art.model_dir), "teacher.model")
        key = tokenizer_fingerprint(tok)
        if key not in encoded:
            encoded[key] = transfer.encode(tok, n)
        prep.transfer_logits.append(transfer_logits(art, encoded[key], fingerprint,
                                                    cfg.train.eval_batch_size, best_device(),
                                                    cfg.train.precision))
    student = tokenizer_fingerprint(prep.student_tokenizer)
    prep.transfer = (encoded[student] if student in encoded
                     else transfer.encode(prep.student_tokenizer, n))


def prepare(cfg: ExperimentConfig, device: torch.device | None = None,
            builder: Builder | None = None, record: Any = None) -> Prepared:
    """Data, tokens, teachers (``builder`` may fine-tune them elsewhere) and the student init;
    with ``record`` (an experiment that keeps its teachers) exactly the experiment's teachers."""
    device = device or best_device()
    splits = load_splits(cfg.data)
    t_tok = load_tokenizer(cfg.teacher.finetuned or cfg.teacher.model, "teacher.model")
    t_enc = splits.encode(t_tok, cfg.data.max_length)
    teachers = _teachers(cfg, splits, t_tok, t_enc, device, builder, record)
    if cfg.student.model is None:
        s_tok, s_enc = t_tok, t_enc
    else:  # logits are per example, so the student's tokenizer may differ from the teacher's
        s_tok = load_tokenizer(cfg.student.model, "student.model")
        s_enc = splits.encode(s_tok, cfg.data.max_length)
    prep = Prepared(splits, t_tok, s_tok, t_enc, s_enc, teachers[0],
                    build_student_init(cfg, splits.label_names, teachers[0]), device, teachers,
                    slice_in_trial="layers" in cfg.searched,
                    teacher_layers=block_count(AutoConfig.from_pretrained(teachers[0].model_dir)))
    if cfg.uses_features:
        _features(cfg, prep)
    _transfer(cfg, prep)
    return prep
