"""The confirm stage's ranking: the mean over seeds uses completed confirm runs only."""

from __future__ import annotations

import pandas as pd
import pytest

from kdtune.config import load_config
from kdtune.record import schema as S
from kdtune.record.picks import multi_seed_ranking, picks


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    score = S.best("val_macro_f1")
    trials = pd.DataFrame({
        S.TRIAL_ID: ["k1", "k2", "c1"], S.ARM: ["kd", "kd", "ce"], S.ANCHOR: ["", "", ""],
        S.STATUS: [S.COMPLETED] * 3, score: [0.90, 0.88, 0.87], "alpha": [0.5, 0.6, 1.0],
        S.BEST_PROGRESS: [2.0, 2.0, 2.0],
        "hparams": ['{"alpha": 0.5, "seed": 0}', '{"alpha": 0.6, "seed": 0}',
                    '{"alpha": 1.0, "seed": 0}']})
    # k1's second confirm run diverged (reported with the worst score): it must not drag the mean
    confirm = pd.DataFrame({
        S.TRIAL_ID: ["k1", "k1", "k2", "c1"], S.ARM: ["kd", "kd", "kd", "ce"], S.SEED: [1, 2, 1, 1],
        S.STATUS: [S.COMPLETED, "diverged", S.COMPLETED, "errored"],
        score: [0.86, 0.0, 0.89, None]})
    return trials, confirm


def test_confirm_mean_uses_completed_runs_and_counts_the_dropped():
    cfg = load_config("search_spaces/smoke.yaml")
    cfg.search.confirm.top_k = 2
    trials, confirm = _frames()
    ranking = multi_seed_ranking(trials, confirm, cfg).set_index(S.TRIAL_ID)
    # k1: (0.90 + 0.86) / 2 = 0.88 over 2 seeds, 1 dropped; k2: (0.88 + 0.89) / 2 = 0.885
    assert ranking.loc["k1", "mean"] == pytest.approx(0.88)
    assert ranking.loc["k1", "seeds"] == 2 and ranking.loc["k1", "dropped"] == 1
    assert ranking.loc["k2", "mean"] == pytest.approx(0.885) and ranking.loc["k2", "dropped"] == 0
    assert ranking.loc["c1", "seeds"] == 1 and ranking.loc["c1", "dropped"] == 1
    # with the diverged run averaged in, k1 would have ranked on 0.587; now k2 wins on its mean
    chosen = picks(trials, cfg, confirm)
    assert chosen["distilled"][S.TRIAL_ID] == "k2" and chosen["changed"]["distilled"]
    assert chosen["distilled"]["dropped"] == 0


def test_one_trial_object_and_one_ce_rule():
    from kdtune.params import Trial
    from kdtune.record.picks import arm_pool
    from kdtune.record.trials import row_trial

    # types coerced once, whatever the sampler or a CSV made of them
    t = Trial.of({"batch_size": 32, "epochs": 3, "alpha": 0.7}, {"batch_size": 16.0, "epochs": 2.0,
                                                                "layers": (0.0, 5.0)})
    assert t.values["batch_size"] == 16 and isinstance(t.values["batch_size"], int)
    assert t.values["epochs"] == 2 and t.values["layers"] == [0, 5]
    assert t.train().batch_size == 16 and not t.ce_only
    assert Trial.of({"alpha": 1.0}).ce_only and Trial.of({"alpha": 1.0, "beta": 0.0}).ce_only
    assert not Trial.of({"alpha": 1.0, "beta": 0.5}).ce_only  # feature KD is distillation

    cfg = load_config("search_spaces/feature_kd.yaml")
    score = S.best("val_macro_f1")
    trials = pd.DataFrame({
        S.TRIAL_ID: ["f1", "k1", "c1"], S.ARM: ["kd", "kd", "kd"], S.ANCHOR: ["", "", ""],
        S.STATUS: [S.COMPLETED] * 3, score: [0.91, 0.90, 0.89], S.BEST_PROGRESS: [2.0] * 3,
        "hparams": ['{"alpha": 1.0, "beta": 0.5}', '{"alpha": 0.5, "beta": 0.0}',
                    '{"alpha": 1.0, "beta": 0.0}']})
    # alpha 1 with a hidden-state loss distils; alpha 1 without one is CE-only, in any arm
    assert list(arm_pool(trials, cfg, "distilled")[S.TRIAL_ID]) == ["f1", "k1"]
    # a row without the JSON column is read from its searched columns
    row = pd.Series({"alpha": 1.0, "beta": 0.0})
    assert row_trial(row, cfg).ce_only and row_trial(row, cfg).values["epochs"] == cfg.train.epochs


