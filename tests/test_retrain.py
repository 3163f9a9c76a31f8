"""``python -m kdtune.retrain``: fresh seeds, baseline, decision, reproduction, both models, bad input.

The session's small real search (search_spaces/smoke.yaml on the generated data set) is copied
once for the module; one re-training with two fresh seeds (side by side as Ray tasks, plus the
trial's reproduction run) then serves every check on its outputs.
"""

from __future__ import annotations

import json
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
import synthetic
from conftest import copy_experiment

from kdtune import retrain
from kdtune.record import Record

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 2
LABELS = synthetic.LABEL_NAMES  # the session search's data set


@pytest.fixture(scope="module")
def experiment(smoke_search: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the session's finished smoke search (data paths are repo-relative)."""
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        yield copy_experiment(smoke_search, tmp_path_factory.mktemp("results"))
    finally:
        os.chdir(previous)


def _trials(exp: Path) -> pd.DataFrame:
    return pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})


def _picks(exp: Path) -> dict[str, Any]:
    return json.loads((exp / "picks.json").read_text())


@pytest.fixture(scope="module")
def retrained(experiment: Path) -> dict[str, Any]:
    """``--seeds 2`` on the recommended KD config and the tuned CE baseline."""
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        assert retrain.main([str(experiment), "--seeds", str(SEEDS), "--bootstrap", "200",
                             "--check-reproduction"]) == 0
    finally:
        os.chdir(previous)
    out = experiment / "retrain"
    return {"dir": out, "report": json.loads((out / "retrain.json").read_text()),
            "picks": _picks(experiment), "trials": _trials(experiment),
            "per_seed": pd.read_csv(out / "per_seed.csv")}


def test_compares_the_kd_pick_with_the_tuned_ce_pick(retrained: dict[str, Any]) -> None:
    out, report, picks = retrained["dir"], retrained["report"], retrained["picks"]
    for rel in ("retrain.json", "per_seed.csv", "summary.md", "model/README.md",
                "model/config.json", "model/model.safetensors", "model/tokenizer_config.json",
                "alternative/README.md", "alternative/model.safetensors"):
        assert (out / rel).is_file(), rel
    trials = retrained["trials"].set_index("trial_id")
    student, baseline = report["student"]["trial_id"], report["baseline"]["trial_id"]
    # the search's report is rendered again with the decision in it
    rendered = (out.parent / "report.md").read_text()
    assert "## Re-training" in rendered and report["verdict"]["text"] in rendered
    assert student == picks["distilled"]["trial_id"] and trials.loc[student, "arm"] == "kd"
    assert baseline == picks["baseline"]["trial_id"] and trials.loc[baseline, "arm"] == "ce"
    # each at its own hyperparameters: the baseline keeps the CE arm's tuned learning rate
    assert report["baseline_config"]["alpha"] == 1.0 and report["baseline_config"]["beta"] == 0.0
    assert report["baseline_config"]["learning_rate"] == pytest.approx(trials.loc[baseline,
                                                                                   "learning_rate"])
    assert report["config"]["learning_rate"] == pytest.approx(trials.loc[student, "learning_rate"])
    assert report["config"]["alpha"] == pytest.approx(trials.loc[student, "alpha"])
    for key in ("epochs", "batch_size"):  # the same budget for both
        assert report["baseline_config"][key] == report["config"][key]
    summary = (out / "summary.md").read_text()
    verdict = summary.split("## Verdict\n\n", 1)[1].splitlines()[0]
    assert verdict == report["verdict"]["text"]
    assert report["verdict"]["kind"] in retrain.KINDS
    assert report["verdict"]["margin"] == 0.005 and "±0.50" in report["verdict"]["text"]
    assert report["design"]["looks"] == [SEEDS] and len(report["looks"]) == 1
    assert "±" in summary and "McNemar" in summary and "bootstrap" in summary
    assert "## Decision" in summary and "## The model to ship" in summary


