"""The searcher: arms routed by quota, anchors first, duplicates served, Optuna told the truth.

These drive kdtune's searchers directly (a real Ray Tune OptunaSearch and Optuna study in
memory, no cluster), plus one tiny real search where TPE can only repeat itself. They also pin
the behaviour of Ray's OptunaSearch that kdtune relies on: ``on_trial_complete`` with no result
tells PRUNED, with ``error=True`` FAIL, and a searcher survives save/restore.
"""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import yaml
from conftest import smoke_raw
from optuna.trial import TrialState

from kdtune import search
from kdtune.config import load_config
from kdtune.tuning.searchers import ArmRouter, build_router
from kdtune.tuning.settle import TRIAL_ATTR, row_outcome, settle_studies

SPACE = "search_spaces/smoke.yaml"


STORAGES: dict[int, optuna.storages.InMemoryStorage] = {}


def _router(lrs: list[float] | None = None, **search) -> ArmRouter:
    overrides = {f"search.{k}": v for k, v in search.items()}
    if lrs is not None:
        overrides["space"] = {"learning_rate": {"type": "choice", "values": lrs}}
    cfg = load_config(SPACE, overrides)
    storage = optuna.storages.InMemoryStorage()
    router = build_router(cfg, storage)
    STORAGES[id(router)] = storage
    return router


def _trials(router: ArmRouter, arm: str) -> list[optuna.trial.FrozenTrial]:
    name = "smoke" if arm == "kd" else f"smoke-{arm}"
    return optuna.load_study(study_name=name, storage=STORAGES[id(router)]).get_trials()


def _states(router: ArmRouter, arm: str) -> list[TrialState]:
    return [t.state for t in _trials(router, arm)]


def test_arms_take_turns_from_their_anchors():
    router = _router(num_samples=6)
    configs = [router.suggest(f"t{i}") for i in range(6)]
    assert [c["arm"] for c in configs] == ["kd", "ce", "kd", "ce", "kd", "ce"]
    assert configs[0] == {"arm": "kd", "alpha": 0.7, "temperature": 3.0, "learning_rate": 2e-4}
    assert configs[1] == {"arm": "ce", "learning_rate": 2e-4, "alpha": 1.0, "beta": 0.0}
    assert all(c["alpha"] == 1.0 and "temperature" not in c for c in configs if c["arm"] == "ce")
    assert router.suggest("t6") == "FINISHED"  # num_samples reached


def test_optuna_is_told_pruned_failed_and_best():
    router = _router(num_samples=6)
    for i in range(4):
        router.suggest(f"t{i}")
    full = {"progress": 1.0, "val_macro_f1": 0.8, "full_val": True, "training_iteration": 2}
    router.on_trial_result("t0", {**full, "progress": 0.5, "val_macro_f1": 0.9, "full_val": False,
                                  "training_iteration": 1})
    router.on_trial_result("t0", full)  # the best full-validation score: 0.8, not the subset's
    router.on_trial_complete("t0", {**full, "progress": 2.0, "val_macro_f1": 0.7,
                                    "training_iteration": 3})
    router.on_trial_complete("t2", {**full, "progress": 1.0})  # ASHA stopped it at epoch 1
    router.on_trial_complete("t1", None, error=True)
    kd = _trials(router, "kd")
    assert [t.state for t in kd] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert kd[0].value == pytest.approx(0.8)  # the best, not the last (0.7)
    assert _states(router, "ce")[0] == TrialState.FAIL


def test_a_duplicate_is_served_from_the_known_result(tmp_path):
    """Only three configs exist; the fourth and fifth proposals repeat one and are not run."""
    router = _router([1e-4, 2e-4, 3e-4], num_samples=5, anchors=False)
    served: list[dict] = []
    router.on_duplicate = served.append
    seen, ids = {}, []
    for i in range(5):
        config = router.suggest(f"t{i}")
        if config == "FINISHED":
            break
        ids.append(f"t{i}")
        lr = config["learning_rate"]
        assert lr not in seen, "a config that ran was proposed for training again"
        seen[lr] = f"t{i}"
        router.on_trial_complete(f"t{i}", {"progress": 2.0, "val_macro_f1": lr * 1000,
                                           "full_val": True, "training_iteration": 2})
    assert len(ids) == 3 and len(served) == 2  # 3 trained + 2 duplicates = num_samples
    assert all(d["duplicate_of"] == seen[d["hparams"]["learning_rate"]] for d in served)
    trials = _trials(router, "kd")
    assert len(trials) == 5 and {t.state for t in trials} == {TrialState.COMPLETE}
    # each duplicate was told its original's value
    by_lr = {t.params["learning_rate"]: t.value for t in trials}
    assert by_lr == {lr: pytest.approx(lr * 1000) for lr in seen}
    path = tmp_path / "router.pkl"
    router.save(str(path))
    restored = _router([1e-4, 2e-4, 3e-4], num_samples=5, anchors=False)
    restored.restore(str(path))
    assert restored.issued == router.issued and len(restored.known) == 3
    assert restored.suggest("t9") == "FINISHED"


