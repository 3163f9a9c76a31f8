"""What export reads of an experiment, through the record: its model folders and test split.

:func:`check_experiment` opens the record (one-line errors for a missing folder, a folder that
is not an experiment, an older record schema); :func:`experiment_inputs` reads its config and
the held-out test split it names; :func:`source_dirs` maps ``--source`` to the record's model
folders (``models/distilled``, ``retrain/model``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdtune.errors import ConfigError, check
from kdtune.record import record as R

if TYPE_CHECKING:
    from kdtune.config import ExperimentConfig

# --source name -> the save_pretrained folder inside the experiment
SOURCES = {"distilled": Path(R.MODELS) / "distilled", "retrained": Path(R.RETRAIN) / "model"}


def check_experiment(exp_dir: Path) -> None:
    """Fail with a one-line error unless ``exp_dir`` is a kdtune experiment of this schema."""
    from kdtune.record import open_record

    check(not open_record(exp_dir).store.remote, "experiment", "export works on a local "
          "experiment folder; copy the experiment from its storage first")


def source_dirs(exp_dir: Path, source: str) -> dict[str, Path]:
    """``{source: model folder}`` for ``--source`` (``all``: every one that exists)."""
    found = {name: exp_dir / rel for name, rel in SOURCES.items()
             if (exp_dir / rel / "config.json").is_file()}
    if source == "all":
        check(bool(found), "--source", f"no exported model in {str(exp_dir)!r} (looked for "
              f"{' and '.join(str(p) for p in SOURCES.values())}); run the search's evaluation or "
              "python -m kdtune.retrain first")
        return found
    check(source in found, "--source", f"{source}: no model folder {str(exp_dir / SOURCES[source])!r} "
          "(needs config.json); " + ("run python -m kdtune.retrain first" if source == "retrained"
                                     else "run the search's evaluation first") +
          (f", or use --source {next(iter(found))}" if found else ""))
    return {source: found[source]}


def check_labels(model_dir: Path, label_names: list[str]) -> None:
    """The model folder classifies into as many labels as the experiment's data has."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    n = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if n != len(label_names):
        raise ConfigError(str(model_dir), f"the model has {n} labels but the experiment's data has "
                          f"{len(label_names)} ({', '.join(label_names)}); export a model of this "
                          "experiment")


def experiment_inputs(exp_dir: Path) -> tuple[ExperimentConfig, list[str], list[str], np.ndarray]:
    """``(cfg, label_names, test_texts, test_labels)`` of the experiment's held-out test split."""
    from kdtune.data import load_splits
    from kdtune.record import open_record

    cfg = open_record(exp_dir).config()
    splits = load_splits(cfg.data)
    test = splits.test
    return (cfg, list(splits.label_names), [str(t) for t in test["text"]],
            np.array(test["label"], dtype=np.int64))  # a writable copy, not a pandas view