def test_the_self_training_rule_is_one_and_excludes_ce_only():
    from kdtune.params import Trial

    self_training = Trial.of({"alpha": 1.0, "beta": 0.0, "unlabeled_targets": "hard",
                              "unlabeled_weight": 0.5})
    assert self_training.self_training and not self_training.ce_only
    assert not self_training.distils and self_training.no_effect == ("temperature", "beta")
    # hard targets at alpha < 1 distil the labelled rows: KD; with no weight, no transfer: CE
    assert Trial.of({"alpha": 0.5, "unlabeled_targets": "hard"}).distils
    no_weight = Trial.of({"alpha": 1.0, "unlabeled_targets": "hard", "unlabeled_weight": 0.0})
    assert no_weight.ce_only and not no_weight.self_training
    assert "unlabeled_ratio" in no_weight.no_effect and "alpha" not in no_weight.no_effect
    soft = Trial.of({"alpha": 1.0, "unlabeled_targets": "soft"})
    assert soft.ce_only and not soft.self_training


def _transfer_cfg(**search):
    return load_config("search_spaces/transfer.yaml", {
        "data.path": "tests/missing.csv", **{f"search.{k}": v for k, v in search.items()}})


def test_the_self_training_arm_is_planned_beside_kd_and_ce():
    from kdtune.config import ARM_CE, ARM_KD, ARM_SELF, ConfigError, study_name

    cfg = _transfer_cfg(num_samples=18)
    arms = {a.name: a for a in cfg.arms()}
    # 18 trials: CE round(0.25 * 18) = 4, self-training 4, KD the other 10 (its anchor first)
    assert {n: a.num_samples for n, a in arms.items()} == {ARM_KD: 10, ARM_CE: 4, ARM_SELF: 4}
    assert [p.name for p in arms[ARM_SELF].space] == ["learning_rate", "unlabeled_ratio"]
    assert dict(arms[ARM_SELF].pinned) == {"alpha": 1.0, "beta": 0.0, "unlabeled_targets": "hard"}
    assert arms[ARM_SELF].points == ()
    # with a transfer set the CE arm pins soft targets: alpha 1 then never self-trains
    assert dict(arms[ARM_CE].pinned)["unlabeled_targets"] == "soft"
    assert study_name("transfer", ARM_SELF) == "transfer-self"
    assert study_name("transfer", ARM_KD) == "transfer"
    # 10 trials: 3 CE (the minimum) + 3 self + the KD anchor + 1 searched = 8 fit; 7 do not
    assert _transfer_cfg(num_samples=10).arms()[0].num_samples == 4
    with pytest.raises(ConfigError, match="search.num_samples: 7 trials cannot hold the ce arm "
                                          r"\(3 trials\) and the self arm \(3 trials\)"):
        _transfer_cfg(num_samples=7)


