"""End to end: a tiny real search on the generated data set (tests/synthetic.py), plus CLI guard
rails."""

import json

import pandas as pd
import pytest
import synthetic
import yaml

from kdtune import search
from kdtune.config import load_config

STATUSES = {"completed", "stopped early", "errored", "diverged"}


@pytest.fixture(scope="module")
def experiment(smoke_search):
    return smoke_search  # the session's 6-trial smoke search (tests/conftest.py), read only


def test_results_files(experiment):
    for name in ("record.json", "config.yaml", "run_info.json", "trials.csv", "history.csv",
                 "picks.json", "evaluation.json", "summary.md", "optuna.db", "confirm.csv"):
        assert (experiment / name).is_file(), name
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 6 and len(list((experiment / "finished").glob("*.json"))) == 6 + 2
    assert set(trials["status"]) <= STATUSES
    # two arms of 3: KD (the seed default first) and the tuned CE-only baseline
    assert trials["arm"].value_counts().to_dict() == {"kd": 3, "ce": 3}
    ce = trials[trials["arm"] == "ce"]
    assert (ce["alpha"] == 1.0).all() and ce["temperature"].isna().all()
    assert ce["learning_rate"].nunique() == 3  # the CE arm's learning rate was searched
    assert set(trials["anchor"].dropna()) == {"CE anchor", "seed default"}
    seed = trials[trials["anchor"] == "seed default"].iloc[0]
    assert seed["arm"] == "kd" and seed["alpha"] == 0.7 and seed["temperature"] == 3.0
    history = pd.read_csv(experiment / "history.csv", dtype={"trial_id": str})
    # validation twice per epoch: progress 0.5, 1.0, 1.5, 2.0; the whole split at epoch ends
    assert len(history) == int((trials["progress"] * 2).sum())
    assert set(history["progress"]) <= {0.5, 1.0, 1.5, 2.0}
    assert history["full_val"].tolist() == (history["progress"] % 1 == 0).tolist()
    for col in ("loss", "ce_loss", "kd_loss", "kd_ce_ratio", "train_accuracy", "val_accuracy",
                "val_macro_f1", "val_loss", "val_f1_Weather", "arm"):
        assert col in history, col
    # ranked by best full-validation score
    assert trials["best_val_macro_f1"].is_monotonic_decreasing
    info = json.loads((experiment / "run_info.json").read_text())
    assert info["arms"] == {"kd": 3, "ce": 3} and info["baseline"] == "tuned"
    from kdtune.devices import cpu_bf16

    # train.precision auto: bf16 autocast on a CPU with AMX / AVX-512 BF16, else fp32
    want = "bf16-autocast" if cpu_bf16() else "fp32"
    assert info["driver_device"] == "cpu" and info["teacher_precision"] == want
    assert set(history["precision"]) == {want}  # every trial's rungs say how they ran


