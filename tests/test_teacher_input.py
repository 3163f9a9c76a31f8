"""Bring your own teacher: a fine-tuned folder's label order is checked, a hub id is accepted
(and fails in one line when the hub cannot serve it)."""

from __future__ import annotations

import pytest
from transformers import BertConfig, BertForSequenceClassification

from kdtune.config import TeacherConfig, is_hub_id
from kdtune.errors import ConfigError
from kdtune.models import load_finetuned
from kdtune.teacher_cache import weights_fingerprint

DATA_ORDER = ["World", "Sports", "Business", "Sci/Tech"]


def _teacher(folder, names):
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=len(names),
                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def test_teacher_in_the_data_order_loads(tmp_path):
    model = load_finetuned(_teacher(tmp_path / "ok", DATA_ORDER), DATA_ORDER, "teacher.finetuned")
    assert model.config.id2label[1] == "Sports"
    # generic names cannot be checked: accepted (with a warning)
    load_finetuned(_teacher(tmp_path / "generic", [f"LABEL_{i}" for i in range(4)]), DATA_ORDER,
                   "teacher.finetuned")


def test_teacher_with_the_classes_in_another_order_is_one_line(tmp_path):
    other = ["Sports", "World", "Business", "Sci/Tech"]
    with pytest.raises(ConfigError) as err:
        load_finetuned(_teacher(tmp_path / "swapped", other), DATA_ORDER, "teacher.finetuned")
    text = str(err.value)
    assert text.startswith("teacher.finetuned: the model's id2label names the same classes in "
                           "another order: model ['Sports', 'World', 'Business', 'Sci/Tech'] vs "
                           "data ['World', 'Sports', 'Business', 'Sci/Tech']")
    assert "\n" not in text
    with pytest.raises(ConfigError, match="names other classes"):
        load_finetuned(_teacher(tmp_path / "other", ["a", "b", "c", "d"]), DATA_ORDER, "teacher.finetuned")


def test_a_hub_id_is_a_valid_teacher_and_an_unreachable_hub_is_one_line(monkeypatch):
    assert is_hub_id("textattack/bert-base-uncased-ag-news") and is_hub_id("bert-base-uncased")
    assert not is_hub_id("./missing/folder") and not is_hub_id("/abs/missing")
    assert TeacherConfig(finetuned="textattack/bert-base-uncased-ag-news").finetuned
    with pytest.raises(ConfigError, match="teacher.finetuned: folder not found"):
        TeacherConfig(finetuned="./no/such/folder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub unreachable, as on this machine
    with pytest.raises(ConfigError) as err:
        weights_fingerprint("textattack/bert-base-uncased-ag-news", "teacher.finetuned")
    assert str(err.value).startswith("teacher.finetuned: could not fetch "
                                     "'textattack/bert-base-uncased-ag-news' from the Hugging Face hub")
    assert "\n" not in str(err.value)
