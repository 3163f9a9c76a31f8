"""What runs on every Ray node before a search: imports, CUDA where GPUs are advertised, storage.

Only the standard library is imported at the top, so that a node missing one of kdtune's
dependencies (pandas, yaml, torch, ...) reports it in one line instead of failing to unpickle
this function with a traceback. :func:`kdtune.cluster.preflight` sends it to every alive node.
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
import sys
from typing import Any

#: The key of a driver's files (:func:`driver_imports`) holding the driver's interpreter.
PYTHON = "<python>"


def node_check(version: str, modules: tuple[str, ...], root: str, driver_marker: str,
               node_id: str, gpus: float, marker_dir: str,
               driver_files: dict[str, str] | None = None) -> dict[str, Any]:
    """Imports (kdtune at the driver's version first), CUDA when the node advertises GPUs, then
    the driver's marker read back and this node's marker written under the results storage.

    ``driver_files`` (the driver's own node only, from :func:`driver_imports`): the interpreter
    and the files of the modules the driver has already imported; a module this node would load from the same
    file with the same interpreter is not imported again (importing torch, transformers and
    scikit-learn costs a fresh worker about 2 s per search).
    """
    out: dict[str, Any] = {"node_id": node_id, "host": socket.gethostname(), "problem": None}
    todo = tuple(m for m in modules if not _same_as_driver(m, driver_files or {}))
    problem = _imports(version, todo) or (_cuda(gpus) if gpus > 0 else None)
    if problem is None:
        problem = _storage(root, driver_marker, node_id, marker_dir)
    out["problem"] = problem
    return out


def _same_as_driver(name: str, driver_files: dict[str, str]) -> bool:
    """The driver imported ``name`` from the file this interpreter would load it from."""
    if driver_files.get(PYTHON) != sys.executable or name not in driver_files:
        return False
    try:
        spec = importlib.util.find_spec(name)  # locates a top-level module without running it
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin == driver_files[name]


def driver_imports(modules: tuple[str, ...]) -> dict[str, str]:
    """Import ``modules`` here, on the driver (its teacher stage needs them too): the file of
    each that imports, with this interpreter. One that does not (whatever it raises: a broken
    shared library is an OSError) is left to the node's check, which reports it in one line."""
    out = {PYTHON: sys.executable}
    for name in modules:
        try:
            spec = importlib.import_module(name).__spec__
        except Exception:  # reported by the node's own import, in one line
            continue
        if spec is not None and spec.origin:
            out[name] = spec.origin
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
