"""Evaluation and export of the chosen students (the torch side of the results stage).

A trial's best checkpoint (ranked on full-validation rungs) is loaded into the student its
hparams describe, scored on the validation and the held-out test split on the driver's best
device, and exported with ``save_pretrained`` into the record's ``models/<name>/``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from kdtune.batches import Encoded
from kdtune.metrics import classification_metrics
from kdtune.models import count_parameters
from kdtune.params import Trial
from kdtune.recipe import TrialData, build_model
from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.trainer import CHECKPOINT_STATE as STATE
from kdtune.trainer import CHECKPOINT_WEIGHTS as WEIGHTS
from kdtune.trainer import predict_logits

log = logging.getLogger(__name__)

TRIAL_MARK = "kdtune_trial.json"  # in an exported model folder: which trial it came from


def evaluate_model(model: torch.nn.Module, encoded: dict[str, Encoded], label_names: list[str],
                   batch_size: int, device: torch.device, precision: str = "auto") -> dict[str, Any]:
    """Validation and test metrics (with predictions) of ``model``."""
    out: dict[str, Any] = {"params": count_parameters(model)}
    for split in ("val", "test"):
        preds = predict_logits(model.to(device), encoded[split], batch_size, device,
                               precision=precision).argmax(-1)
        out[split] = classification_metrics(encoded[split].labels, preds, label_names)
        out[split]["predictions"] = preds.tolist()
    return out


def best_checkpoint(res: Any) -> Any:
    """The trial's checkpoint of its best full-validation rung, or None (none kept).

    Ranked on the scores the checkpoints carry themselves, and on Ray's registered ones for
    checkpoints written before they carried one: Ray's saved state can miss a trial's last
    checkpoint (a kill in the seconds after the trial ended), its folder cannot. One listing
    of the trial's folder says which checkpoints are still there (the results stage prunes
    them).
    """
    present = _checkpoint_folders(res)
    scores = {}
    for c, m in res.best_checkpoints or []:
        name = c.path.rstrip("/").rsplit("/", 1)[-1]
        if name in present and not m.get("diverged"):
            scores[name] = (c, m.get(S.CKPT_SCORE))
    for name, (checkpoint, score) in present.items():
        if score is not None:
            scores[name] = (checkpoint, score)
    ranked = [(c, v) for c, v in scores.values() if v is not None and v > S.WORST_SCORE]
    return max(ranked, key=lambda cv: cv[1])[0] if ranked else None


def _checkpoint_folders(res: Any) -> dict[str, tuple[Any, float | None]]:
    """Folder name -> (checkpoint, the score it was saved with, None for an older one) for
    each checkpoint folder of the trial."""
    from pyarrow import fs
    from ray.tune import Checkpoint

    filesystem = getattr(res, "filesystem", None) or fs.LocalFileSystem()
    out = {}
    for info in filesystem.get_file_info(fs.FileSelector(str(res.path), allow_not_found=True)):
        if info.type != fs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        try:
            with filesystem.open_input_stream(f"{info.path}/{STATE}") as f:
                score = json.loads(f.read()).get(S.CKPT_SCORE)
        except (OSError, ValueError):
            continue  # a checkpoint half-written by a killed trial: not a candidate
        out[info.base_name] = (Checkpoint(info.path, filesystem=filesystem),
                               None if score is None else float(score))
    return out


def load_trial_model(hparams: dict[str, Any], data: TrialData, checkpoint: Any) -> torch.nn.Module:
    """The student of ``hparams`` with the checkpoint's weights (strictly loaded)."""
    model = build_model(data, Trial.of(data.base, hparams).values)
    with checkpoint.as_directory() as folder:
        state = load_file(str(Path(folder) / WEIGHTS))
    model.load_state_dict({k[len("model."):]: v for k, v in state.items()
                           if k.startswith("model.")}, strict=True)
    return model


def exported_trial(record: Record, name: str) -> str | None:
    """The trial id an exported model folder came from (None when there is none)."""
    mark = record.read_json(f"{R.MODELS}/{name}/{TRIAL_MARK}")
    return (mark or {}).get(S.TRIAL_ID)


def load_exported(record: Record, name: str) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    with tempfile.TemporaryDirectory() as tmp:
        folder = record.store.download(f"{R.MODELS}/{name}", Path(tmp) / name) \
            if record.store.remote else record.store.local(f"{R.MODELS}/{name}")
        return AutoModelForSequenceClassification.from_pretrained(folder)


def export_model(record: Record, rel: str, model: torch.nn.Module, tokenizer, trial_id: str | None,
                 card: Any = None) -> None:
    """``save_pretrained`` model + tokenizer (+ a model card) into the record's ``rel`` folder,
    swapped in whole (never half a model). Record files name it by ``rel``, never by its
    absolute path or URI: the record moves whole."""
    from kdtune.modelcard import write_card

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        model.to("cpu").save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / TRIAL_MARK).write_text(json.dumps({S.TRIAL_ID: trial_id}) + "\n")
        if card is not None:
            write_card(folder, card)
        if record.store.remote:
            record.store.delete(rel)
            record.store.upload(folder, rel)
        else:
            target = record.store.local(rel)
            staged = target.with_name(f".{target.name}.tmp")
            shutil.rmtree(staged, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, staged)
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)


def prune_checkpoints(results: list[Any]) -> int:
    """Delete every trial checkpoint (the chosen students are exported); returns bytes freed."""
    from pyarrow import fs

    freed = 0
    for res in results:
        filesystem = getattr(res, "filesystem", None) or fs.LocalFileSystem()
        selector = fs.FileSelector(str(res.path), allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if info.type == fs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                inner = filesystem.get_file_info(fs.FileSelector(info.path, recursive=True))
                freed += sum(i.size or 0 for i in inner if i.type == fs.FileType.File)
                filesystem.delete_dir(info.path)
    return freed
