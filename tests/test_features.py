"""Beyond logits: feature KD, multi-teacher KD and student size, each end to end on tiny data."""

import json

import numpy as np
import pandas as pd
import pytest
import synthetic
import torch
import yaml
from conftest import smoke_raw

from kdtune import search
from kdtune.config import ConfigError, load_config, parse_config
from kdtune.losses import combine_teacher_logits, feature_loss
from kdtune.recipe import feature_pairs
from kdtune.record.picks import choose, pareto_mask


def test_feature_loss_by_hand():
    s = torch.tensor([[[1.0, 0.0], [3.0, 3.0]]])
    t = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])  # the second token is padding and must not count
    assert feature_loss(s, t, mask, "mse").item() == pytest.approx(0.5)
    t2 = torch.tensor([[[0.0, 2.0], [9.0, 9.0]]])  # orthogonal to the real token: 1 - cos = 1
    assert feature_loss(s, t2, mask, "cosine").item() == pytest.approx(1.0)
    assert feature_loss(s, s.clone(), torch.ones(1, 2), "cosine").item() == pytest.approx(0.0,
                                                                                         abs=1e-6)


def test_combine_teachers_by_hand():
    a = torch.tensor([[2.0, 0.0]])
    b = torch.tensor([[0.0, 4.0]])
    assert combine_teacher_logits([a, b], [0.25, 0.75]).tolist() == [[0.5, 3.0]]
    conf = combine_teacher_logits([a, b], [0.5, 0.5], "confidence")
    pa, pb = torch.softmax(a, -1).max().item(), torch.softmax(b, -1).max().item()
    wa = pa / (pa + pb)
    assert conf[0].tolist() == pytest.approx([2 * wa, 4 * (1 - wa)], rel=1e-5)


def test_pairs_and_pareto():
    assert feature_pairs([0, 5], 2, 6) == [(0, 0), (1, 5)]
    assert feature_pairs(None, 3, 6) == [(0, 1), (1, 3), (2, 5)]
    # a fixed slice travels in TrialData, so its blocks pair with the ones they were copied from
    from kdtune.recipe import TrialData
    assert "student_layers" in TrialData.__dataclass_fields__
    frame = pd.DataFrame({"f1": [0.90, 0.89, 0.80, 0.85], "ms": [10.0, 4.0, 3.0, 5.0]})
    mask = pareto_mask(frame, ["f1", "ms"], ["max", "min"])
    assert mask.tolist() == [True, True, True, False]  # (0.85, 5) is dominated by (0.89, 4)
    front = frame[mask]
    assert choose(front, "f1", "max", "ms", 0.015) == 1
    assert choose(front, "f1", "max", "ms", 0.0) == 0


def _raw(**space):
    raw = load_config("search_spaces/smoke.yaml").to_dict()
    raw["space"].update(space)
    return raw


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r["train"].update(beta=-1.0), "train.beta"),
    (lambda r: r["space"].update(beta={"type": "uniform", "low": -1, "high": 1}), "space.beta"),
    (lambda r: r["train"].update(teacher_weights=[0.7, 0.7]), "train.teacher_weights"),
    (lambda r: r["train"].update(teacher_weights=[0.5, 0.5]), "train.teacher_weights"),
    (lambda r: r["space"].update(teacher_weight={"type": "uniform", "low": 0, "high": 1}),
     "train.teacher_weight"),
    (lambda r: r["space"].update(layers={"type": "choice", "values": [[0, 5], [3, 1]]}),
     "space.layers"),
    (lambda r: r["space"].update(layers={"type": "uniform", "low": 0, "high": 5}), "space.layers"),
    (lambda r: r["search"].update(objectives=["latency_ms", "val_macro_f1"]), "search.objectives"),
    (lambda r: r["search"].update(objectives=["val_macro_f1", "speed"]), "search.objectives"),
    (lambda r: r["train"].update(feature_loss="l1"), "train.feature_loss"),
])
def test_new_options_are_validated(mutate, field):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.field == field


