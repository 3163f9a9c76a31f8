"""``python -m kdtune.retrain``: seeds, baseline, paired statistics, reproduction, export, bad input.

One small real search (search_spaces/smoke.yaml, 3 trials) runs once for the module; one
re-training with two seeds then serves every check on its outputs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import copy_experiment

from kdtune import retrain
from kdtune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 2
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture(scope="module")
def experiment(smoke_search: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the session's finished smoke search (data paths are repo-relative)."""
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        yield copy_experiment(smoke_search, tmp_path_factory.mktemp("results"))
    finally:
        os.chdir(previous)


def _distilled_trial(exp: Path) -> pd.Series:
    """The best completed trial with alpha < 1 (the best trial overall may be the baseline)."""
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    ok = trials[trials["status"].isin(retrain.OK_STATUSES) & (trials["alpha"] < 1.0)]
    assert len(ok), trials
    return ok.sort_values("best_val_macro_f1", ascending=False).iloc[0]


@pytest.fixture(scope="module")
def retrained(experiment: Path) -> dict[str, Any]:
    """``--seeds 2`` on a distilled trial, so that the paired tests have something to test."""
    trial = _distilled_trial(experiment)
    best = json.loads((experiment / "best_trial.json").read_text())
    argv = [str(experiment), "--seeds", str(SEEDS), "--bootstrap", "200"]
    if best["trial_id"] != trial["trial_id"]:
        argv += ["--trial", trial["trial_id"]]
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        assert retrain.main(argv) == 0
    finally:
        os.chdir(previous)
    out = experiment / "retrain"
    return {"dir": out, "report": json.loads((out / "retrain.json").read_text()), "trial": trial,
            "per_seed": pd.read_csv(out / "per_seed.csv")}


def test_writes_every_file(retrained: dict[str, Any]) -> None:
    out = retrained["dir"]
    for rel in ("retrain.json", "per_seed.csv", "summary.md", "model/README.md",
                "model/config.json", "model/model.safetensors", "model/tokenizer_config.json"):
        assert (out / rel).is_file(), rel
    report = retrained["report"]
    assert report["trial"]["trial_id"] == retrained["trial"]["trial_id"]
    assert report["config"]["alpha"] == pytest.approx(retrained["trial"]["alpha"])
    assert report["baseline_config"]["alpha"] == 1.0
    # Same budget for both: epochs and batch size of the chosen configuration.
    for key in ("epochs", "batch_size", "seed"):
        assert report["baseline_config"][key] == report["config"][key]
    summary = (out / "summary.md").read_text()
    verdicts = [ln for ln in summary.splitlines() if ln.startswith("Verdict:")]
    assert len(verdicts) == 1 and "95%" in verdicts[0]
    assert "±" in summary and "McNemar" in summary and "bootstrap" in summary


def test_mean_std_match_per_seed_values(retrained: dict[str, Any]) -> None:
    frame, report = retrained["per_seed"], retrained["report"]
    base_seed = report["config"]["seed"]
    for model in ("student", "baseline"):
        rows = frame[frame["model"] == model]
        assert sorted(rows["seed"]) == [base_seed + i for i in range(SEEDS)]
        for col in retrain.metric_columns(LABELS):
            stats = report["summary"][model][col]
            assert stats["n"] == SEEDS
            assert stats["mean"] == pytest.approx(rows[col].mean(), abs=1e-12)
            assert stats["std"] == pytest.approx(np.std(rows[col].to_numpy(), ddof=1), abs=1e-12)
    # The paired differences are per-seed differences of the same seeds.
    s = frame[frame["model"] == "student"].sort_values("seed")["test_macro_f1"].to_numpy()
    b = frame[frame["model"] == "baseline"].sort_values("seed")["test_macro_f1"].to_numpy()
    seed_level = report["comparison"]["seed_level"]
    assert seed_level["differences"] == pytest.approx((s - b).tolist())
    assert seed_level["mean_difference"] == pytest.approx(float(np.mean(s - b)))