def test_a_duplicate_of_a_running_trial_waits_for_its_result():
    router = _router([1e-4], num_samples=4, anchors=False)
    assert router.suggest("a")["learning_rate"] == 1e-4
    assert router.suggest("b") == "FINISHED"  # every other proposal repeats the running trial
    assert len(router.duplicates) == 3 and list(router.pending) == ["a"]
    assert _states(router, "kd") == [TrialState.RUNNING] * 4
    router.on_trial_complete("a", {"progress": 1.0, "val_macro_f1": 0.5, "full_val": True,
                                   "training_iteration": 1})  # stopped early: all pruned
    assert _states(router, "kd") == [TrialState.PRUNED] * 4


def test_never_pay_twice_in_a_real_search(tmp_path, text_data):
    raw = smoke_raw(text_data)
    raw["name"] = "dups"
    raw["data"].update(max_train=96)
    raw["train"].update(epochs=1, eval_every=1.0)
    raw["search"].update(num_samples=5, grace_period=1.0, confirm={"top_k": 0, "seeds": 0})
    raw["space"] = {"learning_rate": {"type": "choice", "values": [1.0e-4, 2.0e-4, 3.0e-4]}}
    space = tmp_path / "dups.yaml"
    space.write_text(yaml.safe_dump(raw))
    assert search.main(["--space", str(space), "--results-dir", str(tmp_path), "--no-report"]) == 0
    exp = tmp_path / "dups"
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    trained = trials[trials["status"] != "duplicate"]
    dups = trials[trials["status"] == "duplicate"]
    assert len(trials) == 5 and len(trained) == 3 and len(dups) == 2
    assert trained["learning_rate"].nunique() == 3
    for _, d in dups.iterrows():
        original = trained[trained["trial_id"] == d["duplicate_of"]].iloc[0]
        assert original["learning_rate"] == d["learning_rate"]
        assert d["best_val_macro_f1"] == pytest.approx(original["best_val_macro_f1"])
    assert len(list((exp / "tune").glob("kd_trial_*"))) == 3  # Ray trained three
    assert "duplicate" in (exp / "summary.md").read_text()
    assert json.loads((exp / "run_info.json").read_text())["arms"] == {"kd": 5}


def test_growing_a_search_tells_duplicates_of_earlier_trials_at_once():
    """A grown search knows the earlier run's outcomes: a proposal that repeats one of its
    trials is told that outcome straight away, and no study trial is left RUNNING."""
    router = _router([1e-4], num_samples=4, anchors=False)
    previous = {"old1": {"trial_id": "old1", "arm": "kd", "ray_status": "terminated",
                         "hparams": {"learning_rate": 1e-4}, "progress": 2.0, "diverged": False,
                         "val_macro_f1": 0.61}}
    router.seed_history(previous)
    assert router.outcomes["old1"] == ("complete", {"val_macro_f1": 0.61})
    assert router.suggest("new") == "FINISHED"  # every proposal repeats old1: served, not run
    assert len(router.duplicates) == 3 and not router.pending
    trials = _trials(router, "kd")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.value for t in trials} == {0.61}
    stopped = {"ray_status": "terminated", "progress": 0.5, "val_macro_f1": 0.4}
    assert router.arms["kd"].outcome_of_record(stopped) == ("pruned", None)
    assert router.arms["kd"].outcome_of_record({"ray_status": "error"}) == ("fail", None)


