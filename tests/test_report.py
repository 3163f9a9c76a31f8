"""The report end to end: a tiny real search, rendered; every number traced to the record.

The session's smoke search (``smoke_search``: 3 KD + 3 tuned CE trials, then the confirm stage)
is copied and rendered once; a copy with the final files removed plays the interrupted search
(with a re-training summary beside it), a copy given latencies, a Pareto front and a
multi-objective Optuna study plays a multi-objective search, and a copy served through a
``file://`` URI plays a record on object storage. The verdict and the teacher warnings are
also checked on constructed numbers. The HTML is opened in headless Chromium.
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
from kdtune.files import dumps
from kdtune.formatting import points
from kdtune.record import experiment_state, load_experiment, open_record
from kdtune.record import schema as S
from kdtune.record.picks import choose, pareto_table, picks
from kdtune.report import Anchor, Noise, Pick, TeacherNumbers, VerdictInput
from kdtune.report.facts import facts
from kdtune.report.record_sections import pick_changes, ranking_table
from kdtune.report.tables import leaderboard
from kdtune.report.verdict_inputs import teacher_numbers

ROOT = Path(__file__).resolve().parents[1]
PNGS = ("alpha_temperature", "learning_curves", "losses_best_trial", "optuna_history",
        "optuna_importances", "optuna_ce_history", "training_granted", "confusion_matrix")
CSVS = ("leaderboard", "ranking", "per_class_test", "f1_all_models", "confusion_matrix", "efficiency")
HEADINGS = ("## Verdict (provisional)", "## Leaderboard", "## Single-seed vs multi-seed ranking",
            "## Per-class precision / recall / F1, held-out test split", "## F1 across all models",
            "## Confusion matrix of the best distilled student", "## Efficiency", "## Plots",
            "### Training granted per trial (ASHA)")
ID = {"trial_id": str, "trial": str, "duplicate_of": str}
RETRAIN_SUMMARY = """# kdtune retrain of `smoke`

- seeds: 0, 1, 2

## Mean ± std over seeds (sample std, ddof = 1)

| metric | KD student | CE-only baseline | difference (paired) |
|---|---|---|---|
| test macro-F1 | 0.1000 ± 0.0100 | 0.2000 ± 0.0200 | -0.1000 ± 0.0100 |
"""
RETRAIN_VERDICT = "No significant difference over 3 seeds (constructed for the test)."


@pytest.fixture(scope="module")
def experiment(smoke_search, tmp_path_factory) -> Path:
    exp = copy_experiment(smoke_search, tmp_path_factory.mktemp("report_results"))
    report.render(exp)
    return exp


def _age(folder: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


@pytest.fixture(scope="module")
def partial(experiment, tmp_path_factory) -> Path:
    """A copy of the search as an interrupted one left it: no final files, old timestamps; a
    re-training summary beside it."""
    copy = tmp_path_factory.mktemp("partial") / experiment.name
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("models", "report*"))
    for name in ("summary.md", "evaluation.json", "trials.csv", "history.csv", "picks.json",
                 "confirm.csv"):
        (copy / name).unlink()
    (copy / "retrain").mkdir()
    (copy / "retrain" / "summary.md").write_text(RETRAIN_SUMMARY)
    (copy / "retrain" / "retrain.json").write_text(json.dumps({"verdict": {"text": RETRAIN_VERDICT}}))
    _age(copy, seconds=3600)
    report.render(copy, efficiency=False)
    return copy


LATENCY = (40.0, 30.0, 20.0, 50.0, 60.0, 70.0)  # by rank: the worst trial is also the slowest
LAYERS = ("[0, 2, 5]", "[0, 5]", "[0, 5]", "[0, 2, 5]", "[0, 5]", "[0, 2, 5]")
PARAMS = {"[0, 5]": 15_300_000.0, "[0, 2, 5]": 17_100_000.0}


def _multi_objective_study(copy: Path, cfg, trials: pd.DataFrame) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.name, storage=f"sqlite:///{copy / 'optuna.db'}",
                                directions=[f"{m}imize" for m in cfg.search.modes])
    dists = {"alpha": optuna.distributions.FloatDistribution(0.0, 1.0),
             "temperature": optuna.distributions.FloatDistribution(1.0, 10.0)}
    for _, r in trials.iterrows():
        values = {k: float(r[k]) if pd.notna(r[k]) else 3.0 for k in dists}
        study.add_trial(optuna.trial.create_trial(
            params=values, distributions=dists,
            values=[float(r[S.best("val_macro_f1")]), float(r[S.LATENCY])]))


@pytest.fixture(scope="module")
def multi_objective(experiment, tmp_path_factory) -> Path:
    """A copy of the search made multi-objective (val macro-F1 vs latency) after the fact.

    Latencies, student layers, a feature loss, an extra teacher and a multi-objective Optuna
    study are synthetic; pareto.csv and picks.json are computed with kdtune.record.picks.
    """
    copy = tmp_path_factory.mktemp("multi") / experiment.name
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("models", "report*", "optuna.db"))
    raw = yaml.safe_load((copy / "config.yaml").read_text())
    trials = pd.read_csv(copy / "trials.csv", dtype=ID)
    assert len(trials) == len(LATENCY)
    f1 = trials[S.best("val_macro_f1")]
    raw["search"]["objectives"] = ["val_macro_f1", "latency_ms"]
    raw["search"]["f1_tolerance"] = float(f1.iloc[0] - f1.iloc[1]) + 1e-9  # the 2nd is close enough
    raw["space"]["layers"] = {"type": "choice", "values": [[0, 5], [0, 2, 5]]}
    (copy / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    trials["layers"], trials[S.LATENCY] = list(LAYERS), list(LATENCY)
    trials[S.PARAMS] = trials["layers"].map(PARAMS)
    trials.to_csv(copy / "trials.csv", index=False)
    exp = load_experiment(copy)
    pareto_table(exp.trials, exp.cfg).to_csv(copy / "pareto.csv", index=False)
    chosen = picks(exp.trials, exp.cfg)
    (copy / "picks.json").write_text(dumps(chosen))
    evaluation = json.loads((copy / "evaluation.json").read_text())
    evaluation["picks"]["best"] = chosen["best"]
    (copy / "evaluation.json").write_text(json.dumps(evaluation))
    history = pd.read_csv(copy / "history.csv", dtype=ID)
    history["feature_loss"] = 0.25 / history[S.PROGRESS]
    history.to_csv(copy / "history.csv", index=False)
    info = json.loads((copy / "run_info.json").read_text())
    info.update(extra_teachers=[{"key": "0123abcd", "dir": "x", "val_accuracy": 0.8,
                                 "test_accuracy": 0.79}], feature_cache_mb=12.34)
    (copy / "run_info.json").write_text(json.dumps(info))
    _multi_objective_study(copy, exp.cfg, trials)
    report.render(copy, efficiency=False)
    return copy


def md_table(md: str, heading: str) -> pd.DataFrame:
    """The first markdown table after the heading that starts with ``heading``."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(heading))
    i = next(j for j in range(start, len(lines)) if lines[j].startswith("|"))
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split(" | ")])
        i += 1
    return pd.DataFrame(rows[2:], columns=rows[0])