def test_picks_confirm_and_evaluation(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    picks = json.loads((experiment / "picks.json").read_text())
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    confirm = pd.read_csv(experiment / "confirm.csv", dtype={"trial_id": str})
    # the baseline is the tuned CE arm's pick, the student the KD arm's
    assert trials.set_index("trial_id").loc[picks["baseline"]["trial_id"], "arm"] == "ce"
    assert trials.set_index("trial_id").loc[picks["distilled"]["trial_id"], "arm"] == "kd"
    # confirm: the best completed trial of each arm, one more seed each, at full length
    assert len(confirm) == 2 and set(confirm["arm"]) == {"kd", "ce"}
    assert (confirm["seed"] == 1).all() and set(confirm["status"]) == {"completed"}
    assert picks["method"].startswith("mean over seeds")
    for row in picks["ranking"]:
        single = trials.set_index("trial_id").loc[row["trial_id"], "best_val_macro_f1"]
        extra = confirm[confirm["trial_id"] == row["trial_id"]]["best_val_macro_f1"].tolist()
        assert row["single_seed"] == pytest.approx(single)
        assert row["mean"] == pytest.approx((single + sum(extra)) / (1 + len(extra)))
    summary = (experiment / "summary.md").read_text()
    for model in ("teacher", "baseline", "distilled"):
        m = ev["models"][model]
        assert f"{m['test']['accuracy']:.4f}" in summary
        assert len(ev["labels"]["test"]) == 80
        if model != "teacher":
            assert len(m["test"]["predictions"]) == 80
            assert m["val"]["accuracy"] > 0.35  # loose: 4 balanced classes, chance is 0.25
            assert (experiment / "models" / model / "model.safetensors").is_file()
    # the distilled model's validation score equals its trial's best full-validation score
    dist = trials[trials["trial_id"] == ev["picks"]["distilled"]].iloc[0]
    assert ev["models"]["distilled"]["val"]["macro_f1"] == pytest.approx(dist["best_val_macro_f1"],
                                                                        abs=1e-6)
    assert "held-out test" in summary and "Food/Drink" in summary and "Confirm stage" in summary
    # checkpoints of finished trials are pruned once the chosen students are exported
    assert not list(experiment.glob("tune*/*/checkpoint_*"))


def test_existing_experiment_is_refused(experiment, smoke_space, capsys):
    rc = search.main(["--space", str(smoke_space), "--name", experiment.name,
                      "--results-dir", str(experiment.parent)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err


def test_dry_run_starts_nothing(tmp_path, text_data, capsys):
    # the quickstart's space with its data on the generated file (a dry run reads the data)
    space = tmp_path / "spaces" / "alpha_temp.yaml"
    space.parent.mkdir()
    raw = synthetic.point_at(load_config("search_spaces/alpha_temp.yaml").to_dict(), text_data,
                             max_length=None)
    space.write_text(yaml.safe_dump(raw))
    out_dir = tmp_path / "results"
    rc = search.main(["--space", str(space), "--results-dir", str(out_dir), "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "max_trial_epochs: 42" in out and "dry run: nothing was started" in out
    assert "kd: 10" in out and "ce: 4" in out  # the arms' shares of 14 trials
    assert not out_dir.exists()


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
    rc = search.main(["--resume", str(copy), "--num-samples", "3"])
    assert rc == 2 and "--num-samples" in capsys.readouterr().err


def test_growing_a_finished_search_continues_its_studies(experiment, tmp_path):
    """--resume EXP --num-samples N: more trials of the same TPE studies, in a new Ray run; the
    finished trials are kept, the arms keep their shares, the confirm stage runs again."""
    import shutil
    import sqlite3

    copy = tmp_path / experiment.name
    shutil.copytree(experiment, copy)
    before = pd.read_csv(copy / "trials.csv", dtype={"trial_id": str})
    assert search.main(["--resume", str(copy), "--num-samples", "8", "--no-report"]) == 0
    trials = pd.read_csv(copy / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 8 and set(before["trial_id"]) <= set(trials["trial_id"])
    kept = trials.set_index("trial_id").loc[before["trial_id"], "best_val_macro_f1"]
    assert kept.tolist() == pytest.approx(before["best_val_macro_f1"].tolist())
    # 8 trials: the CE arm keeps max(3, round(0.25 * 8)) = 3, so both new trials are KD trials
    assert trials["arm"].value_counts().to_dict() == {"kd": 5, "ce": 3}
    assert (copy / "tune_2").is_dir() and len(list((copy / "tune_2").glob("kd_trial_*"))) == 2
    with sqlite3.connect(copy / "optuna.db") as db:
        counts = dict(db.execute("select s.study_name, count(*) from trials t join studies s "
                                 "on t.study_id = s.study_id group by s.study_name"))
    assert counts == {"smoke-session": 5, "smoke-session-ce": 3}  # the same studies, continued
    assert "num_samples: 8" in (copy / "config.yaml").read_text()
    confirm = pd.read_csv(copy / "confirm.csv", dtype={"trial_id": str})
    assert len(confirm) >= 2 and not confirm.duplicated(["trial_id", "seed"]).any()


def test_record_files_hold_no_absolute_paths(experiment):
    """The record moves with its folder: trial paths are relative to the experiment root."""
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    for path in trials["path"].dropna():
        assert path.startswith(("tune/", "tune_")) and (experiment / path).is_dir(), path
    for name in ("trials.csv", "evaluation.json", "run_info.json"):
        assert str(experiment.resolve()) not in (experiment / name).read_text(), name
    models = json.loads((experiment / "evaluation.json").read_text())["models"]
    assert models["distilled"]["dir"] == "models/distilled"


def test_the_drivers_log_is_kept_with_the_experiment(experiment):
    log = (experiment / "driver.log").read_text()
    assert "kdtune.teacher" in log and "kdtune.search INFO" in log
    assert "\x1b[" not in log and "\r" not in log  # no progress bar in a file
