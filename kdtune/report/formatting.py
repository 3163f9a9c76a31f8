"""How the report prints numbers: 4 decimals, signed deltas, '-' for missing values."""

from __future__ import annotations

import math
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


def signed(v: float) -> str:
    """``+0.0123``; differences that round to zero print as ``+0.0000``, never ``-0.0000``."""
    return f"{(0.0 if abs(v) < 5e-5 else v):+.4f}"


def num(v: Any, digits: int = 4) -> str:
    """A value as text: integers whole, floats with ``digits`` decimals (tiny ones in e-notation)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if not isinstance(v, (list, tuple, dict)) and pd.isna(v):
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return f"{v:.3e}" if v != 0 and abs(v) < 1e-3 else f"{v:.{digits}f}"
    return str(v)


def cell(v: Any) -> str:
    """A table cell: like :func:`num`, with 4 decimals for every float from 0.001 up."""
    if isinstance(v, float) and not math.isnan(v) and v != 0 and abs(v) >= 1e-3:
        return f"{v:.4f}"
    return num(v)