def section(md: str, heading: str) -> str:
    return md.split(heading, 1)[1].split("\n## ", 1)[0]


def _r4(x: float) -> str:
    return f"{x:.4f}"


# -- the finished search ----------------------------------------------------------------------
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
    assert "## Export" not in md and "## Re-training" not in md  # neither has run


def test_facts_name_the_arms_budgets_and_confirm_cost(experiment):
    info = json.loads((experiment / "run_info.json").read_text())
    cfg = load_experiment(experiment).cfg
    head = (experiment / "report.md").read_text().split("## Verdict")[0]
    for arm, n in info["arms"].items():
        assert f"{arm} {n} trials" in head
    assert cfg.baseline_mode == "tuned"
    assert "baseline: tuned (the best trial of the CE-only arm" in head
    assert (f"confirm stage: {info['confirm_seconds']:.0f} s, {info['confirm_ratio']:.2f}x the "
            "search's wall time") in head
    assert f"search wall time {info['search_seconds']:.0f} s" in head
    assert "duplicates:" not in head  # no config was proposed twice


def test_duplicates_are_counted_and_shown(experiment):
    exp = load_experiment(experiment)
    original = exp.trials.iloc[1]
    dup = {**original.to_dict(), S.TRIAL_ID: "dup-kd-9", S.STATUS: S.DUPLICATE, S.PROGRESS: 0.0,
           S.DUPLICATE_OF: original[S.TRIAL_ID], S.PATH: ""}
    exp.trials = pd.concat([exp.trials, pd.DataFrame([dup])], ignore_index=True)
    lines = facts(exp)
    assert any("duplicates: 1 trial(s)" in ln and "served from a known result, not trained" in ln
               for ln in lines)
    board = leaderboard(exp, 10)
    assert board.iloc[-1]["status"] == f"duplicate of {original[S.TRIAL_ID]}"
    assert board.iloc[-1]["progress"] == 0.0


