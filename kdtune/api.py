"""The Python API: what the command lines do, as functions.

>>> import kdtune
>>> exp = kdtune.run_search("search_spaces/smoke.yaml", search={"num_samples": 6})
>>> exp.picks["distilled"]["hparams"]["alpha"], exp.evaluation["models"]["distilled"]["test"]
>>> report = kdtune.retrain_experiment(exp.root, seeds=3)
>>> report.verdict["text"]

``import kdtune`` loads none of this (and no torch); ``kdtune.run_search`` etc. are resolved on
first use. Bad input raises :class:`kdtune.errors.ConfigError` (one line naming the field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdtune.errors import ConfigError, SearchInterrupted


def _space(space_or_path: str | Path | dict[str, Any]) -> dict[str, Any]:
    from kdtune.config import read_yaml

    if isinstance(space_or_path, dict):
        return dict(space_or_path)
    path = Path(space_or_path)
    if not path.is_file():
        raise ConfigError("space", f"file not found: {str(path)!r}")
    raw = read_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "the file must be a YAML mapping of sections")
    return raw


def run_search(space_or_path: str | Path | dict[str, Any], *, data: Any = None,
               address: str | None = None, overwrite: bool = False, report: bool = True,
               **overrides: Any) -> Any:
    """Run a search; returns its :class:`~kdtune.record.Experiment`.

    ``data`` (optional) is the labelled data itself: a pandas DataFrame or a ``datasets.Dataset``
    with the space's ``data.text_column`` / ``label_column``; it is written once, by content,
    to ``<cache_dir>/data/<sha256>.parquet`` and ``data.path`` points there, so the experiment
    can be resumed and re-trained like any other. ``overrides`` are top-level keys (``name``,
    ``results_dir``, ``cache_dir``) or whole sections as nested dicts merged into the space
    (``search={"num_samples": 6}`` keeps the rest of ``search``). An interrupted search raises
    :class:`kdtune.errors.SearchInterrupted` (its ``root`` is the experiment) after keeping
    every finished trial.
    """
    from kdtune.config import merge_sections, parse_config
    from kdtune.record import load_experiment as load
    from kdtune.search.plan import new_plan
    from kdtune.search.steps import run_plan
    from kdtune.search.tuning_run import EXIT_INTERRUPTED

    raw = merge_sections(_space(space_or_path), overrides)
    if data is not None:
        raw = merge_sections(raw, {"data": {"path": _data_file(data, raw), "hub": None,
                                            "hub_fallback": False}})
    cfg = parse_config(raw)
    plan = new_plan(cfg, overwrite=overwrite, address=address, report=report)
    outcome = run_plan(plan)
    if outcome.exit_code == EXIT_INTERRUPTED:
        raise SearchInterrupted(plan.record.root)
    return load(plan.record.root)


def _data_file(data: Any, raw: dict[str, Any]) -> str:
    """``data`` (DataFrame or datasets.Dataset) as a content-addressed Parquet file."""
    import hashlib

    import pandas as pd

    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()  # a datasets.Dataset
    if not isinstance(data, pd.DataFrame):
        raise ConfigError("data", f"a pandas DataFrame or a datasets.Dataset, got {type(data).__name__}")
    if data.empty:
        raise ConfigError("data", "the DataFrame has no rows")
    digest = hashlib.sha256(pd.util.hash_pandas_object(data, index=False).values.tobytes()
                            + ",".join(map(str, data.columns)).encode()).hexdigest()[:20]
    folder = Path(str(raw.get("cache_dir") or ".cache/kdtune")) / "data"
    path = folder / f"{digest}.parquet"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{digest}.{id(data)}.parquet"
        data.to_parquet(tmp, index=False)
        tmp.replace(path)
    return str(path)


def load_experiment(path: str | Path) -> Any:
    """An experiment (folder or storage URI) as a :class:`~kdtune.record.Experiment`."""
    from kdtune.record import load_experiment as load

    return load(path)


def retrain_experiment(path: str | Path, **options: Any) -> Any:
    """Re-train the recommended KD config and the tuned CE baseline on fresh seeds and decide;
    returns the :class:`~kdtune.retrain.report.RetrainReport` also written to
    ``retrain/retrain.json`` (``verdict["kind"]`` is the decision, ``ship`` the model to ship).
    Options as :func:`kdtune.retrain.options.retrain`: ``seeds`` (a number or ``"auto"``),
    ``max_seeds``, ``round_size``, ``margin`` (points), ``spending``, ``trial``,
    ``baseline_trial``, ``epochs``, ``bootstrap``, ``threads``, ``check_reproduction``,
    ``sequential``, ``sets``."""
    from kdtune.retrain.options import retrain

    return retrain(path, **options)
