"""Fresh seeds for the verdict: never a seed the search or the confirm stage ran.

The runs that selected the picks carry the winner's curse (a pick is the best of many trials on
its seed), and the KD arm usually has more candidates than the CE arm, so re-using their seeds
biases the final comparison towards KD. The verdict's seeds start above every seed recorded in
``trials.csv`` and ``confirm.csv`` (and in the picks' own hparams), so none of them ever ran for
either pick, or for any other trial.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.record import Record
from kdtune.record.trials import HPARAMS


def _seeds_of(frame: pd.DataFrame | None) -> set[int]:
    if frame is None or not len(frame):
        return set()
    out: set[int] = set()
    if S.SEED in frame:
        out |= {int(s) for s in pd.to_numeric(frame[S.SEED], errors="coerce").dropna()}
    if HPARAMS in frame:
        for text in frame[HPARAMS].dropna():
            seed = json.loads(text).get("seed")
            if seed is not None:
                out.add(int(seed))
    return out


def search_seeds(record: Record, *picks: Any) -> list[int]:
    """Every seed the search or its confirm stage trained with, and the picks' own seeds."""
    used = _seeds_of(record.read_csv(R.TRIALS)) | _seeds_of(record.read_csv(R.CONFIRM))
    used |= {int(p.hparams["seed"]) for p in picks if p.hparams.get("seed") is not None}
    return sorted(used)


def fresh_seeds(used: list[int], count: int) -> list[int]:
    """``count`` consecutive seeds above every used one."""
    first = max(used) + 1 if used else 0
    return list(range(first, first + count))
