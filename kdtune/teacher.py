"""The teacher stage: fine-tune (or load) the teacher once, evaluate it, cache its logits.

Fine-tuning keeps the teacher's best validation epoch, and with a list of learning rates
(``teacher.learning_rate: [..]``) fine-tunes once per rate and keeps the best on validation
macro-F1, recording the choice. Everything runs on the best device available to the stage
(bf16 autocast and large inference batches on CUDA); where the driver has no GPU but the Ray
cluster does, :mod:`kdtune.cluster` runs :func:`build_teacher` as a task on a GPU node. The
cache itself is :mod:`kdtune.teacher_cache`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtune.batches import Encoded, batch_indices, row_positions
from kdtune.config import ExperimentConfig, TeacherConfig
from kdtune.devices import autocast, best_device, inference_batch_size, precision
from kdtune.logs import progress_bar
from kdtune.metrics import classification_metrics
from kdtune.models import ModelBlob, count_parameters, load_classifier, load_finetuned
from kdtune.params import TrainParams
from kdtune.record import record as R
from kdtune.teacher_cache import (
    MANIFEST,
    SPLITS,
    cache_key,
    cache_lock,
    manifest_problem,
    manifest_shapes,
    write_manifest,
)
from kdtune.trainer import KeepBest, Trainer, predict_logits, seed_everything

log = logging.getLogger(__name__)


@dataclass
class TeacherArtifacts:
    """What the teacher stage leaves for the search and the report."""

    key: str
    dir: Path
    logits: dict[str, np.ndarray]  # split -> float32 [n, C], before temperature
    metrics: dict[str, Any]  # "val"/"test" classification metrics, params, timings, choice
    cache_hit: bool

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"


def load_cached(folder: Path, key: str) -> TeacherArtifacts | None:
    """The cached teacher at ``folder``, or None (with a warning) if it is absent or damaged."""
    if not folder.exists():
        return None
    problem = manifest_problem(folder)
    if problem is not None:
        log.warning("teacher cache %s is damaged (%s); rebuilding it", folder, problem)
        return None
    logits = {s: np.load(folder / f"logits_{s}.npy") for s in SPLITS}
    metrics = json.loads((folder / "metrics.json").read_text())
    return TeacherArtifacts(key, folder, logits, metrics, cache_hit=True)


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray | None:
    """``balanced``: each class weighted ``n / (n_classes * n_class)``, so a class of 2% of the
    rows weighs as much in the loss as any other. None for ``none``, and where every weight is 1
    (balanced data): plain cross-entropy then, exactly as before the option existed, and the
    teacher's cache key does not change."""
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 1.0)
    return None if np.allclose(weights, 1.0) else weights.astype(np.float32)


def _fine_tune_once(cfg: ExperimentConfig, t: TeacherConfig, lr: float, encoded: dict[str, Encoded],
                    label_names: list[str], device: torch.device) -> tuple[torch.nn.Module, dict]:
    """One fine-tune at ``lr``; the weights of its best validation epoch are kept."""
    seed_everything(t.seed)
    model = load_classifier(t.model, label_names, field_name="teacher.model")
    params = TrainParams(epochs=t.epochs, batch_size=t.batch_size, learning_rate=lr, alpha=1.0,
                         weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction,
                         seed=t.seed, eval_batch_size=cfg.train.eval_batch_size,
                         precision=cfg.train.precision,
                         # epoch ends only: no ASHA steers a teacher, and only whole-split
                         # scores pick its epoch (subset rungs cost ~10% of each epoch for
                         # nothing; evaluation draws no random numbers, so the weights are
                         # the same)
                         eval_every=1.0)
    best = KeepBest("val_macro_f1", "max")  # whole-split evaluations only
    trainer = Trainer(model, encoded["train"], encoded["val"], params, label_names, device=device,
                      callbacks=[best], progress=True, progress_desc="teacher",
                      class_weights=class_weights(encoded["train"].labels, len(label_names),
                                                  t.class_weight))
    t0 = time.perf_counter()
    history = trainer.fit()
    trainer.model.load_state_dict(best.state)
    return trainer.model, {"learning_rate": lr, "best_epoch": best.epoch,
                           "val_macro_f1": best.score, "seconds": time.perf_counter() - t0,
                           "history": [h.as_dict() for h in history]}


