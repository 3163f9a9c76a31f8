"""The report end to end: a tiny real search, rendered; every number traced to the results files.

One module-scoped search (``search_spaces/smoke.yaml``, 4 trials; the teacher cache in
``.cache/kdtune`` is reused) is rendered once; a copy of it with the final files removed plays
the interrupted search, and a copy given latencies, a Pareto front and a multi-objective Optuna
study plays a multi-objective search. The HTML is opened in headless Chromium.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_experiment
from sklearn.metrics import confusion_matrix

from kdtune import report
from kdtune.pareto import choose, pareto_mask

ROOT = Path(__file__).resolve().parents[1]
PNGS = ("alpha_temperature", "learning_curves", "losses_best_trial", "optuna_history",
        "optuna_importances", "epochs_granted", "confusion_matrix")
CSVS = ("leaderboard", "per_class_test", "f1_all_models", "confusion_matrix", "efficiency")
HEADINGS = ("## Verdict", "## Leaderboard", "## Per-class precision / recall / F1, held-out test split",
            "## F1 across all models", "## Confusion matrix of the best distilled student",
            "## Efficiency", "## Plots")
ID = {"trial_id": str, "trial": str}


@pytest.fixture(scope="module")
def experiment(smoke_search, tmp_path_factory) -> Path:
    exp = copy_experiment(smoke_search, tmp_path_factory.mktemp("report_results"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the space names ../shared and .cache relative to the project root
        report.render(exp)
    return exp


@pytest.fixture(scope="module")
def partial(experiment, tmp_path_factory) -> Path:
    """A copy of the search as an interrupted one left it: no final files, old timestamps."""
    copy = tmp_path_factory.mktemp("partial") / experiment.name
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("models", "report*"))
    for name in ("summary.md", "evaluation.json", "trials.csv", "history.csv", "best_trial.json"):
        (copy / name).unlink()
    (copy / "retrain").mkdir()
    (copy / "retrain" / "comparison.md").write_text(
        "# Multi-seed comparison\n\n| model | test macro-F1 |\n|---|---|\n| baseline | 0.1 ± 0.01 |\n")
    _age(copy, seconds=3600)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        report.render(copy, efficiency=False)
    return copy


LATENCY = (40.0, 30.0, 20.0, 50.0)  # by rank: the worst trial is also the slowest (dominated)
LAYERS = ("[0, 2, 5]", "[0, 5]", "[0, 5]", "[0, 2, 5]")
PARAMS = {"[0, 5]": 15_300_000.0, "[0, 2, 5]": 17_100_000.0}


@pytest.fixture(scope="module")
def multi_objective(experiment, tmp_path_factory) -> Path:
    """A copy of the search made multi-objective (val macro-F1 vs latency) after the fact.

    Latencies, student layers, a feature loss, an extra teacher and a multi-objective Optuna
    study are synthetic; pareto.csv and the chosen point are computed as kdtune.results does.
    """
    import optuna

    copy = tmp_path_factory.mktemp("multi") / experiment.name
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("models", "report*", "optuna.db"))
    raw = yaml.safe_load((copy / "config.yaml").read_text())
    trials = pd.read_csv(copy / "trials.csv", dtype=ID)
    assert len(trials) == len(LATENCY)
    f1 = trials["best_val_macro_f1"]
    raw["search"]["objectives"] = ["val_macro_f1", "latency_ms"]
    raw["search"]["f1_tolerance"] = float(f1.iloc[0] - f1.iloc[1]) + 1e-9  # the 2nd is close enough
    raw["space"]["layers"] = {"type": "choice", "values": [[0, 5], [0, 2, 5]]}
    (copy / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = report.load_experiment(copy).cfg
    trials["layers"], trials["latency_ms"] = list(LAYERS), list(LATENCY)
    trials["params"] = trials["layers"].map(PARAMS)
    trials.to_csv(copy / "trials.csv", index=False)
    ok = trials[trials["status"].isin(["completed", "stopped early"])]
    cols = ["best_val_macro_f1", "latency_ms"]
    front = ok[pareto_mask(ok, cols, cfg.search.modes)].sort_values("latency_ms")
    front.to_csv(copy / "pareto.csv", index=False)
    chosen = front.loc[choose(front, cols[0], "max", cols[1], cfg.search.f1_tolerance)]
    best = json.loads((copy / "best_trial.json").read_text())
    best.update(trial_id=chosen["trial_id"], score=chosen["best_val_macro_f1"],
                best_epoch=int(chosen["best_epoch"]),
                anchor=chosen["anchor"] if isinstance(chosen["anchor"], str) else "")
    best["config"].update({k: chosen[k] for k in ("alpha", "temperature", "learning_rate")},
                          layers=json.loads(chosen["layers"]))
    (copy / "best_trial.json").write_text(json.dumps(best))
    evaluation = json.loads((copy / "evaluation.json").read_text())
    evaluation["picks"]["best"] = chosen["trial_id"]  # as kdtune.results.pick_trials does
    (copy / "evaluation.json").write_text(json.dumps(evaluation))

    history = pd.read_csv(copy / "history.csv", dtype=ID)
    history["feature_loss"] = 0.25 / history["epoch"]
    history.to_csv(copy / "history.csv", index=False)
    info = json.loads((copy / "run_info.json").read_text())
    info.update(extra_teachers=[{"key": "0123abcd", "dir": "x", "val_accuracy": 0.8,
                                 "test_accuracy": 0.79}], feature_cache_mb=12.34)
    (copy / "run_info.json").write_text(json.dumps(info))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.name, storage=f"sqlite:///{copy / 'optuna.db'}",
                                directions=[f"{m}imize" for m in cfg.search.modes])
    dists = {"alpha": optuna.distributions.FloatDistribution(0.0, 1.0),
             "temperature": optuna.distributions.FloatDistribution(1.0, 10.0)}
    for _, r in trials.iterrows():
        study.add_trial(optuna.trial.create_trial(
            params={k: float(r[k]) for k in dists}, distributions=dists,
            values=[float(r["best_val_macro_f1"]), float(r["latency_ms"])]))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        report.render(copy, efficiency=False)
    return copy


def _age(folder: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


def md_table(md: str, heading: str) -> pd.DataFrame:
    """The first markdown table after the heading that starts with ``heading``."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(heading))
    i = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("|"))
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split(" | ")])
        i += 1
    return pd.DataFrame(rows[2:], columns=rows[0])