@pytest.mark.parametrize("overrides, field", [
    ({"data.unlabeled": None, "data.max_unlabeled": None}, "search.self_training"),
    ({"search.baseline": "fixed"}, "search.self_training"),
    ({"train.unlabeled_weight": 0.0}, "train.unlabeled_weight"),
    ({"space.unlabeled_weight": {"type": "uniform", "low": 0.0, "high": 1.0}},
     "space.unlabeled_weight"),
])
def test_self_training_refuses_a_search_it_cannot_run(overrides, field):
    from kdtune.config import ConfigError

    with pytest.raises(ConfigError, match=f"^{field}: "):
        load_config("search_spaces/transfer.yaml", overrides)


def test_self_training_without_a_transfer_set_exits_2_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    raw = yaml.safe_load(Path("search_spaces/transfer.yaml").read_text())
    del raw["data"]["unlabeled"], raw["data"]["max_unlabeled"]
    space = tmp_path / "bad.yaml"
    space.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "kdtune.search", "--space", str(space),
                           "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kdtune.search: error: search.self_training: self-training "
                                   "learns the teacher's labels of a transfer set: set "
                                   "data.unlabeled (remainder, a file, or hub:<name>) or "
                                   "self_training: false")


def test_hard_targets_need_a_transfer_set():
    from kdtune.config import ConfigError

    with pytest.raises(ConfigError, match="^train.unlabeled_targets: hard targets are for "
                                          "transfer rows"):
        load_config("search_spaces/smoke.yaml", {"train.unlabeled_targets": "hard"})


def _three_arms() -> tuple[pd.DataFrame, pd.DataFrame]:
    score = S.best("val_macro_f1")
    hard = '"alpha": 1.0, "beta": 0.0, "unlabeled_targets": "hard", "seed": 0'
    trials = pd.DataFrame({
        S.TRIAL_ID: ["s1", "k0", "k1", "s2", "c1"], S.ARM: ["self", "kd", "kd", "self", "ce"],
        S.ANCHOR: [""] * 5, S.STATUS: [S.COMPLETED] * 5, score: [0.93, 0.92, 0.90, 0.89, 0.85],
        S.BEST_PROGRESS: [2.0] * 5,
        # k0: a KD-arm trial at alpha 1 with hard transfer targets is self-training, not KD
        "hparams": ["{" + hard + ', "learning_rate": 1e-4}', "{" + hard + "}",
                    '{"alpha": 0.5, "seed": 0}', "{" + hard + ', "learning_rate": 3e-4}',
                    '{"alpha": 1.0, "beta": 0.0, "unlabeled_targets": "soft", "seed": 0}']})
    confirm = pd.DataFrame({S.TRIAL_ID: ["k1", "c1", "s1", "s2"], S.ARM: ["kd", "ce", "self", "self"],
                            S.SEED: [1] * 4, S.STATUS: [S.COMPLETED] * 4,
                            score: [0.88, 0.86, 0.83, 0.90]})
    return trials, confirm


def test_picks_confirm_and_rank_the_self_training_arm():
    from kdtune.record.picks import confirm_candidates, single_seed

    cfg = _transfer_cfg(**{"confirm.top_k": 2})
    trials, confirm = _three_arms()
    assert single_seed(trials, cfg) == {"distilled": "k1", "baseline": "c1",
                                        "self_training": "s1", "best": "s1"}
    assert confirm_candidates(trials, cfg) == [("k1", "kd"), ("c1", "ce"), ("s1", "self"),
                                               ("s2", "self")]
    chosen = picks(trials, cfg, confirm)
    # s1: (0.93 + 0.83) / 2 = 0.88; s2: (0.89 + 0.90) / 2 = 0.895: the mean changes the pick
    assert chosen["self_training"][S.TRIAL_ID] == "s2" and chosen["changed"]["self_training"]
    assert chosen["self_training"]["mean"] == pytest.approx(0.895)
    assert chosen["self_training"]["hparams"]["unlabeled_targets"] == "hard"
    assert chosen["distilled"][S.TRIAL_ID] == "k1" and chosen["baseline"][S.TRIAL_ID] == "c1"
    assert "self_training" not in picks(trials, load_config("search_spaces/smoke.yaml"))
