"""What a search costs as the data grows, measured here and projected to the seed's full run.

``python -m benchmarks.scaling [--sizes 1200,2600,5300] [--out DIR]``

Measured on this machine, one torch thread, side by side in one run:

* at three training sizes of the data file: tokens, one KD trial-epoch of the quickstart's
  2-layer student (cached logits, kdtune's trainer), the teacher's logits pass, and the sizes of
  what a trial receives (token ids, logits, hidden states per block, the student's weights);
* a few timed CPU steps of randomly initialised BERT-base (a teacher training step and an
  inference batch) and DistilBERT-base (a KD student step with cached logits), at the data's
  mean padded length.

It then projects (a projection, not a measurement) the seed report's job: BERT-base teacher,
DistilBERT student, all 120,000 AG News rows (10% for validation): time per trial-epoch, the
teacher stage, cache and object-store sizes and RAM per node, and which resource runs out
first. Writes ``scaling.md`` and ``scaling.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdtune.batches import Encoded, batch_indices  # noqa: E402
from kdtune.config import load_config  # noqa: E402
from kdtune.formatting import md_table  # noqa: E402
from kdtune.losses import kd_loss  # noqa: E402

FULL_ROWS, VAL_SHARE, BATCH = 120_000, 0.1, 32


def timed(fn: Any, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timing_teacher(folder: Path, space: str) -> str:
    """The space's teacher with a random 4-class head, saved as an already fine-tuned teacher:
    costs are the same as a trained one's, and no fine-tuning is spent on them."""
    from kdtune.models import load_classifier, load_tokenizer

    cfg = load_config(space)
    names = cfg.data.label_names or ["0", "1", "2", "3"]
    torch.manual_seed(0)
    load_classifier(cfg.teacher.model, names).save_pretrained(folder)
    load_tokenizer(cfg.teacher.model).save_pretrained(folder)
    return str(folder)


def size_row(rows: int, space: str, teacher_dir: str) -> dict[str, Any]:
    """One training size of the data file: tokens, trial-epoch time, teacher pass, bytes."""
    from kdtune.params import TrainParams
    from kdtune.pipeline import prepare
    from kdtune.recipe import build_trainer

    cfg = load_config(space, {"data.max_train": rows, "data.max_val": 200, "data.max_test": 200,
                              "teacher.finetuned": teacher_dir, "student.init": "pretrained"})
    prep = prepare(cfg)
    data = prep.trial_data(cfg)
    train: Encoded = prep.encoded["train"]
    hparams = {**cfg.trial_base(), "epochs": 1, "eval_every": 1.0, "alpha": 0.7}
    epoch_s = timed(lambda: build_trainer(hparams, data).fit())
    teacher = _load_teacher(prep)
    logits_s = timed(lambda: _forward_all(teacher, train, cfg.train.eval_batch_size))
    width = teacher.config.hidden_size
    student_mb = sum(a.nbytes for a in data.student_init.state.values()) / 1e6
    return {"rows": rows, "tokens": train.tokens, "mean_tokens": train.tokens / rows,
            "trial_epoch_s": epoch_s, "teacher_logits_s": logits_s,
            "token_ids_mb": train.ids.nbytes / 1e6, "logits_mb": rows * len(prep.label_names) * 4 / 1e6,
            "hidden_mb_per_block": train.tokens * width * 2 / 1e6, "student_weights_mb": student_mb,
            "epochs": TrainParams().epochs}


def _load_teacher(prep: Any) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(prep.teacher.model_dir).eval()


@torch.inference_mode()
def _forward_all(model: torch.nn.Module, data: Encoded, batch: int) -> None:
    for index in batch_indices(data.lengths, batch, shuffle=False):
        model(**data.collate(index))


def _random(kind: str) -> torch.nn.Module:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    torch.manual_seed(0)
    if kind == "bert-base":
        return BertForSequenceClassification(BertConfig(num_labels=4))
    return DistilBertForSequenceClassification(DistilBertConfig(num_labels=4))


