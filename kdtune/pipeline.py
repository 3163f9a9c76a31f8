"""The stages every entry point shares: data -> tokens -> cached teacher -> student init.

``prepare(cfg)`` is what ``kdtune.search``, ``kdtune.retrain`` and the benchmark call, so all of
them see the same deterministic split, the same tokens and the same cached teacher logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kdtune.config import ExperimentConfig
from kdtune.data import Encoded, Splits, encode, load_splits
from kdtune.models import StudentInit, load_classifier, load_tokenizer, slice_layers
from kdtune.teacher import TeacherArtifacts, prepare_teacher


@dataclass
class Prepared:
    splits: Splits
    teacher_tokenizer: Any
    student_tokenizer: Any
    teacher_encoded: dict[str, Encoded]  # split -> tokens for the teacher
    encoded: dict[str, Encoded]  # split -> tokens for the student
    teacher: TeacherArtifacts
    student_init: StudentInit

    @property
    def label_names(self) -> list[str]:
        return self.splits.label_names

    def info(self) -> dict[str, Any]:
        """Facts about the run that results files record."""
        return {"source": self.splits.source, "label_names": self.label_names,
                "rows": {k: len(v) for k, v in self.encoded.items()},
                "teacher_key": self.teacher.key, "teacher_cache_hit": self.teacher.cache_hit,
                "teacher_dir": str(self.teacher.dir.resolve()), "student": self.student_init.description,
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
        model = load_classifier(s.model, label_names, field_name="student.model")
        return StudentInit.from_model(model, f"`{s.model}`")
    source = (str(teacher.model_dir) if s.init == "finetuned"
              else cfg.teacher.finetuned or cfg.teacher.model)
    full = load_classifier(source, label_names, field_name="student.init")
    torch.manual_seed(cfg.train.seed)  # the re-initialised classifier head is seeded
    student = slice_layers(full, s.layers)
    return StudentInit.from_model(student, f"layers {s.layers} of `{source}` ({s.init})")


def prepare(cfg: ExperimentConfig) -> Prepared:
    # 1. Data: load, split (stratified, seeded), tokenise once per tokenizer.
    splits = load_splits(cfg.data)
    t_tok = load_tokenizer(cfg.teacher.finetuned or cfg.teacher.model, "teacher.model")
    t_enc = _encode_all(splits, t_tok, cfg.data.max_length)
    # 2. Teacher: fine-tuned once per teacher + data, cached with its logits.
    teacher = prepare_teacher(cfg, t_enc, splits.label_names, t_tok, splits.fingerprint())
    # 3. Student: logits are per example, so its tokenizer may differ from the teacher's.
    if cfg.student.model is None:
        s_tok, s_enc = t_tok, t_enc
    else:
        s_tok = load_tokenizer(cfg.student.model, "student.model")
        s_enc = _encode_all(splits, s_tok, cfg.data.max_length)
    student_init = build_student_init(cfg, splits.label_names, teacher)
    return Prepared(splits, t_tok, s_tok, t_enc, s_enc, teacher, student_init)
