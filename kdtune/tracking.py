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
                                        tags={"kdtune.kind": kind, "kdtune.root": plan.record.root},
                                        save_artifact=False))
    if "tensorboard" in loggers:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    if "wandb" in loggers:
        from ray.air.integrations.wandb import WandbLoggerCallback

        out.append(WandbLoggerCallback(project=plan.cfg.name, mode="offline", group=kind))
    return out


def check_tracking(plan: Any) -> None:
    """Before any work: the loggers' packages import and the MLflow server answers (one line)."""
    from kdtune.errors import ConfigError

    loggers = plan.cfg.search.loggers
    for name, module, extra in (("mlflow", "mlflow", "tracking"), ("tensorboard", "tensorboardX",
                                                                   "tracking"),
                                ("wandb", "wandb", "tracking")):
        if name in loggers:
            try:
                __import__(module)
            except ImportError:
                raise ConfigError("search.loggers", f"{name} needs the {module} package; pip "
                                  f"install 'kdtune[{extra}]'") from None
    if "mlflow" not in loggers:
        return
    uri = mlflow_uri(plan)
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise ConfigError("search.mlflow_tracking_uri", f"cannot reach the MLflow tracking "
                              f"server at {uri} ({type(exc).__name__}); start it (mlflow server) or "
                              "fix the URI") from None


def log_parent_run(plan: Any) -> str | None:
    """An MLflow parent run with the report, trials.csv and the chosen config; every trial run
    of the search becomes its child. Returns the parent run id."""
    import tempfile
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from kdtune.record import record as R

    record, cfg = plan.record, plan.cfg
    client = MlflowClient(tracking_uri=mlflow_uri(plan))
    experiment = client.get_experiment_by_name(cfg.name)
    if experiment is None:
        return None
    parent = client.create_run(experiment.experiment_id, run_name=f"{cfg.name} (kdtune search)",
                               tags={"kdtune.role": "parent", "kdtune.root": record.root})
    run_id = parent.info.run_id
    picks = record.read_json(R.PICKS) or {}
    for which in ("distilled", "baseline"):
        for k, v in ((picks.get(which) or {}).get("hparams") or {}).items():
            if k in ("alpha", "temperature", "learning_rate", "beta", "weight_decay", "batch_size"):
                client.log_param(run_id, f"{which}.{k}", v)
    evaluation = record.read_json(R.EVALUATION) or {}
    for name, ev in (evaluation.get("models") or {}).items():
        if ev:
            client.log_metric(run_id, f"{name}.test_macro_f1", ev["test"]["macro_f1"])
            client.log_metric(run_id, f"{name}.val_macro_f1", ev["val"]["macro_f1"])
    with tempfile.TemporaryDirectory() as tmp:
        for name in (R.TRIALS, R.PICKS, R.CONFIG, R.SUMMARY, R.REPORT_MD, R.REPORT_HTML):
            if record.store.is_file(name):
                client.log_artifact(run_id, str(record.store.download(name, Path(tmp) / name)))
    for run in client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`kdtune.root` = '{record.root}'"):
        if run.info.run_id == run_id:
            continue
        client.set_tag(run.info.run_id, "mlflow.parentRunId", run_id)
    client.set_terminated(run_id)
    return run_id
