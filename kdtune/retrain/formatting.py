"""How the re-training's markdown prints numbers: mean ± std, tables, metric names, p-values."""

from __future__ import annotations

import math
from typing import Any


def pm(stats: dict[str, Any], scale: float = 1.0, digits: int = 4) -> str:
    """``mean ± std`` of a :func:`~kdtune.retrain.stats.mean_std` dict, or ``mean (1 seed)``."""
    mean = f"{scale * stats['mean']:.{digits}f}"
    if stats.get("std") is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {scale * stats['std']:.{digits}f}"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_title(col: str) -> str:
    """``test_macro_f1`` -> ``test macro-F1``, ``val_f1_World`` -> ``val F1 World``."""
    split, _, rest = col.partition("_")
    name = {"macro_f1": "macro-F1", "accuracy": "accuracy"}.get(rest, rest.replace("f1_", "F1 "))
    return f"{'test' if split == 'test' else 'val'} {name}"


def fmt_count(v: Any) -> str:
    """An int with thousands separators, else ``n/a``."""
    return f"{v:,}" if isinstance(v, int) else "n/a"


def fmt(v: Any) -> str:
    """A float with 4 significant digits, anything else as ``str``."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def fmt_p(p: float | None) -> str:
    """A p-value with 3 significant digits, ``n/a`` when missing."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3g}"