def test_verdict_seeds_are_fresh(retrained: dict[str, Any], experiment: Path) -> None:
    report = retrained["report"]
    trials = retrained["trials"]
    confirm = pd.read_csv(experiment / "confirm.csv", dtype={"trial_id": str})
    cfg = Record(experiment).config()  # a trial's own hparams hold its seed only when searched
    ran = {int(json.loads(h).get("seed", cfg.train.seed)) for h in trials["hparams"]}
    ran |= set(confirm["seed"].astype(int))
    ran |= {int(report["config"]["seed"]), int(report["baseline_config"]["seed"])}
    assert ran == {0, 1}  # every trial at seed 0, the confirm runs at seed 1
    assert set(report["search_seeds"]) == ran
    assert not set(report["seeds"]) & ran and len(report["seeds"]) == SEEDS
    assert report["seeds"] == [2, 3]
    summary = (retrained["dir"] / "summary.md").read_text()
    assert "all fresh" in summary and "none of which is re-used" in summary


def test_mean_std_match_per_seed_values(retrained: dict[str, Any]) -> None:
    frame, report = retrained["per_seed"], retrained["report"]
    for model in ("student", "baseline"):
        rows = frame[frame["model"] == model]
        assert sorted(rows["seed"]) == report["seeds"]  # the same seeds for both
        for col in retrain.metric_columns(LABELS):
            stats = report["summary"][model][col]
            assert stats["n"] == SEEDS
            assert stats["mean"] == pytest.approx(rows[col].mean(), abs=1e-12)
            assert stats["std"] == pytest.approx(np.std(rows[col].to_numpy(), ddof=1), abs=1e-12)
    s = frame[frame["model"] == "student"].sort_values("seed")["test_macro_f1"].to_numpy()
    b = frame[frame["model"] == "baseline"].sort_values("seed")["test_macro_f1"].to_numpy()
    seed_level = report["comparison"]["seed_level"]
    assert seed_level["differences"] == pytest.approx((s - b).tolist())
    assert seed_level["mean_difference"] == pytest.approx(float(np.mean(s - b)))


def test_every_interval_sits_beside_its_own_estimate(retrained: dict[str, Any]) -> None:
    cmp_, verdict = retrained["report"]["comparison"], retrained["report"]["verdict"]
    t = cmp_["seed_level"]["t_test"]
    assert verdict["ci_low"] == pytest.approx(t["ci_low"]) and verdict["pvalue"] == pytest.approx(
        t["pvalue"])
    assert verdict["mean_difference"] == pytest.approx(cmp_["seed_level"]["mean_difference"])
    for key in ("majority_vote", "best_seed"):
        ex = cmp_["example_level"][key]
        m = ex["mcnemar"]
        assert (m["student_only_correct"] + m["baseline_only_correct"] + m["both_correct"]
                + m["both_wrong"]) == len(retrained["report"]["test_labels"])
        b = ex["bootstrap"]
        assert -1.0 <= b["ci_low"] <= b["ci_high"] <= 1.0 and b["n_resamples"] == 200
        assert ex["difference"] == pytest.approx(ex["student_macro_f1"] - ex["baseline_macro_f1"])
    summary = (retrained["dir"] / "summary.md").read_text()
    row = next(ln for ln in summary.splitlines() if "| paired t-test |" in ln)
    low = f"{100 * t['ci_low']:+.2f}"
    assert "mean per-seed difference" in row and low in row  # the t CI on the mean's row


def test_reproduces_the_trial(retrained: dict[str, Any]) -> None:
    rep = retrained["report"]["reproduction"]
    trial = retrained["trials"].set_index("trial_id").loc[retrained["report"]["student"]["trial_id"]]
    assert rep["checked"], rep
    assert rep["best_progress"] == pytest.approx(float(trial["best_progress"]))
    assert rep["trial_val_macro_f1"] == pytest.approx(float(trial["best_val_macro_f1"]))
    assert abs(rep["difference"]) <= 0.005 and rep["within_tolerance"] is True, rep
    # its own run at the trial's seed, never one of the verdict's seeds
    assert rep["seed"] == retrained["report"]["config"]["seed"]
    assert rep["seed"] not in retrained["report"]["seeds"]
    assert all(r["seed"] != rep["seed"] for r in retrained["report"]["runs"]["student"])


