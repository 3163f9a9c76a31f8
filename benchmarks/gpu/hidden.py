"""kdtune's teacher hidden-state pass, without importing ``kdtune.teacher``.

``kdtune.teacher`` imports the experiment record, which needs pandas, and the GPU machine has
none. The function itself needs only torch, numpy and kdtune's light modules, so its own
source is compiled from ``kdtune/teacher.py`` (the code that runs, not a copy of it) into a
namespace holding exactly the names that module gives it.
"""

from __future__ import annotations
import __future__

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kdtune
from kdtune.batches import Encoded, batch_indices, row_positions
from kdtune.devices import autocast, inference_batch_size
from kdtune.logs import progress_bar

TEACHER_SOURCE = Path(kdtune.__file__).resolve().parent / "teacher.py"


def load_function(path: Path, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """The top-level function ``name`` of ``path`` (decorators included), compiled alone."""
    tree = ast.parse(path.read_text(), filename=str(path))
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        raise LookupError(f"{path} defines no function {name!r}")
    module = ast.Module(body=[node], type_ignores=[])
    scope = dict(namespace)
    code = compile(module, str(path), "exec", flags=__future__.annotations.compiler_flag,
                   dont_inherit=True)  # as the module compiles it: annotations stay strings
    exec(code, scope)  # noqa: S102 - kdtune's own source file
    return scope[name]


def compute_hidden_states() -> Callable[..., dict[int, np.ndarray]]:
    """``kdtune.teacher.compute_hidden_states``, compiled from its source."""
    names = {"torch": torch, "np": np, "Encoded": Encoded, "batch_indices": batch_indices,
             "row_positions": row_positions, "autocast": autocast,
             "inference_batch_size": inference_batch_size, "progress_bar": progress_bar}
    return load_function(TEACHER_SOURCE, "compute_hidden_states", names)
