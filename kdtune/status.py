"""Trial statuses, shared by results, report and retrain (no heavy imports here)."""

STATUS_COMPLETED, STATUS_STOPPED, STATUS_ERRORED, STATUS_DIVERGED = (
    "completed", "stopped early", "errored", "diverged")
#: Statuses of trials whose metrics are usable (the others errored or diverged).
OK_STATUSES = (STATUS_COMPLETED, STATUS_STOPPED)
