"""The teacher stage: fine-tune (or load) the teacher once, evaluate it, cache its logits.

The cache lives in ``<cache_dir>/teachers/<key>/`` where the key hashes the teacher's base
weights, its fine-tuning settings, the data (every split's texts and labels), the tokenizer's
vocabulary and ``max_length``. A second search with the same teacher and data reuses it. Logits
are stored before any temperature is applied (T lives in the loss), so one cache serves every T.
A ``manifest.json`` records each file's sha256 and each array's shape; a cache that does not match
it (truncated, edited) is rebuilt with a warning, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtune.config import ExperimentConfig, TeacherConfig
from kdtune.data import Encoded
from kdtune.models import count_parameters, load_classifier, load_finetuned, resolve_model
from kdtune.trainer import (
    Trainer,
    TrainParams,
    classification_metrics,
    predict_logits,
    seed_everything,
)

log = logging.getLogger(__name__)

CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class TeacherArtifacts:
    """What the teacher stage leaves for the search and the report."""

    key: str
    dir: Path
    logits: dict[str, np.ndarray]  # split -> float32 [n, C], before temperature
    metrics: dict[str, Any]  # "val"/"test" classification metrics, params, timings
    cache_hit: bool

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _weights_fingerprint(name: str) -> str:
    """Hash of the weight files of a local folder; for a hub name, of the resolved snapshot."""
    path = Path(resolve_model(name, "teacher.model"))
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(name, allow_patterns=["*.safetensors", "*.bin", "*.json"]))
    files = sorted(p for p in path.iterdir()
                   if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    payload = json.dumps([type(tokenizer).__name__, tokenizer.model_max_length, vocab])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_key(cfg: ExperimentConfig, data_fingerprint: str, tokenizer,
              teacher: TeacherConfig | None = None) -> str:
    t = teacher or cfg.teacher
    source = t.finetuned or t.model
    parts = {
        "version": CACHE_VERSION,
        "weights": _weights_fingerprint(source),
        "finetune": None if t.finetuned else {
            k: getattr(t, k) for k in ("epochs", "learning_rate", "batch_size", "weight_decay",
                                       "warmup_fraction", "seed")},
        "data": data_fingerprint,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": cfg.data.max_length,
        "labels": cfg.data.label_names,  # cached metrics name the classes
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _manifest_ok(folder: Path) -> str | None:
    """None if the cache folder matches its manifest, else the reason it does not."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return "manifest.json is missing"
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return "manifest.json is not valid JSON"
    for rel, expected in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{rel} has {path.stat().st_size} bytes, the manifest says {expected['bytes']}"
        if file_sha256(path) != expected["sha256"]:
            return f"{rel} does not match its sha256"
    for split, shape in manifest.get("shapes", {}).items():
        try:
            arr = np.load(folder / f"logits_{split}.npy", mmap_mode="r")
        except (ValueError, OSError) as exc:
            return f"logits_{split}.npy unreadable ({exc})"
        if list(arr.shape) != shape:
            return f"logits_{split}.npy has shape {list(arr.shape)}, expected {shape}"
    return None


def _write_manifest(folder: Path, key: str, shapes: dict[str, list[int]]) -> None:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            files[str(path.relative_to(folder))] = {"bytes": path.stat().st_size,
                                                    "sha256": file_sha256(path)}
    (folder / "manifest.json").write_text(json.dumps(
        {"key": key, "version": CACHE_VERSION, "files": files, "shapes": shapes}, indent=1))


def load_cached(folder: Path, key: str) -> TeacherArtifacts | None:
    """The cached teacher at ``folder``, or None (with a warning) if it is absent or damaged."""
    if not folder.exists():
        return None
    problem = _manifest_ok(folder)
    if problem is not None:
        log.warning("teacher cache %s is damaged (%s); rebuilding it", folder, problem)
        return None
    logits = {s: np.load(folder / f"logits_{s}.npy") for s in SPLITS}
    metrics = json.loads((folder / "metrics.json").read_text())
    return TeacherArtifacts(key, folder, logits, metrics, cache_hit=True)


