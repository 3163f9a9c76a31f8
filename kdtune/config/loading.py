"""YAML in, a validated :class:`ExperimentConfig` out; dotted overrides; the key table.

A search-space file is plain data (``yaml.safe_load``); each section is built into its dataclass
with unknown keys and wrong types refused in one line. ``--set key=value`` and the Python API's
overrides go through :func:`merge_sections` before validation.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from kdtune.config.experiment_config import ExperimentConfig
from kdtune.config.sections import (
    DataConfig,
    ParamSpace,
    SearchConfig,
    StudentConfig,
    TeacherConfig,
)
from kdtune.config.value_types import _describe, _type_ok
from kdtune.errors import ConfigError, check
from kdtune.params import TrainParams


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    check(isinstance(raw, dict), prefix, f"must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            allowed = ", ".join(sorted(names))
            raise ConfigError(where, f"unknown key; allowed keys are {allowed}")
        if dataclasses.is_dataclass(hints[key]):  # a nested section, e.g. search.confirm
            kwargs[key] = build_section(hints[key], value, where)
            continue
        ok, coerced = _type_ok(value, hints[key])
        check(ok, where, f"must be {_describe(hints[key])}, got {value!r}")
        kwargs[key] = coerced
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ConfigError(f"{prefix}.{f.name}", "is required")
    return cls(**kwargs)


def parse_config(raw: Any) -> ExperimentConfig:
    """Validate a raw mapping (from YAML) into an :class:`ExperimentConfig`."""
    check(isinstance(raw, dict), "(top level)", "the file must be a YAML mapping of sections")
    sections = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig,
                "train": TrainParams, "search": SearchConfig}
    top = {"name", "results_dir", "cache_dir", "space", "extra_teachers", *sections}
    for key in raw:
        check(key in top, str(key), f"unknown section; allowed are {', '.join(sorted(top))}")
    kwargs: dict[str, Any] = {}
    for key in ("name", "results_dir", "cache_dir"):
        if key in raw:
            check(isinstance(raw[key], str) and raw[key] != "", key, "must be a non-empty string")
            kwargs[key] = raw[key]
    for key, cls in sections.items():
        kwargs[key] = build_section(cls, raw.get(key), key)
    space_raw = raw.get("space")
    check(isinstance(space_raw, dict) and space_raw, "space",
           "must map parameter names to distributions, e.g. alpha: {type: uniform, low: 0, high: 1}")
    space = []
    for name, spec in space_raw.items():
        check(isinstance(spec, dict), f"space.{name}",
               "must be a mapping like {type: uniform, low: 0, high: 1}")
        check("name" not in spec, f"space.{name}.name", "remove it; the key names the parameter")
        space.append(build_section(ParamSpace, {**spec, "name": name}, f"space.{name}"))
    kwargs["space"] = space
    extra = raw.get("extra_teachers") or []
    check(isinstance(extra, list), "extra_teachers", "must be a list of teacher sections")
    kwargs["extra_teachers"] = [build_section(TeacherConfig, t, f"extra_teachers.{i}")
                                for i, t in enumerate(extra)]
    return ExperimentConfig(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a search-space YAML file (safe_load only) and validate it.

    ``overrides`` maps dotted keys (``search.num_samples``) to values, applied before validation.
    """
    path = Path(path)
    check(path.is_file(), "--space", f"file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text; save the file as UTF-8") from None
    return config_from_yaml(text, str(path), overrides)


def read_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with a one-line error naming ``source``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(source, f"not valid YAML ({first}); fix the syntax") from None


def config_from_yaml(text: str, source: str, overrides: dict[str, Any] | None = None
                     ) -> ExperimentConfig:
    raw = read_yaml(text, source)
    if isinstance(raw, dict):
        for dotted, value in (overrides or {}).items():
            set_dotted(raw, dotted, value)
    return parse_config(raw)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """``raw["a"]["b"] = value`` for ``dotted = "a.b"``, making the sections on the way."""
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
    node[leaf] = value


def merge_sections(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with nested ``overrides`` merged in (``search={"num_samples": 6}`` keeps the rest)."""
    out = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "space":
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out



def reference_table() -> str:
    """Every configuration key with its default, as the README's table (a test keeps the two
    the same): one row per section, ``key = default``."""
    sections = (("data", DataConfig), ("teacher", TeacherConfig), ("student", StudentConfig),
                ("train", TrainParams), ("search", SearchConfig))
    rows = ["| section | keys = defaults |", "|---|---|"]
    for name, cls in sections:
        items = [f"`{f.name}` = `{_yaml_value(_default(f))}`" for f in dataclasses.fields(cls)]
        rows.append(f"| `{name}` | {', '.join(items)} |")
    return "\n".join(rows)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    value = f.default_factory()  # type: ignore[misc]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()
