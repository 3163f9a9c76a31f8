"""Never lose a search: kill and resume, diverged trials, Optuna told about ASHA's stops."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import checkpointed_unfinished, smoke_raw

from kdtune import faults, search
from kdtune.batches import encode
from kdtune.config import load_config
from kdtune.data import load_splits
from kdtune.models import load_classifier, load_tokenizer
from kdtune.params import TrainParams
from kdtune.record import schema as S
from kdtune.trainer import DivergedError, Trainer


def _done(exp, kind="search"):
    """The record's finished-trial objects of ``kind`` (one JSON object per trial)."""
    folder = exp / "finished"
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.glob("*.json"):
        try:
            entries.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return [e for e in entries if e.get("kind", "search") == kind]


def test_kills_at_three_moments_lose_nothing_and_run_nothing_twice(tmp_path, smoke_space):
    """One search killed at three moments, each resumed: (1) before its first trial ends, with a
    trial mid-way after its epoch-1 checkpoint; (2) between a trial's end and its record write;
    (3) in the confirm stage, just after a confirm run's end is recorded, before Ray's saved
    state can hold that end (the record ahead of Ray: a CI run once trained such a search trial
    again from its checkpoint, and ASHA cut it short of its recorded end), the other confirm run
    mid-way. Then exactly num_samples trials and the confirm runs, each finished once and kept
    as recorded, none re-run from scratch. The driver kills
    itself at each moment (kdtune.faults); at (1) and (3) the trials of the stage it dies in hold
    after each checkpoint but their last, so the kills land there by construction: no polling
    from this process (a polling loop starved of the CPU for the hold's 6 s once let a whole
    search finish unkilled). (2) needs no hold, and (3)'s search trials run without one."""
    exp = tmp_path / "resume"
    start = [sys.executable, "-m", "kdtune.search", "--space", str(smoke_space), "--name", "resume",
             "--results-dir", str(tmp_path), "--num-samples", "6", "--no-report"]
    resume = [sys.executable, "-m", "kdtune.search", "--resume", str(exp), "--no-report"]

    _killed(start, faults.KILL_AFTER_CHECKPOINT_ENV, "search", hold="search")
    assert len(_done(exp)) <= 1  # the other running trial may end in the 3 s before the kill
    assert checkpointed_unfinished(exp)
    _killed(resume, faults.KILL_BEFORE_RECORD_ENV, "2")
    recorded = {d["trial_id"]: d for d in _done(exp)}
    assert 1 <= len(recorded) < 6 and not (exp / "summary.md").exists()
    _killed(resume, faults.KILL_AFTER_RECORD_ENV, "confirm", hold="confirm")
    for d in _done(exp) + _done(exp, "confirm"):  # the earliest record of each trial
        recorded.setdefault(d["trial_id"], d)
    assert len(_done(exp)) == 6 and len(_done(exp, "confirm")) == 1
    assert checkpointed_unfinished(exp, "tune_confirm", "confirm")

    assert search.main(["--resume", str(exp), "--no-report"]) == 0
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 6  # num_samples, nothing lost, nothing extra
    ids = [d["trial_id"] for d in _done(exp)]
    assert len(ids) == len(set(ids)) == 6  # each trial finished exactly once: none rerun
    final = {d["trial_id"]: d for d in _done(exp) + _done(exp, "confirm")}
    for tid, d in recorded.items():
        assert final[tid].get("result") == d.get("result")  # reported again as it ended
        if d["kind"] == "search" and d.get("ray_status") == "terminated":
            row = trials[trials["trial_id"] == tid].iloc[0]
            assert row["progress"] == pytest.approx(d["progress"])
            assert row["last_val_macro_f1"] == pytest.approx(d["val_macro_f1"])
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert not history.duplicated(["trial_id", "progress"]).any()
    progress = history.groupby("trial_id")["progress"].max()
    assert progress.to_dict() == pytest.approx(trials.set_index("trial_id")["progress"].to_dict())
    # the trial cut mid-way continued from its checkpoint: it reported again from a later step
    resumed = history[history["resumed_from_step"] > 0]
    assert len(resumed), "no trial continued from a checkpoint"
    assert (resumed["step"] > resumed["resumed_from_step"]).all()
    confirm = [d["hparams"]["run"] for d in _done(exp, "confirm")]
    assert len({(c["confirm_of"], c["seed"]) for c in confirm}) == len(confirm) == 2
    assert len(pd.read_csv(exp / "confirm.csv")) == 2
    assert _resumed_confirm_runs(exp), "no confirm run continued from its checkpoint"
    _check_optuna_states(exp, trials)


