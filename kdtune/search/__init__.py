"""``python -m kdtune.search``: plan, run (or resume, or grow) a search, write its record.

Modules: :mod:`~kdtune.search.plan` (what to do, validated), :mod:`~kdtune.search.tuning_run` (the
Tuner stage), :mod:`~kdtune.search.confirm` (the confirm stage), :mod:`~kdtune.search.results`
(tables, picks, evaluation), :mod:`~kdtune.search.steps` (``run_plan``) and
:mod:`~kdtune.search.cli` (``main``).
"""

from kdtune.search.cli import main, parse_args, trial_budget
from kdtune.search.plan import SearchPlan, new_plan, resume_plan

__all__ = ["SearchPlan", "main", "new_plan", "parse_args", "resume_plan", "trial_budget"]
