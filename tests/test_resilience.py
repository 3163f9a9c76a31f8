"""Never lose a search: kill and resume, diverged trials, Optuna told about ASHA's stops."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from kdtune import search
from kdtune.config import load_config
from kdtune.data import encode, load_splits
from kdtune.models import load_classifier, load_tokenizer
from kdtune.trainer import DivergedError, Trainer, TrainParams


def _done(path):
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_kill_then_resume_keeps_every_finished_trial(tmp_path):
    exp = tmp_path / "resume"
    cmd = [sys.executable, "-m", "kdtune.search", "--space", "search_spaces/smoke.yaml",
           "--name", "resume", "--results-dir", str(tmp_path), "--num-samples", "6", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 400
    try:
        while len(_done(exp / "trials_done.jsonl")) < 2:
            assert proc.poll() is None, "the search ended before it could be killed"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(1)
        time.sleep(3)  # the experiment state is snapshotted every 2 s
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {d["trial_id"]: d for d in _done(exp / "trials_done.jsonl")}
    assert 2 <= len(before) < 6 and not (exp / "summary.md").exists()

    assert search.main(["--resume", str(exp), "--no-report"]) == 0

    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 6  # num_samples, nothing lost, nothing extra
    after = _done(exp / "trials_done.jsonl")
    ids = [d["trial_id"] for d in after]
    assert len(ids) == len(set(ids)) == 6  # each trial finished exactly once: none rerun
    for tid, d in before.items():
        row = trials[trials["trial_id"] == tid].iloc[0]
        assert row["epochs_run"] == d["epochs"]
        assert row["last_val_macro_f1"] == pytest.approx(d["val_macro_f1"])
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert not history.duplicated(["trial_id", "epoch"]).any()
    epochs = history.groupby("trial_id")["epoch"].max()
    assert epochs.to_dict() == trials.set_index("trial_id")["epochs_run"].to_dict()
    _check_optuna_states(exp, trials)
    print(f"\nkill/resume: {len(before)} trials finished before SIGKILL, {len(trials)} after "
          f"resume, {len(set(before) - set(trials['trial_id']))} lost")


def test_ctrl_c_keeps_finished_trials_and_writes_no_final_results(tmp_path):
    exp = tmp_path / "interrupt"
    cmd = [sys.executable, "-m", "kdtune.search", "--space", "search_spaces/smoke.yaml",
           "--name", "interrupt", "--results-dir", str(tmp_path), "--num-samples", "6",
           "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 400
    try:
        while len(_done(exp / "trials_done.jsonl")) < 1:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends; Ray stops the trials gracefully
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    assert len(_done(exp / "trials_done.jsonl")) < 6
    # nothing pretends the search finished, and no checkpoint was pruned
    for name in ("summary.md", "evaluation.json", "trials.csv"):
        assert not (exp / name).exists()


def _check_optuna_states(exp, trials):
    with sqlite3.connect(exp / "optuna.db") as db:
        states = [s for (s,) in db.execute("select state from trials")]
    n_stopped = int(trials["status"].isin(["stopped early", "diverged"]).sum())
    assert states.count("PRUNED") == n_stopped
    assert states.count("COMPLETE") == int((trials["status"] == "completed").sum())


def test_diverged_trial_is_reported_and_search_goes_on(tmp_path):
    space = tmp_path / "diverge.yaml"
    raw = load_config("search_spaces/smoke.yaml").to_dict()
    raw["search"].update(anchors=False, num_samples=2, max_concurrent=2)
    raw["train"]["epochs"] = 1
    raw["space"] = {"learning_rate": {"type": "choice", "values": [1.0e4, 2.0e-4]}}
    import yaml
    space.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(space), "--name", "div", "--results-dir", str(tmp_path),
                        "--no-report", "--num-samples", "4"]) == 0
    trials = pd.read_csv(tmp_path / "div" / "trials.csv", dtype={"trial_id": str})
    diverged = trials[trials["learning_rate"] == 1.0e4]
    assert len(diverged) and set(diverged["status"]) == {"diverged"}
    assert diverged["error"].str.contains("loss became").all()
    assert set(trials[trials["learning_rate"] == 2.0e-4]["status"]) == {"completed"}
    summary = (tmp_path / "div" / "summary.md").read_text()
    assert "diverged" in summary


def test_trainer_raises_on_nan(ag_news):
    cfg = load_config("search_spaces/smoke.yaml")
    s = load_splits(cfg.data)
    tok = load_tokenizer(cfg.teacher.model)
    enc = encode(s.train["text"][:64], s.train["label"][:64].to_numpy(), tok, 32)
    model = load_classifier(cfg.teacher.model, s.label_names)
    with pytest.raises(DivergedError, match="loss became"):
        Trainer(model, enc, enc, TrainParams(epochs=1, learning_rate=1e6, alpha=1.0,
                                             clip_norm=1e9), s.label_names).fit()