def test_both_models_saved_and_the_one_to_ship_named(retrained: dict[str, Any]) -> None:
    from huggingface_hub import ModelCard
    from transformers import pipeline

    report, frame = retrained["report"], retrained["per_seed"]
    ship = report["ship"]["model"]
    other = "baseline" if ship == "student" else "student"
    # the decision decides: KD ships only when better or equivalent (same student size here)
    kind = report["verdict"]["kind"]
    assert (ship == "student") == (kind in ("kd_better", "equivalent")), (kind, ship)
    assert report["model"] == report["models"][ship]
    for name, folder in ((ship, retrained["dir"] / "model"), (other, retrained["dir"] / "alternative")):
        info = report["models"][name]
        rows = frame[frame["model"] == name]
        assert info["seed"] == int(rows.loc[rows["val_macro_f1"].idxmax(), "seed"])
        card = ModelCard.load(folder / "README.md")
        best = rows[rows["seed"] == info["seed"]].iloc[0]
        macro = next(r for r in card.data.eval_results if r.metric_name == "test macro-F1")
        assert macro.metric_value == pytest.approx(best["test_macro_f1"])
        said = "This is the model to ship" if name == ship else "NOT the model kdtune recommends"
        assert said in card.text and report["ship"]["reason"] in card.text
        assert info["params"] > 0 and info["latency"]["latency_ms"] > 0
    folder = retrained["dir"] / "model"
    config = json.loads((folder / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(LABELS))] == LABELS
    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    out = classifier(["The striker scored twice in the final.", "Shares fell after the report."])
    assert all(o["label"] in LABELS for o in out), out
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    for needle in ("ms at batch 1", "±", "parameters", "MB", "Hyperparameters", "Verdict"):
        assert needle in card.text, needle


def test_a_diverged_seed_is_a_failure_never_scored_silently(experiment: Path) -> None:
    """A KD config that diverges (learning rate 1e4) on every seed: reported per seed, left out
    of the paired test, counted against KD, and the CE baseline ships."""
    from kdtune.retrain.pool import RunPool
    from kdtune.retrain.retraining import _failure_sentence
    from kdtune.retrain.rounds import run_rounds
    from kdtune.retrain.ship import ship_choice
    from kdtune.stages import prepare

    record = Record(experiment)
    cfg = record.config()
    choice = retrain.choose(record, cfg)
    choice.student.hparams = {**choice.student.hparams, "learning_rate": 1.0e4}
    prep = prepare(cfg)
    pool = RunPool(prep.trial_data(cfg), prep.encoded["test"], threads=1, cpus=1, gpus=0,
                   metric="val_macro_f1", mode="max", device=prep.device, sequential=True)
    outcome = run_rounds(pool, {"student": choice.student, "baseline": choice.baseline},
                         retrain.Design.fixed(2), [10, 11], epochs=1)
    assert [r.diverged for r in outcome.runs["student"]] == [True, True]
    assert [r.diverged for r in outcome.runs["baseline"]] == [False, False]
    assert outcome.failures() == {"student": [10, 11], "baseline": []}
    assert outcome.paired() == ([], [])  # never scored in the comparison
    assert outcome.decision["kind"] == "inconclusive" and outcome.decision["n"] == 0
    assert "diverged on seed(s) 10, 11 of 2" in _failure_sentence(outcome.failures(), 2)
    ship = ship_choice({"kind": "kd_better"}, outcome.failures(), {"student": 1, "baseline": 1})
    assert ship["model"] == "baseline"