def test_leaderboard_matches_trials_csv(experiment):
    trials = pd.read_csv(experiment / "trials.csv", dtype=ID)
    board = pd.read_csv(experiment / "report" / "leaderboard.csv", dtype=ID)
    assert len(board) == min(10, len(trials)) == 6
    assert list(board["trial"]) == list(trials[S.TRIAL_ID])  # ranked by the best score
    assert board["best val macro-F1"].is_monotonic_decreasing
    assert list(board["arm"]) == list(trials[S.ARM])
    for col, src in (("alpha", "alpha"), ("temperature", "temperature"),
                     ("learning_rate", "learning_rate"), ("progress", S.PROGRESS),
                     ("best progress", S.BEST_PROGRESS), ("best val accuracy", "best_val_accuracy"),
                     ("best val macro-F1", "best_val_macro_f1")):
        np.testing.assert_allclose(board[col].astype(float), trials[src].astype(float), rtol=1e-12)
    assert list(board["status"].str.split(":").str[0]) == list(trials[S.STATUS])
    md = md_table((experiment / "report.md").read_text(), "## Leaderboard")
    assert list(md["trial"]) == list(trials[S.TRIAL_ID])
    assert list(md["arm"]) == list(trials[S.ARM])
    assert list(md["best val macro-F1"]) == [_r4(v) for v in trials["best_val_macro_f1"]]
    assert list(md["progress"]) == [f"{v:.2f}" for v in trials[S.PROGRESS]]
    assert list(md["best progress"]) == [f"{v:.2f}" for v in trials[S.BEST_PROGRESS]]
    ce = trials[S.ARM] == "ce"  # the temperature means nothing at alpha = 1
    assert set(md.loc[ce.to_numpy(), "temperature"]) == {"-"}


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


def test_efficiency_uses_the_latency_protocol(experiment):
    from kdtune.latency import DEFAULT

    ev = json.loads((experiment / "evaluation.json").read_text())
    eff = pd.read_csv(experiment / "report" / "efficiency.csv").set_index("model")
    assert list(eff.index) == ["teacher", "baseline", "distilled"]
    for model in eff.index:
        assert eff.loc[model, "params"] == ev["models"][model]["params"]
        assert eff.loc[model, "latency_ms"] > 0 and eff.loc[model, "throughput"] > 0
        assert eff.loc[model, "examples"] == DEFAULT.examples
        assert eff.loc[model, "threads"] == DEFAULT.threads
    weights = (experiment / "models" / "distilled" / "model.safetensors").stat().st_size
    assert eff.loc["distilled", "size_mb"] == pytest.approx(weights / 1e6)
    assert eff.loc["teacher", "speed-up vs teacher"] == pytest.approx(1.0)
    assert eff.loc["distilled", "size ratio vs teacher"] < 1.0  # 2 of the teacher's 6 layers
    text = section((experiment / "report.md").read_text(), "## Efficiency")
    assert f"median over {DEFAULT.examples} test rows at batch 1" in text
    assert f"after {DEFAULT.warmup} warm-up calls" in text
    assert f"batch(es) of {DEFAULT.throughput_batch} rows" in text
    assert f"{DEFAULT.threads} CPU thread(s)" in text


def test_verdict_is_provisional_and_written_from_the_record(experiment):
    ev = json.loads((experiment / "evaluation.json").read_text())
    chosen = json.loads((experiment / "picks.json").read_text())
    verdict = section((experiment / "report.md").read_text(), "## Verdict")
    assert "**Provisional verdict.**" in verdict
    assert f"`python -m kdtune.retrain {experiment}` on the test split over several seeds" in verdict
    s, b = ev["models"]["distilled"], ev["models"]["baseline"]
    for split in ("test", "val"):
        gap = s[split]["macro_f1"] - b[split]["macro_f1"]
        assert f"{s[split]['macro_f1']:.4f} against {b[split]['macro_f1']:.4f}" in verdict
        assert f"a gap of {points(gap)} points" in verdict
    for which in ("distilled", "baseline"):
        entry = chosen[which]
        assert f"trial `{entry['trial_id']}`" in verdict
        if entry.get("seeds", 1) > 1:
            assert f"the mean over {entry['seeds']} seeds from the confirm stage" in verdict
    stds = [r["std"] for r in chosen["ranking"] if r["std"] is not None]
    pooled = float(np.sqrt(np.mean(np.square(stds))))
    assert "seed spread of the confirm stage" in verdict and f"{100 * pooled:.2f} points" in verdict
    assert "the best trial of the tuned CE-only arm" in verdict
    best = pd.read_csv(experiment / "trials.csv", dtype=ID).set_index(S.TRIAL_ID).loc[chosen["best"]]
    assert f"**Recommended config** (trial `{chosen['best']}`" in verdict
    assert f"alpha = {best['alpha']:.4f}" in verdict


def test_verdict_warns_about_the_smoke_teacher(experiment):
    """The smoke teacher (1 epoch, 160 rows) is far below its students."""
    ev = json.loads((experiment / "evaluation.json").read_text())
    verdict = section((experiment / "report.md").read_text(), "## Verdict")
    teacher = ev["models"]["teacher"]["val"]["macro_f1"]
    student = ev["models"]["distilled"]["val"]["macro_f1"]
    assert student - teacher > 0.05
    assert "**Teacher**: the teacher looks under-trained" in verdict
    assert f"({student:.4f} vs {teacher:.4f}, {points(student - teacher)} points)" in verdict
    assert "teacher.epochs, now 1" in verdict and "teacher.learning_rate as a list" in verdict


