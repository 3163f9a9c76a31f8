"""The transfer set: text without labels, which the teacher labels for the student to distil.

Hinton et al. (2015) distilled on a transfer set, and "Well-Read Students Learn Better" (Turc et
al., 2019) and TinyBERT's augmentation get their gains from unlabelled text: the soft targets
carry the teacher's knowledge to text that has no labels. ``data.unlabeled`` names the source
(:func:`parse_source`): ``remainder`` (the main rows that train, val and test did not take,
labels dropped: for measuring on a labelled data set), a local file, or a hub dataset.

Nothing of the evaluation leaks in: a transfer text equal to a validation or test text (after
folding case and whitespace) is dropped and counted, as are repeats within the set; the rest is
capped at ``data.max_unlabeled`` by a seeded sample. Reading the rows is :mod:`kdtune.data`'s
job; this module holds the rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kdtune.batches import Encoded, encode
from kdtune.errors import ConfigError

REMAINDER = "remainder"
HUB = "hub:"
#: A transfer row's label: it has none (a loss that read one would fail loudly).
NO_LABEL = -1


@dataclass(frozen=True)
class Source:
    """Where the transfer text comes from: ``kind`` is remainder, file or hub."""

    kind: str
    path: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    split: str = "train"

    def describe(self) -> str:
        if self.kind == "hub":
            config = f"/{self.hub_config}" if self.hub_config else ""
            return f"hub:{self.hub}{config}[{self.split}]"
        return REMAINDER if self.kind == REMAINDER else f"local:{self.path}"


def parse_source(spec: str) -> Source:
    """``remainder``; ``hub:<dataset>[:<split>]`` or ``hub:<dataset>:<config>:<split>`` (split
    ``train`` by default); else a local file path."""
    spec = spec.strip()
    if spec == REMAINDER:
        return Source(REMAINDER)
    if not spec.startswith(HUB):
        return Source("file", path=spec)
    parts = spec[len(HUB):].split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise ConfigError("data.unlabeled", f"{spec!r} is not hub:<dataset>[:<split>] or "
                          "hub:<dataset>:<config>:<split>, e.g. hub:ag_news:train")
    if len(parts) == 3:
        return Source("hub", hub=parts[0], hub_config=parts[1], split=parts[2])
    return Source("hub", hub=parts[0], split=parts[1] if len(parts) == 2 else "train")


def normalise(text: str) -> str:
    """The form two texts are compared in: case folded, whitespace runs collapsed."""
    return " ".join(str(text).split()).casefold()


@dataclass
class TransferSet:
    """The de-duplicated, capped transfer rows (column ``text``, and ``text_pair`` for pairs)."""

    frame: pd.DataFrame
    source: str
    read: int  # rows read from the source (non-empty text)
    dropped_eval: int  # equal to a validation or test text: dropped, never trained on
    dropped_repeats: int  # repeats of another transfer row
    capped: int  # left out by data.max_unlabeled

    def __len__(self) -> int:
        return len(self.frame)

    def fingerprint(self) -> str:
        """A hash of the transfer texts, in order: names its teacher logits in the cache."""
        h = hashlib.sha256()
        pairs = self.frame["text_pair"] if "text_pair" in self.frame else [""] * len(self.frame)
        for text, pair in zip(self.frame["text"], pairs, strict=True):
            h.update(text.encode("utf-8") + b"\x02" + pair.encode("utf-8") + b"\x00")
        return h.hexdigest()[:16]

    def encode(self, tokenizer, max_length: int) -> Encoded:
        f = self.frame
        return encode(f["text"].tolist(), np.full(len(f), NO_LABEL, dtype=np.int64), tokenizer,
                      max_length, f["text_pair"].tolist() if "text_pair" in f else None)

    def info(self) -> dict[str, Any]:
        """What the run records about its transfer set."""
        return {"source": self.source, "rows": len(self), "read": self.read,
                "dropped_equal_to_val_or_test": self.dropped_eval,
                "dropped_repeats": self.dropped_repeats, "capped": self.capped}


def build_transfer(rows: pd.DataFrame, source: str, evaluation: list[pd.DataFrame],
                   cap: int | None, seed: int) -> TransferSet:
    """De-duplicate ``rows`` against the ``evaluation`` frames and themselves, then cap them."""
    columns = ["text", "text_pair"] if "text_pair" in rows else ["text"]
    rows = rows[columns].dropna()
    rows = rows[rows["text"].str.strip() != ""].reset_index(drop=True)
    keys = _keys(rows)
    held = set().union(*(_keys(f) for f in evaluation)) if evaluation else set()
    in_eval = keys.isin(held)
    repeat = keys.duplicated() & ~in_eval
    kept = rows[~(in_eval | repeat)]
    capped = 0
    if cap is not None and len(kept) > cap:
        capped = len(kept) - cap
        kept = kept.sample(n=cap, random_state=seed).sort_index()
    if len(kept) == 0:
        raise ConfigError("data.unlabeled", f"{source} has no rows left after removing "
                          f"{int(in_eval.sum())} equal to validation / test texts and "
                          f"{int(repeat.sum())} repeats; give other text or set it to null")
    return TransferSet(kept.reset_index(drop=True), source, len(rows), int(in_eval.sum()),
                       int(repeat.sum()), capped)


def _keys(frame: pd.DataFrame) -> pd.Series:
    text = frame["text"].map(normalise)
    if "text_pair" in frame:
        text = text + "\x02" + frame["text_pair"].map(normalise)
    return text
