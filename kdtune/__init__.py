"""kdtune: tune knowledge distillation of transformer text classifiers.

Command lines: ``python -m kdtune.search``, ``python -m kdtune.report``,
``python -m kdtune.retrain``, ``python -m kdtune.export``. Python API (resolved lazily, so
``import kdtune`` loads no torch): :func:`run_search`, :func:`load_experiment`,
:func:`retrain_experiment` (see :mod:`kdtune.api`).
"""

from __future__ import annotations

from typing import Any

from kdtune.version import __version__

__all__ = ["__version__", "load_experiment", "retrain_experiment", "run_search"]

_API = ("run_search", "load_experiment", "retrain_experiment")


def __getattr__(name: str) -> Any:
    if name in _API:
        from kdtune import api

        return getattr(api, name)
    raise AttributeError(f"module 'kdtune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
