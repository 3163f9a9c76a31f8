"""The Optuna storage of a search, which follows the driver across a resume.

Ray pickles the searcher (and with it the studies' ``RDBStorage``) into its experiment state.
A plain ``RDBStorage`` keeps the first driver's absolute SQLite path, so a search resumed on
another machine or from another directory would open a file that is not there (or a fresh,
empty one) and lose the TPE history. :class:`DriverStorage` re-reads its URL from the driver
that unpickles it (:data:`URL_ENV`, set by :func:`bind`), then connects.
"""

from __future__ import annotations

import os
from typing import Any

from optuna.storages import RDBStorage

URL_ENV = "KDTUNE_OPTUNA_URL"


def bind(url: str) -> None:
    """This driver's study file: a storage unpickled from now on opens ``url``."""
    os.environ[URL_ENV] = url


class DriverStorage(RDBStorage):
    """``RDBStorage`` at the current driver's study file (see the module docstring)."""

    def __setstate__(self, state: dict[Any, Any]) -> None:
        url = os.environ.get(URL_ENV)
        super().__setstate__({**state, "url": url} if url else state)


def driver_storage(url: str) -> DriverStorage:
    bind(url)
    return DriverStorage(url)
