"""The experiment record's vocabulary: schema version, statuses, arms and column names.

Every column of ``trials.csv``, ``history.csv`` and ``confirm.csv`` and every status string is
written here once; search, report, retrain and export use these names and never respell them.
"""

from __future__ import annotations

#: Bumped whenever a file's layout changes; an older record gets a one-line error.
SCHEMA_VERSION = 2

# Trial statuses (trials.csv ``status``).
COMPLETED, STOPPED, ERRORED, DIVERGED, DUPLICATE = (
    "completed", "stopped early", "errored", "diverged", "duplicate")
RUNNING, INTERRUPTED = "running", "interrupted"  # only in a report of a partial search
#: Statuses of trials whose metrics are usable (the others errored or diverged).
OK_STATUSES = (COMPLETED, STOPPED)

# trials.csv columns (one row per trial).
TRIAL_ID, ARM, ANCHOR, STATUS, ERROR = "trial_id", "arm", "anchor", "status", "error"
PROGRESS = "progress"  # epochs of training the trial ran (fractions with rungs inside epochs)
BEST_PROGRESS = "best_progress"  # where its best full-validation score was reached
DUPLICATE_OF = "duplicate_of"  # a config already run: its known result was used instead
LATENCY, PARAMS, PATH = "latency_ms", "params", "path"
QUALITY = ("val_macro_f1", "val_accuracy")  # the validation metrics a search can select on

# history.csv columns (one row per trial and evaluation), besides TRIAL_ID and ARM.
EPOCH, STEP, FULL_VAL = "epoch", "step", "full_val"

# confirm.csv columns (one row per confirm run), besides TRIAL_ID and ARM.
SEED, RUN_ID = "seed", "run_id"

#: Ray result key ranking a trial's checkpoints, higher is better: the metric on the whole
#: validation split (negated for mode min), and WORST_SCORE at rungs that scored only the
#: validation subset (or diverged).
CKPT_SCORE, WORST_SCORE = "ckpt_score", -1e9


def best(metric: str) -> str:
    """The trials.csv column of a trial's best full-validation value of ``metric``."""
    return f"best_{metric}"


def last(metric: str) -> str:
    """The trials.csv column of a trial's value of ``metric`` at its last evaluation."""
    return f"last_{metric}"


def per_class(label: str) -> str:
    """The history.csv column of one class's validation F1."""
    return f"val_f1_{label}"
