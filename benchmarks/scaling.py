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
import os
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
from kdtune.params import TrainParams  # noqa: E402

FULL_ROWS, VAL_SHARE, BATCH, TEST_ROWS = 120_000, 0.1, 32, 7_600


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


#: Bytes per trainable parameter in a trial: fp32 weights, gradients and AdamW's two moments.
BYTES_PER_PARAM = 16


def seed_job(space: str = "search_spaces/seed_report.yaml") -> dict[str, Any]:
    """The seed report's job as ``seed_report.yaml`` ships it, and what the quickstart measured
    (ASHA's share of trial-epochs, a trial's peak RSS) in ``results/example``."""
    import pandas as pd

    cfg = load_config(ROOT / space)
    lrs = cfg.teacher.learning_rate
    job = {"teacher_runs": cfg.teacher.epochs * (len(lrs) if isinstance(lrs, list) else 1),
           "trials": cfg.search.num_samples, "epochs": cfg.train.epochs,
           "confirm_runs": 2 * cfg.search.confirm.top_k * cfg.search.confirm.seeds,
           "concurrent": cfg.search.max_concurrent, "asha_share": 1.0, "trial_rss_mb": None}
    example = ROOT / "results" / "example"
    if (example / "trials.csv").is_file():  # measured by the committed quickstart run
        t = pd.read_csv(example / "trials.csv")
        job["asha_share"] = float(t["progress"].sum() / (len(t) * cfg.train.epochs))
        job["trial_rss_mb"] = float(pd.read_csv(example / "history.csv")["peak_rss_mb"].median())
    return job


def node_ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def estimates(sizes: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's full job, quantity by quantity, from the measured costs (a projection)."""
    job = seed_job()
    per_token = np.polyfit([s["tokens"] for s in sizes], [s["trial_epoch_s"] for s in sizes], 1)
    mean_tokens = float(np.mean([s["mean_tokens"] for s in sizes]))
    train_rows = int(FULL_ROWS * (1 - VAL_SHARE))
    step = {(s["model"], s["what"].split(" ")[0]): s for s in steps}
    batch_h = {k: v["seconds_per_batch"] / 3600 for k, v in step.items()}
    batches = train_rows / BATCH
    slice_params = sizes[0]["student_weights_mb"] * 1e6 / 4  # fp32 weights
    extra_params = step[("distilbert-base", "KD")]["params_m"] * 1e6 - slice_params
    ram = node_ram_gb()
    return {
        **job, "train_rows": train_rows, "mean_tokens": mean_tokens,
        "slice_epoch_h": float(np.polyval(per_token, train_rows * mean_tokens)) / 3600,
        "student_epoch_h": batches * batch_h[("distilbert-base", "KD")],
        "teacher_h": job["teacher_runs"] * batches * batch_h[("bert-base", "train")],
        "logits_h": (FULL_ROWS + TEST_ROWS) / BATCH * batch_h[("bert-base", "inference")],
        "trial_epochs": (job["trials"] * job["epochs"] * job["asha_share"]
                         + job["confirm_runs"] * job["epochs"]),
        "store_mb": (FULL_ROWS * mean_tokens * 4 + FULL_ROWS * 16) / 1e6,
        "hidden_gb": train_rows * mean_tokens * 768 * 2 / 1e9,  # fp16, BERT-base width
        # Ray's default object store takes 30% of the node's memory
        "ram_gb": ram, "store_gb": 0.3 * ram, "cpus": os.cpu_count() or 1,
        "trial_gb": None if job["trial_rss_mb"] is None else (
            job["trial_rss_mb"] / 1e3 + extra_params * BYTES_PER_PARAM / 1e9),
    }


def project(sizes: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of (quantity, projected, from what) for the seed's full job."""
    e = estimates(sizes, steps)
    thread_h = e["trial_epochs"] * e["student_epoch_h"]
    trial = "unknown (no results/example)" if e["trial_gb"] is None else f"{e['trial_gb']:.1f} GB"
    return [
        ["training rows", f"{e['train_rows']:,}", f"AG News {FULL_ROWS:,} x {1 - VAL_SHARE:g}; mean "
         f"{e['mean_tokens']:.1f} tokens per row (measured on the shared file)"],
        ["MiniLM-slice KD trial-epoch", f"{e['slice_epoch_h']:.2f} h",
         "linear fit of the three measured sizes (time per token)"],
        ["DistilBERT KD trial-epoch", f"{e['student_epoch_h']:.1f} h", "measured DistilBERT step x batches"],
        ["BERT-base teacher fine-tuning", f"{e['teacher_h']:.0f} h",
         f"{e['teacher_runs']} epochs in all (seed_report.yaml: epochs x learning rates)"],
        ["BERT-base logits pass", f"{e['logits_h']:.1f} h",
         f"every row of train, validation and the {TEST_ROWS:,}-row test split"],
        ["search + confirm", f"{e['trial_epochs']:.0f} trial-epochs = {thread_h:.0f} thread-hours; "
         f"{thread_h / e['concurrent']:.0f} h on {e['concurrent']} cores, "
         f"{thread_h / e['cpus']:.0f} h on this node's {e['cpus']}",
         f"{e['trials']} trials x {e['epochs']} epochs x ASHA's share {e['asha_share']:.2f} (the "
         f"quickstart's) + {e['confirm_runs']} confirm runs"],
        ["object store, logit KD", f"{e['store_mb']:.0f} MB",
         "int32 token ids + fp32 logits (4 classes), shared zero-copy by every trial"],
        ["object store, feature KD", f"{e['hidden_gb']:.1f} GB per teacher block",
         f"fp16 hidden states, width 768; Ray's default store on this {e['ram_gb']:.0f} GB node is "
         f"{e['store_gb']:.1f} GB"],
        ["RAM per trial", trial,
         f"the quickstart trials' median peak RSS + DistilBERT's extra parameters x {BYTES_PER_PARAM} B"],
        ["runs out first", runs_out_first(e), "from the rows above"],
    ]


def runs_out_first(e: dict[str, Any]) -> str:
    """Which resource a node like this one exhausts first on the seed's job."""
    trial_gb, concurrent, ram_gb = e["trial_gb"], e["concurrent"], e["ram_gb"]
    hidden_gb, store_gb = e["hidden_gb"], e["store_gb"]
    days = (e["teacher_h"] + e["logits_h"] + e["trial_epochs"] * e["student_epoch_h"] / e["cpus"]) / 24
    parts = [f"time: {days:.0f} days on this {e['cpus']}-core node (teacher, logits, search; a GPU is "
             "the way, and no GPU figure exists yet)"]
    if trial_gb is not None:
        fits = int((ram_gb - store_gb) // trial_gb)
        parts.append(f"memory: {concurrent} concurrent trials need ~{concurrent * trial_gb:.0f} GB; "
                     f"beside the object store, this node's {ram_gb:.0f} GB holds {min(fits, concurrent)}")
    parts.append(f"feature KD: one cached block ({hidden_gb:.1f} GB) "
                 + ("exceeds" if hidden_gb > store_gb else "fits")
                 + f" the default object store ({store_gb:.1f} GB); above train.feature_cache_max_mb "
                   f"(default {TrainParams().feature_cache_max_mb / 1e3:.1f} GB) kdtune runs the teacher "
                   "online in each trial instead of caching")
    return "; ".join(parts)


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
        "on this CPU, one thread per trial", "",
        md_table(["quantity", "projected", "from"], result["projection"]), ""])


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
    result["projection"] = project(result["sizes"], result["steps"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=1))
    (out / "scaling.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
