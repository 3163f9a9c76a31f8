"""The experiment record: one torch-free home for everything an experiment folder holds.

Search writes it; report, retrain and export read it only through here:

* :mod:`~kdtune.record.schema`: schema version, statuses, arms, column names (defined once);
* :mod:`~kdtune.record.store`: a folder or a storage URI (s3://, gs://), whole-file writes;
* :mod:`~kdtune.record.record`: :class:`Record`, the folder's files by name;
* :mod:`~kdtune.record.trials`: trials.csv / history.csv from Ray's results;
* :mod:`~kdtune.record.picks`: the recommended configs, the Pareto front, the confirm ranking;
* :mod:`~kdtune.record.summary_page`: summary.md;
* :mod:`~kdtune.record.experiment`: :func:`load_experiment`, the one reader;
* :mod:`~kdtune.record.partial`: trials of an interrupted or running search.
"""

from kdtune.record.experiment import (
    STATE_FINISHED,
    STATE_INTERRUPTED,
    STATE_RUNNING,
    Experiment,
    experiment_state,
    load_experiment,
    open_record,
)
from kdtune.record.record import Record
from kdtune.record.store import Store

__all__ = ["STATE_FINISHED", "STATE_INTERRUPTED", "STATE_RUNNING", "Experiment", "Record", "Store",
           "experiment_state", "load_experiment", "open_record"]
