"""One experiment's folder as an object: every file kdtune writes there, by name, typed.

The layout (relative to the experiment root, a folder or a storage URI)::

    record.json        schema version and the kdtune that wrote it
    config.yaml        the resolved config (validated again when read)
    run_info.json      data source, teachers, devices, arms' budgets, timings
    finished/<id>.json one object per finished trial (S3 has no append)
    trials.csv         one row per trial          history.csv   one row per trial evaluation
    confirm.csv        one row per confirm run    pareto.csv    a multi-objective front
    picks.json         the recommended KD config and baseline, single- and multi-seed
    evaluation.json    teacher, baseline and distilled student on validation and test
    summary.md         the run in one page
    optuna.db          the TPE studies (SQLite; a copy when the root is a URI)
    tune/, tune_confirm/  Ray Tune's own state and checkpoints
    models/<name>/     exported students       report.md, report.html, report/
    retrain/           multi-seed re-training  export/  ONNX and int8 artefacts
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.config import ExperimentConfig, config_from_yaml
from kdtune.errors import ConfigError
from kdtune.files import dumps
from kdtune.record import schema
from kdtune.record.store import Store, storage_error

log = logging.getLogger(__name__)

MARKER, CONFIG, RUN_INFO = "record.json", "config.yaml", "run_info.json"
FINISHED = "finished"
TRIALS, HISTORY, CONFIRM, PARETO = "trials.csv", "history.csv", "confirm.csv", "pareto.csv"
PICKS, EVALUATION, SUMMARY = "picks.json", "evaluation.json", "summary.md"
OPTUNA = "optuna.db"
TUNE, TUNE_CONFIRM = "tune", "tune_confirm"
MODELS, RETRAIN, EXPORT = "models", "retrain", "export"
TEACHERS = "teachers"  # the experiment's own copy of each teacher, by key (kdtune.teacher)
REPORT_MD, REPORT_HTML, REPORT_DIR = "report.md", "report.html", "report"
DRIVER_LOG = "driver.log"  # what the search's driver logged (retrain/driver.log: the retrain's)
#: Columns read as text whatever they hold (hex trial ids like "00012345" are not numbers).
TEXT_COLUMNS = {schema.TRIAL_ID: str, schema.ARM: str, schema.ANCHOR: str, schema.STATUS: str,
                schema.ERROR: str, schema.DUPLICATE_OF: str, "layers": str}


class Record:
    """The files of one experiment, read and written through a :class:`Store`."""

    def __init__(self, root: str | Path, work_dir: str | Path | None = None):
        self.store = Store(root)
        self.root = self.store.root
        self.name = self.root.rstrip("/").rsplit("/", 1)[-1]
        if not self.store.remote:
            self.work_dir = Path(self.root)
        else:  # a local working copy for what cannot live on object storage (SQLite)
            key = hashlib.sha256(self.root.encode()).hexdigest()[:16]
            self.work_dir = Path(work_dir or ".cache/kdtune/records") / f"{self.name}-{key}"

    def __repr__(self) -> str:
        return f"Record({self.root!r})"

    # -- existence and schema -------------------------------------------------------------
    def exists(self) -> bool:
        return self.store.is_file(CONFIG)

    def is_empty(self) -> bool:
        return not self.store.listdir()

    def create(self, cfg: ExperimentConfig) -> None:
        from kdtune.version import __version__

        self.write_json(MARKER, {"schema": schema.SCHEMA_VERSION, "kdtune": __version__})
        self.store.write_text(CONFIG, cfg.to_yaml())

    def check_schema(self) -> None:
        """A one-line error for a record written by another kdtune layout."""
        marker = self.read_json(MARKER)
        version = (marker or {}).get("schema", 1) if isinstance(marker, dict) else 1
        if version == schema.SCHEMA_VERSION:
            return
        if version < schema.SCHEMA_VERSION:
            raise ConfigError("experiment", f"{self.root!r} was written by an older kdtune (record "
                              f"schema {version}, this kdtune reads {schema.SCHEMA_VERSION}); re-run "
                              "the search, or read it with the kdtune that wrote it")
        raise ConfigError("experiment", f"{self.root!r} was written by a newer kdtune (record "
                          f"schema {version}); upgrade kdtune to read it")

    def config(self) -> ExperimentConfig:
        if not self.exists():
            raise ConfigError("experiment", f"{self.root!r} is not a kdtune experiment (no "
                              "config.yaml); give results/<experiment>")
        return config_from_yaml(self.store.read_text(CONFIG), f"{self.root}/{CONFIG}")

    # -- plain files ----------------------------------------------------------------------
    def read_json(self, name: str) -> Any:
        """The parsed file, or None when it is absent or unreadable (with a warning)."""
        if not self.store.is_file(name):
            return None
        try:
            return json.loads(self.store.read_text(name))
        except (OSError, ValueError) as exc:
            log.warning("could not read %s/%s: %s", self.root, name, exc)
            return None

    def write_json(self, name: str, obj: Any) -> None:
        self.store.write_text(name, dumps(obj))

    def write_text(self, name: str, text: str) -> None:
        self.store.write_text(name, text)

    def read_text(self, name: str) -> str | None:
        return self.store.read_text(name) if self.store.is_file(name) else None

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        self.store.write_text(name, frame.to_csv(index=False))

    def read_csv(self, name: str) -> pd.DataFrame | None:
        """A CSV with its text columns as text (None when absent); one-line error if unreadable."""
        if not self.store.is_file(name):
            return None
        try:
            frame = pd.read_csv(io.StringIO(self.store.read_text(name)), dtype=TEXT_COLUMNS,
                                keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ConfigError(name, f"{self.root}/{name} is unreadable ({type(exc).__name__}); "
                              "re-run the search or --resume it") from None
        for col in (schema.ANCHOR, schema.ERROR, schema.STATUS, schema.ARM, schema.DUPLICATE_OF):
            if col in frame:
                frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
        return frame

    # -- finished trials: one object each, never an appended log ---------------------------
    def mark_finished(self, entry: dict[str, Any]) -> None:
        self.write_json(f"{FINISHED}/{entry[schema.TRIAL_ID]}.json", entry)

    def finished(self) -> dict[str, dict[str, Any]]:
        """Trial id -> its finished-trial object (status, arm, hparams, last metrics)."""
        out = {}
        for name in self.store.listdir(FINISHED):
            if name.endswith(".json"):
                entry = self.read_json(f"{FINISHED}/{name}")
                if isinstance(entry, dict) and entry.get(schema.TRIAL_ID):
                    out[str(entry[schema.TRIAL_ID])] = entry
        return out

    # -- the Optuna studies (SQLite cannot live on object storage) -------------------------
    def optuna_path(self) -> Path:
        return self.work_dir / OPTUNA

    def optuna_url(self) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.optuna_path().resolve()}"

    def fetch_optuna(self) -> None:
        """For a URI record: bring the synced study copy here unless a local one exists."""
        if self.store.remote and not self.optuna_path().exists() and self.store.is_file(OPTUNA):
            self.store.download(OPTUNA, self.optuna_path())

    def sync_optuna(self) -> None:
        """For a URI record: put the local study beside the results (losing the driver's disk
        then loses nothing). SQLite's own file is consistent after each committed tell."""
        if self.store.remote and self.optuna_path().exists():
            self.store.upload(self.optuna_path(), OPTUNA)

    # -- Ray's folders ---------------------------------------------------------------------
    def tune_runs(self) -> list[str]:
        """Ray Tune experiment folders of the search (``tune``, then ``tune_2``, ... of a
        search grown past its first num_samples)."""
        names = [n for n in self.store.listdir() if n == TUNE or n.startswith(f"{TUNE}_")
                 and n[len(TUNE) + 1:].isdigit()]
        return sorted(names, key=lambda n: 1 if n == TUNE else int(n.split("_")[1]))

    def probe(self) -> None:
        """Write, read back and delete a marker: storage works (or a one-line error)."""
        name = ".kdtune-probe"
        try:
            self.store.write_text(name, "ok")
            ok = self.store.read_text(name) == "ok"
            self.store.delete(name)
        except (OSError, ValueError) as exc:
            raise storage_error(exc, self.root) from None
        if not ok:
            raise ConfigError("--results-dir", f"{self.root!r}: a marker written there read back "
                              "differently")
