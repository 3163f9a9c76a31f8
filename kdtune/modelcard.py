"""The model card (``README.md``) of an exported student, built with ``huggingface_hub``.

:class:`CardFacts` holds everything a card says; :func:`build_card` turns it into a
``huggingface_hub.ModelCard`` whose metadata carries ``base_model``, ``datasets``,
``library_name``, ``pipeline_tag``, tags and the test metrics as ``eval_results`` (so the hub
shows a ``model-index``); :func:`write_card` saves it into a model folder. When
``python -m kdtune.export`` runs, :func:`add_export_table` re-renders an existing card with the
ONNX / int8 table (the section sits between two HTML comments, so re-running replaces it).
Nothing here touches the network: the card is never validated against the hub.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TAGS = ["knowledge-distillation", "kdtune"]
EXPORT_START = "<!-- kdtune:export -->"
EXPORT_END = "<!-- /kdtune:export -->"
_EXPORT_BLOCK = re.compile(re.escape(EXPORT_START) + r".*?" + re.escape(EXPORT_END), re.S)


class EvalMetric(NamedTuple):
    """One held-out test metric of this model, e.g. ``("f1", "test macro-F1", 0.89)``."""

    metric_type: str  # a hub metric id: accuracy, f1, ...
    metric_name: str  # a readable name
    value: float


class SeedSummary(NamedTuple):
    """Mean ± sample std over seeds of the KD student and the CE-only baseline for one metric."""

    name: str
    student_mean: float
    student_std: float
    baseline_mean: float
    baseline_std: float


@dataclass
class CardFacts:
    """Everything a kdtune model card states; nothing is read from disk or the network."""

    name: str  # repo or experiment name; also the model-index name
    description: str  # one paragraph: what the model is and how it was made
    base_model: str | None  # the teacher (or the student's source) as a hub id; None: omitted
    datasets: list[str]  # hub dataset ids, e.g. ["ag_news"]; [] for a local file
    dataset_name: str  # display name, e.g. "AG News (local:../shared/...csv)"
    label_names: list[str]
    hyperparameters: dict[str, Any]
    test_metrics: list[EvalMetric]
    verdict: str
    task: str = "text-classification"
    seed_summary: list[SeedSummary] = field(default_factory=list)
    seeds: int | None = None  # how many seeds seed_summary averages
    params: int | None = None
    weights_mb: float | None = None
    latency: dict[str, Any] = field(default_factory=dict)  # kdtune.latency.measure(...) output
    export_table: str | None = None  # kdtune.export's table, rendered (export.table.markdown_table)
    how_to_load: str = ""  # a Python snippet; default: a transformers pipeline of ``name``

    @property
    def dataset_type(self) -> str:
        """The dataset id of the eval results: the hub id, else a slug of the display name."""
        if self.datasets:
            return self.datasets[0]
        return re.sub(r"[^a-z0-9]+", "-", self.dataset_name.lower()).strip("-") or "local"


def build_card(facts: CardFacts) -> ModelCard:
    """The card: hub metadata (with ``model-index``) plus the markdown body."""
    data = ModelCardData(
        base_model=facts.base_model, datasets=list(facts.datasets) or None,
        library_name="transformers", pipeline_tag=facts.task,
        tags=[*TAGS, facts.task], model_name=facts.name, eval_results=_eval_results(facts) or None)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(facts)}")


def write_card(folder: str | Path, facts: CardFacts) -> Path:
    """Save the card of ``facts`` as ``folder/README.md``; returns the path."""
    path = Path(folder) / "README.md"
    build_card(facts).save(path)
    return path


def add_export_table(folder: str | Path, table: str, note: str = "") -> Path:
    """Re-render ``folder/README.md`` with the export ``table`` (markdown; replacing an earlier one).

    The section goes before ``## How to load`` when the card has one, else at the end; the
    metadata is kept as it was.
    """
    path = Path(folder) / "README.md"
    if not path.is_file():
        raise FileNotFoundError(f"no model card {path}; write one first (write_card)")
    card = ModelCard.load(path)
    section = export_section(table, note)
    text = card.text
    if _EXPORT_BLOCK.search(text):
        text = _EXPORT_BLOCK.sub(lambda _: section, text, count=1)
    elif "\n## How to load" in text:
        head, tail = text.split("\n## How to load", 1)
        text = f"{head.rstrip()}\n\n{section}\n\n## How to load{tail}"
    else:
        text = f"{text.rstrip()}\n\n{section}\n"
    card.text = text
    card.save(path)
    return path


def export_section(table: str, note: str = "") -> str:
    """The card's ONNX section (between markers): the export table (rendered by
    ``kdtune.export``) and an optional note."""
    parts = [EXPORT_START, "## ONNX export", "", "Every artefact is checked against the torch "
             "model on the held-out test split (`python -m kdtune.export`).", "", table]
    if note:
        parts += ["", note]
    return "\n".join([*parts, EXPORT_END])


def _eval_results(facts: CardFacts) -> list[EvalResult]:
    return [EvalResult(task_type=facts.task, dataset_type=facts.dataset_type,
                       dataset_name=facts.dataset_name, dataset_split="test",
                       metric_type=m.metric_type, metric_name=m.metric_name,
                       metric_value=float(m.value))
            for m in facts.test_metrics]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _body(facts: CardFacts) -> str:
    """The markdown body, section by section."""
    parts = [f"# {facts.name}", facts.description,
             f"Labels: {', '.join(facts.label_names)}. Data: {facts.dataset_name}.",
             "## Hyperparameters",
             _table(["name", "value"], [[k, _fmt(v)] for k, v in facts.hyperparameters.items()]),
             "## Test metrics (held-out split)",
             _table(["metric", "value"], [[m.metric_name, f"{m.value:.4f}"] for m in facts.test_metrics])]
    if facts.seed_summary:
        n = f"{facts.seeds} seeds" if facts.seeds else "seeds"
        parts += [f"Mean ± sample std over {n}; the CE-only baseline used the same seeds, data and "
                  "budget.",
                  _table(["metric", "KD student", "CE-only baseline"],
                         [[s.name, f"{s.student_mean:.4f} ± {s.student_std:.4f}",
                           f"{s.baseline_mean:.4f} ± {s.baseline_std:.4f}"] for s in facts.seed_summary])]
    parts += ["## Verdict", facts.verdict, "## Size and speed", _size_text(facts)]
    if facts.export_table:
        parts.append(export_section(facts.export_table))
    snippet = facts.how_to_load or (
        'from transformers import pipeline\n\n'
        f'classifier = pipeline("{facts.task}", model="{facts.name}")\n'
        'classifier("An example text to classify.")')
    parts += ["## How to load", f"```python\n{snippet.strip()}\n```"]
    return "\n\n".join(parts) + "\n"


def _size_text(facts: CardFacts) -> str:
    lines = []
    if facts.params is not None:
        lines.append(f"- parameters: {facts.params:,}")
    if facts.weights_mb is not None:
        lines.append(f"- weights: {facts.weights_mb:.1f} MB")
    lat = facts.latency
    if "latency_ms" in lat:
        lines.append(f"- latency: {lat['latency_ms']:.2f} ms at batch 1 (median of "
                     f"{lat.get('examples', '?')} test examples, {lat.get('threads', '?')} thread(s), "
                     f"{lat.get('device', 'cpu')} `{lat.get('cpu', '?')}`)")
    if lat.get("throughput") is not None:
        lines.append(f"- throughput: {lat['throughput']:.0f} examples/s at batch "
                     f"{lat.get('throughput_batch', '?')}")
    return "\n".join(lines) or "not measured"
