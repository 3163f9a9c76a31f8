"""The exported student: ``save_pretrained`` folder, size, CPU latency and model card.

The best seed's student (by validation macro-F1) is saved with its tokenizer and label names;
``README.md`` is a Hugging Face model card written from the finished ``retrain.json`` report.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdtune.config import ExperimentConfig
from kdtune.files import atomic_write_text
from kdtune.retrain.formatting import fmt, fmt_count, md_table, metric_title, pm

if TYPE_CHECKING:  # heavy imports are deferred so that bad input fails fast
    import torch

    from kdtune.data import Encoded
    from kdtune.pipeline import Prepared

LATENCY_EXAMPLES = 100
LATENCY_WARMUP = 5


def measure_latency(model: torch.nn.Module, data: Encoded,
                    examples: int = LATENCY_EXAMPLES) -> dict[str, Any]:
    """CPU latency of the model's forward pass at batch size 1 on test examples."""
    import torch

    n = min(examples, len(data))
    times = []
    model.eval()
    with torch.inference_mode():
        for i in list(range(min(LATENCY_WARMUP, n))) + list(range(n)):
            batch = data.collate(np.array([i]))
            t0 = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - t0)
    ms = 1000.0 * np.asarray(times[min(LATENCY_WARMUP, n):])
    return {"ms_per_example_mean": float(ms.mean()), "ms_per_example_median": float(np.median(ms)),
            "examples": n, "batch_size": 1, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "measures": "model forward on pre-tokenised test examples (tokenisation excluded)"}


def export_model(model: torch.nn.Module, prep: Prepared, folder: Path) -> dict[str, Any]:
    """``save_pretrained`` the model and tokenizer (label names kept); size and latency."""
    import torch

    from kdtune.models import count_parameters

    names = prep.label_names
    if folder.exists():
        shutil.rmtree(folder)
    model = model.to(torch.device("cpu")).eval()
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(folder)
    prep.student_tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label", {})
    if [saved.get(str(i)) for i in range(len(names))] != names:
        raise RuntimeError(f"label names did not survive save_pretrained: {saved}")
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return {"dir": str(folder), "params": count_parameters(model), "weights_mb": weights / 1e6,
            "latency": measure_latency(model, prep.encoded["test"])}


def write_model_card(folder: Path, report: dict[str, Any], cfg: ExperimentConfig,
                     prep: Prepared) -> None:
    """The exported model's ``README.md`` (Hugging Face model card)."""
    names = prep.label_names
    mdl, summary = report["model"], report["summary"]
    best = next(r for r in report["per_seed"]
                if r["model"] == "student" and r["seed"] == mdl["seed"])
    teacher = cfg.teacher.finetuned or cfg.teacher.model
    t_metrics = prep.teacher.metrics.get("test", {})
    n = len(report["seeds"])
    rows = [[metric_title(c), f"{best[c]:.4f}", pm(summary["student"][c]),
             pm(summary["baseline"][c])]
            for c in ("test_accuracy", "test_macro_f1", *(f"test_f1_{n_}" for n_ in names))]
    hp = report["config"]
    hp_rows = [[k, fmt(hp[k])] for k in ("alpha", "temperature", "learning_rate", "epochs",
                                          "batch_size", "weight_decay", "warmup_fraction",
                                          "clip_norm", "dropout", "seed") if k in hp]
    lat = mdl["latency"]
    text = f"""---
library_name: transformers
pipeline_tag: text-classification
tags:
- text-classification
- knowledge-distillation
- kdtune
---

# KD student of kdtune experiment `{report['experiment_name']}`

A student classifier ({prep.student_init.description}) distilled from a fine-tuned teacher with the
configuration of search trial `{report['trial']['trial_id']}` and re-trained by
`python -m kdtune.retrain`. This is seed {mdl['seed']} of {n}, picked by validation macro-F1
(the test split was not used to pick it). Labels: {', '.join(names)}.

## Data

- source: `{report['data']['source']}`
- stratified split (seed {cfg.data.seed}): {report['data']['rows']['train']} train /
  {report['data']['rows']['val']} validation / {report['data']['rows']['test']} held-out test rows;
  texts truncated to {cfg.data.max_length} tokens

## Teacher

- `{teacher}`{'' if cfg.teacher.finetuned else f' fine-tuned for {cfg.teacher.epochs} epoch(s)'}
  ({fmt_count(prep.teacher.metrics.get('params'))} parameters); test accuracy
  {fmt(t_metrics.get('accuracy', 'n/a'))}, macro-F1 {fmt(t_metrics.get('macro_f1', 'n/a'))}
- the student learns from the teacher's cached logits:
  loss = alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T)

## Hyperparameters

{md_table(['name', 'value'], hp_rows)}

## Test metrics (held-out split)

Mean ± sample std over {n} seed(s); the CE-only baseline (alpha = 1) used the same seeds, data
and budget.

{md_table(['metric', 'this model', f'KD student, {n} seeds', f'CE-only baseline, {n} seeds'], rows)}

{report['verdict']['text']}

## Size and speed

- parameters: {mdl['params']:,}; weights: {mdl['weights_mb']:.1f} MB (float32 safetensors)
- CPU latency: {lat['ms_per_example_mean']:.2f} ms/example mean, {lat['ms_per_example_median']:.2f} ms
  median, batch size 1, measured on {lat['examples']} test examples with {lat['threads']} torch
  thread(s) on `{lat['cpu']}` ({lat['measures']})

## How to load

```python
from transformers import pipeline

classifier = pipeline("text-classification", model="{folder}")
classifier("Stocks rallied after the central bank held rates.", truncation=True,
           max_length={cfg.data.max_length})
```

or with `AutoTokenizer.from_pretrained(path)` and
`AutoModelForSequenceClassification.from_pretrained(path)`; `model.config.id2label` maps the
output indices to {', '.join(names)}.
"""
    atomic_write_text(folder / "README.md", text)
