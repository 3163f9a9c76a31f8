"""Sections from the record's later stages: the confirm ranking, the export, the re-training.

* single-seed vs multi-seed ranking (``picks.json``'s ``ranking``, when the confirm stage ran);
* export (``export/<source>/export.md`` of ``python -m kdtune.export``), read through the record;
* re-training (``retrain/summary.md`` of ``python -m kdtune.retrain``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdtune.formatting import float_or_none, int_or_none, pm
from kdtune.record import Experiment
from kdtune.record import record as R
from kdtune.record import schema as S
from kdtune.record.picks import BASELINE, DISTILLED, SELF_TRAINING
from kdtune.report.document import Doc
from kdtune.report.outputs import Outputs

EXPORT_SOURCES = ("distilled", "retrained")


def ranking_table(picks: dict[str, Any]) -> pd.DataFrame:
    """One row per confirmed trial: single-seed score, mean ± std over seeds, both ranks."""
    rows = []
    for r in picks.get("ranking") or []:
        std = float_or_none(r.get("std"))
        rows.append({"trial": str(r[S.TRIAL_ID]), "arm": r.get(S.ARM, ""),
                     "single-seed score": float_or_none(r.get("single_seed")),
                     "mean ± std over seeds": pm({"mean": float(r["mean"]), "std": std}),
                     "seeds": int_or_none(r.get("seeds")),
                     "confirm runs dropped (not completed)": int(r.get("dropped") or 0),
                     "single-seed rank": int_or_none(r.get("single_seed_rank")),
                     "multi-seed rank": int_or_none(r.get("multi_seed_rank"))})
    frame = pd.DataFrame(rows)
    whole = ("seeds", "confirm runs dropped (not completed)", "single-seed rank", "multi-seed rank")
    for col in whole:  # whole numbers stay whole
        if col in frame:
            frame[col] = pd.Series([r[col] for r in rows], dtype=object)
    return frame


def pick_changes(picks: dict[str, Any]) -> list[str]:
    """Whether the multi-seed ranking changed each pick."""
    single, changed, out = picks.get("single_seed") or {}, picks.get("changed") or {}, []
    for which in (DISTILLED, BASELINE, SELF_TRAINING):
        now = (picks.get(which) or {}).get(S.TRIAL_ID)
        if now is None:
            continue
        if changed.get(which):
            out.append(f"{which}: **changed** from trial `{single.get(which)}` (the single-seed "
                       f"best) to trial `{now}` (the best mean over seeds)")
        else:
            out.append(f"{which}: kept trial `{now}` (best by a single seed and by the mean over seeds)")
    return out


def ranking_section(doc: Doc, exp: Experiment, out: Outputs) -> None:
    picks = exp.picks or {}
    if not picks.get("ranking"):
        return
    doc.heading("Single-seed vs multi-seed ranking")
    table = ranking_table(picks)
    out.csv("ranking.csv", table)
    doc.table(table)
    doc.para(f"The confirm stage re-ran the top completed trials of each arm with more seeds; each "
             f"arm's trials are ranked by their single search run and by the mean over all seeds "
             f"(the run itself included), and the picks use the latter ({picks.get('method')}). "
             "Picking the single-seed best of many trials favours lucky seeds (the winner's curse).")
    doc.bullets(pick_changes(picks))


def _body(text: str) -> str:
    """An included markdown file without its title line (the report gives its own)."""
    lines = text.strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines)


def export_section(doc: Doc, exp: Experiment) -> None:
    found = [(s, exp.record.read_text(f"{R.EXPORT}/{s}/export.md")) for s in EXPORT_SOURCES]
    found = [(s, text) for s, text in found if text]
    if not found:
        return
    doc.heading("Export")
    for source, text in found:
        doc.heading(f"The {source} student (from `export/{source}/export.md`)", 3)
        doc.markdown(_body(text))


def retrain_section(doc: Doc, exp: Experiment) -> None:
    if not exp.retrain_summary:
        return
    doc.heading("Re-training")
    doc.para("From `retrain/summary.md` (`python -m kdtune.retrain`: both picks re-trained over "
             "several seeds and compared on the held-out test split):")
    doc.markdown(_body(exp.retrain_summary))