def test_ranking_section_matches_picks_json(experiment):
    chosen = json.loads((experiment / "picks.json").read_text())
    assert chosen["ranking"], "the smoke search runs the confirm stage"
    md = (experiment / "report.md").read_text()
    table = md_table(md, "## Single-seed vs multi-seed ranking")
    assert list(table["trial"]) == [r["trial_id"] for r in chosen["ranking"]]
    for (_, row), r in zip(table.iterrows(), chosen["ranking"], strict=True):
        assert row["arm"] == r["arm"]
        assert row["single-seed score"] == _r4(r["single_seed"])
        assert row["mean ± std over seeds"] == f"{r['mean']:.4f} ± {r['std']:.4f}"
        assert row["seeds"] == str(r["seeds"])
        assert row["single-seed rank"] == str(int(r["single_seed_rank"]))
        assert row["multi-seed rank"] == str(int(r["multi_seed_rank"]))
    text = section(md, "## Single-seed vs multi-seed ranking")
    for which in ("distilled", "baseline"):
        word = "**changed**" if chosen["changed"][which] else "kept trial"
        assert f"- {which}: {word}" in text


def test_a_changed_pick_is_named():
    chosen = {"ranking": [{"trial_id": "a", "arm": "kd", "single_seed": 0.9, "mean": 0.8, "std": 0.05,
                           "seeds": 3, "single_seed_rank": 1, "multi_seed_rank": 2},
                          {"trial_id": "b", "arm": "kd", "single_seed": 0.88, "mean": 0.86,
                           "std": None, "seeds": 1, "single_seed_rank": 2, "multi_seed_rank": 1}],
              "single_seed": {"distilled": "a", "baseline": None}, "changed": {"distilled": True},
              "distilled": {"trial_id": "b"}, "baseline": None}
    table = ranking_table(chosen)
    assert list(table["mean ± std over seeds"]) == ["0.8000 ± 0.0500", "0.8600 (1 seed)"]
    assert list(table["multi-seed rank"]) == [2, 1]
    assert pick_changes(chosen) == ["distilled: **changed** from trial `a` (the single-seed best) "
                                    "to trial `b` (the best mean over seeds)"]


def test_training_granted_counts_fractional_progress(experiment):
    exp = load_experiment(experiment)
    run = float(exp.trials[S.PROGRESS].sum())
    budget = exp.cfg.search.num_samples * exp.cfg.train.epochs
    text = section((experiment / "report.md").read_text(), "## Plots")
    assert f"{run:.2f} trial-epochs run of a budget of {budget} " in text
    assert f"({exp.cfg.search.num_samples} trials x {exp.cfg.train.epochs} epochs)" in text
    # the learning curves mark subset rungs apart from whole-validation epoch ends
    full = exp.history[S.FULL_VAL].astype(bool)
    assert full.any() and (~full).any()
    assert "hollow: the validation subset" in text


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


def test_rerender_reuses_the_efficiency_measurement(experiment, capsys):
    cache = experiment / "report" / "efficiency.csv"
    before = cache.stat().st_mtime_ns
    assert report.main([str(experiment)]) == 0
    assert cache.stat().st_mtime_ns == before
    assert "report.html" in capsys.readouterr().out
    assert "Cached measurement" in (experiment / "report.md").read_text()


def test_a_record_without_its_models_shows_its_earlier_measurement(experiment, tmp_path):
    """results/example is committed without weights: its report keeps the measured table."""
    copy = copy_experiment(experiment, tmp_path)
    for folder in ("models", "teachers"):
        shutil.rmtree(copy / folder)
    cached = pd.read_csv(copy / "report" / "efficiency.csv")
    report.render(copy)
    text = section((copy / "report.md").read_text(), "## Efficiency")
    assert "not re-measured or checked against the weights" in text
    table = md_table(text, "| model")
    assert list(table["model"]) == list(cached["model"])
    (copy / "report" / "efficiency.csv").unlink()
    report.render(copy)
    assert "No saved model folder was found" in (copy / "report.md").read_text()


