"""What runs on every Ray node before a search: imports, CUDA where GPUs are advertised, storage.

Only the standard library is imported at the top, so that a node missing one of kdtune's
dependencies (pandas, yaml, torch, ...) reports it in one line instead of failing to unpickle
this function with a traceback. :func:`kdtune.cluster.preflight` sends it to every alive node.
"""

from __future__ import annotations

import importlib
import socket
from typing import Any


def node_check(version: str, modules: tuple[str, ...], root: str, driver_marker: str,
               node_id: str, gpus: float, marker_dir: str) -> dict[str, Any]:
    """Imports (kdtune at the driver's version first), CUDA when the node advertises GPUs, then
    the driver's marker read back and this node's marker written under the results storage."""
    out: dict[str, Any] = {"node_id": node_id, "host": socket.gethostname(), "problem": None}
    problem = _imports(version, modules) or (_cuda(gpus) if gpus > 0 else None)
    if problem is None:
        problem = _storage(root, driver_marker, node_id, marker_dir)
    out["problem"] = problem
    return out


def _imports(version: str, modules: tuple[str, ...]) -> str | None:
    try:
        from kdtune.version import __version__

        if __version__ != version:
            return (f"runs kdtune {__version__}, the driver {version}; install the driver's "
                    "version there (or let runtime_env ship it)")
        for name in ("kdtune.config", "kdtune.record.store", *modules):
            importlib.import_module(name)
    except ImportError as exc:
        return (f"cannot import {exc.name or exc} ({' '.join(str(exc).split())[:160]}); install "
                "kdtune's dependencies there (pip install kdtune)")
    return None


def _cuda(gpus: float) -> str | None:
    import torch

    if not torch.cuda.is_available():
        return (f"advertises {gpus:g} GPU(s) but torch {torch.__version__} cannot use CUDA there "
                f"(CUDA build: {torch.version.cuda}); install a CUDA build of torch on it")
    return None


def _storage(root: str, driver_marker: str, node_id: str, marker_dir: str) -> str | None:
    from kdtune.errors import ConfigError
    from kdtune.record.store import Store

    try:
        store = Store(root)
        if store.read_text(f"{marker_dir}/{driver_marker}") != "driver":
            raise OSError("the driver's marker reads back differently")
        store.write_text(f"{marker_dir}/{node_id}", node_id)
    except (OSError, ValueError, ConfigError) as exc:
        return (f"cannot use the results storage {root!r} ({' '.join(str(exc).split())[:160]}); "
                "every node must reach it: use a shared mount or s3://, gs://")
    return None
