"""Optuna's optimisation history and parameter importances of each arm's TPE study.

``optuna.db`` holds the KD arm's study (named after the experiment) and, with a tuned baseline,
the CE-only arm's (``<name>-ce``), with self-training that arm's (``<name>-self``). A
multi-objective study (``search.objectives``) is plotted on its first objective, the quality
metric; the trade-off itself is the Pareto front section.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtune.config import ARM_CE, ARM_SELF, study_name
from kdtune.record import Experiment
from kdtune.report.outputs import Outputs
from kdtune.report.plots import pyplot, save
from kdtune.report.tables import metric_words

#: (title, file prefix) of the other arms' studies, each plotted when optuna.db holds it.
OTHER_STUDIES = {ARM_CE: ("CE-only arm (the tuned baseline)", "optuna_ce"),
                 ARM_SELF: ("self-training arm", "optuna_self")}
PlotResult = tuple[Path | None, str]  # (the PNG, or None; a note for the reader)


@dataclass
class StudyPlots:
    """One arm's plots: ``history`` and ``importances``, each (PNG or None, note)."""

    title: str
    plots: dict[str, PlotResult] = field(default_factory=dict)


def _study_names(exp: Experiment, storage: str) -> list[tuple[str, str, str]]:
    """(study name, title, file prefix) of the KD study and, when present, the other arms'."""
    import optuna

    names = optuna.get_all_study_names(storage)
    kd = exp.cfg.name if exp.cfg.name in names else (names[0] if len(names) == 1 else None)
    if kd is None:
        raise ValueError(f"no study named {exp.cfg.name!r} in optuna.db (found {names})")
    out = [(kd, "KD arm", "optuna")]
    for arm, (title, prefix) in OTHER_STUDIES.items():
        if study_name(exp.cfg.name, arm) in names:
            out.append((study_name(exp.cfg.name, arm), title, prefix))
    return out


def plot_optuna(exp: Experiment, out: Outputs) -> list[StudyPlots]:
    """Plots of each study; a missing or unreadable database gives a note only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp.record.fetch_optuna()
    db = exp.record.optuna_path()
    if not db.is_file():
        return [StudyPlots("Optuna", {"history": (None, "No optuna.db in the experiment folder.")})]
    storage = f"sqlite:///{db.resolve()}"
    try:
        studies = [(optuna.load_study(study_name=n, storage=storage), title, prefix)
                   for n, title, prefix in _study_names(exp, storage)]
    except Exception as exc:  # noqa: BLE001 - a locked or odd database must not stop the report
        note = f"The Optuna study could not be read ({type(exc).__name__}: {exc})."
        return [StudyPlots("Optuna", {"history": (None, note)})]
    return [StudyPlots(title, _plots(study, out, prefix, f"val {metric_words(exp)}"))
            for study, title, prefix in studies]


def _plots(study: Any, out: Outputs, prefix: str, metric: str) -> dict[str, PlotResult]:
    """History and importances of one study (``metric``: the objective's name in words)."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    # FrozenTrial.value raises on a multi-objective study: plot its first objective instead
    target: Callable[[Any], float] | None = (lambda t: t.values[0]) if multi else None
    suffix = " (first objective)" if multi else ""
    name = metric
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    plots: dict[str, PlotResult] = {}
    plt = pyplot()
    with warnings.catch_warnings(), plt.rc_context():  # optuna switches to ggplot style globally
        warnings.simplefilter("ignore")
        if completed:
            ax = ovm.plot_optimization_history(study, target=target, target_name=name)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.figure.set_size_inches(8, 4.5)
            plots["history"] = (save(ax.figure, out.path(f"{prefix}_history.png")),
                                f"Objective: the {name} each completed trial reported to Optuna"
                                f"{suffix}; {pruned} trial(s) ASHA stopped are PRUNED and not "
                                "drawn.")
        else:
            plots["history"] = (None, "No Optuna trial of this study has completed yet.")
        plots["importances"] = _importances(study, out, prefix, target, name, len(completed), suffix)
    return plots


def _importances(study: Any, out: Outputs, prefix: str, target: Any, name: str, n: int,
                 suffix: str) -> PlotResult:
    from optuna.visualization import matplotlib as ovm

    params = {p for t in study.trials for p in t.params}
    if len(params) < 2:
        return None, (f"The study searches {len(params)} parameter(s) "
                      f"({', '.join(sorted(params)) or 'none'}): no importances to rank.")
    if n < 2:
        return None, f"Parameter importances need at least 2 completed trials; the study has {n}."
    try:
        ax = ovm.plot_param_importances(study, target=target, target_name=name)
        ax.figure.set_size_inches(7, 3.5)
        return (save(ax.figure, out.path(f"{prefix}_importances.png")),
                f"fANOVA over {n} completed trials{suffix}; with few trials the ranking is rough.")
    except Exception as exc:  # noqa: BLE001 - e.g. every trial sampled the same value
        pyplot().close("all")
        return None, f"Parameter importances could not be computed ({type(exc).__name__}: {exc})."