def _killed(cmd: list[str], fault: str, value: str, hold: str | None = None) -> None:
    """Run a search whose driver kills itself (and its Ray) at the fault's moment; ``hold``:
    the kind of trial that holds 6 s after each checkpoint but its last (none: no holds)."""
    env = {**os.environ, fault: value}
    if hold:
        env.update({faults.HOLD_ENV: "6", faults.HOLD_KIND_ENV: hold})
    proc = subprocess.run(cmd, env=env, timeout=600, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, (fault, value, proc.stderr[-3000:])


def test_a_hold_is_limited_to_its_kind(monkeypatch):
    monkeypatch.setenv(faults.HOLD_ENV, "0.3")
    monkeypatch.setenv(faults.HOLD_KIND_ENV, "confirm")
    for kind, waits in (("search", False), ("confirm", True)):
        t0 = time.perf_counter()
        faults.hold_after_checkpoint(kind)
        assert (time.perf_counter() - t0 >= 0.3) is waits, kind
    monkeypatch.delenv(faults.HOLD_KIND_ENV)  # no kind named: every trial holds
    t0 = time.perf_counter()
    faults.hold_after_checkpoint("search")
    assert time.perf_counter() - t0 >= 0.3


def test_a_held_trial_waits_for_another_trials_checkpoint(tmp_path, monkeypatch):
    """With the kill after a run's end armed, a held run goes on only once another run of its
    stage has a checkpoint old enough for Ray's snapshot to hold it (or the wait runs out)."""
    monkeypatch.setattr(faults, "KILL_DELAY_S", 0.5)
    monkeypatch.setattr(faults, "SIBLING_WAIT_S", 1.0)
    mine, other = tmp_path / "confirm_trial_a", tmp_path / "confirm_trial_b"
    (mine / "checkpoint_000000").mkdir(parents=True)  # its own checkpoint never counts
    other.mkdir()

    def waited() -> float:
        t0 = time.perf_counter()
        faults.wait_for_another_checkpoint(mine)
        return time.perf_counter() - t0

    assert waited() >= 1.0  # no other checkpoint: the whole wait, then on
    (other / "checkpoint_000000").mkdir()
    assert 0.4 <= waited() < 1.0  # a fresh one: until it is KILL_DELAY_S old
    os.utime(other / "checkpoint_000000", (time.time() - 5, time.time() - 5))
    assert waited() < 0.3  # an old one: at once
    monkeypatch.setenv(faults.HOLD_ENV, "0.01")
    monkeypatch.setenv(faults.HOLD_KIND_ENV, "confirm")
    monkeypatch.setenv(faults.KILL_AFTER_RECORD_ENV, "confirm")
    shutil.rmtree(other / "checkpoint_000000")
    t0 = time.perf_counter()
    context = SimpleNamespace(get_storage=lambda: SimpleNamespace(trial_fs_path=str(mine)))
    faults.hold_after_checkpoint("search", context)  # another kind: no hold, no wait
    faults.hold_after_checkpoint("confirm")  # no trial context: the hold only
    assert time.perf_counter() - t0 < 0.3
    faults.hold_after_checkpoint("confirm", context)
    assert time.perf_counter() - t0 >= 1.0


def _resumed_confirm_runs(exp) -> list[str]:
    """Confirm runs whose results show a restart from a checkpoint (Ray's result.json)."""
    out = []
    for result in (exp / "tune_confirm").glob("*_trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if any(r.get("resumed_from_step", 0) > 0 for r in rows):
            out.append(result.parent.name)
    return out


def test_ctrl_c_keeps_finished_trials_and_writes_no_final_results(tmp_path, smoke_space):
    exp = tmp_path / "interrupt"
    cmd = [sys.executable, "-m", "kdtune.search", "--space", str(smoke_space),
           "--name", "interrupt", "--results-dir", str(tmp_path), "--num-samples", "6",
           "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 400
    try:
        while len(_done(exp)) < 1:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends; Ray stops the trials gracefully
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    assert len(_done(exp)) < 6
    # nothing pretends the search finished, and no checkpoint was pruned
    for name in ("summary.md", "evaluation.json", "trials.csv"):
        assert not (exp / name).exists()


def _check_optuna_states(exp, trials):
    with sqlite3.connect(exp / "optuna.db") as db:  # both studies: the KD arm and the CE arm
        states = [s for (s,) in db.execute("select state from trials")]
        studies = {n for (n,) in db.execute("select study_name from studies")}
    assert studies == {"resume", "resume-ce"}
    n_stopped = int(trials["status"].isin(["stopped early", "diverged"]).sum())
    assert states.count("PRUNED") == n_stopped
    assert states.count("COMPLETE") == int((trials["status"] == "completed").sum())


def test_diverged_trial_is_reported_and_search_goes_on(tmp_path, text_data):
    space = tmp_path / "diverge.yaml"
    raw = smoke_raw(text_data)
    raw["search"].update(anchors=False, num_samples=2, max_concurrent=2, baseline="none",
                         grace_period=1.0, confirm={"top_k": 0, "seeds": 0})
    raw["train"].update(epochs=1, eval_every=1.0)
    raw["space"] = {"learning_rate": {"type": "choice", "values": [1.0e4, 2.0e-4]}}
    import yaml
    space.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(space), "--name", "div", "--results-dir", str(tmp_path),
                        "--no-report", "--num-samples", "4"]) == 0
    trials = pd.read_csv(tmp_path / "div" / "trials.csv", dtype={"trial_id": str})
    trained = trials[trials["status"] != "duplicate"]  # two configs: the rest were duplicates
    assert len(trained) == 2 and len(trials) == 4
    diverged = trained[trained["learning_rate"] == 1.0e4]
    assert len(diverged) == 1 and set(diverged["status"]) == {"diverged"}
    assert diverged["error"].str.contains("loss became").all()
    assert set(trained[trained["learning_rate"] == 2.0e-4]["status"]) == {"completed"}
    summary = (tmp_path / "div" / "summary.md").read_text()
    assert "diverged" in summary


def test_trainer_raises_on_nan(smoke_space):
    cfg = load_config(smoke_space)
    s = load_splits(cfg.data)
    tok = load_tokenizer(cfg.teacher.model)
    enc = encode(s.train["text"][:64], s.train["label"][:64].to_numpy(), tok, 32)
    model = load_classifier(cfg.teacher.model, s.label_names)
    # 64 rows at batch 8: 8 steps per epoch, checked every 2 steps, so a NaN from the first
    # step on stops training by step 2, not at the epoch's end
    trainer = Trainer(model, enc, enc, TrainParams(epochs=3, learning_rate=1e6, alpha=1.0,
                                                   clip_norm=1e9, batch_size=8, nan_check_every=2),
                      s.label_names)
    with pytest.raises(DivergedError, match="loss became"):
        trainer.fit()
    assert trainer.step <= 4 and trainer.steps_per_epoch == 8


def test_checkpoints_carry_the_feature_projections():
    """A resumed feature-KD trial continues with its learned projections, not random ones."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from kdtune.batches import Encoded
    from kdtune.feature_kd import FeatureKD, RaggedStates

    tok_ids = np.arange(40, dtype=np.int32) % 50 + 1
    data = Encoded(tok_ids, np.arange(0, 41, 5), np.array([0, 1] * 4), 0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)
    states = np.random.default_rng(0).normal(size=(40, 24)).astype(np.float16)

    def trainer():
        torch.manual_seed(0)
        features = FeatureKD([(0, 0), (1, 1)], 16, "mse",
                             cached={b: RaggedStates(states, data.offsets, torch.device("cpu"))
                                     for b in (0, 1)})
        return Trainer(BertForSequenceClassification(config), data, data,
                       TrainParams(epochs=1, batch_size=4, beta=1.0, alpha=1.0), ["x", "y"],
                       features=features)

    first = trainer()
    first.fit()
    state = first.checkpoint_state()
    assert any(k.startswith("features.projections.") for k in state)  # 16 -> 24 projections
    second = trainer()
    second.load_checkpoint_state(state)
    for (name, a), b in zip(first.features.state_dict().items(), second.features.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_the_best_checkpoint_is_found_from_the_checkpoints_themselves(tmp_path):
    """Ray's saved state can miss a trial's last checkpoint (a kill in the seconds after the
    trial ended); the checkpoint carries its own score, so it is still the one ranked best.
    A folder without a readable state (half-written) is no candidate; one saved before
    checkpoints carried a score is ranked on Ray's registered metrics."""
    from ray.tune import Checkpoint, Result
    from transformers import BertConfig, BertForSequenceClassification

    from kdtune.batches import Encoded
    from kdtune.score_picks import best_checkpoint
    from kdtune.trainable import save_checkpoint
    from kdtune.trainer import CHECKPOINT_STATE

    data = Encoded(np.arange(8, dtype=np.int32) + 1, np.arange(0, 9, 2), np.array([0, 1] * 2), 0)
    config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=2)
    trainer = Trainer(BertForSequenceClassification(config), data, data,
                      TrainParams(epochs=1, batch_size=2, alpha=1.0), ["x", "y"])
    folders = [tmp_path / f"checkpoint_00000{i}" for i in range(4)]
    for folder, score in zip(folders[:3], (0.5, 0.7, None), strict=True):
        folder.mkdir()
        save_checkpoint(trainer, folder, score)
    (folders[2] / CHECKPOINT_STATE).write_text('{"step": 3}')  # saved before scores were kept
    folders[3].mkdir()  # half-written: no state at all

    def result(registered):
        return Result(metrics={}, checkpoint=None, error=None, path=str(tmp_path),
                      best_checkpoints=[(Checkpoint(str(folders[i])), {S.CKPT_SCORE: v})
                                        for i, v in registered])

    assert best_checkpoint(result([(0, 0.5)])).path == str(folders[1])  # Ray never saw 0.7
    assert best_checkpoint(result([(0, 0.5), (2, 0.9)])).path == str(folders[2])
    assert best_checkpoint(result([(0, 0.95)])).path == str(folders[1])  # its own 0.5 counts


