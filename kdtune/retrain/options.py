"""The retrain's options, checked once (for the command line and the Python API), and the call.

:func:`retrain` is what ``kdtune retrain`` and :func:`kdtune.retrain_experiment` run: options
range-checked (one line naming the option), the group-sequential design built, the
experiment's config with ``--set`` overrides that change only how runs execute, then
:func:`kdtune.retrain.retraining.run_retrain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdtune.errors import ConfigError

#: What ``retrain --set`` may change: how runs execute, never the data, teacher or recipe.
RETRAIN_SETTABLE = ("search.cpus_per_trial", "search.gpus_per_trial", "train.eval_batch_size",
                    "train.nan_check_every", "train.precision")


def _with_sets(cfg: Any, sets: dict[str, Any]) -> Any:
    from kdtune.config import parse_config, set_dotted

    if not sets:
        return cfg
    raw = cfg.to_dict()
    for key, value in sets.items():
        if key not in RETRAIN_SETTABLE:
            raise ConfigError(f"--set {key}", f"a retrain may change only {', '.join(RETRAIN_SETTABLE)}; "
                              "the rest is the experiment's own config")
        set_dotted(raw, key, value)
    return parse_config(raw)


def check_retrain_options(*, seeds: int | str, max_seeds: int, round_size: int, margin: float,
                          epochs: int | None, threads: int | None, bootstrap: int,
                          prefix: str = "") -> int | str:
    """Range checks of the retrain's options (``prefix`` "--" names them as flags); returns
    ``seeds`` as an int or "auto". Raises :class:`ConfigError` naming the option."""
    from kdtune.retrain.decision import MAX_SEEDS_RUN

    if seeds != "auto":
        try:
            seeds = int(seeds)
        except (TypeError, ValueError):
            raise ConfigError(f"{prefix}seeds", f"a whole number or 'auto', got {seeds!r}") from None
    for flag, value, least in (("seeds", None if seeds == "auto" else seeds, 1),
                               ("max-seeds", max_seeds if seeds == "auto" else None, 3),
                               ("round", round_size, 1), ("epochs", epochs, 1),
                               ("threads", threads, 1), ("bootstrap", bootstrap, 100)):
        if value is not None and value < least:
            raise ConfigError(f"{prefix}{flag}", f"must be at least {least}, got {value}")
    if max_seeds > MAX_SEEDS_RUN or (seeds != "auto" and seeds > MAX_SEEDS_RUN):
        raise ConfigError(f"{prefix}max-seeds", f"at most {MAX_SEEDS_RUN} seeds, got "
                          f"{max(max_seeds, 0 if seeds == 'auto' else seeds)}")
    if not 0 < margin < 100:
        raise ConfigError(f"{prefix}margin", f"points of macro-F1 in (0, 100), got {margin:g}")
    return seeds


def retrain(path: str | Path, *, seeds: int | str = "auto", max_seeds: int = 10,
                       round_size: int = 2, margin: float = 0.5, spending: str = "obrien-fleming",
                       trial: str | None = None, baseline_trial: str | None = None,
                       epochs: int | None = None, bootstrap: int = 1000, threads: int | None = None,
                       check_reproduction: bool = False, sequential: bool = False,
                       sets: dict[str, Any] | None = None) -> Any:
    """Re-train the recommended KD config and the tuned CE baseline on fresh seeds (``seeds``
    of them, or ``"auto"``: rounds of ``round_size`` after a first look at 3, up to
    ``max_seeds``, stopping once decided) and decide with an equivalence ``margin`` in points;
    returns the :class:`~kdtune.retrain.report.RetrainReport` also written to
    ``retrain/retrain.json`` (``verdict["kind"]`` is the decision, ``ship`` the model to ship).
    ``sets`` overrides dotted settings of the experiment's config where they change only how
    the runs execute (``search.cpus_per_trial``, ``train.eval_batch_size``, ...)."""
    from kdtune.record import open_record
    from kdtune.retrain.choose import choose
    from kdtune.retrain.retraining import run_retrain
    from kdtune.retrain.sequential import SPENDING, Design, schedule

    seeds = check_retrain_options(seeds=seeds, max_seeds=max_seeds, round_size=round_size,
                                  margin=margin, epochs=epochs, threads=threads, bootstrap=bootstrap)
    if spending not in SPENDING:
        raise ConfigError("spending", f"one of {', '.join(SPENDING)}, got {spending!r}")
    design = (Design(looks=schedule(max_seeds, 3, round_size), margin=margin / 100.0,
                     spending=spending) if seeds == "auto"
              else Design.fixed(int(seeds), margin=margin / 100.0, spending=spending))
    record = open_record(path)
    cfg = _with_sets(record.config(), sets or {})
    return run_retrain(record, cfg, choose(record, cfg, trial, baseline_trial), design=design,
                       epochs=epochs, n_resamples=bootstrap, check_reproduction=check_reproduction,
                       threads=threads, sequential=sequential)