def _r4(x: float) -> str:
    return f"{x:.4f}"


def test_every_table_and_image_is_there(experiment):
    md = (experiment / "report.md").read_text()
    for heading in HEADINGS:
        assert heading in md, heading
    for name in PNGS:
        png = experiment / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"](report/{name}.png)" in md, name
    for name in CSVS:
        assert (experiment / "report" / f"{name}.csv").is_file(), name
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (experiment / ref).is_file(), ref
    assert "state: **finished**" in md


def test_leaderboard_matches_trials_csv(experiment):
    trials = pd.read_csv(experiment / "trials.csv", dtype=ID)
    board = pd.read_csv(experiment / "report" / "leaderboard.csv", dtype=ID)
    assert len(board) == min(10, len(trials)) == 4
    assert list(board["trial"]) == list(trials["trial_id"])  # ranked by the best epoch
    assert board["best val macro-F1"].is_monotonic_decreasing
    for col, src in (("alpha", "alpha"), ("temperature", "temperature"),
                     ("learning_rate", "learning_rate"), ("epochs run", "epochs_run"),
                     ("best epoch", "best_epoch"), ("best val accuracy", "best_val_accuracy"),
                     ("best val macro-F1", "best_val_macro_f1")):
        np.testing.assert_allclose(board[col].astype(float), trials[src].astype(float), rtol=1e-12)
    assert list(board["status"].str.split(":").str[0]) == list(trials["status"])
    md = md_table((experiment / "report.md").read_text(), "## Leaderboard")
    assert list(md["trial"]) == list(trials["trial_id"])
    assert list(md["best val macro-F1"]) == [_r4(v) for v in trials["best_val_macro_f1"]]
    assert list(md["best val accuracy"]) == [_r4(v) for v in trials["best_val_accuracy"]]
    assert list(md["alpha"]) == [_r4(v) for v in trials["alpha"]]
    assert list(md["epochs run"]) == [str(v) for v in trials["epochs_run"]]


