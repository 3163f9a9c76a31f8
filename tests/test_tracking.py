"""Tracking and the live view against the real components: an MLflow server and
optuna-dashboard, both started on 127.0.0.1 (the MLflow server by tests/conftest.py, for the
session's smoke search, which logs to it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from conftest import free_port, wait_http

from kdtune import search


def test_every_trial_is_an_mlflow_run_under_a_parent(smoke_search: Path, mlflow_server: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("smoke-session")
    runs = client.search_runs([experiment.experiment_id],  # other tests grow copies of this search
                              filter_string=f"tags.`kdtune.root` = '{smoke_search}'")
    parents = [r for r in runs if r.data.tags.get("kdtune.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("kdtune.kind") == "search"]
    confirm = [r for r in runs if r.data.tags.get("kdtune.kind") == "confirm"]
    assert len(parents) == 1 and len(trials) == 6 and len(confirm) == 2
    parent = parents[0].info.run_id
    assert all(r.data.tags.get("mlflow.parentRunId") == parent for r in trials + confirm)
    history = pd.read_csv(smoke_search / "history.csv", dtype={"trial_id": str})
    rungs = sorted(history.groupby("trial_id").size().tolist())
    logged = sorted(len(client.get_metric_history(r.info.run_id, "val_macro_f1")) for r in trials)
    assert logged == rungs  # every rung of every trial, as the record has it
    kd = [r for r in trials if r.data.params.get("arm") == "kd"]
    assert len(kd) == 3 and all("temperature" in r.data.params for r in kd)
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"trials.csv", "picks.json", "config.yaml", "report.html"} <= artifacts
    assert "distilled.test_macro_f1" in client.get_run(parent).data.metrics


def test_tensorboard_events_are_written(smoke_search: Path):
    events = list((smoke_search / "tune").glob("*/events.out.tfevents.*"))
    assert len(events) == 6


def test_unreachable_tracking_server_is_refused_before_any_work(tmp_path, capsys):
    import yaml

    from kdtune.config import load_config

    raw = load_config("search_spaces/smoke.yaml").to_dict()
    raw["search"].update(loggers=["mlflow"], mlflow_tracking_uri="http://127.0.0.1:9")
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(space), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "search.mlflow_tracking_uri" in err
    assert not (tmp_path / "smoke").exists()


def test_optuna_dashboard_serves_the_studies(smoke_search: Path):
    """The README's live-view command, against the session search's optuna.db."""
    port = free_port()
    command = shutil.which("optuna-dashboard") or str(Path(sys.executable).parent / "optuna-dashboard")
    proc = subprocess.Popen([command, f"sqlite:///{smoke_search / 'optuna.db'}", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/studies", 60, proc)
        studies = {s["study_name"]: s for s in requests.get(f"{base}/api/studies", timeout=10)
                   .json()["study_summaries"]}
        assert set(studies) == {"smoke-session", "smoke-session-ce"}
        detail = requests.get(f"{base}/api/studies/{studies['smoke-session']['study_id']}",
                              timeout=10).json()
        assert len(detail["trials"]) == 3
        states = {t["state"] for t in detail["trials"]}
        assert states <= {"Complete", "Pruned"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_wandb_runs_offline(tmp_path):
    from kdtune.config import load_config
    from kdtune.record import Record
    from kdtune.search.plan import SearchPlan
    from kdtune.tracking import logger_callbacks

    cfg = load_config("search_spaces/smoke.yaml", {"search.loggers": ["wandb"]})
    (cb,) = logger_callbacks(SearchPlan(cfg, Record(tmp_path / "x")), "search")
    assert type(cb).__name__ == "WandbLoggerCallback" and cb.kwargs.get("mode") == "offline"


@pytest.mark.parametrize("name", ["mlflow"])
def test_loggers_are_validated(name):
    from kdtune.config import load_config

    assert load_config("search_spaces/smoke.yaml", {"search.loggers": [name]}).search.loggers == [name]