# -- export and re-training beside the search -------------------------------------------------
def test_export_section_includes_the_export_table(experiment, tmp_path):
    from kdtune.export.table import document, markdown
    from kdtune.latency import DEFAULT

    copy = copy_experiment(experiment, tmp_path)
    rows = [{"artefact": "torch fp32", "size_mb": 62.5, "agreement_pct": 100.0, "macro_f1": 0.51,
             "delta_f1_points": 0.0, "latency_ms": 7.7, "throughput": 150.0, "speedup": 1.0},
            {"artefact": "onnx int8", "size_mb": 15.9, "agreement_pct": 97.5, "macro_f1": 0.505,
             "delta_f1_points": -0.5, "latency_ms": 3.1, "throughput": 400.0, "speedup": 2.48}]
    doc = document({"source": "distilled", "experiment": copy.name, "model_dir": "models/distilled",
                    "test_rows": 80}, rows, DEFAULT)
    (copy / "export" / "distilled").mkdir(parents=True)
    (copy / "export" / "distilled" / "export.md").write_text(markdown(doc))
    report.render(copy, efficiency=False)
    md = (copy / "report.md").read_text()
    text = section(md, "## Export")
    assert "### The distilled student (from `export/distilled/export.md`)" in text
    table = md_table(text, "| artefact")
    assert list(table["artefact"]) == ["torch fp32", "onnx int8"]
    assert list(table["speed-up vs torch"]) == ["1.00x", "2.48x"]
    assert doc["target"]["line"] in text
    assert "# Export of" not in md  # the file's own title is replaced by the report's heading
    assert "<td>onnx int8</td>" in (copy / "report.html").read_text()


def test_retrain_summary_is_included(partial):
    md = (partial / "report.md").read_text()
    text = section(md, "## Re-training")
    assert "From `retrain/summary.md`" in text
    assert "#### Mean ± std over seeds" in text  # its headings sit under the report's section
    assert "# kdtune retrain of" not in md
    assert "| test macro-F1 | 0.1000 ± 0.0100 | 0.2000 ± 0.0200 | -0.1000 ± 0.0100 |" in text
    page = (partial / "report.html").read_text()
    assert "<td>0.1000 ± 0.0100</td>" in page
    verdict = section(md, "## Verdict")
    assert RETRAIN_VERDICT in verdict and "supersedes this provisional verdict" in verdict


# -- partial, running, empty and bad input ----------------------------------------------------
def test_partial_search_is_reported_as_interrupted(partial, experiment):
    md = (partial / "report.md").read_text()
    assert "interrupted" in md.split("## Verdict")[0]
    assert f"python -m kdtune.search --resume {partial}" in md
    trials = pd.read_csv(experiment / "trials.csv", dtype=ID)
    board = pd.read_csv(partial / "report" / "leaderboard.csv", dtype=ID)
    # rebuilt from tune/*/result.json, the leaderboard is the one trials.csv had
    assert list(board["trial"]) == list(trials[S.TRIAL_ID])
    np.testing.assert_allclose(board["best val macro-F1"], trials["best_val_macro_f1"], rtol=1e-12)
    np.testing.assert_allclose(board["progress"], trials[S.PROGRESS], rtol=1e-12)
    assert list(board["status"]) == list(trials[S.STATUS])
    assert list(board["arm"]) == list(trials[S.ARM])
    for name in ("alpha_temperature", "learning_curves", "training_granted"):
        assert (partial / "report" / f"{name}.png").is_file()
    assert not (partial / "report" / "per_class_test.csv").exists()  # no test results yet
    verdict = section(md, "## Verdict")
    assert "**Provisional verdict.**" in verdict and "Test-split numbers come when" in verdict
    assert "## Single-seed vs multi-seed ranking" not in md  # no picks.json yet


def test_state_running_and_empty_experiment(partial, tmp_path):
    _age(partial, seconds=3600)  # the record counts the report's own files as activity too
    assert experiment_state(open_record(partial)) == "interrupted"
    next(partial.glob("tune/*/result.json")).touch()
    assert experiment_state(open_record(partial)) == "running"
    _age(partial, seconds=3600)
    # only config.yaml and record.json: the search is still preparing the data or the teacher
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("config.yaml", "record.json"):
        shutil.copy(partial / name, empty / name)
    html = report.render(empty, efficiency=False)
    md = (empty / "report.md").read_text()
    assert html.is_file() and "state: **running" in md and "No trial has reported yet" in md


