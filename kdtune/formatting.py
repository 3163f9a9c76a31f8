"""How kdtune prints numbers and markdown tables, everywhere: summaries, report, retrain, cards.

* :func:`num`: integers whole, floats with 4 decimals, tiny ones in e-notation, missing as '-';
* :func:`signed`: a difference with its sign (never ``-0.0000``); :func:`points`: x100 with sign;
* :func:`pm`: ``mean ± std`` of a :func:`kdtune.retrain.stats.mean_std` dict;
* :func:`md_table`: a markdown table of a header and rows, or of a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def is_missing(v: Any) -> bool:
    """None or NaN; lists and other containers are never missing (``pd.isna`` would map them)."""
    if v is None:
        return True
    return bool(pd.api.types.is_scalar(v) and pd.isna(v))


def int_or_none(v: Any) -> int | None:
    return None if is_missing(v) else int(v)


def float_or_none(v: Any) -> float | None:
    return None if is_missing(v) else float(v)


def num(v: Any, digits: int = 4) -> str:
    """A value as text: integers whole, floats with ``digits`` decimals (tiny ones in e-notation)."""
    if isinstance(v, (list, tuple, dict)):
        return str(list(v)) if isinstance(v, tuple) else str(v)
    if is_missing(v):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return f"{v:.3e}" if v != 0 and abs(v) < 1e-3 else f"{v:.{digits}f}"
    return str(v)


def signed(v: float, digits: int = 4) -> str:
    """``+0.0123``; differences that round to zero print as ``+0.0000``, never ``-0.0000``."""
    return f"{(0.0 if abs(v) < 0.5 * 10 ** -digits else v):+.{digits}f}"


def points(v: float | None, digits: int = 2, sign: bool = True) -> str:
    """A macro-F1 / accuracy difference in points (x100), signed: ``+0.66`` (``sign`` False:
    a magnitude such as an SD or a margin, ``0.66``)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return signed(100.0 * v, digits) if sign else f"{100.0 * v:.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 2) -> str:
    """A confidence interval in points: ``[-0.21, +2.58]``."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{points(low, digits)}, {points(high, digits)}]"


def pm(stats: dict[str, Any], scale: float = 1.0, digits: int = 4) -> str:
    """``mean ± std`` of a ``mean_std`` dict, or ``mean (1 seed)``."""
    mean = f"{scale * stats['mean']:.{digits}f}"
    if stats.get("std") is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {scale * stats['std']:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value with 3 significant digits, ``n/a`` when missing."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3g}"


def metric_title(col: str) -> str:
    """``test_macro_f1`` -> ``test macro-F1``, ``val_f1_World`` -> ``val F1 World``."""
    split, _, rest = col.partition("_")
    name = {"macro_f1": "macro-F1", "accuracy": "accuracy"}.get(rest, rest.replace("f1_", "F1 "))
    return f"{'test' if split == 'test' else 'val'} {name}"


def md_table(header: Sequence[Any] | pd.DataFrame, rows: Sequence[Sequence[Any]] | None = None,
             signed_cols: Sequence[str] = ()) -> str:
    """A markdown table from a header and rows, or from a DataFrame (cells through :func:`num`)."""
    if isinstance(header, pd.DataFrame):
        frame = header
        header = list(frame.columns)
        rows = [[signed(r[c]) if c in signed_cols and isinstance(r[c], float)
                 and math.isfinite(r[c]) else r[c] for c in header] for _, r in frame.iterrows()]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(num(c).replace("|", "\\|") for c in row) + " |"
              for row in rows or []]
    return "\n".join(lines)
