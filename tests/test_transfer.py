"""The transfer set (data.unlabeled): its sources, de-duplication, cached teacher logits and the
training step that distils on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kdtune.batches import DeviceSplit, Encoded
from kdtune.config import DataConfig, load_config
from kdtune.data import load_splits
from kdtune.errors import ConfigError
from kdtune.losses import kd_loss
from kdtune.params import TrainParams
from kdtune.trainer import TransferStream
from kdtune.transfer import Source, build_transfer, normalise, parse_source

WORDS = {0: "match goal team coach league", 1: "market shares bank profit trade",
         2: "election minister vote policy treaty", 3: "software chip data network robot"}


def write_data(path, rows: int = 400, seed: int = 0) -> str:
    """A small 4-class CSV: topic words mixed with filler, every text distinct."""
    rng = np.random.default_rng(seed)
    filler = "the a of on in today new report says after".split()
    texts, labels = [], []
    for i in range(rows):
        label = i % 4
        words = list(rng.choice(WORDS[label].split(), 3)) + list(rng.choice(filler, 5))
        rng.shuffle(words)
        texts.append(" ".join(words) + f" item{i}")
        labels.append(label)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return str(path)


def test_parse_source_forms():
    assert parse_source("remainder") == Source("remainder")
    assert parse_source("extra.csv") == Source("file", path="extra.csv")
    assert parse_source("hub:ag_news") == Source("hub", hub="ag_news", split="train")
    assert parse_source("hub:org/news:unsup") == Source("hub", hub="org/news", split="unsup")
    assert parse_source("hub:glue:sst2:train") == Source("hub", hub="glue", hub_config="sst2",
                                                         split="train")
    with pytest.raises(ConfigError, match="data.unlabeled"):
        parse_source("hub:")


def test_dedup_against_evaluation_and_repeats_then_cap():
    rows = pd.DataFrame({"text": ["Goal  scored", "goal scored", "Bank rates", "VAL text",
                                  "new chip", "  ", "test Row"]})
    val, test = pd.DataFrame({"text": ["val  TEXT"]}), pd.DataFrame({"text": ["Test row"]})
    t = build_transfer(rows, "local:x.csv", [val, test], cap=None, seed=0)
    # "  " is empty; "VAL text" and "test Row" equal evaluation texts; "goal scored" repeats.
    assert (t.read, t.dropped_eval, t.dropped_repeats, t.capped) == (6, 2, 1, 0)
    assert t.frame["text"].tolist() == ["Goal  scored", "Bank rates", "new chip"]
    capped = build_transfer(rows, "x", [val, test], cap=2, seed=0)
    assert len(capped) == 2 and capped.capped == 1
    assert set(capped.frame["text"]) < {"Goal  scored", "Bank rates", "new chip"}
    assert normalise(" A\tB  c ") == "a b c"


def test_remainder_is_the_rows_no_split_took(tmp_path):
    path = write_data(tmp_path / "d.csv", rows=400)
    s = load_splits(DataConfig(path=path, max_train=120, max_val=40, max_test=40,
                               unlabeled="remainder"))
    assert s.transfer is not None and "label" not in s.transfer.frame
    # 400 rows: 15% test (60) and 15% val (60) carved, 280 train; caps keep 120/40/40, so
    # 160 + 20 + 20 rows were taken by no split.
    assert len(s.transfer) == 200 and s.transfer.dropped_eval == 0
    used = set(s.train["text"]) | set(s.val["text"]) | set(s.test["text"])
    assert not used & set(s.transfer.frame["text"])
    assert s.transfer.info()["source"] == "remainder"


def test_transfer_file_is_deduplicated_and_its_column_checked(tmp_path):
    path = write_data(tmp_path / "d.csv", rows=200)
    base = load_splits(DataConfig(path=path))
    extra = pd.DataFrame({"body": [*base.val["text"][:3], *base.test["text"][:2], "brand new text",
                                   "another new text"]})
    extra.to_csv(tmp_path / "u.csv", index=False)
    s = load_splits(DataConfig(path=path, unlabeled=str(tmp_path / "u.csv"),
                               unlabeled_text_column="body"))
    assert len(s.transfer) == 2 and s.transfer.dropped_eval == 5
    assert s.fingerprint() == base.fingerprint()  # the transfer set never changes the teacher
    with pytest.raises(ConfigError, match="data.unlabeled_text_column"):
        load_splits(DataConfig(path=path, unlabeled=str(tmp_path / "u.csv")))
    with pytest.raises(ConfigError, match="data.unlabeled"):
        load_splits(DataConfig(path=path, unlabeled=str(tmp_path / "missing.csv")))
    with pytest.raises(ConfigError, match="data.unlabeled"):
        DataConfig(path=path, max_unlabeled=10)


def test_transfer_stream_covers_every_row_once_per_pass():
    enc = Encoded(np.arange(10, dtype=np.int32), np.arange(11), np.full(10, -1), 0)
    stream = TransferStream(DeviceSplit(enc, torch.device("cpu")), rows_per_step=4, seed=3)
    assert stream.steps_per_pass == 3  # 4 + 4 + 2 rows
    first = np.concatenate([stream.rows(s)[0] for s in range(3)])
    second = np.concatenate([stream.rows(s)[0] for s in range(3, 6)])
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert list(first) != list(second)  # each pass is reshuffled
    again = TransferStream(DeviceSplit(enc, torch.device("cpu")), rows_per_step=4, seed=3)
    np.testing.assert_array_equal(again.rows(3)[0], stream.rows(3)[0])  # a function of the step
    # rows of a step have similar lengths (little padding): 200 rows of lengths 1..200
    lengths = np.random.default_rng(0).permutation(np.arange(1, 201))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ragged = Encoded(np.zeros(offsets[-1], dtype=np.int32), offsets, np.full(200, -1), 0)
    grouped = TransferStream(DeviceSplit(ragged, torch.device("cpu")), rows_per_step=10, seed=0)
    spans = [np.ptp(lengths[grouped.rows(s)[0]]) for s in range(grouped.steps_per_pass)]
    assert max(spans) <= 9  # sorted within the pass: 10 consecutive lengths (random: ~160)


def test_unlabeled_params_are_searchable_kd_only():
    cfg = load_config("search_spaces/smoke.yaml", {
        "space": {"alpha": {"type": "uniform", "low": 0.0, "high": 1.0},
                  "learning_rate": {"type": "loguniform", "low": 5e-5, "high": 5e-4},
                  "unlabeled_weight": {"type": "uniform", "low": 0.5, "high": 2.0},
                  "unlabeled_ratio": {"type": "choice", "values": [1, 2]}}})
    assert {p.name for p in cfg.ce_space} == {"learning_rate"}  # alpha is pinned to 1
    with pytest.raises(ConfigError, match="train.unlabeled_ratio"):
        TrainParams(unlabeled_ratio=0)
    with pytest.raises(ConfigError, match="train.unlabeled_targets"):
        TrainParams(unlabeled_targets="mixed")


@pytest.fixture(scope="module")
def transfer_prep(tmp_path_factory):
    from kdtune.stages import prepare

    root = tmp_path_factory.mktemp("transfer")
    cfg = load_config("search_spaces/smoke.yaml", {
        "cache_dir": str(root / "cache"), "data.path": write_data(root / "d.csv", rows=240),
        "data.hub": None, "data.hub_fallback": False, "data.label_names": None,
        "data.max_train": 48, "data.max_val": 16, "data.max_test": 16, "data.max_length": 24,
        "data.unlabeled": "remainder", "data.max_unlabeled": 40})
    return cfg, prepare(cfg)


def test_teacher_logits_on_the_transfer_set_are_cached_in_the_manifest(transfer_prep):
    from kdtune.stages import prepare

    cfg, prep = transfer_prep
    assert prep.transfer is not None and len(prep.transfer) == 40
    assert prep.transfer_logits[0].shape == (40, 4)
    name = f"transfer/logits_{prep.splits.transfer.fingerprint()}.npy"
    manifest = json.loads((prep.teacher.dir / "manifest.json").read_text())
    assert name in manifest["files"]
    again = prepare(cfg)
    assert again.teacher.cache_hit
    np.testing.assert_array_equal(again.transfer_logits[0], prep.transfer_logits[0])
    assert prep.info()["transfer"]["rows"] == 40


def test_kd_trials_train_on_transfer_rows_and_the_ce_arm_never_does(transfer_prep):
    from kdtune.recipe import build_trainer

    cfg, prep = transfer_prep
    data = prep.trial_data(cfg)
    ce = build_trainer({"alpha": 1.0, "beta": 0.0}, data)
    assert ce.transfer is None
    kd = build_trainer({"alpha": 0.5, "temperature": 2.0, "unlabeled_ratio": 0.25,
                        "unlabeled_weight": 1.5, "precision": "fp32"}, data)
    assert kd.transfer is not None and kd.transfer.rows_per_step == 8  # round(0.25 * 32)
    off = build_trainer({"alpha": 0.5, "unlabeled_weight": 0.0}, data)
    assert off.transfer is None

    # The transfer term of step 0 by hand: T^2 * KL(teacher || student) on its 8 rows.
    index, _ = kd.transfer.rows(0)
    kd.model.eval()  # dropout off on both sides of the comparison
    with torch.no_grad():
        got = kd._transfer_loss()
        logits = kd.model(**kd.transfer.split.batch(index)).logits.float()
        want = kd_loss(logits, torch.from_numpy(prep.transfer_logits[0][index]),
                       torch.zeros(8, dtype=torch.long), 0.0, 2.0).kd
    assert float(got) == pytest.approx(float(want), rel=1e-5) and float(got) > 0
    hard = build_trainer({"alpha": 0.5, "temperature": 2.0, "unlabeled_ratio": 0.25,
                          "unlabeled_targets": "hard", "precision": "fp32"}, data)
    hard.model.eval()
    with torch.no_grad():  # self-training: CE on the teacher's argmax of the same rows
        got = hard._transfer_loss()
        logits = hard.model(**hard.transfer.split.batch(index)).logits.float()
        argmax = torch.from_numpy(prep.transfer_logits[0][index]).argmax(-1)
        want = torch.nn.functional.cross_entropy(logits, argmax)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    kd.model.train()
    history = kd.fit()
    assert history and np.isfinite(history[-1].loss)


def test_the_report_names_the_transfer_set_and_what_was_dropped():
    from kdtune.report.facts import _transfer

    line = _transfer({"source": "local:u.csv", "rows": 90, "read": 100,
                      "dropped_equal_to_val_or_test": 7, "dropped_repeats": 3, "capped": 0})
    assert line.startswith("transfer set: `local:u.csv`, 90 unlabelled rows (of 100 read: 7 equal")
    assert "3 repeats dropped" in line and "the CE-only arm never sees them" in line


def test_the_retrain_page_names_the_transfer_values_and_hides_them_for_ce():
    from kdtune.retrain.retrain_page import _model_line

    kd = {"alpha": 0.1, "temperature": 6.0, "learning_rate": 2.5e-4, "weight_decay": 0.01,
          "epochs": 6, "batch_size": 32, "unlabeled_ratio": 4.0, "unlabeled_weight": 1.0}
    line = _model_line("KD student", {"trial_id": "t1", "source": "picks.json"}, kd, True)
    assert line.endswith("batch_size = 32, unlabeled_ratio = 4.0000, unlabeled_weight = 1.0000")
    assert "unlabeled" not in _model_line("KD student", {"trial_id": "t1", "source": "x"}, kd)
    ce = {**kd, "alpha": 1.0}
    line = _model_line("CE-only baseline", {"trial_id": "t2", "source": "x"}, ce, True)
    assert "temperature" not in line and "unlabeled" not in line and "alpha = 1.0000" in line


def test_a_search_with_self_training_picks_all_three_arms(tmp_path, text_data):
    """One tiny search with a transfer set and search.self_training: three arms and three picks;
    self-training trials train at alpha 1 on the transfer rows with hard targets, CE trials never
    see a transfer row; the verdict compares KD with self-training. (No confirm stage, to stay
    short: tests/test_picks.py checks that it confirms the self-training arm too.)"""
    import yaml
    from conftest import smoke_raw

    from kdtune import search
    from kdtune.record import load_experiment
    from kdtune.report.verdict_inputs import verdict

    raw = smoke_raw(text_data)
    raw["data"].update(max_train=32, max_val=16, max_test=16, max_length=24,
                       unlabeled="remainder", max_unlabeled=64)
    raw["train"].update(epochs=1, eval_every=1.0, warmup_fraction=0.0)
    # the fewest trials three arms hold: 3 CE, 3 self-training (the minimum each), 1 KD
    raw["search"].update(num_samples=7, grace_period=1.0, self_training=True, anchors=False,
                         confirm={"top_k": 0, "seeds": 0})
    raw["space"]["unlabeled_ratio"] = {"type": "choice", "values": [0.5, 1.0]}
    space = tmp_path / "self.yaml"
    space.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(space), "--name", "self", "--results-dir",
                        str(tmp_path)]) == 0
    exp = tmp_path / "self"
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    assert trials["arm"].value_counts().to_dict() == {"kd": 1, "ce": 3, "self": 3}
    own = {r.trial_id: json.loads(r.hparams) for r in trials.itertuples()}
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    transfer = history.groupby("trial_id")["transfer_loss"].min()
    for r in trials.itertuples():
        if r.arm == "self":
            assert own[r.trial_id]["alpha"] == 1.0 and own[r.trial_id]["unlabeled_targets"] == "hard"
            assert "temperature" not in own[r.trial_id] and transfer[r.trial_id] > 0
        if r.arm == "ce":
            assert own[r.trial_id]["unlabeled_targets"] == "soft" and transfer[r.trial_id] == 0
    picks = json.loads((exp / "picks.json").read_text())
    arms = {w: picks[w]["arm"] for w in ("distilled", "baseline", "self_training")}
    assert arms == {"distilled": "kd", "baseline": "ce", "self_training": "self"}
    text = "\n".join(verdict(load_experiment(exp), top=10))
    assert "**KD vs self-training.** The self-training student" in text
    assert f"trial `{picks['self_training']['trial_id']}`" in text


def test_the_retrain_page_sets_kd_against_self_training():
    from types import SimpleNamespace

    from kdtune.retrain.retrain_page import _model_line, _versus_self_training
    from kdtune.retrain.stats import mean_std

    summary = {"student": {"test_macro_f1": mean_std([0.90, 0.92]), "test_accuracy": mean_std([0.9, 0.9])},
               "self_training": {"test_macro_f1": mean_std([0.87, 0.91]),
                                 "test_accuracy": mean_std([0.8, 0.9])},
               "difference_self_training": {"test_macro_f1": mean_std([0.03, 0.01]),
                                            "test_accuracy": mean_std([0.1, 0.0])}}
    report = SimpleNamespace(summary=summary, versus_self_training={
        "kind": "kd_better", "text": "KD beats self-training by +2.00 points of test macro-F1."})
    page = "\n".join(_versus_self_training(report, ["a"]))
    assert page.startswith("## KD vs self-training (the same seeds)")
    assert "never stops or extends the seeds itself" in page and "KD beats self-training" in page
    # means and sample SDs: (0.90, 0.92) -> 0.9100 ± 0.0141; (0.03, 0.01) -> 0.0200 ± 0.0141
    assert "| test macro-F1 | 0.9100 ± 0.0141 | 0.8900 ± 0.0283 | 0.0200 ± 0.0141 |" in page
    assert _versus_self_training(SimpleNamespace(summary={}, versus_self_training={}), ["a"]) == []
    values = {"alpha": 1.0, "temperature": 3.0, "beta": 0.0, "learning_rate": 1e-4,
              "unlabeled_ratio": 2.0, "unlabeled_weight": 1.0, "unlabeled_targets": "hard"}
    line = _model_line("Self-training", {"trial_id": "s1", "source": "x"}, values, True)
    assert "temperature" not in line and "beta" not in line
    assert line.endswith("unlabeled_ratio = 2.0000, unlabeled_weight = 1.0000, unlabeled_targets = hard")