def test_p_values_and_intervals(retrained: dict[str, Any]) -> None:
    cmp_ = retrained["report"]["comparison"]
    seed_level = cmp_["seed_level"]
    for test in ("t_test", "wilcoxon"):
        p = seed_level[test]["pvalue"]
        assert p is not None and 0.0 <= p <= 1.0, (test, seed_level[test])
    for key in ("majority_vote", "best_seed"):
        ex = cmp_["example_level"][key]
        assert 0.0 <= ex["mcnemar"]["pvalue"] <= 1.0
        m = ex["mcnemar"]
        assert (m["student_only_correct"] + m["baseline_only_correct"] + m["both_correct"]
                + m["both_wrong"]) == len(retrained["report"]["test_labels"])
        b = ex["bootstrap"]
        assert -1.0 <= b["ci_low"] <= b["ci_high"] <= 1.0
        assert b["n_resamples"] == 200
        assert ex["difference"] == pytest.approx(ex["student_macro_f1"] - ex["baseline_macro_f1"])
    verdict = retrained["report"]["verdict"]
    assert isinstance(verdict["kd_gain_real"], bool) and verdict["text"].startswith("Verdict:")


def test_reproduces_the_trial(retrained: dict[str, Any]) -> None:
    rep, trial = retrained["report"]["reproduction"], retrained["trial"]
    assert rep["checked"], rep
    assert rep["best_epoch"] == int(trial["best_epoch"])
    assert rep["trial_val_macro_f1"] == pytest.approx(float(trial["best_val_macro_f1"]))
    assert abs(rep["difference"]) <= 0.005, rep
    assert rep["within_tolerance"] is True
    # The first seed's history is the re-run trial.
    first = retrained["report"]["runs"]["student"][0]
    assert first["seed"] == retrained["report"]["config"]["seed"]
    assert first["history"][rep["best_epoch"] - 1]["val_macro_f1"] == rep["retrained_val_macro_f1"]


def test_exported_model_loads_with_label_names(retrained: dict[str, Any]) -> None:
    from transformers import pipeline

    folder = retrained["dir"] / "model"
    model_info = retrained["report"]["model"]
    students = retrained["per_seed"][retrained["per_seed"]["model"] == "student"]
    assert model_info["seed"] == int(students.loc[students["val_macro_f1"].idxmax(), "seed"])
    config = json.loads((folder / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(LABELS))] == LABELS
    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    out = classifier(["The striker scored twice in the final.", "Shares fell after the report."])
    assert all(o["label"] in LABELS for o in out), out
    card = (folder / "README.md").read_text()
    for needle in ("ms/example", "±", "parameters", "MB", "from_pretrained", "pipeline(",
                   "Teacher", "Hyperparameters", "source:"):
        assert needle in card, needle
    assert model_info["params"] > 0 and model_info["latency"]["ms_per_example_mean"] > 0


def test_choose_config_defaults_to_best_trial(experiment: Path) -> None:
    cfg = load_config(experiment / "config.yaml")
    best = json.loads((experiment / "best_trial.json").read_text())
    choice = retrain.choose_config(experiment, cfg, None)
    assert choice.trial_id == best["trial_id"] and choice.source == "best_trial.json"
    assert choice.config == best["config"]
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    row = trials[trials["trial_id"] == best["trial_id"]].iloc[0]
    assert choice.trial_val_macro_f1 == pytest.approx(row["best_val_macro_f1"])
    # --trial merges the row's searched values over the fixed ones.
    other = _distilled_trial(experiment)
    picked = retrain.choose_config(experiment, cfg, other["trial_id"])
    assert picked.config == {**cfg.fixed, "alpha": other["alpha"],
                             "temperature": other["temperature"],
                             "learning_rate": other["learning_rate"]}
    baseline = trials[trials["anchor"] == "baseline"]
    if len(baseline):
        assert picked.baseline_learning_rate == pytest.approx(baseline.iloc[0]["learning_rate"])


def _no_trial_experiment(experiment: Path, tmp_path: Path, keep_csv: bool) -> Path:
    exp = tmp_path / "unfinished"
    exp.mkdir()
    shutil.copy(experiment / "config.yaml", exp / "config.yaml")
    if keep_csv:
        trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
        trials["status"] = "errored"
        trials.to_csv(exp / "trials.csv", index=False)
    return exp


