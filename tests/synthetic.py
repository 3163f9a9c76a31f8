"""A generated 4-class text-classification data set for the tests (no AG News rows, ever).

Each text is 12-30 common English words: filler shared by every class, a few words from its
topic's vocabulary and now and then one from another topic's, so a small model learns the task
quickly but not perfectly; a share of the rows is labelled with a topic other than the one its
words were drawn from (label noise), which keeps macro-F1 clearly below 1. The labels are the
integers 0-3 (as AG News's file has them), balanced exactly, and every text is unique, so the
split tests can check stratification and disjointness. Everything follows from the seed.

:func:`point_at` rewrites a search space (as a dict) to read this file instead of the shipped
spaces' ``../shared`` file, which a clean clone does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: One name has a slash, as one of AG News's does: the report and history columns must cope.
LABEL_NAMES = ["Weather", "Sport", "Food/Drink", "Music"]

#: Topic words: single word pieces of the MiniLM / BERT vocabulary, so texts stay short.
TOPICS = [
    ["rain", "snow", "storm", "wind", "cloud", "sunny", "cold", "warm", "forecast", "thunder",
     "fog", "heat", "frost", "weather", "temperature", "flood", "ice", "humid", "breeze", "hail"],
    ["match", "team", "goal", "coach", "league", "player", "score", "season", "football", "tennis",
     "win", "cup", "race", "champion", "referee", "stadium", "injury", "striker", "tournament", "fans"],
    ["bread", "cheese", "soup", "kitchen", "recipe", "coffee", "wine", "cook", "dinner", "salad",
     "chef", "restaurant", "sugar", "butter", "tea", "meal", "bake", "fruit", "spicy", "beer"],
    ["song", "guitar", "band", "album", "concert", "piano", "singer", "melody", "drum", "jazz",
     "rock", "orchestra", "lyrics", "tune", "violin", "chorus", "rhythm", "opera", "stage", "record"],
]

FILLER = (
    "the a an and or but of in on at to for with from by about after before during over under "
    "this that these those it they we he she people day week year time new old big small good "
    "bad many few some more most very really just also still again today yesterday tomorrow "
    "city town country world local report news said says told asked think know see make made "
    "get got take took came went here there when while because although every other first last"
).split()

P_TOPIC = 0.2  # share of a text's words from its own topic
P_OTHER = 0.05  # share from another topic (a confuser)
NOISE = 0.1  # share of rows whose words come from a topic other than their label


def frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """``rows`` (a multiple of 4) unique texts with balanced integer labels 0-3."""
    assert rows % len(TOPICS) == 0, "rows must be a multiple of the class count (balanced labels)"
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(TOPICS)), rows // len(TOPICS))
    rng.shuffle(labels)
    # noisy rows draw their words from another topic; the labels themselves stay balanced
    shift = np.where(rng.random(rows) < NOISE, rng.integers(1, len(TOPICS), rows), 0)
    topics = (labels + shift) % len(TOPICS)
    texts: list[str] = []
    seen: set[str] = set()
    for topic in topics:
        while True:
            text = _text(rng, int(topic))
            if text not in seen:  # unique texts: train and test never share one
                break
        seen.add(text)
        texts.append(text)
    return pd.DataFrame({"text": texts, "label": labels})


def _text(rng: np.random.Generator, topic: int) -> str:
    length = int(rng.integers(12, 31))
    kind = rng.random(length)
    words = []
    for k in kind:
        if k < P_TOPIC:
            words.append(TOPICS[topic][rng.integers(len(TOPICS[topic]))])
        elif k < P_TOPIC + P_OTHER:
            other = (topic + int(rng.integers(1, len(TOPICS)))) % len(TOPICS)
            words.append(TOPICS[other][rng.integers(len(TOPICS[other]))])
        else:
            words.append(FILLER[rng.integers(len(FILLER))])
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def write(path: Path, rows: int = 4000, seed: int = 0) -> Path:
    """Write the data set as a ``text,label`` CSV at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame(rows, seed).to_csv(path, index=False)
    return path


def point_at(raw: dict[str, Any], path: Path, max_length: int | None = 48) -> dict[str, Any]:
    """``raw`` (a space as a dict) reading ``path``: no hub, the generated labels' names, and
    a ``max_length`` that fits its texts (30 words); ``None`` keeps the space's."""
    data = raw.setdefault("data", {})
    data.update(path=str(Path(path).resolve()), hub=None, hub_fallback=False,
                label_names=list(LABEL_NAMES), val_split=None, test_split=None)
    if max_length is not None:
        data["max_length"] = max_length
    return raw