def fine_tune(cfg: ExperimentConfig, encoded: dict[str, Encoded], label_names: list[str],
              device: torch.device, teacher: TeacherConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune with cross-entropy (best of ``teacher.learning_rates``), or load a fine-tuned one."""
    if teacher.finetuned:
        model = load_finetuned(teacher.finetuned, label_names, "teacher.finetuned")
        return model.to(device), {"fine_tuned": False}
    tried = [_fine_tune_once(cfg, teacher, lr, encoded, label_names, device)
             for lr in teacher.learning_rates]
    best_model, chosen = max(tried, key=lambda mi: mi[1]["val_macro_f1"])
    runs = [info for _, info in tried]
    return best_model, {"fine_tuned": True, "seconds": sum(r["seconds"] for r in runs),
                        "learning_rate": chosen["learning_rate"], "best_epoch": chosen["best_epoch"],
                        "history": chosen["history"], "learning_rate_trials": [
                            {k: r[k] for k in ("learning_rate", "best_epoch", "val_macro_f1",
                                               "seconds")} for r in runs]}


def build_teacher(cfg: ExperimentConfig, encoded: dict[str, Encoded], label_names: list[str],
                  teacher: TeacherConfig, device: torch.device
                  ) -> tuple[ModelBlob, dict[str, np.ndarray], dict[str, Any]]:
    """Fine-tune (or load) and evaluate one teacher: (weights, logits per split, metrics)."""
    model, info = fine_tune(cfg, encoded, label_names, device, teacher)
    logits, metrics = {}, {"params": count_parameters(model), "device": device.type,
                           "precision": precision(device, cfg.train.precision), **info}
    for split in SPLITS:
        logits[split] = predict_logits(model, encoded[split], cfg.train.eval_batch_size, device,
                                       progress=f"teacher logits ({split})",
                                       precision=cfg.train.precision)
        if split != "train":
            metrics[split] = classification_metrics(encoded[split].labels,
                                                    logits[split].argmax(-1), label_names)
            log.info("teacher %s accuracy %.4f, macro-F1 %.4f", split,
                     metrics[split]["accuracy"], metrics[split]["macro_f1"])
    return ModelBlob.from_model(model.cpu(), str(teacher.finetuned or teacher.model)), logits, metrics


Builder = Callable[..., tuple[ModelBlob, dict[str, np.ndarray], dict[str, Any]]]


def prepare_teacher(cfg: ExperimentConfig, encoded: dict[str, Encoded], label_names: list[str],
                    tokenizer, data_fingerprint: str, teacher: TeacherConfig | None = None,
                    device: torch.device | None = None, builder: Builder | None = None,
                    record: Any = None) -> TeacherArtifacts:
    """The experiment's own teacher when ``record`` keeps one (a resume or a retrain anywhere
    uses exactly that teacher, checked by sha256), else the cached one, building the cache if
    needed (``builder`` may run it elsewhere)."""
    teacher = teacher or cfg.teacher
    device = device or best_device()
    weights = None if teacher.finetuned else class_weights(
        encoded["train"].labels, len(label_names), teacher.class_weight)
    key = cache_key(cfg, data_fingerprint, tokenizer, teacher, weights)
    kept = kept_teacher(record, key, Path(cfg.cache_dir) / "teachers")
    if kept is not None:
        return kept
    folder = Path(cfg.cache_dir) / "teachers" / key
    with cache_lock(folder):  # a second search on this cache waits, then reuses this teacher
        cached = load_cached(folder, key)
        if cached is not None:
            log.info("teacher cache hit: %s (fine-tuned teacher and logits reused)", folder)
            return cached
        log.info("teacher cache miss: building %s on %s", folder, device)
        blob, logits, metrics = (builder or build_teacher)(cfg, encoded, label_names, teacher,
                                                           device)
        metrics["key"] = key
        _write_cache(folder, key, blob.build(), tokenizer, logits, metrics)
    return TeacherArtifacts(key, folder, logits, metrics, cache_hit=False)


def kept_teacher(record: Any, key: str, cache_root: Path) -> TeacherArtifacts | None:
    """The teacher ``key`` the experiment keeps (``teachers/<key>/``), read from its folder or
    downloaded from object storage into the cache; None when the experiment keeps none. A
    copy that fails its sha256 manifest is an error: distilling from another teacher than the
    trials did would be silent and wrong."""
    from kdtune.errors import ConfigError

    rel = f"{R.TEACHERS}/{key}"
    if record is None or not record.store.is_file(f"{rel}/{MANIFEST}"):
        return None
    folder = record.store.local(rel) if not record.store.remote else cache_root / key
    if record.store.remote and manifest_problem(folder) is not None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=_made(cache_root)))
        record.store.download(rel, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    artifacts = load_cached(folder, key)
    if artifacts is None:
        raise ConfigError("experiment", f"its teacher {rel} fails its sha256 manifest; restore "
                          "the experiment's copy (it is what every trial distilled from)")
    log.info("teacher: the experiment's own copy %s (checked against its manifest)", rel)
    return artifacts


def keep_teacher(record: Any, artifacts: TeacherArtifacts) -> None:
    """Copy the teacher (model, logits, hidden states, manifest) into the experiment once, so
    the experiment carries what its trials distilled from."""
    rel = f"{R.TEACHERS}/{artifacts.key}"
    if record.store.is_file(f"{rel}/{MANIFEST}"):
        return
    record.store.upload(artifacts.dir, rel)
    log.info("teacher kept with the experiment: %s", rel)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_cache(folder: Path, key: str, model: torch.nn.Module, tokenizer,
                 logits: dict[str, np.ndarray], metrics: dict[str, Any]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        for split, arr in logits.items():
            np.save(tmp / f"logits_{split}.npy", arr)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        write_manifest(tmp, key, {s: list(a.shape) for s, a in logits.items()})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)  # atomic: a crash never leaves a half-written cache in place
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@torch.inference_mode()
def compute_hidden_states(model: torch.nn.Module, data: Encoded, blocks: list[int],
                          batch_size: int, device: torch.device,
                          precision: str = "auto") -> dict[int, np.ndarray]:
    """The model's token hidden states after ``blocks``, ragged like ``data`` (float16)."""
    from kdtune.batches import DeviceSplit

    model = model.to(device).eval()
    split = DeviceSplit(data, device)
    width = model.config.hidden_size
    flat = {i: np.zeros((data.tokens, width), dtype=np.float16) for i in blocks}
    with progress_bar(len(data.lengths), "teacher hidden states", "row") as bar:
        for index in batch_indices(data.lengths, inference_batch_size(device, batch_size),
                                   shuffle=False):
            batch = split.batch(index)
            with autocast(device, precision):
                states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].bool()
            positions = row_positions(data.offsets[:-1][index], data.lengths[index])
            for i in blocks:  # rows of the mask in row-major order are the tokens in data order
                flat[i][positions] = states[i + 1][mask].to(torch.float16).cpu().numpy()
            if bar is not None:
                bar.update(len(index))
    return flat


