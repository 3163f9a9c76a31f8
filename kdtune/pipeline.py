"""The stages every entry point shares: data -> tokens -> cached teacher -> student init.

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

from kdtune.config import ConfigError, ExperimentConfig
from kdtune.data import Encoded, Splits, encode, load_splits
from kdtune.models import StudentInit, load_classifier, load_tokenizer, slice_layers
from kdtune.recipe import TrialData, feature_pairs
from kdtune.teacher import TeacherArtifacts, hidden_states, prepare_teacher, tokenizer_fingerprint

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    splits: Splits
    teacher_tokenizer: Any
    student_tokenizer: Any
    teacher_encoded: dict[str, Encoded]  # split -> tokens for the teacher
    encoded: dict[str, Encoded]  # split -> tokens for the student
    teacher: TeacherArtifacts  # the main teacher (reports compare against it)
    student_init: StudentInit
    teachers: list[TeacherArtifacts] = field(default_factory=list)  # main first, then extras
    slice_in_trial: bool = False
    teacher_layers: int = 0
    feature_targets: dict[int, np.ndarray] = field(default_factory=dict)
    online_teacher_dir: str | None = None

    @property
    def label_names(self) -> list[str]:
        return self.splits.label_names

    def trial_data(self, cfg: ExperimentConfig) -> TrialData:
        """What every trial (and every re-training) of ``cfg`` reads."""
        return TrialData(
            train=self.encoded["train"], val=self.encoded["val"],
            teacher_logits=[np.ascontiguousarray(t.logits["train"]) for t in self.teachers],
            student_init=self.student_init, label_names=self.label_names, fixed=cfg.fixed,
            slice_in_trial=self.slice_in_trial, teacher_layers=self.teacher_layers,
            feature_targets=self.feature_targets,
            student_layers=list(cfg.student.layers) if cfg.student.model is None else None,
            online_teacher_dir=self.online_teacher_dir)

    def info(self) -> dict[str, Any]:
        """Facts about the run that results files record."""
        return {"source": self.splits.source, "label_names": self.label_names,
                "rows": {k: len(v) for k, v in self.encoded.items()},
                "teacher_key": self.teacher.key, "teacher_cache_hit": self.teacher.cache_hit,
                "teacher_dir": str(self.teacher.dir.resolve()),
                "student": self.student_init.description,
                "extra_teachers": [{"key": t.key, "dir": str(t.dir.resolve()),
                                    "val_accuracy": t.metrics["val"]["accuracy"],
                                    "test_accuracy": t.metrics["test"]["accuracy"]}
                                   for t in self.teachers[1:]],
                "feature_cache_mb": sum(a.nbytes for a in self.feature_targets.values()) / 1e6,
                "feature_states": ("online" if self.online_teacher_dir else
                                   "cached" if self.feature_targets else "none"),
                "data_fingerprint": self.splits.fingerprint()}


def _encode_all(splits: Splits, tokenizer, max_length: int) -> dict[str, Encoded]:
    frames = {"train": splits.train, "val": splits.val, "test": splits.test}
    return {k: encode(f["text"], f["label"].to_numpy(), tokenizer, max_length)
            for k, f in frames.items()}


def build_student_init(cfg: ExperimentConfig, label_names: list[str],
                       teacher: TeacherArtifacts) -> StudentInit:
    """The student's initial weights: a slice of teacher layers, or a model of its own."""
    s = cfg.student
    if s.model is not None:
        torch.manual_seed(cfg.train.seed)  # its new classifier head is seeded
        model = load_classifier(s.model, label_names, field_name="student.model")
        return StudentInit.from_model(model, f"`{s.model}`")
    source = (str(teacher.model_dir) if s.init == "finetuned"
              else cfg.teacher.finetuned or cfg.teacher.model)
    full = load_classifier(source, label_names, field_name="student.init")
    if "layers" in cfg.searched:  # each trial slices its own layers from the full model
        n = _block_count(full.config)
        for choice in next(p for p in cfg.space if p.name == "layers").values:
            if max(choice) >= n:
                raise ConfigError("space.layers", f"indices must be < {n} (the teacher has {n} "
                                  f"layers), got {choice}")
        return StudentInit.from_model(full, f"a searched slice of `{source}` ({s.init})")
    torch.manual_seed(cfg.train.seed)  # the re-initialised classifier head is seeded
    student = slice_layers(full, s.layers)
    return StudentInit.from_model(student, f"layers {s.layers} of `{source}` ({s.init})")