@pytest.mark.parametrize("kind", ["missing", "file", "not_experiment", "older_schema"])
def test_bad_input_exits_2(kind, partial, tmp_path, capsys):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "f.txt",
              "not_experiment": tmp_path, "older_schema": tmp_path / "old"}[kind]
    if kind == "file":
        target.write_text("x")
    if kind == "older_schema":  # a record of the old layout: config.yaml, no record.json
        target.mkdir()
        shutil.copy(partial / "config.yaml", target / "config.yaml")
    assert report.main([str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kdtune.report: error: ")
    assert str(target) in err
    if kind == "older_schema":
        assert "older kdtune" in err


def test_remote_record_gets_the_report_uploaded(partial, tmp_path, monkeypatch):
    """A ``file://`` URI goes through the same storage layer as s3:// and gs://."""
    store = tmp_path / "bucket" / partial.name
    shutil.copytree(partial, store, ignore=shutil.ignore_patterns("report*"))
    (store / "report").mkdir()  # pyarrow's local filesystem makes no parent folders (S3 needs none)
    (store / "report" / "stale.png").write_bytes(b"old")
    monkeypatch.chdir(tmp_path)  # the record's working copy lives under ./.cache
    html = report.render(f"file://{store}", efficiency=False)
    assert html.is_file() and store not in html.parents  # written in the working copy first
    for name in ("report.md", "report.html", "report/leaderboard.csv", "report/learning_curves.png"):
        assert (store / name).is_file(), name
    assert (store / "report.md").read_text() == (html.parent / "report.md").read_text()
    assert not (store / "report" / "stale.png").exists()


# -- multi-objective --------------------------------------------------------------------------
def test_multi_objective_search_gets_a_pareto_front(multi_objective):
    exp = multi_objective
    md = (exp / "report.md").read_text()
    front = pd.read_csv(exp / "pareto.csv", dtype=ID)
    chosen = json.loads((exp / "picks.json").read_text())["best"]
    trials = pd.read_csv(exp / "trials.csv", dtype=ID)
    assert trials[S.TRIAL_ID].iloc[-1] not in set(front[S.TRIAL_ID])  # worst and slowest
    assert chosen == trials[S.TRIAL_ID].iloc[1]  # faster than the best, within f1_tolerance
    cfg = load_experiment(exp).cfg
    assert chosen == front.loc[choose(front, S.best("val_macro_f1"), "max", S.LATENCY,
                                      cfg.search.f1_tolerance), S.TRIAL_ID]

    assert "## Pareto front: val macro-F1 vs latency_ms" in md
    png = exp / "report" / "pareto_front.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](report/pareto_front.png)" in md
    table = md_table(md, "## Pareto front")
    assert list(table["trial"]) == list(front.sort_values(S.LATENCY)[S.TRIAL_ID])
    assert list(table.loc[table["chosen"] == "chosen", "trial"]) == [chosen]
    by_id = front.set_index(S.TRIAL_ID)
    for _, row in table.iterrows():
        src = by_id.loc[row["trial"]]
        assert row["layers"] == src["layers"] and row["arm"] == src[S.ARM]
        assert row["latency_ms"] == _r4(src[S.LATENCY])
        assert row["params"] == str(int(src[S.PARAMS]))
        assert row["best val macro-F1"] == _r4(src["best_val_macro_f1"])
        assert row["alpha"] == _r4(src["alpha"])
    assert f"Chosen: trial `{chosen}`" in section(md, "## Pareto front")
    csv = pd.read_csv(exp / "report" / "pareto_front.csv", dtype=ID)
    assert list(csv["trial"]) == list(table["trial"])

    board = pd.read_csv(exp / "report" / "leaderboard.csv", dtype=ID)
    assert list(board["trial"]) == list(trials[S.TRIAL_ID])
    assert list(board["layers"]) == list(trials["layers"])
    np.testing.assert_allclose(board[S.LATENCY], trials[S.LATENCY])
    assert list(board["params"]) == [int(v) for v in trials[S.PARAMS]]
    head = md.split("## Verdict")[0]
    assert "extra teachers (1): `0123abcd` (val accuracy 0.8000, test accuracy 0.7900)" in head
    assert "12.3 MB" in head and "`latency_ms` (min)" in head
    verdict = section(md, "## Verdict")
    assert f"**Recommended config** (trial `{chosen}`" in verdict and "Pareto front" in verdict
    assert f"layers = {trials.set_index(S.TRIAL_ID).loc[chosen, 'layers']}" in verdict
    assert "### KD loss, CE loss, feature loss and KD/CE ratio" in md
    assert "(report/optuna_history.png)" in md  # a multi-objective study is plotted too
    page = (exp / "report.html").read_text()
    assert len(re.findall(r"src=.data:image/png;base64,", page)) == len(
        re.findall(r"!\[[^\]]*\]\(report/", md))
    assert f"<td>{chosen}</td>" in page and "<td>chosen</td>" in page


# -- the verdict on constructed numbers -------------------------------------------------------
def _verdict(**kw) -> str:
    base = {"metric": "macro-F1", "baseline_mode": "tuned", "noise": Noise(0.01, "the seed spread"),
            "command": "python -m kdtune.retrain results/x"}
    return "\n\n".join(report.provisional_verdict(VerdictInput(**{**base, **kw})))


def test_verdict_learning_rate_case():
    """The whole gain came from the learning rate: KD and the tuned CE baseline are equal."""
    text = _verdict(distilled=Pick("kd1", 0.848, 0.851, learning_rate=3e-4),
                    baseline=Pick("ce1", 0.848, 0.849, learning_rate=3e-4),
                    anchor=Anchor("ce0", 0.62, 1e-4, 2.0, 2))
    assert text.startswith("**Provisional verdict.**")
    assert "`python -m kdtune.retrain results/x` on the test split over several seeds" in text
    assert "a gap of +0.20 points" in text and "a gap of +0.00 points" in text
    assert "within the noise" in text and "**no difference beyond the noise**" in text
    assert "ahead" not in text
    assert "Both train at learning rate 3.000e-04" in text
    assert ("The untuned CE anchor (trial `ce0`, alpha = 1 at train.learning_rate 1.000e-04) "
            "reached val macro-F1 0.6200; tuning the CE-only baseline's learning rate gained "
            "+22.80 points (to 0.8480).") in text
    assert "would look +22.80 points better" in text
    assert "the seed spread: 1.00 points" in text


def test_verdict_gain_beyond_the_noise():
    text = _verdict(distilled=Pick("kd1", 0.90, 0.89), baseline=Pick("ce1", 0.85, 0.84))
    assert "a gap of +5.00 points" in text
    assert "**the distilled student is ahead**" in text and "within the noise" not in text
    text = _verdict(distilled=Pick("kd1", 0.80, 0.79), baseline=Pick("ce1", 0.85, 0.84))
    assert "**the CE-only baseline is ahead**" in text


def test_verdict_gaps_that_disagree_are_weak():
    text = _verdict(distilled=Pick("kd1", 0.855, 0.89), baseline=Pick("ce1", 0.85, 0.84))
    assert "**no reliable difference**" in text


def test_verdict_says_how_each_was_picked():
    text = _verdict(distilled=Pick("kd1", 0.90, 0.89, seeds=3, mean=0.88, std=0.012),
                    baseline=Pick("ce1", 0.85, 0.84), n_test=760)
    assert ("trial `kd1`, picked by the mean over 3 seeds from the confirm stage (val macro-F1 "
            "0.8800 ± 0.0120)") in text
    assert "trial `ce1`, the best trial of the tuned CE-only arm" in text
    assert "picked by a single seed" in text and "held-out test split (760 examples)" in text


def test_verdict_compares_kd_with_self_training():
    """The self-training pick's confirm numbers and its gaps to the distilled student, judged
    against the same noise (1 point) as KD vs CE."""
    kd, ce = Pick("kd1", 0.90, 0.89, seeds=2, mean=0.895, std=0.01), Pick("ce1", 0.85, 0.84)
    text = _verdict(distilled=kd, baseline=ce, self_training_on=True,
                    self_training=Pick("st1", 0.87, seeds=2, mean=0.86, std=0.02))
    assert ("**KD vs self-training.** The self-training student (alpha = 1, CE on the teacher's "
            "argmax of the transfer rows, no temperature) is trial `st1`, picked by the mean over "
            "2 seeds from the confirm stage (val macro-F1 0.8600 ± 0.0200).") in text
    # 0.90 - 0.87 = +3.00 and 0.895 - 0.86 = +3.50 points, both beyond the 1-point noise
    assert ("On validation the distilled student scores 0.9000 against 0.8700 for self-training, a "
            "gap of +3.00 points; on validation, mean over the confirm stage's seeds the distilled "
            "student scores 0.8950 against 0.8600 for self-training, a gap of +3.50 points "
            "(macro-F1).") in text
    assert text.count("**the distilled student is ahead**") == 2  # vs CE and vs self-training
    close = _verdict(distilled=kd, baseline=ce, self_training_on=True,
                     self_training=Pick("st1", 0.895))
    assert ("**no difference beyond the noise** between the distilled student and the "
            "self-training student") in close  # one seed each: the validation gap only (+0.50)
    ahead = _verdict(distilled=kd, baseline=ce, self_training_on=True,
                     self_training=Pick("st1", 0.95))
    assert "**the self-training student is ahead**" in ahead
    missing = _verdict(distilled=kd, baseline=ce, self_training_on=True, self_training=None)
    assert "No self-training trial has a usable score" in missing
    assert "self-training" not in _verdict(distilled=kd, baseline=ce)


def test_verdict_fixed_and_no_baseline():
    fixed = _verdict(baseline_mode="fixed", distilled=Pick("kd1", 0.90, 0.89),
                     baseline=Pick("ce0", 0.85, 0.84), anchor=Anchor("ce0", 0.85, 1e-4))
    assert "the CE-only anchor (alpha = 1 at train.learning_rate, not tuned)" in fixed
    assert "tuning the CE-only baseline" not in fixed  # the anchor is the baseline
    none = _verdict(baseline_mode="none", distilled=Pick("kd1", 0.90, 0.89), baseline=None)
    assert "There is no CE-only baseline (search.baseline: none)" in none
    assert "trial `kd1` (val macro-F1 0.9000, test macro-F1 0.8900)" in none
    missing = _verdict(distilled=None, baseline=None)
    assert "No distilled (KD) trial has a usable score yet" in missing


def test_verdict_of_a_partial_search_and_without_noise():
    text = _verdict(distilled=Pick("kd1", 0.86), baseline=Pick("ce1", 0.85), noise=None,
                    anchor=Anchor("ce0", 0.70, 1e-4, 1.0, 3))
    assert "on validation the distilled student scores 0.8600 against 0.8500" in text.lower()
    assert "Test-split numbers come when the search finishes" in text
    assert "cannot be judged" in text
    assert "stopped early by ASHA after 1.00 of 3 epochs" in text


# -- teacher warnings on constructed numbers --------------------------------------------------
def test_teacher_still_rising_at_its_last_epoch():
    signs = report.teacher_signs(TeacherNumbers(epoch_scores=[0.80, 0.85]))
    assert signs == ["its validation macro-F1 was still rising at its last epoch (0.8500 at epoch "
                     "2 of 2, +5.00 points over its best earlier epoch, 0.8000 at epoch 1)"]
    # a rise measured against the best earlier epoch, not the previous one: 0.862 - 0.856
    rise = report.teacher_signs(TeacherNumbers(epoch_scores=[0.80, 0.856, 0.84, 0.862]))
    assert rise == ["its validation macro-F1 was still rising at its last epoch (0.8620 at epoch "
                    "4 of 4, +0.60 points over its best earlier epoch, 0.8560 at epoch 2)"]
    # best at the last epoch by less than RISE_POINTS: a plateau (the quickstart's teacher of
    # 2026-12-03: +0.25 points over epoch 5, one validation example), however far it climbed
    # from the previous epoch
    plateau = [0.8675, 0.8869, 0.8954, 0.8898, 0.8954, 0.8979]
    assert report.teacher_signs(TeacherNumbers(epoch_scores=plateau)) == []
    assert report.teacher_signs(TeacherNumbers(epoch_scores=[0.85, 0.80, 0.854])) == []
    assert report.teacher_signs(TeacherNumbers(epoch_scores=[0.80, 0.86, 0.855])) == []
    assert report.teacher_signs(TeacherNumbers(epoch_scores=[0.80])) == []  # one epoch: no trend


def test_teacher_with_a_class_it_never_gets_right():
    signs = report.teacher_signs(TeacherNumbers(zero_f1={"validation": [], "test": ["Sci/Tech"]}))
    assert signs == ["class(es) Sci/Tech get F1 0 on test (never predicted correctly)"]


def test_student_beating_the_teacher_beyond_the_spread():
    noise = Noise(0.01, "the seed spread")
    beaten = TeacherNumbers(val=0.80, student_val=0.83, noise=noise)
    assert report.teacher_signs(beaten) == [
        "the distilled student beats it on validation macro-F1 (0.8300 vs 0.8000, +3.00 points), "
        "more than the noise (1.00 points: the seed spread)"]
    assert report.teacher_signs(TeacherNumbers(val=0.80, student_val=0.805, noise=noise)) == []


def test_teacher_warning_names_every_sign_and_the_fix():
    t = TeacherNumbers(epoch_scores=[0.70, 0.78], zero_f1={"validation": ["World"]}, val=0.78,
                       student_val=0.85, noise=Noise(0.02, "the seed spread"), epochs=2,
                       learning_rates=[1e-4])
    text = report.teacher_warning(t)
    assert text.startswith("**Teacher**: the teacher looks under-trained: (1) its validation")
    assert "(2) class(es) World get F1 0 on validation" in text and "(3) the distilled student" in text
    assert "teacher.epochs, now 2" in text
    assert "teacher.learning_rate as a list" in text and "[5.000e-05, 1.000e-04, 2.000e-04]" in text
    assert report.teacher_warning(TeacherNumbers(epoch_scores=[0.8, 0.9, 0.88], val=0.88,
                                                 student_val=0.86, noise=Noise(0.01, "x"))) is None


def test_teacher_numbers_come_from_the_record(experiment, tmp_path):
    copy = copy_experiment(experiment, tmp_path)
    ev = json.loads((copy / "evaluation.json").read_text())
    name = ev["label_names"][1]
    ev["models"]["teacher"]["test"]["per_class"][name]["f1"] = 0.0
    (copy / "evaluation.json").write_text(json.dumps(ev))
    info = json.loads((copy / "run_info.json").read_text())
    info["teacher_epochs"] = [{"epoch": 1, "val_macro_f1": 0.5}, {"epoch": 2, "val_macro_f1": 0.6}]
    (copy / "run_info.json").write_text(json.dumps(info))
    t = teacher_numbers(load_experiment(copy), None)
    assert list(t.epoch_scores) == [0.5, 0.6] and t.zero_f1["test"] == [name]
    assert t.val == ev["models"]["teacher"]["val"]["macro_f1"]
    assert t.student_val == ev["models"]["distilled"]["val"]["macro_f1"]



def test_a_report_that_cannot_render_after_results_is_logged_not_raised(tmp_path, caplog):
    """A search or retrain has written its results when it renders the report: a failure there
    is one logged line naming the command that retries it, and the command goes on."""
    from kdtune import report

    missing = tmp_path / "not-an-experiment"
    assert report.render_after_results(missing) is None
    assert f"run python -m kdtune.report {missing}" in caplog.text