def hidden_states(artifacts: TeacherArtifacts, data: Encoded, layers: list[int],
                  batch_size: int = 64, device: torch.device | None = None,
                  precision: str = "auto") -> dict[int, np.ndarray]:
    """The teacher's hidden states after the given blocks, cached beside its logits.

    Stored ragged like the token ids (``[total_tokens, hidden]`` float16 per block, rows
    aligned with ``data.offsets``) and recorded in the cache's sha256 manifest. Returned as plain
    in-memory arrays (not memory maps), so Ray's object store shares them zero-copy.
    Block ``i`` means ``hidden_states[i + 1]`` (0 = embeddings).
    """
    folder = artifacts.dir / "hidden"
    wanted = {i: folder / f"train_block{i}.npy" for i in layers}
    out = {i: np.load(p) for i, p in wanted.items() if p.is_file()}
    out = {i: a for i, a in out.items() if a.shape[0] == data.tokens}
    missing = [i for i in layers if i not in out]
    if not missing:
        return out
    computed = compute_hidden_states(_cached_model(artifacts), data, missing, batch_size,
                                     device or best_device(), precision)
    _add_arrays(artifacts, {wanted[i]: arr for i, arr in computed.items()})
    for i, arr in computed.items():
        out[i] = arr
        log.info("cached teacher hidden states of block %d: %.0f MB", i, arr.nbytes / 1e6)
    return out


def _cached_model(artifacts: TeacherArtifacts) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(artifacts.model_dir)


def _add_arrays(artifacts: TeacherArtifacts, arrays: dict[Path, np.ndarray]) -> None:
    """Write each array into the cached teacher's folder atomically, then record them in the
    sha256 manifest once (hidden states, transfer-set logits: computed after the teacher)."""
    for path, array in arrays.items():
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / f".{path.stem}.{os.getpid()}.npy"
        np.save(tmp, array)
        os.replace(tmp, path)
    write_manifest(artifacts.dir, artifacts.key, manifest_shapes(artifacts.dir))


def transfer_logits(artifacts: TeacherArtifacts, data: Encoded, fingerprint: str,
                    batch_size: int = 128, device: torch.device | None = None,
                    precision: str = "auto") -> np.ndarray:
    """The teacher's logits on the transfer set ``fingerprint``, computed once and cached
    beside its other logits (``transfer/logits_<fingerprint>.npy``, in the sha256 manifest), so
    every trial, resume and retrain distils the same targets."""
    path = artifacts.dir / "transfer" / f"logits_{fingerprint}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(data):
            return cached
    device = device or best_device()
    logits = predict_logits(_cached_model(artifacts).to(device), data, batch_size, device,
                            progress="teacher logits (transfer)", precision=precision)
    _add_arrays(artifacts, {path: logits})
    log.info("cached teacher logits on %d transfer rows (%s)", len(data), path.name)
    return logits
