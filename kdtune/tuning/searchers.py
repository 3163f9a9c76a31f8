"""TPE per arm, routed by one searcher, with ASHA's decisions told to Optuna.

* :class:`ArmSearcher` is Ray's ``OptunaSearch`` telling the study what really happened to a
  trial through its public API: a trial ASHA stopped early (or that diverged) is PRUNED, not
  COMPLETE with a one-rung score; an errored one is FAIL; a completed one is told its *best*
  full-validation score (the value kdtune ranks and exports by), not its last.
* :class:`ArmRouter` is the one searcher the Tuner sees. Each arm (the KD arm, and the tuned
  CE-only baseline) has its own ``ArmSearcher`` and TPE study; the router hands out trials so
  that each arm's share of ``num_samples`` is filled evenly, anchors first. A config that has
  already run or is running (compared on effective hparams: at alpha = 1 the temperature is
  ignored) is not trained again: its study is told the known result, the record notes the
  duplicate, and it uses up one of ``num_samples``.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from kdtune.config import ExperimentConfig, same_value, study_name
from kdtune.params import effective
from kdtune.record import schema as S
from kdtune.strategies import strategy
from kdtune.tuning.settle import TRIAL_ATTR
from kdtune.tuning.space import arm_space

log = logging.getLogger(__name__)

#: Ray Tune's experiment state files (TuneController.CKPT_FILE_TMPL); the newest name wins.
EXPERIMENT_STATE = "experiment_state-*.json"

#: Trial statuses Ray does not resume (Trial.TERMINATED, Trial.ERROR).
ENDED = ("TERMINATED", "ERROR")

#: Consecutive duplicate proposals after which the space is taken to be exhausted.
MAX_DUPLICATES_IN_A_ROW = 25


def _lost(key: str) -> None:
    """A resumed search whose study copy lacks a trial the restored searcher knows (the driver
    died between the trial's start and the copy's upload): the trial runs on and is recorded;
    only TPE's history misses it."""
    log.warning("trial %s is not in this driver's copy of the studies (the previous driver died "
                "before uploading it); TPE will not learn from it", key)


def _told_before(key: str) -> None:
    """A trial that ended just before a kill, restored from a snapshot taken before its end: it
    reports and ends again on resume, and its study already holds its outcome."""
    log.info("trial %s: its study already holds its outcome (it ended before the last kill)",
             key)


