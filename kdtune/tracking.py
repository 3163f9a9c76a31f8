"""Experiment tracking: ``search.loggers`` mapped to Ray Tune's driver-side logger callbacks.

* ``mlflow``: one MLflow run per trial (its hparams and every rung's metrics) in the experiment
  named after the search, under ``search.mlflow_tracking_uri`` (else ``MLFLOW_TRACKING_URI``,
  else ``<experiment>/mlruns``); :func:`log_parent_run` adds a parent run holding the report,
  ``trials.csv`` and the chosen config, and tags every trial run with it.
* ``tensorboard``: Ray's TBX logger (event files in each trial's folder).
* ``wandb``: Ray's W&B logger in offline mode (``wandb sync`` uploads later).
"""

from __future__ import annotations

import os
from typing import Any


def mlflow_uri(plan: Any) -> str:
    s = plan.cfg.search
    if s.mlflow_tracking_uri:
        return s.mlflow_tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"file://{(plan.record.work_dir / 'mlruns').resolve()}"


def logger_callbacks(plan: Any, kind: str) -> list[Any]:
    """Ray logger callbacks for ``search.loggers`` (none by default)."""
    out: list[Any] = []
    loggers = plan.cfg.search.loggers
    if "mlflow" in loggers:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        out.append(MLflowLoggerCallback(tracking_uri=mlflow_uri(plan), experiment_name=plan.cfg.name,
                                        tags={"kdtune.kind": kind}, save_artifact=False))
    if "tensorboard" in loggers:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    if "wandb" in loggers:
        from ray.air.integrations.wandb import WandbLoggerCallback

        out.append(WandbLoggerCallback(project=plan.cfg.name, mode="offline", group=kind))
    return out
