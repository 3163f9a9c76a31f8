"""One source folder end to end: load, export, check every artefact, write the files and card.

:func:`export_source` loads a ``save_pretrained`` student, tokenises the test split with its own
tokenizer, measures the torch fp32 reference, exports fp32 ONNX and int8 ONNX when asked, checks
each on the test split, writes ``<exp>/export/<source>/`` (``model.onnx``, ``model.int8.onnx``,
``export.json``, ``export.md``) and adds the table to the folder's model card when it has one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdtune.export import agreement, onnx_files, table
from kdtune.latency import DEFAULT, Protocol, fixed_rows, numpy_batch

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
ONNX_FILES = {"onnx fp32": "model.onnx", table.INT8: "model.int8.onnx"}


@dataclass(frozen=True)
class Options:
    """What to export and how to time it."""

    onnx: bool = False
    int8: bool = False  # implies onnx
    protocol: Protocol = field(default_factory=lambda: DEFAULT)


@dataclass
class TestSplit:
    """The held-out test split as :func:`kdtune.export.inputs.experiment_inputs` returns it."""

    experiment: str
    label_names: list[str]
    texts: list[str]
    labels: np.ndarray
    max_length: int


def load_student(model_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a ``save_pretrained`` folder, fp32 on the CPU, in eval mode."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return model.float().to("cpu").eval(), AutoTokenizer.from_pretrained(model_dir)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def export_source(source: str, model_dir: Path, exp_dir: Path, split: TestSplit,
                  options: Options) -> dict[str, Any]:
    """Export and check one source folder; returns the ``export.json`` document."""
    from kdtune.batches import encode
    from kdtune.latency import measure_torch

    model, tokenizer = load_student(model_dir)
    data = encode(split.texts, split.labels, tokenizer, split.max_length)
    out_dir = exp_dir / "export" / source
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(split.label_names)
    log.info("%s: torch fp32 reference on %d test rows", source, len(data))
    reference = agreement.predict(agreement.torch_logits(model), data,
                                 progress=f"export check: {source} torch fp32")
    weights = [p for p in sorted(model_dir.iterdir()) if p.suffix in WEIGHT_SUFFIXES]
    rows = [agreement.artefact_row(
        "torch fp32", ", ".join(_rel(p, exp_dir) for p in weights),
        sum(p.stat().st_size for p in weights) / 1e6, reference, reference, split.labels, n,
        measure_torch(model, data, options.protocol))]
    wanted = _onnx_wanted(options)
    for name, file in ONNX_FILES.items():
        if name not in wanted:
            (out_dir / file).unlink(missing_ok=True)  # no stale artefact beside the new table
    if wanted:
        rows += _onnx_rows(model, tokenizer, data, out_dir, wanted, reference, split, options, exp_dir)
    for row in rows:
        row["throughput_batch"] = options.protocol.throughput_batch
    agreement.compare(rows)
    meta = {"experiment": split.experiment, "source": source, "model_dir": str(model_dir),
            "export_dir": str(out_dir), "test_rows": len(data), "labels": split.label_names}
    doc = table.document(meta, rows, options.protocol)
    table.write(out_dir, doc)
    if (model_dir / "README.md").is_file():
        from kdtune.modelcard import add_export_table

        add_export_table(model_dir, table.markdown_table(rows), note=doc["target"]["line"])
        log.info("%s: model card %s updated", source, model_dir / "README.md")
    return doc


def _onnx_wanted(options: Options) -> list[str]:
    if options.int8:
        return ["onnx fp32", table.INT8]
    return ["onnx fp32"] if options.onnx else []


def _onnx_rows(model: Any, tokenizer: Any, data: Any, out_dir: Path, wanted: list[str],
               reference: np.ndarray, split: TestSplit, options: Options,
               exp_dir: Path) -> list[dict[str, Any]]:
    """Export (and quantise), then check and time each ONNX artefact."""
    from kdtune.latency import measure

    fp32 = out_dir / ONNX_FILES["onnx fp32"]
    sample = numpy_batch(data, fixed_rows(data, 2))  # shortest and longest row: a padded batch
    log.info("exporting %s", fp32)
    onnx_files.export_onnx(model, sample, onnx_files.input_names(model, tokenizer), fp32)
    if table.INT8 in wanted:
        onnx_files.quantize_int8(fp32, out_dir / ONNX_FILES[table.INT8])
    rows = []
    for name in wanted:
        path = out_dir / ONNX_FILES[name]
        run = onnx_files.runner(onnx_files.session(path, options.protocol.threads))
        log.info("checking %s", path)
        preds = agreement.predict(run, data, progress=f"export check: {name}")
        rows.append(agreement.artefact_row(
            name, _rel(path, exp_dir), onnx_files.file_mb(path), preds, reference, split.labels,
            len(split.label_names), measure(run, data, options.protocol)))
    return rows