def test_per_class_tables_match_evaluation(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    names, models = ev["label_names"], ev["models"]
    pc = pd.read_csv(experiment / "report" / "per_class_test.csv")
    md = md_table((experiment / "report.md").read_text(), "## Per-class precision / recall / F1")
    assert list(pc["class"]) == [*names, "macro avg"] == list(md["class"])
    for i, name in enumerate(names):
        for model in ("baseline", "teacher", "distilled"):
            for short, key in (("P", "precision"), ("R", "recall"), ("F1", "f1")):
                want = models[model]["test"]["per_class"][name][key]
                assert pc.loc[i, f"{model} {short}"] == pytest.approx(want, abs=1e-12)
                assert md.loc[i, f"{model} {short}"] == _r4(want)
        for ref in ("baseline", "teacher"):
            delta = (models["distilled"]["test"]["per_class"][name]["f1"]
                     - models[ref]["test"]["per_class"][name]["f1"])
            assert pc.loc[i, f"ΔF1 vs {ref}"] == pytest.approx(delta, abs=1e-12)
            assert float(md.loc[i, f"ΔF1 vs {ref}"]) == pytest.approx(delta, abs=6e-5)
    for model in ("baseline", "teacher", "distilled"):  # macro avg of F1 is sklearn's macro-F1
        assert pc.iloc[-1][f"{model} F1"] == pytest.approx(models[model]["test"]["macro_f1"])

    f1 = pd.read_csv(experiment / "report" / "f1_all_models.csv").set_index("Unnamed: 0")
    for model in ("baseline", "teacher", "distilled"):
        for name in names:
            assert f1.loc[f"F1 {name}", model] == pytest.approx(
                models[model]["test"]["per_class"][name]["f1"], abs=1e-12)
        assert f1.loc["macro-F1", model] == pytest.approx(models[model]["test"]["macro_f1"])
        assert f1.loc["accuracy", model] == pytest.approx(models[model]["test"]["accuracy"])

    cm = pd.read_csv(experiment / "report" / "confusion_matrix.csv").iloc[:, 1:].to_numpy()
    want = confusion_matrix(ev["labels"]["test"], models["distilled"]["test"]["predictions"],
                            labels=list(range(len(names))))
    np.testing.assert_array_equal(cm, want)
    assert np.trace(cm) / cm.sum() == pytest.approx(models["distilled"]["test"]["accuracy"])
    md_cm = md_table((experiment / "report.md").read_text(), "## Confusion matrix")
    np.testing.assert_array_equal(md_cm.iloc[:, 1:].astype(int).to_numpy(), want)


def test_efficiency_is_measured(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    eff = pd.read_csv(experiment / "report" / "efficiency.csv").set_index("model")
    assert list(eff.index) == ["teacher", "baseline", "distilled"]
    for model in eff.index:
        assert eff.loc[model, "params"] == ev["models"][model]["params"]
        assert eff.loc[model, "latency_ms"] > 0 and eff.loc[model, "throughput"] > 0
    weights = (experiment / "models" / "distilled" / "model.safetensors").stat().st_size
    assert eff.loc["distilled", "size_mb"] == pytest.approx(weights / 1e6)
    assert eff.loc["teacher", "speed-up vs teacher"] == pytest.approx(1.0)
    assert eff.loc["distilled", "size ratio vs teacher"] < 1.0  # 2 of the teacher's 6 layers


def test_verdict_is_written_from_the_numbers(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    best = json.loads((experiment / "best_trial.json").read_text())
    md = (experiment / "report.md").read_text()
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    s, b = ev["models"]["distilled"]["test"]["macro_f1"], ev["models"]["baseline"]["test"]["macro_f1"]
    assert f"{s:.4f} vs {b:.4f}" in verdict
    assert ("beats" in verdict) == (s > b)
    assert "python -m kdtune.retrain" in verdict and "one seed" in verdict
    assert f"alpha = {best['config']['alpha']:.4f}" in verdict
    assert f"temperature = {best['config']['temperature']:.4f}" in verdict
    assert "spread between the top trials" in verdict


def test_html_is_self_contained(experiment):
    page = (experiment / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"""src=["']?([^"' >]+)""", page)
    assert len(sources) == len(PNGS)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"""(href|url)\(?=?["']?(?!data:)[\w./-]+\.(png|css|js)""", page)
    first = base64.b64decode(sources[0].split(",", 1)[1])
    assert first.startswith(b"\x89PNG") and first in {
        (experiment / "report" / f"{n}.png").read_bytes() for n in PNGS}


def test_html_renders_in_headless_chromium(experiment, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "report.png"
    url = (experiment / "report.html").resolve().as_uri()
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1280,2000", url],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines()
               if ("CONSOLE" in ln or "Uncaught" in ln) and "report.html" in ln]
    assert not console, console
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05  # not a blank page


def test_partial_search_is_reported_as_interrupted(partial, experiment):
    md = (partial / "report.md").read_text()
    assert "interrupted" in md.split("## Verdict")[0]
    assert "python -m kdtune.search --resume" in md
    trials = pd.read_csv(experiment / "trials.csv", dtype=ID)
    board = pd.read_csv(partial / "report" / "leaderboard.csv", dtype=ID)
    # rebuilt from tune/*/result.json, the leaderboard is the one trials.csv had
    assert list(board["trial"]) == list(trials["trial_id"])
    np.testing.assert_allclose(board["best val macro-F1"], trials["best_val_macro_f1"], rtol=1e-12)
    assert list(board["status"]) == list(trials["status"])
    for name in ("alpha_temperature", "learning_curves", "epochs_granted"):
        assert (partial / "report" / f"{name}.png").is_file()
    assert not (partial / "report" / "per_class_test.csv").exists()  # no test results yet


def test_retrain_results_are_included(partial):
    md = (partial / "report.md").read_text()
    assert "## Re-training" in md and "0.1 ± 0.01" in md
    page = (partial / "report.html").read_text()
    assert "<td>0.1 ± 0.01</td>" in page


def test_state_running_and_empty_experiment(partial, tmp_path):
    assert report.experiment_state(partial) == "interrupted"
    next(partial.glob("tune/*/result.json")).touch()
    assert report.experiment_state(partial) == "running"
    _age(partial, seconds=3600)
    # only config.yaml: the search is still preparing the data or the teacher
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(partial / "config.yaml", empty / "config.yaml")
    html = report.render(empty, efficiency=False)
    md = (empty / "report.md").read_text()
    assert html.is_file() and "state: **running" in md and "No trial has reported yet" in md


@pytest.mark.parametrize("kind", ["missing", "file", "not_experiment"])
def test_bad_input_exits_2(kind, tmp_path, capsys):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "f.txt",
              "not_experiment": tmp_path}[kind]
    if kind == "file":
        target.write_text("x")
    assert report.main([str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kdtune.report: error: ")
    assert str(target) in err


def test_rerender_reuses_the_efficiency_measurement(experiment, capsys):
    cache = experiment / "report" / "efficiency.csv"
    before = cache.stat().st_mtime_ns
    assert report.main([str(experiment)]) == 0
    assert cache.stat().st_mtime_ns == before
    assert "report.html" in capsys.readouterr().out
    assert "Cached measurement" in (experiment / "report.md").read_text()


def test_multi_objective_search_gets_a_pareto_front(multi_objective):
    exp = multi_objective
    md = (exp / "report.md").read_text()
    front = pd.read_csv(exp / "pareto.csv", dtype=ID)
    chosen = json.loads((exp / "best_trial.json").read_text())["trial_id"]
    trials = pd.read_csv(exp / "trials.csv", dtype=ID)
    assert trials["trial_id"].iloc[-1] not in set(front["trial_id"])  # worst and slowest
    assert chosen != trials["trial_id"].iloc[0]  # a faster trial within f1_tolerance of the best

    assert "## Pareto front: val macro-F1 vs latency_ms" in md
    png = exp / "report" / "pareto_front.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](report/pareto_front.png)" in md
    table = md_table(md, "## Pareto front")
    assert list(table["trial"]) == list(front.sort_values("latency_ms")["trial_id"])
    assert list(table.loc[table["chosen"] == "chosen", "trial"]) == [chosen]
    assert set(table["chosen"]) <= {"chosen", ""}
    by_id = front.set_index("trial_id")
    for _, row in table.iterrows():
        src = by_id.loc[row["trial"]]
        assert row["layers"] == src["layers"]
        assert row["latency_ms"] == _r4(src["latency_ms"])
        assert row["params"] == str(int(src["params"]))
        assert row["best val macro-F1"] == _r4(src["best_val_macro_f1"])
        assert row["alpha"] == _r4(src["alpha"]) and row["temperature"] == _r4(src["temperature"])
    section = md.split("## Pareto front", 1)[1].split("\n## ", 1)[0]
    assert f"Chosen: trial `{chosen}`" in section
    csv = pd.read_csv(exp / "report" / "pareto_front.csv", dtype=ID)
    assert list(csv["trial"]) == list(table["trial"])

    # the leaderboard shows every searched parameter and the cost columns
    board = pd.read_csv(exp / "report" / "leaderboard.csv", dtype=ID)
    assert list(board["trial"]) == list(trials["trial_id"])
    assert list(board["layers"]) == list(trials["layers"])
    np.testing.assert_allclose(board["latency_ms"], trials["latency_ms"])
    assert list(board["params"]) == [int(v) for v in trials["params"]]
    head = md.split("## Verdict")[0]
    assert "extra teachers (1): `0123abcd` (val accuracy 0.8000, test accuracy 0.7900)" in head
    assert "12.3 MB" in head and "`latency_ms` (min)" in head
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert f"trial `{chosen}`" in verdict and "Pareto front" in verdict
    layers = trials.set_index("trial_id").loc[chosen, "layers"]
    assert f"layers = {layers}" in verdict
    assert "### KD loss, CE loss, feature loss and KD/CE ratio" in md
    assert "(report/optuna_history.png)" in md  # a multi-objective study is plotted too
    page = (exp / "report.html").read_text()
    assert len(re.findall(r"src=.data:image/png;base64,", page)) == len(
        re.findall(r"!\[[^\]]*\]\(report/", md))
    assert f"<td>{chosen}</td><td>chosen</td>" in page
