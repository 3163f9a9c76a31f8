"""Data: load rows (a local file or the hub), split them stratified, tokenise once.

Any CSV / TSV / JSON / JSONL / Parquet file (or ``datasets`` hub dataset, with its config name)
with a text column, an optional second text (sentence pairs) and a label works. The dataset's
own validation / test splits are used when named; whatever is not named is carved out of the
main split, label-stratified and seeded. A ``data.path`` that does not exist is an error naming
it, unless ``data.hub_fallback`` asks for the hub instead; hub failures are one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from kdtune.batches import Encoded, encode
from kdtune.config import DataConfig
from kdtune.errors import ConfigError
from kdtune.transfer import REMAINDER, TransferSet, build_transfer, parse_source

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
    """Train / validation / test frames with columns ``text`` (``text_pair``) and ``label``."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    label_names: list[str]
    source: str  # e.g. "local:../shared/data/ag_news/ag_news_7600.csv" or "hub:ag_news[train]"
    transfer: TransferSet | None = None  # data.unlabeled: text the teacher labels (no labels)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def fingerprint(self) -> str:
        """A hash of every labelled split's texts and labels: changes whenever they do (the
        transfer set has a fingerprint of its own: it does not change the teacher)."""
        h = hashlib.sha256()
        for frame in self.frames().values():
            pairs = frame["text_pair"] if "text_pair" in frame else [""] * len(frame)
            for text, pair, label in zip(frame["text"], pairs, frame["label"], strict=True):
                h.update(text.encode("utf-8"))
                h.update(b"\x02" + pair.encode("utf-8"))
                h.update(b"\x00%d\x01" % label)
            h.update(b"|split|")
        return h.hexdigest()[:16]

    def encode(self, tokenizer, max_length: int) -> dict[str, Encoded]:
        """Every split tokenised once (pairs as pairs)."""
        return {k: encode(f["text"].tolist(), f["label"].to_numpy(), tokenizer, max_length,
                          f["text_pair"].tolist() if "text_pair" in f else None)
                for k, f in self.frames().items()}


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:240] if text else type(exc).__name__


def resolve_source(cfg: DataConfig) -> tuple[str, str]:
    """The local file when it exists; the hub when only it is given, or fallback is allowed."""
    if cfg.path is not None:
        if Path(cfg.path).is_file():
            return "local", cfg.path
        if not (cfg.hub_fallback and cfg.hub):
            raise ConfigError("data.path", f"file not found: {cfg.path!r} (relative paths are read "
                              f"from {os.getcwd()!r}); fix the path"
                              + (", or set data.hub_fallback: true to load data.hub instead"
                                 if cfg.hub else ""))
    return "hub", str(cfg.hub)  # said once it loaded (load_frames): a failure is one line


