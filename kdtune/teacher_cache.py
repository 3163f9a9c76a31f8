"""The teacher cache on disk: its key, its sha256 manifest, loading it safely.

The cache lives in ``<cache_dir>/teachers/<key>/`` where the key hashes the teacher's base
weights, its fine-tuning settings, the data (every split's texts and labels), the tokenizer's
vocabulary, ``max_length``, the label names and the device kind and precision the logits were
computed at (bf16 logits on a GPU differ from fp32 ones on a CPU in the last digits). Logits are
stored before any temperature is applied (T lives in the loss), so one cache serves every T.

``manifest.json`` records every file's sha256 and size, hidden-state files and the logits on
transfer sets (``transfer/logits_<fingerprint>.npy``) included, and each
logits array's shape; a cache that does not match it (truncated, edited, even at the same size)
is rebuilt with a warning, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from kdtune.config import ExperimentConfig, TeacherConfig
from kdtune.errors import ConfigError
from kdtune.models import resolve_model

log = logging.getLogger(__name__)

CACHE_VERSION = 4  # 3: best teacher epoch on whole-split scores; 4: key without device / precision
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(name: str, field: str = "teacher.model") -> str:
    """Hash of the weight files of a local folder; for a hub name, of the resolved snapshot."""
    path = Path(resolve_model(name, field))
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(name, allow_patterns=["*.safetensors", "*.bin", "*.json"]))
        except Exception as exc:  # offline, unknown repo, no token: one line, not a traceback
            first = " ".join(str(exc).split())[:200]
            raise ConfigError(field, f"could not fetch {name!r} from the Hugging Face hub "
                              f"({type(exc).__name__}: {first}); give a local save_pretrained "
                              "folder or check the id and the network") from None
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


def cache_key(cfg: ExperimentConfig, data_fingerprint: str, tokenizer, teacher: TeacherConfig,
              class_weights: Any = None) -> str:
    """What determines the teacher: weights, fine-tuning values, data, tokenizer, labels, and
    the class weights of its loss when any is not 1 (``teacher.class_weight`` on imbalanced
    data). The device and precision it ran on are recorded in its metrics, not part of the
    lookup: the same teacher is found again whatever machine asks."""
    source = teacher.finetuned or teacher.model
    parts = {
        "version": CACHE_VERSION,
        "weights": weights_fingerprint(source, "teacher.finetuned" if teacher.finetuned
                                       else "teacher.model"),
        "finetune": None if teacher.finetuned else {
            k: getattr(teacher, k) for k in ("epochs", "learning_rate", "batch_size",
                                             "weight_decay", "warmup_fraction", "seed")},
        "data": data_fingerprint,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": cfg.data.max_length,
        "labels": cfg.data.label_names,  # cached metrics name the classes
    }
    if class_weights is not None:  # absent when uniform: balanced data keeps its old key
        parts["class_weights"] = [round(float(w), 6) for w in class_weights]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def manifest_problem(folder: Path) -> str | None:
    """None if the cache folder matches its manifest, else the reason it does not."""
    path = folder / MANIFEST
    if not path.is_file():
        return f"{MANIFEST} is missing"
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return f"{MANIFEST} is not valid JSON"
    for rel, expected in manifest.get("files", {}).items():
        p = folder / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != expected["bytes"]:
            return f"{rel} has {p.stat().st_size} bytes, the manifest says {expected['bytes']}"
        if file_sha256(p) != expected["sha256"]:
            return f"{rel} does not match its sha256"
    for split, shape in manifest.get("shapes", {}).items():
        try:
            arr = np.load(folder / f"logits_{split}.npy", mmap_mode="r")
        except (ValueError, OSError) as exc:
            return f"logits_{split}.npy unreadable ({exc})"
        if list(arr.shape) != shape:
            return f"logits_{split}.npy has shape {list(arr.shape)}, expected {shape}"
    return None


def cache_lock(folder: Path) -> Any:
    """A file lock beside a cache folder. Two searches sharing a cache (two terminals, two test
    workers) would otherwise both build the same teacher, and the second would replace the
    folder while the first reads it; with the lock the second waits and then finds a hit."""
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"))


def write_manifest(folder: Path, key: str, shapes: dict[str, list[int]]) -> None:
    """Record every file of the cache (hidden states too) with its size and sha256."""
    files: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.startswith("."):
            files[str(path.relative_to(folder))] = {"bytes": path.stat().st_size,
                                                    "sha256": file_sha256(path)}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"key": key, "version": CACHE_VERSION, "files": files,
                               "shapes": shapes}, indent=1))
    tmp.replace(folder / MANIFEST)


def manifest_shapes(folder: Path) -> dict[str, list[int]]:
    return json.loads((folder / MANIFEST).read_text()).get("shapes", {})