class ArmSearcher(OptunaSearch):
    """OptunaSearch that records ASHA-stopped and diverged trials as PRUNED, errors as FAIL."""

    def __init__(self, *args: Any, max_progress: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_progress = max_progress
        self._best: dict[str, float] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except KeyError:  # its study trial is not in this driver's copy of the studies
            _lost(trial_id)
        except UpdateFinishedTrialError:
            _told_before(trial_id)
        self._track_best(trial_id, result)

    def _track_best(self, trial_id: str, result: dict | None) -> None:
        """The trial's best full-validation score so far (Ray hands a trial's final result
        only to ``on_trial_complete``, so that one is tracked there)."""
        if not result or isinstance(self.metric, list) or result.get("diverged"):
            return
        if not result.get(S.FULL_VAL, True) or result.get(self.metric) is None:
            return
        value, sign = result[self.metric], (1 if self.mode == "max" else -1)
        if trial_id not in self._best or sign * value > sign * self._best[trial_id]:
            self._best[trial_id] = value

    def outcome(self, trial_id: str, result: dict | None, error: bool) -> tuple[str, dict | None]:
        """("fail" | "pruned" | "complete", the result Optuna is told)."""
        if error:
            return "fail", None
        result = result or {}
        self._track_best(trial_id, result)
        stopped = result.get(S.PROGRESS, 0.0) < self.max_progress - 1e-6
        if stopped or result.get("diverged"):
            return "pruned", None
        if trial_id in self._best:
            result = {**result, self.metric: self._best[trial_id]}
        return "complete", result

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        kind, told = self.outcome(trial_id, result, error)
        self.tell(trial_id, kind, told)

    def outcome_of_record(self, entry: dict[str, Any]) -> tuple[str, dict | None]:
        """The outcome of a trial of an earlier run from its finished-trial record (its final
        rung's scores: the study already holds what it was told then)."""
        if entry.get("ray_status") == "error":
            return "fail", None
        progress = float(entry.get(S.PROGRESS) or 0.0)
        value = entry.get(self.metric) if isinstance(self.metric, str) else None
        if entry.get("diverged") or progress < self.max_progress - 1e-6 or value is None:
            return "pruned", None
        return "complete", {self.metric: float(value)}

    def tag(self, key: str, trial_id: str) -> None:
        """Name on the study trial of ``key`` the Ray trial (or served duplicate) it is: a study
        trial a kill left RUNNING is told its recorded outcome later (kdtune.tuning.settle)."""
        if key in self._ot_trials:
            self._ot_trials[key].set_user_attr(TRIAL_ATTR, trial_id)

    def tell(self, key: str, kind: str, result: dict | None) -> None:
        # OptunaSearch tells FAIL for (no value, error) and PRUNED for (no value, no error).
        try:
            super().on_trial_complete(key, result=result if kind == "complete" else None,
                                      error=kind == "fail")
        except KeyError:
            _lost(key)
        except (ValueError, UpdateFinishedTrialError) as exc:
            if isinstance(exc, ValueError) and "Cannot tell a" not in str(exc):
                raise
            _told_before(key)


class ArmRouter(Searcher):
    """One searcher over several arms, each with its own :class:`ArmSearcher` and quota."""

    def __init__(self, arms: dict[str, ArmSearcher], quotas: dict[str, int],
                 pinned: dict[str, dict[str, Any]], metric: Any, mode: Any, num_samples: int):
        super().__init__(metric=metric, mode=mode)
        self.arms, self.quotas, self.pinned = arms, quotas, pinned
        self.num_samples = num_samples
        self.issued = dict.fromkeys(arms, 0)  # trials and served duplicates per arm
        self.keys: dict[str, tuple[str, str]] = {}  # Ray trial id -> (arm, searcher key)
        self.known: list[tuple[str, dict[str, Any], str]] = []  # (arm, effective hparams, trial)
        self.outcomes: dict[str, tuple[str, dict | None]] = {}  # finished trial -> outcome
        self.pending: dict[str, list[tuple[str, str]]] = {}  # running trial -> duplicates
        self.duplicates: list[dict[str, Any]] = []
        self.counter = 0
        self.adopted: set[str] = set()  # restored Tune trials this state had not served
        self.restored_running: set[str] | None = None  # after a restore: trials Ray will run on
        self.on_duplicate: Callable[[dict[str, Any]], None] | None = None

    def remaining(self) -> int:
        """Trials this router can still hand out (Ray's num_samples for its run)."""
        return max(0, self.num_samples - sum(self.issued.values()))

    def seed_history(self, previous: dict[str, dict[str, Any]]) -> None:
        """Trials of earlier runs of this search (growing it): counted in each arm's quota and
        known for duplicate detection; their studies already hold them."""
        for trial_id, entry in previous.items():
            arm = entry.get(S.ARM, "kd")
            if arm in self.issued:
                self.issued[arm] += 1
                if entry.get(S.STATUS) != S.DUPLICATE:
                    self.known.append((arm, effective(entry.get("hparams") or {}), trial_id))
                    # its outcome too: a new proposal that repeats it is told this at once
                    # (without it the duplicate's study trial stayed RUNNING for good)
                    self.outcomes[trial_id] = self.arms[arm].outcome_of_record(entry)

    def _next_arm(self) -> str | None:
        open_arms = [a for a in self.arms if self.issued[a] < self.quotas[a]]
        return min(open_arms, key=lambda a: self.issued[a] / self.quotas[a]) if open_arms else None

    def _find_duplicate(self, arm: str, hparams: dict[str, Any]) -> str | None:
        mine = effective(hparams)
        for other_arm, values, trial_id in self.known:
            if other_arm == arm and values.keys() == mine.keys() and all(
                    same_value(values[k], mine[k]) for k in mine):
                return trial_id
        return None

    def suggest(self, trial_id: str) -> dict | str | None:
        for _ in range(MAX_DUPLICATES_IN_A_ROW):
            arm = self._next_arm()
            if arm is None or sum(self.issued.values()) >= self.num_samples:
                return Searcher.FINISHED
            key = f"{arm}-{self.counter}"
            self.counter += 1
            proposal = self.arms[arm].suggest(key)
            if proposal is None or proposal == Searcher.FINISHED:
                return proposal
            hparams = {**proposal, **self.pinned[arm]}
            self.issued[arm] += 1
            original = self._find_duplicate(arm, hparams)
            if original is None:
                self.arms[arm].tag(key, trial_id)
                self.keys[trial_id] = (arm, key)
                self.known.append((arm, effective(hparams), trial_id))
                return {S.ARM: arm, **hparams}
            self._serve_duplicate(arm, key, hparams, original)
        log.warning("the searcher proposed %d duplicates in a row: the space looks exhausted",
                    MAX_DUPLICATES_IN_A_ROW)
        return Searcher.FINISHED

    def _serve_duplicate(self, arm: str, key: str, hparams: dict[str, Any], original: str) -> None:
        entry = {S.TRIAL_ID: f"dup-{key}", S.ARM: arm, S.STATUS: S.DUPLICATE,
                 S.DUPLICATE_OF: original, "hparams": hparams}
        log.info("trial %s would repeat %s (%s): its known result is used instead", entry[S.TRIAL_ID],
                 original, hparams)
        self.arms[arm].tag(key, entry[S.TRIAL_ID])
        self.duplicates.append(entry)
        if self.on_duplicate is not None:
            self.on_duplicate(entry)
        if original in self.outcomes:
            self.arms[arm].tell(key, *self.outcomes[original])
        else:
            self.pending.setdefault(original, []).append((arm, key))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.keys:
            arm, key = self.keys[trial_id]
            self.arms[arm].on_trial_result(key, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.keys:
            return
        arm, key = self.keys[trial_id]
        outcome = self.arms[arm].outcome(key, result, error)
        self.arms[arm].tell(key, *outcome)
        self.outcomes[trial_id] = outcome
        for dup_arm, dup_key in self.pending.pop(trial_id, []):
            self.arms[dup_arm].tell(dup_key, *outcome)

    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k != "on_duplicate"}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self.on_duplicate = None
        trials = restored_trials(Path(checkpoint_path).parent)
        self.adopt([(tid, config) for tid, config, _ in trials])
        self.restored_running = ({tid for tid, _, status in trials if status not in ENDED}
                                 if trials else None)

    def adopt(self, trials: list[tuple[str, dict[str, Any]]]) -> None:
        """Count the restored Tune trials this searcher's state has not served.

        Ray writes a snapshot's trial list before the searcher's state, and uploads the files of
        a snapshot to object storage one by one, so a kill can leave a trial list newer than the
        searcher: without this, the resumed searcher would hand out that trial's share of
        ``num_samples`` again (6 trials for 5). An adopted trial runs on; its study hears
        of it only once the search has ended (kdtune.tuning.settle), so TPE misses it until then.
        """
        for trial_id, config in trials:
            arm = config.get(S.ARM, "kd")
            if trial_id in self.keys or trial_id in self.adopted or arm not in self.issued:
                continue
            self.issued[arm] += 1
            self.known.append((arm, effective({k: v for k, v in config.items() if k != S.ARM}),
                               trial_id))
            self.adopted.add(trial_id)
            log.warning("trial %s is in the restored trial list but not in the searcher's "
                        "snapshot (the driver died between the two): counted, not proposed again",
                        trial_id)


class ResumableLimiter(ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter whose live trials, after a restore, are the trials Ray restored
    unfinished.

    Its saved live set can name trials that will never end in the resumed run: ones suggested
    just before a kill that Ray's saved trial list never held, and ones the list holds as
    already ended (the two files of a snapshot are written, and uploaded, apart). Each held a
    slot for good, and once every slot was held the search waited forever for a suggestion
    (a resume hung in tests/test_cluster.py). The wrapped :class:`ArmRouter` knows, from the
    same restore, which trials Ray runs on.
    """

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._restored = True

    def _after_restore(self) -> None:
        if not self.__dict__.pop("_restored", False):
            return
        running = getattr(self.searcher, "restored_running", None)
        if running is not None:
            stale = self.live_trials - running
            if stale:
                log.warning("%d trial(s) of the concurrency limit's saved state will not run "
                            "again (suggested before the kill, or already ended): their slots "
                            "are freed", len(stale))
            self.live_trials = set(running)
            self.num_unfinished_live_trials = len(self.live_trials)

    def suggest(self, trial_id: str) -> dict | None:
        self._after_restore()
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self._after_restore()
        if trial_id in self.live_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
        else:  # restored running but not in the saved live set: the router decides
            self.searcher.on_trial_complete(trial_id, result=result, error=error)


def restored_trials(folder: Path) -> list[tuple[str, dict[str, Any], str]]:
    """(trial id, config, status) of every trial in the newest Tune experiment state in
    ``folder`` (the driver's staging copy a restore reads), or none when it cannot be read."""
    states = sorted(folder.glob(EXPERIMENT_STATE))
    if not states:
        return []
    try:
        data = json.loads(states[-1].read_text())
        trials = [json.loads(entry[0]) for entry in data["trial_data"]]
        return [(t["trial_id"], dict(t.get("config") or {}), str(t.get("status", ""))) for t in trials]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("could not read the restored trial list %s (%s): trials the searcher's "
                    "snapshot missed cannot be counted", states[-1].name, exc)
        return []


def build_router(cfg: ExperimentConfig, storage: Any,
                 previous: dict[str, dict[str, Any]] | None = None) -> ArmRouter:
    """The searcher of a search: one study per arm in ``storage`` (SQLite), sampled as
    ``search.strategy`` says (TPE by default).

    ``previous`` (growing a finished search) are the trials already run: the studies hold them,
    the anchors are not enqueued again, and each arm keeps its share of the new total.
    """
    s = cfg.search
    metric = s.objectives or s.metric
    mode = s.modes if s.objectives else s.mode
    arms, quotas, pinned = {}, {}, {}
    plan = strategy(s.strategy)
    for i, arm in enumerate(cfg.arms()):
        sampler = plan.sampler(s.seed + i, arm.num_samples)
        name = study_name(cfg.name, arm.name)
        arms[arm.name] = ArmSearcher(
            space=OptunaSearch.convert_search_space(arm_space(arm.space)), metric=metric, mode=mode,
            sampler=sampler, points_to_evaluate=None if previous else list(arm.points) or None,
            storage=storage, study_name=name,
            max_progress=float(cfg.train.epochs))
        quotas[arm.name], pinned[arm.name] = arm.num_samples, dict(arm.pinned)
    router = ArmRouter(arms, quotas, pinned, metric, mode, sum(quotas.values()))
    router.seed_history(previous or {})
    return router
