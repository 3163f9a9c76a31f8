"""Ray Tune pieces of a kdtune search: spaces, the routing TPE searcher, ASHA on progress,
and the callback that keeps the experiment record.

* :mod:`~kdtune.tuning.space`: Ray Tune samplers for the space's parameters.
* :mod:`~kdtune.tuning.searchers`: :class:`ArmSearcher` (Optuna TPE that tells the study
  what ASHA did) and :class:`ArmRouter` (one Tuner, one TPE study per arm, duplicates served
  from known results), and :class:`ResumableLimiter` (Ray's concurrency limit, with the
  live trials of a restore taken from what Ray restored).
* :mod:`~kdtune.tuning.scheduler`: :class:`RungASHA`, ASHA whose time unit is training
  progress in epochs and which spares protected anchors.
* :mod:`~kdtune.tuning.callbacks`: :class:`RecordCallback`, one record object per finished
  trial, and the Optuna study synced beside URI results.
* :mod:`~kdtune.tuning.settle`: study trials a kill left RUNNING, told their outcome from the
  trials table once the search has ended (or FAIL, never trained).
"""

from kdtune.tuning.callbacks import RecordCallback
from kdtune.tuning.scheduler import RungASHA
from kdtune.tuning.searchers import ArmRouter, ArmSearcher, ResumableLimiter, build_router
from kdtune.tuning.space import arm_space, tune_distribution

__all__ = ["ArmRouter", "ArmSearcher", "RecordCallback", "ResumableLimiter", "RungASHA",
           "arm_space", "build_router", "tune_distribution"]
