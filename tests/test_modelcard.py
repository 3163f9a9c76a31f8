"""kdtune.modelcard: a card built from facts round-trips through huggingface_hub (no network)."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from kdtune.export.table import markdown_table
from kdtune.modelcard import (
    EXPORT_START,
    CardFacts,
    EvalMetric,
    SeedSummary,
    add_export_table,
    build_card,
    write_card,
)

VERDICT = "The KD student beats the CE-only baseline by +0.66 points, not significant (p = 0.28)."


def make_facts(**changes) -> CardFacts:
    facts = dict(
        name="kdtune-agnews-student",
        description="A 2-layer MiniLM student distilled from a fine-tuned 6-layer MiniLM teacher.",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        datasets=["ag_news"], dataset_name="AG News",
        label_names=["World", "Sports", "Business", "Sci/Tech"],
        hyperparameters={"alpha": 0.78, "temperature": 8.8, "learning_rate": 4.7e-4, "epochs": 3},
        test_metrics=[EvalMetric("accuracy", "test accuracy", 0.8910),
                      EvalMetric("f1", "test macro-F1", 0.8901)],
        seed_summary=[SeedSummary("test macro-F1", 0.8947, 0.0045, 0.8881, 0.0055)], seeds=3,
        verdict=VERDICT, params=15_600_000, weights_mb=62.5,
        latency={"latency_ms": 7.6, "examples": 32, "threads": 1, "cpu": "x86_64",
                 "throughput": 165.0, "throughput_batch": 32, "device": "cpu"})
    facts.update(changes)
    return CardFacts(**facts)


def test_card_round_trip(tmp_path):
    facts = make_facts()
    path = write_card(tmp_path, facts)
    card = ModelCard.load(path)
    assert card.data.base_model == facts.base_model
    assert card.data.datasets == ["ag_news"]
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-classification"
    assert {"knowledge-distillation", "kdtune"} <= set(card.data.tags)
    assert card.data.model_name == facts.name
    got = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert got == {("accuracy", "test accuracy"): 0.8910, ("f1", "test macro-F1"): 0.8901}
    for r in card.data.eval_results:
        assert (r.task_type, r.dataset_type, r.dataset_name, r.dataset_split) == (
            "text-classification", "ag_news", "AG News", "test")
    assert "model-index" in path.read_text(encoding="utf-8")


def test_card_body(tmp_path):
    card = ModelCard.load(write_card(tmp_path, make_facts()))
    text = card.text
    for name, value in (("alpha", "0.78"), ("temperature", "8.8"), ("learning_rate", "0.00047"),
                        ("epochs", "3")):
        assert f"| {name} | {value} |" in text
    assert VERDICT in text
    assert "0.8947 ± 0.0045" in text and "0.8881 ± 0.0055" in text and "3 seeds" in text
    assert "World, Sports, Business, Sci/Tech" in text
    assert "7.60 ms at batch 1" in text and "15,600,000" in text
    assert 'pipeline("text-classification", model="kdtune-agnews-student")' in text


def test_local_dataset_and_no_base_model():
    card = build_card(make_facts(datasets=[], dataset_name="local:../shared/data/my file.csv",
                                 base_model=None))
    assert card.data.datasets is None and card.data.base_model is None
    assert {r.dataset_type for r in card.data.eval_results} == {"local-shared-data-my-file-csv"}


ROWS = [
    {"artefact": "torch fp32", "size_mb": 62.5, "agreement_pct": 100.0, "macro_f1": 0.89,
     "delta_f1_points": 0.0, "latency_ms": 7.6, "throughput": 165.0, "speedup": 1.0},
    {"artefact": "onnx int8", "size_mb": 15.8, "agreement_pct": 98.75, "macro_f1": 0.887,
     "delta_f1_points": -0.3, "latency_ms": 1.5, "throughput": 476.0, "speedup": 5.07},
]


def test_add_export_table_replaces_its_section(tmp_path):
    facts = make_facts()
    path = write_card(tmp_path, facts)
    add_export_table(tmp_path, markdown_table(ROWS), note="Target: PASS")
    add_export_table(tmp_path, markdown_table([{**ROWS[0], "latency_ms": 9.9}]), note="second run")
    card = ModelCard.load(path)
    assert card.text.count(EXPORT_START) == 1 and card.text.count("## ONNX export") == 1
    assert "| torch fp32 | 62.5 | 100.0 | 0.8900 | +0.00 | 9.90 | 165 | 1.00x |" in card.text
    assert "onnx int8" not in card.text and "second run" in card.text
    assert card.text.index("## ONNX export") < card.text.index("## How to load")
    assert card.data.base_model == facts.base_model
    assert [r.metric_value for r in card.data.eval_results] == [0.8910, 0.8901]


def test_export_rows_in_facts_and_plain_cards(tmp_path):
    card = build_card(make_facts(export_table=markdown_table(ROWS)))
    assert "| onnx int8 | 15.8 | 98.8 | 0.8870 | -0.30 | 1.50 | 476 | 5.07x |" in card.text
    (tmp_path / "README.md").write_text("---\nlibrary_name: transformers\n---\n# A card\n",
                                        encoding="utf-8")
    add_export_table(tmp_path, markdown_table(ROWS))
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\nlibrary_name: transformers\n---\n# A card")
    assert "## ONNX export" in text


def test_missing_card_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        add_export_table(tmp_path, markdown_table(ROWS))
