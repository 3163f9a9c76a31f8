"""End to end: a tiny real search on the AG News rows in ../shared, plus CLI guard rails."""

import json

import pandas as pd
import pytest

from kdtune import search

STATUSES = {"completed", "stopped early", "errored", "diverged"}


@pytest.fixture(scope="module")
def experiment(smoke_search):
    return smoke_search  # the session's 4-trial smoke search (tests/conftest.py), read only


def test_results_files(experiment):
    for name in ("config.yaml", "run_info.json", "trials.csv", "history.csv", "best_trial.json",
                 "evaluation.json", "summary.md", "optuna.db"):
        assert (experiment / name).is_file(), name
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 4
    assert set(trials["status"]) <= STATUSES
    assert {"baseline", "seed default"} <= set(trials["anchor"].dropna())
    base = trials[trials["anchor"] == "baseline"].iloc[0]
    assert base["alpha"] == 1.0 and base["epochs_run"] == 2  # anchors are never stopped early
    history = pd.read_csv(experiment / "history.csv", dtype={"trial_id": str})
    assert len(history) == trials["epochs_run"].sum()
    for col in ("loss", "ce_loss", "kd_loss", "kd_ce_ratio", "train_accuracy", "val_accuracy",
                "val_macro_f1", "val_f1_World", "alpha", "temperature", "learning_rate"):
        assert col in history or col in trials, col
    # ranked by best epoch
    assert trials["best_val_macro_f1"].is_monotonic_decreasing


def test_summary_numbers_come_from_the_run(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    best = json.loads((experiment / "best_trial.json").read_text())
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    assert best["trial_id"] == trials["trial_id"].iloc[0]
    assert best["config"]["epochs"] == 2 and 0 <= best["config"]["alpha"] <= 1
    summary = (experiment / "summary.md").read_text()
    for model in ("teacher", "baseline", "distilled"):
        m = ev["models"][model]
        assert f"{m['test']['accuracy']:.4f}" in summary
        assert len(ev["labels"]["test"]) == 80
        if model != "teacher":
            assert len(m["test"]["predictions"]) == 80
            # loose threshold: 4 balanced classes, chance is 0.25
            assert m["val"]["accuracy"] > 0.35
            assert (experiment / "models" / model / "model.safetensors").is_file()
    # the distilled model's validation score equals its trial's best epoch
    dist = trials[trials["trial_id"] == ev["picks"]["distilled"]].iloc[0]
    assert ev["models"]["distilled"]["val"]["macro_f1"] == pytest.approx(dist["best_val_macro_f1"],
                                                                        abs=1e-6)
    assert "held-out test" in summary and "Sci/Tech" in summary
    # checkpoints of finished trials are pruned once the chosen students are exported
    assert not list((experiment / "tune").glob("*/checkpoint_*"))


def test_existing_experiment_is_refused(experiment, capsys):
    rc = search.main(["--space", "search_spaces/smoke.yaml", "--name", experiment.name,
                      "--results-dir", str(experiment.parent)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err


def test_dry_run_starts_nothing(tmp_path, capsys):
    rc = search.main(["--space", "search_spaces/alpha_temp.yaml", "--results-dir", str(tmp_path),
                      "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "max_trial_epochs: 42" in out and "dry run: nothing was started" in out
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args,field", [
    (["--space", "nope.yaml"], "--space"),
    ([], "--space"),
    (["--space", "search_spaces/smoke.yaml", "--num-samples", "1"], "search.num_samples"),
    (["--space", "search_spaces/smoke.yaml", "--name", "bad/name"], "name"),
])
def test_bad_cli_input(args, field, capsys, tmp_path):
    rc = search.main([*args, "--results-dir", str(tmp_path), "--dry-run"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"error: {field}:" in err


def test_resume_of_a_finished_search_changes_nothing(experiment, tmp_path, capsys):
    import shutil
    copy = tmp_path / experiment.name
    shutil.copytree(experiment, copy)
    before = (copy / "trials.csv").read_text()
    assert search.main(["--resume", str(copy), "--no-report"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert (copy / "trials.csv").read_text() == before
    rc = search.main(["--resume", str(copy), "--num-samples", "9"])
    assert rc == 2 and "--num-samples" in capsys.readouterr().err