def read_local(path: str, field: str = "data.path") -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ConfigError(field, f"unsupported file type {suffix!r}; use one of {', '.join(READERS)}")
    if not Path(path).is_file():
        raise ConfigError(field, f"file not found: {path!r}")
    try:
        return READERS[suffix](path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConfigError(field, f"could not read {path!r} ({_first_line(exc)})") from None


def _hub_reachable(cfg: DataConfig) -> None:
    """Fail in one line, fast, when the hub cannot be reached (instead of minutes of retries)."""
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        return  # datasets reads its local cache only
    import requests
    from huggingface_hub import constants

    try:
        requests.head(constants.ENDPOINT, timeout=5)
    except requests.RequestException as exc:
        raise ConfigError("data.hub", f"{_missing_file(cfg)}cannot reach the Hugging Face hub at "
                          f"{constants.ENDPOINT} to load {cfg.hub!r} ({type(exc).__name__}); give "
                          "a local data.path, or set HF_DATASETS_OFFLINE=1 to use a cached copy") from None


def _missing_file(cfg: DataConfig) -> str:
    """With data.hub_fallback, the hub was the fallback: say that the file was not there either."""
    return f"data.path {cfg.path!r} not found and " if cfg.path is not None else ""


def read_hub(cfg: DataConfig, split: str, field: str = "data.hub") -> tuple[pd.DataFrame, list | None]:
    import datasets  # imported lazily: slow, and only needed for hub data

    datasets.utils.logging.set_verbosity_error()
    datasets.utils.logging.disable_progress_bar()
    _hub_reachable(cfg)
    try:
        ds = datasets.load_dataset(cfg.hub, cfg.hub_config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub/network failure becomes one line
        where = f"{cfg.hub!r}" + (f" config {cfg.hub_config!r}" if cfg.hub_config else "")
        raise ConfigError(field, f"{_missing_file(cfg)}could not load {where} split {split!r} "
                          f"({_first_line(exc)}); check the names or give a local data.path") from None
    feature = ds.features.get(cfg.label_column)
    names = list(feature.names) if feature is not None and hasattr(feature, "names") else None
    return ds.to_pandas(), names


def _columns(frame: pd.DataFrame, cfg: DataConfig, where: str) -> pd.DataFrame:
    cols = {cfg.text_column: "text", cfg.label_column: "label"}
    if cfg.text_pair_column:
        cols[cfg.text_pair_column] = "text_pair"
    for key, col in (("text_column", cfg.text_column), ("label_column", cfg.label_column),
                     ("text_pair_column", cfg.text_pair_column)):
        if col is not None and col not in frame.columns:
            raise ConfigError(f"data.{key}", f"column {col!r} not found in {where}; it has columns "
                              f"{list(map(str, frame.columns))}")
    frame = frame[list(cols)].rename(columns=cols).dropna()
    for col in ("text", "text_pair"):
        if col in frame:
            frame[col] = frame[col].astype(str)
    return frame


def label_ids(frames: dict[str, pd.DataFrame], cfg: DataConfig, hub_names: list | None
              ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Integer labels 0..C-1 in every frame (string labels mapped by label_names or sorted)."""
    for name, frame in frames.items():
        if pd.api.types.is_numeric_dtype(frame["label"]) and (frame["label"] < 0).any():
            split = {"main": "the data", "val": "data.val_split", "test": "data.test_split"}[name]
            raise ConfigError("data.label_column", f"{split} has {(frame['label'] < 0).sum()} rows "
                              f"labelled {int(frame['label'].min())} (unlabelled, as GLUE's test "
                              "splits are); use a labelled split, e.g. carve the test split from "
                              "the training data (data.test_split: null)")
    labels = pd.concat([f["label"] for f in frames.values()])
    if pd.api.types.is_numeric_dtype(labels):
        if not np.all(np.mod(labels.to_numpy(dtype=float), 1) == 0) or labels.min() < 0:
            raise ConfigError("data.label_column", "integer labels must be 0, 1, ..., C-1")
        num = int(labels.max()) + 1
        names = cfg.label_names or hub_names or [str(i) for i in range(num)]
        if len(names) < num:
            raise ConfigError("data.label_names", f"{len(names)} names for labels 0..{num - 1}; "
                              "give one name per label")
        mapper = lambda s: s.astype(np.int64)  # noqa: E731
    else:
        values = sorted(labels.astype(str).unique())
        names = cfg.label_names or values
        unknown = set(values) - set(names)
        if unknown:
            raise ConfigError("data.label_names", f"labels {sorted(unknown)[:5]} are not in "
                              "label_names; add them or fix the data")
        index = {n: i for i, n in enumerate(names)}
        mapper = lambda s: s.astype(str).map(index).astype(np.int64)  # noqa: E731
    return {k: f.assign(label=mapper(f["label"])).reset_index(drop=True)
            for k, f in frames.items()}, list(names)


def _read(cfg: DataConfig, kind: str, where: str | None, split: str, field: str):
    if kind == "local":
        return read_local(where or "", field), None
    return read_hub(cfg, split, field)


def load_frames(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str], str]:
    """The main rows and any named validation / test split, columns renamed, labels as ids."""
    kind, where = resolve_source(cfg)
    main, hub_names = _read(cfg, kind, where, cfg.hub_split, "data.path" if kind == "local" else
                            "data.hub")
    if kind == "hub" and cfg.path is not None:
        log.warning("data.path %r not found: using data.hub %r instead (data.hub_fallback)",
                    cfg.path, cfg.hub)
    frames = {"main": _columns(main, cfg, where)}
    for name, split in (("val", cfg.val_split), ("test", cfg.test_split)):
        if split is not None:
            raw, _ = _read(cfg, kind, split, split, f"data.{name}_split")
            frames[name] = _columns(raw, cfg, split)
    frames, names = label_ids(frames, cfg, hub_names)
    source = f"local:{where}" if kind == "local" else (
        f"hub:{where}" + (f"/{cfg.hub_config}" if cfg.hub_config else "") + f"[{cfg.hub_split}]")
    if len(frames["main"]) < 30:
        raise ConfigError("data.path", f"only {len(frames['main'])} usable rows; need at least 30")
    if frames["main"]["label"].nunique() < 2:
        raise ConfigError("data.label_column", "the data has a single class; need at least two")
    return frames, names, source


def _cap(frame: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    if cap is None or len(frame) <= cap:
        return frame
    kept, _ = train_test_split(frame, train_size=cap, stratify=frame["label"], random_state=seed)
    return kept


def _carve(frame: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return train_test_split(frame, test_size=share, stratify=frame["label"], random_state=seed)
    except ValueError as exc:  # e.g. a split too small for every class
        raise ConfigError("data.val_fraction", f"cannot split {len(frame)} rows stratified "
                          f"({str(exc).splitlines()[0]}); use larger fractions or more data") from None


def split_rows(frames: dict[str, pd.DataFrame], cfg: DataConfig) -> tuple[pd.DataFrame, ...]:
    """Train / val / test: named splits as given, the rest carved stratified; then caps. A
    fourth frame holds the main rows none of them took (what ``data.unlabeled: remainder``
    reads)."""
    main = frames["main"]
    counts = main["label"].value_counts()
    if counts.min() < 3:
        raise ConfigError("data.label_column", f"class {counts.idxmin()} has {counts.min()} rows;"
                          " every class needs at least 3 to be split into train/val/test")
    n_classes = main["label"].nunique()
    for name in ("max_train", "max_val", "max_test"):
        cap = getattr(cfg, name)
        if cap is not None and cap < 2 * n_classes:
            raise ConfigError(f"data.{name}", f"{cap} rows cannot hold {n_classes} classes "
                              f"stratified; use at least {2 * n_classes} or null")
    rest, test = (main, frames["test"]) if "test" in frames else _carve(main, cfg.test_fraction,
                                                                       cfg.seed)
    if "val" in frames:
        train, val = rest, frames["val"]
    else:
        share = cfg.val_fraction / (1.0 - (0.0 if "test" in frames else cfg.test_fraction))
        train, val = _carve(rest, share, cfg.seed)
    parts = [_cap(part, cap, cfg.seed) for part, cap in
             ((train, cfg.max_train), (val, cfg.max_val), (test, cfg.max_test))]
    taken = set()
    for part, name in zip(parts, ("main", "val", "test"), strict=True):
        if name not in frames or name == "main":  # carved from the main rows: their index
            taken.update(part.index)
    rest = main[~main.index.isin(taken)]
    return tuple(p.sort_index().reset_index(drop=True) for p in (*parts, rest))


def load_splits(cfg: DataConfig) -> Splits:
    """Load and split the data described by ``cfg``."""
    frames, names, source = load_frames(cfg)
    train, val, test, rest = split_rows(frames, cfg)
    log.info("data %s: %d train / %d val / %d test rows, %d classes", source, len(train),
             len(val), len(test), len(names))
    transfer = None if cfg.unlabeled is None else load_transfer(cfg, rest, [val, test])
    return Splits(train, val, test, names, source, transfer)


def load_transfer(cfg: DataConfig, rest: pd.DataFrame, evaluation: list[pd.DataFrame]
                  ) -> TransferSet:
    """The transfer set ``data.unlabeled`` names, de-duplicated against ``evaluation``."""
    src = parse_source(cfg.unlabeled or "")
    if src.kind == REMAINDER:
        rows = rest.drop(columns="label")
        if rows.empty:
            raise ConfigError("data.unlabeled", "remainder is empty: train, val and test take "
                              "every row; lower data.max_train / max_val / max_test")
    else:
        rows = _transfer_rows(cfg, src)
    transfer = build_transfer(rows, src.describe(), evaluation, cfg.max_unlabeled, cfg.seed)
    log.info("transfer set %s: %d rows (%d equal to a val / test text and %d repeats dropped, "
             "%d over data.max_unlabeled)", transfer.source, len(transfer),
             transfer.dropped_eval, transfer.dropped_repeats, transfer.capped)
    return transfer


def _transfer_rows(cfg: DataConfig, src) -> pd.DataFrame:
    """A transfer file's or hub split's text column(s), renamed to ``text`` (``text_pair``)."""
    if src.kind == "file":
        raw, where = read_local(src.path, "data.unlabeled"), src.path
    else:
        hub_cfg = dataclasses.replace(cfg, path=None, hub=src.hub, hub_config=src.hub_config,
                                      hub_fallback=False, unlabeled=None,
                                      unlabeled_text_column=None, max_unlabeled=None)
        raw, where = read_hub(hub_cfg, src.split, "data.unlabeled")[0], src.describe()
    cols = {cfg.unlabeled_text_column or cfg.text_column: "text"}
    if cfg.text_pair_column:
        cols[cfg.text_pair_column] = "text_pair"
    for col in cols:
        if col not in raw.columns:
            field = "data.unlabeled_text_column" if cols[col] == "text" else "data.text_pair_column"
            raise ConfigError(field, f"column {col!r} not found in {where}; it has columns "
                              f"{list(map(str, raw.columns))}")
    return raw[list(cols)].rename(columns=cols).dropna().astype(str)
