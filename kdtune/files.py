"""JSON that survives numpy and NaN, and atomic local writes (a crash never leaves half a file)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def clean(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy scalars and arrays unwrapped, NaN / inf as None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays / scalars
        return clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON (no NaN), indented, with a trailing newline."""
    return json.dumps(clean(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    from kdtune.record.store import Store

    path = Path(path)
    Store(path.parent).write_text(path.name, text)