def step_rows(length: int, steps: int) -> list[dict[str, Any]]:
    """Timed CPU steps of random BERT-base and DistilBERT at a batch of ``BATCH x length``."""
    ids = torch.randint(1000, 20000, (BATCH, length))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 4, (BATCH,))
    teacher_logits = torch.randn(BATCH, 4)
    out = []
    for kind, what in (("bert-base", "train step (teacher fine-tuning)"),
                       ("bert-base", "inference batch (teacher logits)"),
                       ("distilbert-base", "KD train step (student, cached logits)")):
        model = _random(kind)
        fn = _step_fn(model, what.startswith("inference"), (ids, mask, labels, teacher_logits))
        fn()  # warm-up
        out.append({"model": kind, "what": what, "batch": BATCH, "length": length,
                    "seconds_per_batch": timed(fn, steps),
                    "params_m": sum(p.numel() for p in model.parameters()) / 1e6})
    return out


def _step_fn(model: torch.nn.Module, inference: bool, batch: tuple[torch.Tensor, ...]) -> Any:
    """One timed step: an inference batch, or a KD training step with cached teacher logits."""
    ids, mask, labels, teacher_logits = batch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train() -> None:
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = kd_loss(logits, teacher_logits, labels, 0.7, 3.0).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.inference_mode()
    def infer() -> None:
        model.eval()(input_ids=ids, attention_mask=mask)

    return infer if inference else train


def project(sizes: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's full job from the measured per-token cost and per-batch step times."""
    per_token = np.polyfit([s["tokens"] for s in sizes], [s["trial_epoch_s"] for s in sizes], 1)
    mean_tokens = float(np.mean([s["mean_tokens"] for s in sizes]))
    train_rows = int(FULL_ROWS * (1 - VAL_SHARE))
    batches = train_rows / BATCH
    by = {(s["model"], s["what"].split(" ")[0]): s["seconds_per_batch"] for s in steps}
    tokens = FULL_ROWS * mean_tokens
    return {
        "train_rows": train_rows, "mean_tokens": mean_tokens,
        "minilm_slice_trial_epoch_h": float(np.polyval(per_token, train_rows * mean_tokens)) / 3600,
        "distilbert_trial_epoch_h": batches * by[("distilbert-base", "KD")] / 3600,
        "bert_teacher_finetune_h_per_epoch": batches * by[("bert-base", "train")] / 3600,
        "bert_teacher_logits_h": FULL_ROWS / BATCH * by[("bert-base", "inference")] / 3600,
        "token_ids_mb": tokens * 4 / 1e6, "logits_mb": FULL_ROWS * 4 * 4 / 1e6,
        "hidden_gb_per_block_bert": train_rows * mean_tokens * 768 * 2 / 1e9,
        "distilbert_weights_mb": 66.96e6 * 4 / 1e6,
    }


def markdown(result: dict[str, Any]) -> str:
    sizes = [[s["rows"], s["tokens"], f"{s['trial_epoch_s']:.1f}", f"{s['teacher_logits_s']:.1f}",
              f"{s['token_ids_mb']:.2f}", f"{s['logits_mb']:.3f}", f"{s['hidden_mb_per_block']:.0f}",
              f"{s['student_weights_mb']:.0f}"] for s in result["sizes"]]
    steps = [[s["model"], s["what"], f"{s['batch']} x {s['length']}", f"{s['seconds_per_batch']:.2f}",
              f"{s['params_m']:.1f}"] for s in result["steps"]]
    p = result["projection"]
    return "\n".join([
        f"# kdtune cost at three data sizes ({result['date']}, {result['machine']})", "",
        md_table(["train rows", "tokens", "KD trial-epoch (s)", "teacher logits pass (s)",
                  "token ids (MB)", "logits (MB)", "hidden states / block (MB)",
                  "student weights (MB)"], sizes), "",
        md_table(["model (random init)", "step", "batch", "s / batch (1 thread)", "params (M)"], steps),
        "", "## Projection (not a measurement): the seed's job on this CPU, one thread per trial", "",
        md_table(["quantity", "projected"], [[k, f"{v:.3g}"] for k, v in p.items()]), ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.scaling", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1200,2600,5300")
    p.add_argument("--space", default=str(ROOT / "search_spaces/alpha_temp.yaml"))
    p.add_argument("--steps", type=int, default=3, help="timed steps per model (median)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        teacher = timing_teacher(Path(tmp) / "teacher", args.space)
        sizes = [size_row(int(n), args.space, teacher) for n in args.sizes.split(",")]
    length = int(round(np.mean([s["mean_tokens"] for s in sizes]) * 1.15))  # group padding
    result = {"date": dt.date.today().isoformat(),
              "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
              "sizes": sizes, "steps": step_rows(length, args.steps),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    result["projection"] = project(sizes, result["steps"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=1))
    (out / "scaling.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
