"""CLI: ``python -m kdtune.report results/<experiment>``: the report a practitioner reads.

Reads the experiment record (:func:`kdtune.record.load_experiment`: a folder or a storage URI)
and writes ``report.md`` and a self-contained ``report.html`` (images embedded as data URIs, no
network) into the experiment's local folder, and the PNGs and CSVs they show into ``report/``
(uploaded beside the results when the record is on object storage):

* facts: data, teacher, student, trials, the arms and their budgets, the baseline mode,
  duplicates, and the cost of the search and of the confirm stage;
* a **provisional** verdict: the picked distilled student against the picked baseline on test
  and validation, each gap judged against the noise, what tuning alone gained, and warnings
  when the teacher looks under-trained;
* a leaderboard (arm, searched parameters, progress in epochs, best scores, status);
* the confirm stage's single-seed vs multi-seed ranking;
* for a multi-objective search, the Pareto front (table and scatter);
* per-class precision / recall / F1 on the held-out test split, F1 across models, confusion;
* efficiency timed with kdtune's latency protocol (cached in ``report/efficiency.csv``);
* the export (``export/<source>/export.md``) and re-training (``retrain/summary.md``) results;
* plots: alpha x T, learning curves over progress, losses, Optuna (KD and CE studies),
  training granted per trial by ASHA.

It works on a finished search, an interrupted one (trials rebuilt from Ray's result files) and
one still running. Modules: :mod:`~kdtune.report.cli` (``render``, ``main``),
:mod:`~kdtune.report.document` (markdown + HTML), :mod:`~kdtune.report.outputs` (files),
:mod:`~kdtune.report.facts`, :mod:`~kdtune.report.verdict` (pure),
:mod:`~kdtune.report.teacher_check` (pure), :mod:`~kdtune.report.verdict_inputs`,
:mod:`~kdtune.report.tables`, :mod:`~kdtune.report.sections`,
:mod:`~kdtune.report.record_sections`, :mod:`~kdtune.report.efficiency`,
:mod:`~kdtune.report.plots`, :mod:`~kdtune.report.curves`, :mod:`~kdtune.report.optuna_plots`,
:mod:`~kdtune.report.pareto_front` and :mod:`~kdtune.report.plot_sections`.
"""

from kdtune.report.cli import main, render, render_after_results
from kdtune.report.document import Doc, markdown_to_html
from kdtune.report.teacher_check import TeacherNumbers, teacher_signs, teacher_warning
from kdtune.report.verdict import Anchor, Noise, Pick, VerdictInput, provisional_verdict

__all__ = ["Anchor", "Doc", "Noise", "Pick", "TeacherNumbers", "VerdictInput", "main",
           "markdown_to_html", "provisional_verdict", "render", "render_after_results",
           "teacher_signs", "teacher_warning"]