def test_a_restored_searcher_counts_trials_its_snapshot_missed(tmp_path):
    """The 6-for-5 race: Ray writes a snapshot's trial list before the searcher's state (and
    uploads them to object storage one by one). A kill in between leaves a trial list that holds
    a trial the restored searcher never served; it must count it, not hand its share out again."""
    router = _router(num_samples=5)
    served = {f"t{i}": router.suggest(f"t{i}") for i in range(3)}
    router.save(str(tmp_path / "searcher-state-2026-12-03_10-00-00.pkl"))
    served["t3"] = router.suggest("t3")  # started after the searcher's snapshot
    older = {"trial_data": [[json.dumps({"trial_id": "t0", "config": served["t0"]}), "{}"]]}
    (tmp_path / "experiment_state-2026-12-03_09-00-00.json").write_text(json.dumps(older))
    newest = {"trial_data": [[json.dumps({"trial_id": t, "config": c, "status": "RUNNING"}), "{}"]
                             for t, c in served.items()]}
    (tmp_path / "experiment_state-2026-12-03_10-00-01.json").write_text(json.dumps(newest))

    restored = _router(num_samples=5)
    restored.restore(str(tmp_path / "searcher-state-2026-12-03_10-00-00.pkl"))
    assert restored.adopted == {"t3"} and restored.issued == {"kd": 2, "ce": 2}
    assert restored.remaining() == 1  # 5 - the 4 in the trial list
    assert restored.suggest("t4") != "FINISHED" and restored.suggest("t5") == "FINISHED"
    # a proposal repeating the adopted trial's config is a duplicate, not a new trial
    assert any(trial == "t3" for _, _, trial in restored.known)


def test_a_restored_limit_frees_the_slots_of_trials_that_will_not_run_again(tmp_path):
    """The resume hang: the limit's saved live set held a trial suggested just before the kill
    (absent from Ray's trial list) and one the list holds as ended. Ray's own limiter kept both
    slots for good and, all restored trials done, returned no suggestion forever."""
    from ray.tune.search import ConcurrencyLimiter

    from kdtune.tuning import ResumableLimiter

    limiter = ResumableLimiter(_router(num_samples=6), max_concurrent=3)
    served = {t: limiter.suggest(t) for t in ("t0", "t1", "t2")}
    assert limiter.suggest("t3") is None  # three live: the limit holds
    state = limiter.get_state()
    limiter.searcher.save(str(tmp_path / "searcher-state-2026-12-03_10-00-00.pkl"))
    listed = [("t0", "RUNNING"), ("t1", "TERMINATED")]  # t2 was never saved in the list
    trial_list = {"trial_data": [[json.dumps({"trial_id": t, "config": served[t], "status": st}),
                                  "{}"] for t, st in listed]}
    (tmp_path / "experiment_state-2026-12-03_10-00-00.json").write_text(json.dumps(trial_list))

    def restore(cls):
        restored = cls(_router(num_samples=6), max_concurrent=3)
        restored.set_state(state)
        restored.searcher.restore(str(tmp_path / "searcher-state-2026-12-03_10-00-00.pkl"))
        return restored

    plain = restore(ConcurrencyLimiter)  # what Ray's limiter does: three slots held
    plain.on_trial_complete("t0", result={"val_macro_f1": 0.5, "progress": 2.0})
    assert plain.suggest("t4") is not None and plain.suggest("t5") is None
    mine = restore(ResumableLimiter)
    assert mine.suggest("t4") is not None and mine.live_trials == {"t0", "t4"}
    assert mine.suggest("t5") is not None and mine.suggest("t6") is None  # t0, t4, t5 live
    mine.on_trial_complete("t0", result={"val_macro_f1": 0.5, "progress": 2.0})
    assert mine.live_trials == {"t4", "t5"} and mine.num_unfinished_live_trials == 2
    assert mine.searcher.outcomes["t0"][0] == "complete"  # the router heard of t0's end


def test_an_unreadable_trial_list_adopts_nothing(tmp_path):
    from kdtune.tuning.searchers import restored_trials

    assert restored_trials(tmp_path) == []
    (tmp_path / "experiment_state-x.json").write_text('{"trial_data": [["{not json')
    assert restored_trials(tmp_path) == []


def _sqlite_router(tmp_path, lrs: list[float], **search) -> tuple[ArmRouter, str]:
    overrides = {f"search.{k}": v for k, v in search.items()}
    overrides["space"] = {"learning_rate": {"type": "choice", "values": lrs}}
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    return build_router(load_config(SPACE, overrides), optuna.storages.RDBStorage(url)), url


