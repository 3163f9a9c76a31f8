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
