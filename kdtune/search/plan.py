"""What a search invocation will do, decided and validated before anything expensive runs.

A :class:`SearchPlan` says which config, which record (a folder or a storage URI) and whether
the search is new, resumed, or grown to more trials. Every refusal is a one-line
:class:`~kdtune.errors.ConfigError` (exit 2): an existing experiment without --resume /
--overwrite, a URI that is unreachable or names a missing bucket, a bad --num-samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtune.config import ExperimentConfig, config_from_yaml, load_config
from kdtune.errors import ConfigError
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.record.store import is_uri


@dataclass
class SearchPlan:
    cfg: ExperimentConfig
    record: Record
    resume: bool = False
    grow: bool = False  # resume a finished search with a larger num_samples
    restart_errored: bool = False
    address: str | None = None
    report: bool = True
    overwrite: bool = False

    def finished(self) -> dict[str, dict[str, Any]]:
        """Finished search trials (and served duplicates) of the record, by trial id."""
        return {k: v for k, v in self.record.finished().items() if v.get("kind", "search") == "search"
                or v.get(S.STATUS) == S.DUPLICATE}


def experiment_root(cfg: ExperimentConfig) -> str:
    base = cfg.results_dir.rstrip("/")
    return f"{base}/{cfg.name}" if is_uri(base) else str(Path(base) / cfg.name)


def _checked(plan: SearchPlan) -> SearchPlan:
    from kdtune.tracking import check_tracking

    check_tracking(plan)
    return plan


def _record(root: str) -> Record:
    record = Record(root)
    if record.store.remote:
        record.probe()  # unreachable storage, a missing bucket, bad credentials: one line now
    return record


def new_plan(cfg: ExperimentConfig, *, overwrite: bool = False, dry_run: bool = False,
             **kwargs: Any) -> SearchPlan:
    """A fresh search; an existing experiment is refused unless ``overwrite``."""
    record = _record(experiment_root(cfg))
    if not record.is_empty():
        if not overwrite:
            raise ConfigError("--name", f"experiment {record.root!r} exists; pass --resume "
                              f"{record.root} to continue it, --overwrite to replace it, or "
                              "another --name")
    return _checked(SearchPlan(cfg, record, overwrite=overwrite and not dry_run, **kwargs))


def resume_plan(root: str, num_samples: int | None = None, **kwargs: Any) -> SearchPlan:
    """Continue an interrupted search, or grow a finished one to ``num_samples`` trials."""
    record = _record(root)
    if not record.exists():
        raise ConfigError("--resume", f"{root!r} is not a kdtune experiment (no config.yaml); "
                          "give results/<experiment>")
    record.check_schema()
    cfg = record.config()
    plan = SearchPlan(cfg, record, resume=True, **kwargs)
    if num_samples is None or num_samples == cfg.search.num_samples:
        return _checked(plan)
    have = max(len(plan.finished()), cfg.search.num_samples)
    if num_samples < have:
        raise ConfigError("--num-samples", f"{num_samples} is fewer than the {have} trials the "
                          "search already has; give a larger total to grow it")
    raw = cfg.to_dict()
    raw["search"]["num_samples"] = num_samples
    import yaml

    plan.cfg = config_from_yaml(yaml.safe_dump(raw), f"{root}/config.yaml")
    plan.grow = True
    return _checked(plan)


def load_space(space: str, name: str | None, num_samples: int | None,
               results_dir: str | None, sets: dict[str, Any] | None = None) -> ExperimentConfig:
    """The space file with ``--set`` overrides, then the named flags, validated."""
    overrides: dict[str, Any] = dict(sets or {})
    for key, value in (("name", name), ("search.num_samples", num_samples),
                       ("results_dir", results_dir)):
        if value is not None:
            overrides[key] = value
    return load_config(space, overrides)