def _study_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return [t for s in optuna.get_all_study_summaries(url)
            for t in optuna.load_study(study_name=s.study_name, storage=url).get_trials()]


def test_study_trials_a_kill_left_running_are_told_their_recorded_outcome(tmp_path):
    """A URI search's study copy can miss the tells of trials that ended just before a kill
    (Ray's snapshot holding them ended, so the resumed run never hears of them again): once the
    search ends, each is told the outcome its trials.csv row gives; one never trained, FAIL."""
    router, url = _sqlite_router(tmp_path, [i * 1e-5 for i in range(1, 51)], num_samples=6,
                                 anchors=False)
    assert all(router.suggest(f"t{i}") != "FINISHED" for i in range(5)) and not router.duplicates
    by_id = {t.user_attrs.get(TRIAL_ATTR): t for t in _study_trials(url)}
    assert set(by_id) == {f"t{i}" for i in range(5)}  # each study trial names its Ray trial
    router.on_trial_complete("t4", {"progress": 2.0, "val_macro_f1": 0.6, "full_val": True,
                                    "training_iteration": 2})  # told before the kill
    optuna.load_study(study_name="smoke", storage=url).ask()  # asked, never given to Ray
    trials = pd.DataFrame([
        {"trial_id": "t0", "status": "completed", "best_val_macro_f1": 0.8,
         "last_val_macro_f1": 0.7},
        {"trial_id": "t1", "status": "stopped early", "best_val_macro_f1": 0.5},
        {"trial_id": "t2", "status": "errored"},
        {"trial_id": "t3", "status": "diverged"},
        {"trial_id": "t4", "status": "completed", "best_val_macro_f1": 0.6}])
    told = settle_studies(url, trials, ["val_macro_f1"])
    assert told == {"COMPLETE": 1, "PRUNED": 2, "FAIL": 2}  # t4 was not told again
    after = {t.user_attrs.get(TRIAL_ATTR): t for t in _study_trials(url)}
    assert after["t0"].state == TrialState.COMPLETE and after["t0"].value == 0.8  # best, not last
    assert [after[t].state for t in ("t1", "t2", "t3")] == [
        TrialState.PRUNED, TrialState.FAIL, TrialState.PRUNED]
    assert after["t4"].value == 0.6 and after[None].state == TrialState.FAIL
    assert settle_studies(url, trials, ["val_macro_f1"]) == {}  # nothing left RUNNING


def test_duplicates_a_kill_left_running_are_told_their_originals_outcome(tmp_path):
    router, url = _sqlite_router(tmp_path, [1e-4], num_samples=4, anchors=False)
    router.suggest("a")
    assert router.suggest("b") == "FINISHED" and len(router.duplicates) == 3
    ids = {t.user_attrs.get(TRIAL_ATTR) for t in _study_trials(url)}
    assert ids == {"a", *(d["trial_id"] for d in router.duplicates)}
    rows = [{"trial_id": "a", "status": "completed", "best_val_macro_f1": 0.75}]
    rows += [{"trial_id": d["trial_id"], "status": "duplicate", "duplicate_of": "a"}
             for d in router.duplicates]
    assert settle_studies(url, pd.DataFrame(rows), ["val_macro_f1"]) == {"COMPLETE": 4}
    assert [t.value for t in _study_trials(url)] == [0.75] * 4


def test_the_outcome_of_a_trials_row():
    nan = float("nan")
    one, two = ["val_macro_f1"], ["val_macro_f1", "latency_ms"]
    done = {"status": "completed", "best_val_macro_f1": 0.9, "last_val_macro_f1": 0.8,
            "latency_ms": 3.5}
    assert row_outcome(done, one) == (TrialState.COMPLETE, [0.9])
    assert row_outcome(done, two) == (TrialState.COMPLETE, [0.8, 3.5])  # what Ray reported last
    assert row_outcome({**done, "best_val_macro_f1": nan}, one) == (TrialState.FAIL, None)
    assert row_outcome({"status": "stopped early"}, one) == (TrialState.PRUNED, None)
    assert row_outcome({"status": "errored"}, one) == (TrialState.FAIL, None)