def _block_count(config: Any) -> int:
    return int(getattr(config, "num_hidden_layers", None) or config.n_layers)


def _feature_blocks(cfg: ExperimentConfig, n_student: int, n_teacher: int) -> list[int]:
    """Every teacher block whose hidden states some trial's feature loss can ask for."""
    if cfg.student.model is not None:
        return sorted({t for _, t in feature_pairs(None, n_student, n_teacher)})
    if "layers" in cfg.searched:
        choices = next(p for p in cfg.space if p.name == "layers").values
        return sorted({i for choice in choices for i in choice})
    return list(cfg.student.layers)


def prepare(cfg: ExperimentConfig) -> Prepared:
    # 1. Data: load, split (stratified, seeded), tokenise once per tokenizer.
    splits = load_splits(cfg.data)
    fingerprint = splits.fingerprint()
    t_tok = load_tokenizer(cfg.teacher.finetuned or cfg.teacher.model, "teacher.model")
    t_enc = _encode_all(splits, t_tok, cfg.data.max_length)
    # 2. Teachers: each fine-tuned once per teacher + data, cached with its logits. Logits are
    #    per example, so extra teachers may use tokenizers of their own.
    teacher = prepare_teacher(cfg, t_enc, splits.label_names, t_tok, fingerprint)
    teachers = [teacher]
    for i, extra in enumerate(cfg.extra_teachers):
        tok = load_tokenizer(extra.finetuned or extra.model, f"extra_teachers.{i}.model")
        same = tokenizer_fingerprint(tok) == tokenizer_fingerprint(t_tok)
        enc = t_enc if same else _encode_all(splits, tok, cfg.data.max_length)
        teachers.append(prepare_teacher(cfg, enc, splits.label_names, tok, fingerprint,
                                        teacher=extra))
    # 3. Student: logits are per example, so its tokenizer may differ from the teacher's.
    if cfg.student.model is None:
        s_tok, s_enc = t_tok, t_enc
    else:
        s_tok = load_tokenizer(cfg.student.model, "student.model")
        s_enc = _encode_all(splits, s_tok, cfg.data.max_length)
    student_init = build_student_init(cfg, splits.label_names, teacher)
    n_teacher = _block_count(AutoConfig.from_pretrained(teacher.model_dir))
    # 4. Feature KD: the main teacher's hidden states, cached ragged beside its logits.
    targets: dict[int, np.ndarray] = {}
    online_dir = None
    if cfg.uses_features:
        if tokenizer_fingerprint(s_tok) != tokenizer_fingerprint(t_tok):
            raise ConfigError("train.beta", "feature KD aligns tokens, so the student needs the "
                              "teacher's tokenizer; use a sliced student or beta: 0")
        n_student = _block_count(AutoConfig.for_model(**student_init.config))
        blocks = _feature_blocks(cfg, n_student, n_teacher)
        width = AutoConfig.from_pretrained(teacher.model_dir).hidden_size
        size_mb = int(t_enc["train"].offsets[-1]) * width * 2 * len(blocks) / 1e6
        if size_mb <= cfg.train.feature_cache_max_mb:
            targets = hidden_states(teacher, t_enc["train"], blocks, cfg.train.eval_batch_size)
        else:
            online_dir = str(teacher.model_dir.resolve())
            log.warning("teacher hidden states would take %.0f MB (> train.feature_cache_max_mb "
                        "= %.0f): each trial computes them online with the teacher", size_mb,
                        cfg.train.feature_cache_max_mb)
    return Prepared(splits, t_tok, s_tok, t_enc, s_enc, teacher, student_init, teachers,
                    slice_in_trial="layers" in cfg.searched, teacher_layers=n_teacher,
                    feature_targets=targets, online_teacher_dir=online_dir)
