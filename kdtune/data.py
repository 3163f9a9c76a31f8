"""Data: load rows (local file or the hub), split them stratified, tokenise once, batch.

Tokenised splits are stored as one flat ``int32`` array of token ids plus offsets, so they
travel to Ray trials through the object store without copies and batches are padded
dynamically to the longest sequence in each batch (not to ``max_length``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from kdtune.config import ConfigError, DataConfig

log = logging.getLogger(__name__)

READERS = {
    ".csv": lambda p: pd.read_csv(p),
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".json": lambda p: pd.read_json(p),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".parquet": lambda p: pd.read_parquet(p),
}


@dataclass
class Splits:
    """Train / validation / test frames with columns ``text`` and ``label`` (0..C-1)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    label_names: list[str]
    source: str  # e.g. "local:../shared/data/ag_news/ag_news_7600.csv" or "hub:ag_news[train]"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def fingerprint(self) -> str:
        """A hash of every split's texts and labels: changes whenever the data does."""
        h = hashlib.sha256()
        for frame in (self.train, self.val, self.test):
            for text, label in zip(frame["text"], frame["label"], strict=True):
                h.update(text.encode("utf-8"))
                h.update(b"\x00%d\x01" % label)
            h.update(b"|split|")
        return h.hexdigest()[:16]


def resolve_source(cfg: DataConfig) -> tuple[str, str]:
    """Pick the local file when it exists, else the hub dataset. Returns (kind, location)."""
    if cfg.path is not None and Path(cfg.path).is_file():
        return "local", cfg.path
    if cfg.hub is not None:
        return "hub", cfg.hub
    raise ConfigError("data.path", f"file not found: {cfg.path!r}; fix the path (relative paths "
                      "are read from the current directory) or set data.hub")


def _read_local(path: str) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ConfigError("data.path", f"unsupported file type {suffix!r}; use one of "
                          f"{', '.join(READERS)}")
    try:
        return READERS[suffix](path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("data.path", f"could not read {path!r} ({first})") from None


def _read_hub(cfg: DataConfig) -> tuple[pd.DataFrame, list[str] | None]:
    import datasets  # imported lazily: slow, and only needed for hub data

    try:
        ds = datasets.load_dataset(cfg.hub, split=cfg.hub_split)
    except Exception as exc:  # noqa: BLE001 - any hub/network failure becomes one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("data.hub", f"could not load {cfg.hub!r} split {cfg.hub_split!r} "
                          f"({first}); check the name or give a local data.path") from None
    names = None
    feature = ds.features.get(cfg.label_column)
    if feature is not None and hasattr(feature, "names"):
        names = list(feature.names)
    return ds.to_pandas(), names


def load_rows(cfg: DataConfig) -> tuple[pd.DataFrame, list[str], str]:
    """Load all rows as a frame with ``text`` and integer ``label``; returns (frame, names, src)."""
    kind, where = resolve_source(cfg)
    hub_names = None
    if kind == "local":
        frame = _read_local(where)
        source = f"local:{where}"
    else:
        frame, hub_names = _read_hub(cfg)
        source = f"hub:{where}[{cfg.hub_split}]"
    for key in ("text_column", "label_column"):
        col = getattr(cfg, key)
        if col not in frame.columns:
            raise ConfigError(f"data.{key}", f"column {col!r} not found; the data has columns "
                              f"{list(map(str, frame.columns))}")
    frame = frame[[cfg.text_column, cfg.label_column]].rename(
        columns={cfg.text_column: "text", cfg.label_column: "label"})
    frame = frame.dropna()
    frame["text"] = frame["text"].astype(str)
    labels = frame["label"]
    if pd.api.types.is_integer_dtype(labels) or pd.api.types.is_float_dtype(labels):
        if not np.all(np.mod(labels.to_numpy(dtype=float), 1) == 0) or labels.min() < 0:
            raise ConfigError("data.label_column", "integer labels must be 0, 1, ..., C-1")
        frame["label"] = labels.astype(np.int64)
        num = int(frame["label"].max()) + 1
        names = cfg.label_names or hub_names or [str(i) for i in range(num)]
        if len(names) < num:
            raise ConfigError("data.label_names", f"{len(names)} names for labels 0..{num - 1}; "
                              "give one name per label")
    else:  # string labels: map to ids in the order of label_names (or sorted)
        values = sorted(labels.astype(str).unique())
        names = cfg.label_names or values
        unknown = set(values) - set(names)
        if unknown:
            raise ConfigError("data.label_names", f"labels {sorted(unknown)[:5]} are not in "
                              "label_names; add them or fix the data")
        index = {n: i for i, n in enumerate(names)}
        frame["label"] = labels.astype(str).map(index).astype(np.int64)
    if len(frame) < 30:
        raise ConfigError("data.path", f"only {len(frame)} usable rows; need at least 30")
    present = set(frame["label"].unique())
    if len(present) < 2:
        raise ConfigError("data.label_column", "the data has a single class; need at least two")
    return frame.reset_index(drop=True), list(names), source