def test_choose_defaults_to_the_picks_and_takes_trials(experiment: Path) -> None:
    record = Record(experiment)
    cfg = record.config()
    picks, trials = _picks(experiment), _trials(experiment)
    choice = retrain.choose(record, cfg)
    assert choice.student.trial_id == picks["distilled"]["trial_id"]
    assert choice.baseline.trial_id == picks["baseline"]["trial_id"]
    assert choice.student.hparams == picks["distilled"]["hparams"]
    # --trial / --baseline-trial take other trials, each at its own recorded hparams
    ce = trials[(trials["arm"] == "ce") & trials["status"].isin(["completed", "stopped early"])]
    other = ce[ce["trial_id"] != choice.baseline.trial_id].iloc[0]
    picked = retrain.choose(record, cfg, baseline_trial=other["trial_id"])
    assert picked.baseline.hparams["learning_rate"] == pytest.approx(other["learning_rate"])
    assert picked.baseline.hparams["alpha"] == 1.0 and picked.baseline.source == "trials.csv"


def _no_trial_experiment(experiment: Path, tmp_path: Path, keep_csv: bool) -> Path:
    exp = tmp_path / "unfinished"
    exp.mkdir()
    for name in ("config.yaml", "record.json"):
        shutil.copy(experiment / name, exp / name)
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
    ("unknown-baseline", "--baseline-trial"),
    ("older-schema", "experiment"),
    ("zero-seeds", "--seeds"),
    ("negative-seeds", "--seeds"),
    ("zero-epochs", "--epochs"),
    ("zero-threads", "--threads"),
    ("words-for-seeds", "--seeds"),
    ("zero-margin", "--margin"),
    ("too-few-max-seeds", "--max-seeds"),
    ("set-the-data", "--set data.max_train"),
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
                                           _picks(experiment)["distilled"]["trial_id"],
                                           "--baseline-trial", "x"],
        "unknown-trial": lambda: [exp, "--trial", "no-such-trial"],
        "unknown-baseline": lambda: [exp, "--baseline-trial", "no-such-trial"],
        "older-schema": lambda: [_older(experiment, tmp_path)],
        "zero-seeds": lambda: [exp, "--seeds", "0"],
        "negative-seeds": lambda: [exp, "--seeds", "-1"],
        "zero-epochs": lambda: [exp, "--epochs", "0"],
        "zero-threads": lambda: [exp, "--threads", "0"],
        "words-for-seeds": lambda: [exp, "--seeds", "many"],
        "zero-margin": lambda: [exp, "--margin", "0"],
        "too-few-max-seeds": lambda: [exp, "--max-seeds", "2"],
        "set-the-data": lambda: [exp, "--set", "data.max_train=10"],
    }[case]()
    capsys.readouterr()
    assert retrain.main(argv) == 2
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


def _older(experiment: Path, tmp_path: Path) -> str:
    """An experiment as kdtune 0.1 left it: no record.json (schema 1)."""
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(experiment / "config.yaml", old / "config.yaml")
    return str(old)


def _run(history_f1: list[float]) -> retrain.Run:
    preds = np.zeros(4, dtype=np.int64)
    return retrain.Run("student", 0, 3, float(len(history_f1)), False, 1.0,
                       [{"progress": i + 1.0, "val_macro_f1": f} for i, f in enumerate(history_f1)],
                       {}, {}, preds, np.full((4, 2), 0.5))


def test_reproduction_helper() -> None:
    pick = retrain.Pick("t1", "trials.csv", {"seed": 0, "epochs": 3}, best_progress=2.0,
                        val_score=0.60)
    ok = retrain.reproduction(pick, _run([0.5, 0.604, 0.7]), 1, "cpu")
    assert ok["checked"] and ok["within_tolerance"] is True
    assert ok["retrained_val_macro_f1"] == 0.604 and ok["difference"] == pytest.approx(0.004)
    off = retrain.reproduction(pick, _run([0.5, 0.61, 0.7]), 1, "cpu")
    assert off["checked"] and off["within_tolerance"] is False
    short = retrain.reproduction(pick, _run([0.5]), 1, "cpu")
    assert not short["checked"] and "diverged" in short["note"]
    skipped = retrain.reproduction(pick, None, 1, "cpu", note="--epochs 5 differs")
    assert not skipped["checked"] and skipped["within_tolerance"] is None
