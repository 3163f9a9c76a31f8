"""Typed, validated configuration for a kdtune experiment.

A search-space YAML file is plain data (read with ``yaml.safe_load``) with the sections
``data``, ``teacher``, ``student``, ``train``, ``search`` and ``space``. The package is split by
concern: :mod:`~kdtune.config.sections` (the typed sections, each validated on construction),
:mod:`~kdtune.config.experiment_config` (the whole experiment and the checks spanning sections),
:mod:`~kdtune.config.planning` (arms and anchors), :mod:`~kdtune.config.loading` (YAML, overrides,
the README's key table) and :mod:`~kdtune.config.value_types`. Any problem raises
:class:`ConfigError`, one line naming the field and the fix; the CLIs turn it into exit code 2.
The names below are the package's public surface.
"""

from kdtune.config.experiment_config import ExperimentConfig
from kdtune.config.loading import (
    build_section,
    config_from_yaml,
    load_config,
    merge_sections,
    parse_config,
    read_yaml,
    reference_table,
    set_dotted,
)
from kdtune.config.planning import (
    ANCHOR_CE,
    ANCHOR_SEED,
    ARM_CE,
    ARM_KD,
    ARM_SELF,
    Arm,
    anchor_label,
    is_anchor,
    same_value,
    study_name,
)
from kdtune.config.sections import (
    BASELINES,
    DISTRIBUTIONS,
    EMBEDDED_MODEL,
    LOGGERS,
    METRICS,
    OBJECTIVES,
    RUNG_GRACE,
    SEARCHABLE,
    ConfirmConfig,
    DataConfig,
    ParamSpace,
    SearchConfig,
    StudentConfig,
    TeacherConfig,
    is_hub_id,
)
from kdtune.errors import ConfigError

__all__ = [
    "ANCHOR_CE", "ANCHOR_SEED", "ARM_CE", "ARM_KD", "ARM_SELF", "BASELINES", "DISTRIBUTIONS",
    "EMBEDDED_MODEL", "LOGGERS", "METRICS", "OBJECTIVES", "RUNG_GRACE", "SEARCHABLE", "Arm", "ConfigError",
    "ConfirmConfig", "DataConfig", "ExperimentConfig", "ParamSpace", "SearchConfig",
    "StudentConfig", "TeacherConfig", "anchor_label", "build_section", "config_from_yaml",
    "is_anchor", "is_hub_id", "load_config", "merge_sections", "parse_config", "read_yaml",
    "reference_table", "same_value", "set_dotted", "study_name",
]