def _cap(frame: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    if cap is None or len(frame) <= cap:
        return frame
    kept, _ = train_test_split(frame, train_size=cap, stratify=frame["label"], random_state=seed)
    return kept


def split_rows(frame: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, ...]:
    """Deterministic label-stratified train / val / test split, then per-split caps."""
    counts = frame["label"].value_counts()
    if counts.min() < 3:
        raise ConfigError("data.label_column", f"class {counts.idxmin()} has {counts.min()} rows;"
                          " every class needs at least 3 to be split into train/val/test")
    n_classes = frame["label"].nunique()
    for name in ("max_train", "max_val", "max_test"):
        cap = getattr(cfg, name)
        if cap is not None and cap < 2 * n_classes:
            raise ConfigError(f"data.{name}", f"{cap} rows cannot hold {n_classes} classes "
                              f"stratified; use at least {2 * n_classes} or null")
    try:
        rest, test = train_test_split(frame, test_size=cfg.test_fraction,
                                      stratify=frame["label"], random_state=cfg.seed)
        val_share = cfg.val_fraction / (1.0 - cfg.test_fraction)
        train, val = train_test_split(rest, test_size=val_share, stratify=rest["label"],
                                      random_state=cfg.seed)
    except ValueError as exc:  # e.g. a split too small for every class
        raise ConfigError("data.val_fraction", f"cannot split {len(frame)} rows stratified "
                          f"({str(exc).splitlines()[0]}); use larger fractions or more data") from None
    out = []
    for part, cap in ((train, cfg.max_train), (val, cfg.max_val), (test, cfg.max_test)):
        part = _cap(part, cap, cfg.seed).sort_index()
        out.append(part.reset_index(drop=True))
    return tuple(out)


def load_splits(cfg: DataConfig) -> Splits:
    """Load and split the data described by ``cfg``."""
    frame, names, source = load_rows(cfg)
    train, val, test = split_rows(frame, cfg)
    log.info("data %s: %d train / %d val / %d test rows, %d classes", source, len(train),
             len(val), len(test), len(names))
    return Splits(train, val, test, names, source)


@dataclass
class Encoded:
    """One tokenised split: flat token ids with offsets, plus labels."""

    ids: np.ndarray  # int32, all sequences concatenated
    offsets: np.ndarray  # int64, len n + 1
    labels: np.ndarray  # int64
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def collate(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Pad the selected rows to the longest of them (dynamic padding)."""
        lengths = self.lengths[index]
        width = int(lengths.max())
        input_ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(index), width), dtype=np.int64)
        for row, (i, n) in enumerate(zip(index, lengths, strict=True)):
            start = self.offsets[i]
            input_ids[row, :n] = self.ids[start:start + n]
            mask[row, :n] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}


def encode(texts: list[str], labels: np.ndarray, tokenizer, max_length: int) -> Encoded:
    """Tokenise once (truncation to ``max_length``, no padding)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    seqs = enc["input_ids"]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    ids = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids, offsets, np.asarray(labels, dtype=np.int64), int(pad))


def batch_indices(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
                  group_by_length: bool = True) -> Iterator[np.ndarray]:
    """Yield index batches.

    Training order is shuffled; with ``group_by_length`` rows are sorted by length inside
    mega-batches of 50 batches (as transformers' ``group_by_length`` does) so little padding is
    computed, and the batch order is shuffled again. Evaluation (no shuffle) sorts by length
    globally, which is the cheapest order and does not change the metrics.
    """
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable") if group_by_length else np.arange(n)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]
        return
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if not group_by_length:
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]
        return
    mega = batch_size * 50
    batches = []
    for start in range(0, n, mega):
        chunk = order[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    for b in rng.permutation(len(batches)):
        yield batches[b]