def _space(tmp_path, text_data, name, mutate):
    raw = smoke_raw(text_data)
    raw["name"] = name
    # one study with both anchors, no confirm runs: these tests are about the features
    raw["search"].update(num_samples=4, baseline="fixed", confirm={"top_k": 0, "seeds": 0})
    mutate(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(tmp_path, text_data, name, mutate):
    path = _space(tmp_path, text_data, name, mutate)
    assert search.main(["--space", str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
    exp = tmp_path / name
    return exp, pd.read_csv(exp / "history.csv", dtype={"trial_id": str}), \
        pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})


def test_bad_layer_index_is_one_line(tmp_path, text_data, capsys):
    path = _space(tmp_path, text_data, "badlayers", lambda r: r["space"].update(
        layers={"type": "choice", "values": [[0, 5], [0, 9]]}))
    assert search.main(["--space", str(path), "--results-dir", str(tmp_path)]) == 2
    assert "space.layers: indices must be < 6" in capsys.readouterr().err


def test_feature_kd_multi_teacher_and_student_size_end_to_end(tmp_path, text_data):
    """One search exercising cached feature KD (beta searched), two teachers combined by
    confidence, and a multi-objective student-size search."""
    def mutate(r):
        r["extra_teachers"] = [{"model": "embedded:all-MiniLM-L6-v2", "epochs": 1,
                                "learning_rate": 2.0e-4, "seed": 1}]
        r["train"]["teacher_combine"] = "confidence"
        r["space"]["beta"] = {"type": "uniform", "low": 0.0, "high": 2.0}
        r["space"]["layers"] = {"type": "choice", "values": [[0, 5], [0, 2, 5]]}
        r["search"]["objectives"] = ["val_macro_f1", "latency_ms"]
    exp, history, trials = _run(tmp_path, text_data, "multi", mutate)
    info = json.loads((exp / "run_info.json").read_text())
    assert len(info["extra_teachers"]) == 1
    assert info["extra_teachers"][0]["key"] != info["teacher_key"]
    assert info["feature_cache_mb"] > 0 and info["feature_states"] == "cached"
    searched = trials[trials["anchor"].isna()]
    assert len(searched) == 2 and (searched["beta"] > 0).all()
    assert set(searched["status"]) <= {"completed", "stopped early"}, trials[["status", "error"]]
    feat = history[history["trial_id"].isin(searched["trial_id"])]["feature_loss"]
    assert (feat > 0).all()  # the searched trials trained with a hidden-state loss
    assert (trials[trials["anchor"].notna()]["beta"] == 0).all()  # references: logits only
    assert {"latency_ms", "params"} <= set(trials.columns)
    sizes = trials.groupby(trials["layers"].astype(str))["params"].first()
    assert len(sizes) == 1 or sizes.nunique() == len(sizes)  # 2 and 3 blocks differ in size
    front = pd.read_csv(exp / "pareto.csv", dtype={"trial_id": str})
    picks = json.loads((exp / "picks.json").read_text())
    assert picks["best"] in set(front["trial_id"])
    assert np.isfinite(front["latency_ms"]).all()
    assert json.loads((exp / "evaluation.json").read_text())["models"]["distilled"]


def test_feature_kd_online_when_the_cache_would_be_too_large(tmp_path, text_data):
    exp, history, trials = _run(tmp_path, text_data, "online", lambda r: (
        r["space"].update(beta={"type": "uniform", "low": 0.0, "high": 2.0}),
        r["train"].update(feature_cache_max_mb=0.001), r["search"].update(num_samples=3)))
    info = json.loads((exp / "run_info.json").read_text())
    assert info["feature_states"] == "online" and info["feature_cache_mb"] == 0
    searched = trials[trials["anchor"].isna()]
    assert len(searched) == 1 and set(searched["status"]) <= {"completed", "stopped early"}
    feat = history[history["trial_id"].isin(searched["trial_id"])]["feature_loss"]
    assert (feat > 0).all()


def test_the_seed_reports_space_runs_tiny(tmp_path, text_data):
    """search_spaces/seed_report.yaml with the embedded models and the generated data swapped
    in: its recipe anchors the KD arm, its teacher learning-rate list is tried, its dropout kept."""
    raw = synthetic.point_at(yaml.safe_load(open("search_spaces/seed_report.yaml")), text_data)
    raw["data"].update(val_fraction=0.15, test_fraction=0.15, max_train=96, max_val=40,
                       max_test=40)
    raw["teacher"].update(model="embedded:all-MiniLM-L6-v2", epochs=1,
                          learning_rate=[1.0e-4, 3.0e-4])
    raw["student"] = {"model": None, "layers": [0, 5], "dropout": 0.2}
    raw["train"].update(epochs=1, eval_batch_size=64)
    # no confirm stage: what the space adds is its anchor, teacher rates and dropout
    raw["search"].update(num_samples=5, max_concurrent=2, cpus_per_trial=1, gpus_per_trial=0,
                         confirm={"top_k": 0, "seeds": 0})
    path = tmp_path / "seed_report.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
    exp = tmp_path / "seed_report"
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    seed = trials[trials["anchor"] == "seed default"].iloc[0]
    assert (seed["alpha"], seed["temperature"], seed["learning_rate"]) == (0.7, 3.0, 2e-5)
    assert trials["arm"].value_counts().to_dict() == {"ce": 3, "kd": 2}
    info = json.loads((exp / "run_info.json").read_text())
    tried = info["teacher_learning_rate_trials"]
    assert [t["learning_rate"] for t in tried] == [1e-4, 3e-4]
    best = max(tried, key=lambda t: t["val_macro_f1"])
    assert info["teacher_learning_rate"] == best["learning_rate"]  # the better one is kept
    config = json.loads((exp / "models" / "distilled" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.2