def test_a_trials_end_is_recorded_as_its_last_result_arrives(tmp_path):
    """Ray tells the searcher (the Optuna study) that a trial ended before it tells the
    callbacks, so the record is written as the last result arrives, before either: a kill
    between the two must never leave a study holding an ASHA stop that no record holds."""
    from ray.tune.experiment import Trial as RayTrial

    from kdtune.record import Record
    from kdtune.tuning.callbacks import RecordCallback

    record = Record(tmp_path / "exp")
    callback = RecordCallback(record, "search", epochs=2)

    def result(trial_id, progress, **extra):
        return {"trial_id": trial_id, "progress": progress, "val_macro_f1": progress / 4,
                "full_val": progress % 1 == 0, **extra}

    stopped, finished, restored = (RayTrial("kd_trial", config={"arm": "kd"}, trial_id=t, stub=True)
                                   for t in ("s", "f", "r"))
    for trial, progress in ((stopped, 1.0), (finished, 1.5), (restored, 1.5)):
        callback.on_trial_result(0, [], trial, result(trial.trial_id, progress))
    assert record.finished() == {}  # no trial's last result yet
    # ASHA stops one at 1.5 (Ray sets done before the callbacks hear the result); one reaches
    # its last epoch (2 of 2); the third is still running
    callback.on_trial_result(0, [], stopped, result("s", 1.5, done=True))
    callback.on_trial_result(0, [], finished, result("f", 2.0))
    assert set(record.finished()) == {"s", "f"}
    assert record.finished()["s"]["progress"] == 1.5 and record.finished()["f"]["progress"] == 2.0
    # what the trainable reported, to be reported again on a resume (Ray's keys dropped)
    assert record.finished()["s"]["result"] == {"progress": 1.5, "val_macro_f1": 0.375,
                                                "full_val": False}
    stopped.update_last_result(result("s", 9.0))  # Ray's end notice: the record holds the end
    callback.on_trial_complete(0, [], stopped)
    assert record.finished()["s"]["progress"] == 1.5
    restored.update_last_result(result("r", 2.0))  # ended with no last result here: recorded now
    callback.on_trial_complete(0, [], restored)
    assert record.finished()["r"]["progress"] == 2.0 and record.finished()["r"]["ray_status"] == "terminated"
