"""Optuna's optimisation history and parameter importances, read from the study in ``optuna.db``.

A multi-objective study (``search.objectives``) is plotted on its first objective, the quality
metric; the trade-off itself is the report's Pareto front section.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdtune.report.experiment import Experiment
from kdtune.report.plots import pyplot, save

PlotResult = tuple[Path | None, str]  # (the PNG, or None; a note for the reader)


def _load_study(exp: Experiment) -> Any:
    """The experiment's study; raises when the database is unreadable or holds another study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = exp.dir / "optuna.db"
    storage = f"sqlite:///{db.resolve()}"
    names = optuna.get_all_study_names(storage)
    name = exp.cfg.name if exp.cfg.name in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise ValueError(f"no study named {exp.cfg.name!r} in {db}")
    return optuna.load_study(study_name=name, storage=storage)


def plot_optuna(exp: Experiment, out_dir: Path) -> dict[str, PlotResult]:
    """``{"history": ..., "importances": ...}``; a missing or unreadable study gives notes only."""
    if not (exp.dir / "optuna.db").is_file():
        return {"history": (None, "No optuna.db in the experiment folder."),
                "importances": (None, "No optuna.db in the experiment folder.")}
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    try:
        study = _load_study(exp)
    except Exception as exc:  # noqa: BLE001 - a locked or odd database must not stop the report
        note = f"The Optuna study could not be read ({type(exc).__name__}: {exc})."
        return {"history": (None, note), "importances": (None, note)}
    multi = len(study.directions) > 1
    # FrozenTrial.value raises on a multi-objective study: plot its first objective instead
    target: Callable[[Any], float] | None = (lambda t: t.values[0]) if multi else None
    suffix = " (first objective)" if multi else ""
    out: dict[str, PlotResult] = {}
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and t.values is not None]
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    plt = pyplot()
    with warnings.catch_warnings(), plt.rc_context():  # optuna switches to ggplot style globally
        warnings.simplefilter("ignore")
        if finished:
            ax = ovm.plot_optimization_history(study, target=target,
                                               target_name="val macro-F1 (best epoch)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.figure.set_size_inches(8, 4.5)
            out["history"] = (save(ax.figure, out_dir / "optuna_history.png"),
                              "Objective = each trial's best epoch (what kdtune tells Optuna; "
                              f"trials ASHA stopped are PRUNED){suffix}.")
        else:
            out["history"] = (None, "No Optuna trial has finished yet.")
        if len(completed) < 2:
            out["importances"] = (None, f"Parameter importances need at least 2 completed trials; "
                                        f"the study has {len(completed)}.")
        else:
            try:
                ax = ovm.plot_param_importances(study, target=target, target_name="val macro-F1")
                ax.figure.set_size_inches(7, 3.5)
                out["importances"] = (save(ax.figure, out_dir / "optuna_importances.png"),
                                      f"fANOVA over {len(completed)} completed trials{suffix}; "
                                      "with few trials the ranking is rough.")
            except Exception as exc:  # noqa: BLE001 - e.g. every trial sampled the same value
                pyplot().close("all")
                out["importances"] = (None, f"Parameter importances could not be computed "
                                            f"({type(exc).__name__}: {exc}).")
    return out