def fine_tune(cfg: ExperimentConfig, encoded: dict[str, Encoded], label_names: list[str],
              device: torch.device | None = None, teacher: TeacherConfig | None = None
              ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune the teacher base model with cross-entropy (or load ``teacher.finetuned``)."""
    t = teacher or cfg.teacher
    if t.finetuned:
        return load_finetuned(t.finetuned, label_names, "teacher.finetuned"), {"fine_tuned": False}
    seed_everything(t.seed)
    model = load_classifier(t.model, label_names, field_name="teacher.model")
    params = TrainParams(epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                         alpha=1.0, weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction,
                         seed=t.seed, eval_batch_size=cfg.train.eval_batch_size)
    trainer = Trainer(model, encoded["train"], encoded["val"], params, label_names, device=device,
                      progress=True, progress_desc="teacher")
    t0 = time.perf_counter()
    history = trainer.fit()
    return trainer.model, {"fine_tuned": True, "seconds": time.perf_counter() - t0,
                           "history": [h.as_dict() for h in history]}


def prepare_teacher(cfg: ExperimentConfig, encoded: dict[str, Encoded], label_names: list[str],
                    tokenizer, data_fingerprint: str, device: torch.device | None = None,
                    teacher: TeacherConfig | None = None) -> TeacherArtifacts:
    """Return the cached teacher (``cfg.teacher`` or ``teacher``), building the cache if needed."""
    key = cache_key(cfg, data_fingerprint, tokenizer, teacher)
    folder = Path(cfg.cache_dir) / "teachers" / key
    cached = load_cached(folder, key)
    if cached is not None:
        log.info("teacher cache hit: %s (fine-tuned teacher and logits reused)", folder)
        return cached
    log.info("teacher cache miss: building %s", folder)
    model, info = fine_tune(cfg, encoded, label_names, device, teacher)
    logits, metrics = {}, {"key": key, "params": count_parameters(model), **info}
    for split in SPLITS:
        logits[split] = predict_logits(model, encoded[split], cfg.train.eval_batch_size)
        if split != "train":
            metrics[split] = classification_metrics(encoded[split].labels,
                                                    logits[split].argmax(-1), label_names)
            log.info("teacher %s accuracy %.4f, macro-F1 %.4f", split,
                     metrics[split]["accuracy"], metrics[split]["macro_f1"])
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        for split, arr in logits.items():
            np.save(tmp / f"logits_{split}.npy", arr)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        _write_manifest(tmp, key, {s: list(a.shape) for s, a in logits.items()})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)  # atomic: a crash never leaves a half-written cache in place
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return TeacherArtifacts(key, folder, logits, metrics, cache_hit=False)


def hidden_states(artifacts: TeacherArtifacts, data: Encoded, layers: list[int],
                  batch_size: int = 64) -> dict[int, np.ndarray]:
    """The teacher's token hidden states after the given blocks, cached beside its logits.

    Stored ragged like the token ids (``[total_tokens, hidden]`` float16 per block, rows
    aligned with ``data.offsets``), so a student with the same tokenizer gathers its targets
    per batch without padding waste. Block ``i`` means ``hidden_states[i + 1]`` (0 = embeddings).
    """
    folder = artifacts.dir / "hidden"
    wanted = {i: folder / f"train_block{i}.npy" for i in layers}
    out: dict[int, np.ndarray] = {}
    for i, path in wanted.items():
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            continue
        if arr.shape[0] == int(data.offsets[-1]):
            out[i] = arr
    missing = [i for i in layers if i not in out]
    if not missing:
        return out
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(artifacts.model_dir)
    model.eval()
    width = model.config.hidden_size
    flat = {i: np.zeros((int(data.offsets[-1]), width), dtype=np.float16) for i in missing}
    from kdtune.data import batch_indices

    with torch.inference_mode():
        for index in batch_indices(data.lengths, batch_size, shuffle=False):
            states = model(**data.collate(index), output_hidden_states=True).hidden_states
            for i in missing:
                h = states[i + 1].float().numpy()
                for row, j in enumerate(index):
                    n = data.lengths[j]
                    flat[i][data.offsets[j]:data.offsets[j] + n] = h[row, :n]
    folder.mkdir(exist_ok=True)
    for i in missing:
        tmp = folder / f".train_block{i}.{os.getpid()}.npy"
        np.save(tmp, flat[i])
        os.replace(tmp, wanted[i])  # atomic; a damaged file fails the shape check and is rebuilt
        out[i] = np.load(wanted[i], mmap_mode="r")
        log.info("cached teacher hidden states of block %d: %.0f MB", i, flat[i].nbytes / 1e6)
    return out
