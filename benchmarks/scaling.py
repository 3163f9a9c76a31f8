"""What a search costs as the data grows, measured here and projected to the seed's full run.

``python -m benchmarks.scaling [--sizes 1200,2600,5300] [--out DIR]`` measures (about 10
minutes); ``--render benchmarks/results/scaling.json`` recomputes the projection from the
committed measurements without measuring again.

Measured on this machine, one torch thread, side by side in one run:

* at three training sizes of the data file: tokens, one KD trial-epoch of the quickstart's
  2-layer student (cached logits, kdtune's trainer), the teacher's logits pass, and the sizes of
  what a trial receives (token ids, logits, hidden states per block, the student's weights);
* a few timed CPU steps of randomly initialised BERT-base (a teacher training step and an
  inference batch) and DistilBERT-base (a KD student step with cached logits), at the data's
  mean padded length.

The projection (not a measurement) of the seed report's job (``search_spaces/seed_report.yaml``:
BERT-base teacher, DistilBERT student, all 120,000 AG News rows, 10% for validation) is
:mod:`benchmarks.scaling_projection`, a pure function of those figures and the space's config;
what needs a GPU measurement is listed apart. Writes ``scaling.md`` and ``scaling.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scaling_projection import (  # noqa: E402
    Job,
    Node,
    asha_levels,
    cpu_rows,
    estimates,
    gpu_rows,
    trial_epochs,
)
from kdtune.batches import Encoded, batch_indices  # noqa: E402
from kdtune.config import load_config  # noqa: E402
from kdtune.formatting import md_table  # noqa: E402
from kdtune.losses import kd_loss  # noqa: E402
from kdtune.params import TrainParams  # noqa: E402

BATCH = 32


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
    from kdtune.recipe import build_trainer
    from kdtune.stages import prepare

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


SEED_SPACE = "search_spaces/seed_report.yaml"
#: AG News as the seed space reads it from the hub: 120,000 training rows, its own test split.
HUB_ROWS, HUB_TEST_ROWS = 120_000, 7_600


def job_of(space: str | Path = SEED_SPACE) -> Job:
    """The projected search as ``space`` ships it (hub-sized splits; 10% for validation)."""
    cfg = load_config(ROOT / space)
    lrs = cfg.teacher.learning_rate
    val = int(round(HUB_ROWS * cfg.data.val_fraction))
    s, t = cfg.search, cfg.train
    return Job(train_rows=HUB_ROWS - val, val_rows=val, test_rows=HUB_TEST_ROWS,
               classes=len(cfg.data.label_names or [0, 1, 2, 3]), batch=t.batch_size,
               num_samples=s.num_samples, epochs=t.epochs, grace_period=cfg.grace_period,
               reduction_factor=s.reduction_factor, promotion=s.promotion, eval_every=t.eval_every,
               cpus_per_trial=int(s.cpus_per_trial), max_concurrent=int(s.max_concurrent),
               teacher_epochs=cfg.teacher.epochs * (len(lrs) if isinstance(lrs, list) else 1),
               confirm_runs=2 * s.confirm.top_k * s.confirm.seeds)


def quickstart_facts() -> dict[str, Any]:
    """What the committed quickstart run measured (``results/example``): ASHA's share of its
    trial-epochs, the same rule's expectation for its config, a trial's median peak RSS."""
    import pandas as pd

    example = ROOT / "results" / "example"
    if not (example / "trials.csv").is_file():
        return {"asha_measured": None, "asha_expected": None, "trial_rss_mb": None}
    cfg = load_config(example / "config.yaml")
    t = pd.read_csv(example / "trials.csv")
    quick = replace(job_of(), num_samples=cfg.search.num_samples, epochs=cfg.train.epochs,
                    grace_period=cfg.grace_period, reduction_factor=cfg.search.reduction_factor,
                    promotion=cfg.search.promotion)
    expected = trial_epochs(asha_levels(quick)) / (quick.num_samples * quick.epochs)
    return {"asha_measured": float(t["progress"].sum() / (len(t) * cfg.train.epochs)),
            "asha_expected": expected, "trials": int(len(t)),
            "trial_rss_mb": float(pd.read_csv(example / "history.csv")["peak_rss_mb"].median())}


def node_facts() -> dict[str, Any]:
    return {"cpus": os.cpu_count() or 1,
            "ram_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9}


def project(result: dict[str, Any]) -> None:
    """Add the projection tables to ``result`` (measured figures + the seed space's config)."""
    result.setdefault("node", node_facts())
    quick = result["quickstart"] = quickstart_facts()
    job = job_of()
    e = estimates(result, job, Node(**result["node"]), quick["trial_rss_mb"])
    rows = cpu_rows(e)
    if quick["asha_measured"] is not None:
        rows[3][2] += (f"; the same rule expects {quick['asha_expected']:.2f} for the quickstart's "
                       f"{quick['trials']} trials, and its committed run (results/example) "
                       f"measured {quick['asha_measured']:.2f}")
    result["projection"] = rows
    result["projection_gpu"] = gpu_rows(job, float(load_config(ROOT / SEED_SPACE).search.gpus_per_trial))
    result["job"] = asdict(job)


def markdown(result: dict[str, Any]) -> str:
    sizes = [[s["rows"], s["tokens"], f"{s['trial_epoch_s']:.1f}", f"{s['teacher_logits_s']:.1f}",
              f"{s['token_ids_mb']:.2f}", f"{s['logits_mb']:.3f}", f"{s['hidden_mb_per_block']:.0f}",
              f"{s['student_weights_mb']:.0f}"] for s in result["sizes"]]
    steps = [[s["model"], s["what"], f"{s['batch']} x {s['length']}", f"{s['seconds_per_batch']:.2f}",
              f"{s['params_m']:.1f}"] for s in result["steps"]]
    return "\n".join([
        f"# kdtune cost at three data sizes ({result['date']}, {result['machine']})", "",
        md_table(["train rows", "tokens", "KD trial-epoch (s)", "teacher logits pass (s)",
                  "token ids (MB)", "logits (MB)", "hidden states / block (MB)",
                  "student weights (MB)"], sizes), "",
        md_table(["model (random init)", "step", "batch", "s / batch (1 thread)", "params (M)"], steps),
        "", "## Projection (not a measurement): the seed's job (`search_spaces/seed_report.yaml`) "
        "on CPUs like this one", "",
        md_table(["quantity", "projected", "from"], result["projection"]), "",
        "## What only a GPU measurement can tell (no GPU figure yet)", "",
        md_table(["quantity", "measured by", "for the seed's job"], result["projection_gpu"]), ""])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The three data sizes and the timed BERT-base / DistilBERT steps, one torch thread."""
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        teacher = timing_teacher(Path(tmp) / "teacher", args.space)
        sizes = [size_row(int(n), args.space, teacher) for n in args.sizes.split(",")]
    length = int(round(np.mean([s["mean_tokens"] for s in sizes]) * 1.15))  # group padding
    return {"date": dt.date.today().isoformat(),
            "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
            "sizes": sizes, "steps": step_rows(length, args.steps),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.scaling", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1200,2600,5300")
    p.add_argument("--space", default=str(ROOT / "search_spaces/alpha_temp.yaml"))
    p.add_argument("--steps", type=int, default=3, help="timed steps per model (median)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    p.add_argument("--render", metavar="JSON",
                   help="re-project and re-render a scaling.json without measuring again")
    args = p.parse_args(argv)
    result = json.loads(Path(args.render).read_text()) if args.render else measure(args)
    project(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=1))
    (out / "scaling.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