@pytest.mark.parametrize("case, field", [
    ("missing", "experiment"),
    ("not-an-experiment", "experiment"),
    ("no-trials", "experiment"),
    ("errored-trials", "experiment"),
    ("errored-trials-with-id", "experiment"),
    ("unknown-trial", "--trial"),
    ("zero-seeds", "--seeds"),
    ("negative-seeds", "--seeds"),
    ("zero-epochs", "--epochs"),
    ("zero-threads", "--threads"),
])
def test_bad_input_exits_2_with_one_line(case: str, field: str, experiment: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    exp = str(experiment)
    def unfinished(keep_csv: bool) -> str:
        return str(_no_trial_experiment(experiment, tmp_path, keep_csv))

    argv = {
        "missing": lambda: [str(tmp_path / "nope")],
        "not-an-experiment": lambda: [str(tmp_path)],
        "no-trials": lambda: [unfinished(False)],
        "errored-trials": lambda: [unfinished(True)],
        "errored-trials-with-id": lambda: [unfinished(True), "--trial",
                                           _distilled_trial(experiment)["trial_id"]],
        "unknown-trial": lambda: [exp, "--trial", "no-such-trial"],
        "zero-seeds": lambda: [exp, "--seeds", "0"],
        "negative-seeds": lambda: [exp, "--seeds", "-1"],
        "zero-epochs": lambda: [exp, "--epochs", "0"],
        "zero-threads": lambda: [exp, "--threads", "0"],
    }[case]()
    capsys.readouterr()
    assert retrain.main(argv) == retrain.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"kdtune.retrain: error: {field}: "), err
    assert "Traceback" not in err


def test_cli_error_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "kdtune.retrain", str(tmp_path / "missing")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("kdtune.retrain: error: experiment: ")


def test_statistics_helpers() -> None:
    stats = retrain.mean_std([0.5])
    assert stats["std"] is None and stats["mean"] == 0.5
    one = retrain.seed_level_tests([0.6], [0.5])
    assert one["t_test"]["pvalue"] is None and "2 seeds" in one["t_test"]["note"]
    # Majority vote: 2 of 3 seeds say class 1; a tie goes to the higher mean probability.
    preds = np.array([[1, 0], [1, 1], [0, 2]])
    probs = np.full((3, 2, 3), 1 / 3)
    probs[:, 1, 2] = 0.9
    assert retrain.majority_vote(preds, probs).tolist() == [1, 2]
    labels = np.array([0, 1, 2, 3] * 10)
    same = retrain.example_level_tests(labels, labels, labels, 4, 100, 0)
    assert same["difference"] == 0 and same["mcnemar"]["pvalue"] == 1.0
    assert same["bootstrap"]["ci_low"] == same["bootstrap"]["ci_high"] == 0
    real, text = retrain.verdict(1.0, one, same)
    assert not real and "CE-only" in text
    assert not math.isnan(retrain.mean_std([0.1, 0.3])["std"])


def _run(history_f1: list[float]) -> retrain.Run:
    preds = np.zeros(4, dtype=np.int64)
    return retrain.Run("student", 0, 3, len(history_f1), False, 1.0,
                       [{"epoch": i + 1, "val_macro_f1": f} for i, f in enumerate(history_f1)],
                       {}, {}, preds, np.full((4, 2), 0.5))


def test_reproduction_helper() -> None:
    choice = retrain.Choice("t1", "trials.csv", {"seed": 0, "epochs": 3}, "", "completed",
                            best_epoch=2, trial_val_macro_f1=0.60, baseline_learning_rate=1e-4,
                            baseline_lr_source="x")
    ok = retrain.reproduction(choice, _run([0.5, 0.604, 0.7]), 1, "cpu")
    assert ok["checked"] and ok["within_tolerance"] is True
    assert ok["retrained_val_macro_f1"] == 0.604 and ok["difference"] == pytest.approx(0.004)
    off = retrain.reproduction(choice, _run([0.5, 0.61, 0.7]), 1, "cpu")
    assert off["checked"] and off["within_tolerance"] is False
    short = retrain.reproduction(choice, _run([0.5]), 1, "cpu")
    assert not short["checked"] and "diverged" in short["note"]
    skipped = retrain.reproduction(choice, None, 1, "cpu", note="--epochs 5 differs")
    assert not skipped["checked"] and skipped["within_tolerance"] is None
