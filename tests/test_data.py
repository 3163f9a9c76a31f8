"""Split determinism and stratification, tokenisation, batching, bad data."""

import numpy as np
import pandas as pd
import pytest

from kdtune.config import ConfigError, DataConfig
from kdtune.data import batch_indices, encode, load_splits
from kdtune.models import load_tokenizer

NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def cfg(path, **kw):
    return DataConfig(path=str(path), label_names=NAMES, **kw)


def test_split_is_deterministic_stratified_and_disjoint(ag_news):
    a = load_splits(cfg(ag_news, seed=3))
    b = load_splits(cfg(ag_news, seed=3))
    c = load_splits(cfg(ag_news, seed=4))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert (len(a.train), len(a.val), len(a.test)) == (5320, 1140, 1140)
    for part in (a.train, a.val, a.test):  # 1,900 rows per class -> equal shares
        counts = part["label"].value_counts()
        assert counts.max() - counts.min() <= 1
    texts = [set(p["text"]) for p in (a.train, a.val, a.test)]
    assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert a.source.startswith("local:")


def test_caps_keep_stratification(ag_news):
    s = load_splits(cfg(ag_news, max_train=200, max_val=80, max_test=100))
    assert (len(s.train), len(s.val), len(s.test)) == (200, 80, 100)
    assert set(s.train["label"].value_counts()) == {50}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".json"])
def test_other_formats_and_string_labels(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"body": [f"text number {i} about {c}" for i in range(60)
                                   for c in ("cats", "dogs")][:120],
                          "topic": ["pos", "neg"] * 60})
    frame = frame.sample(frac=1.0, random_state=int(rng.integers(100)))
    path = tmp_path / f"d{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".json": lambda: frame.to_json(path, orient="records"),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    s = load_splits(DataConfig(path=str(path), text_column="body", label_column="topic"))
    assert s.label_names == ["neg", "pos"]
    assert len(s.train) + len(s.val) + len(s.test) == 120


def test_missing_file_and_columns(tmp_path, ag_news):
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(tmp_path / "nope.csv")))
    assert e.value.field == "data.path"
    with pytest.raises(ConfigError) as e:
        load_splits(cfg(ag_news, text_column="body"))
    assert e.value.field == "data.text_column" and "columns" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(ag_news), label_names=["a", "b"]))
    assert e.value.field == "data.label_names"


def test_encode_and_dynamic_padding(ag_news):
    s = load_splits(cfg(ag_news, max_train=64, max_val=16, max_test=16, max_length=32))
    tok = load_tokenizer("embedded:all-MiniLM-L6-v2")
    enc = encode(s.train["text"], s.train["label"].to_numpy(), tok, 32)
    assert len(enc) == 64 and enc.lengths.max() <= 32
    index = np.array([0, 5, 9])
    batch = enc.collate(index)
    assert batch["input_ids"].shape == (3, enc.lengths[index].max())
    assert batch["attention_mask"].sum().item() == enc.lengths[index].sum()
    ref = tok(list(s.train["text"].iloc[index]), truncation=True, max_length=32, padding=True)
    assert batch["input_ids"].tolist() == ref["input_ids"]


def test_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(5, 100, size=1000)
    for shuffle in (True, False):
        seen = np.concatenate(list(batch_indices(lengths, 32, shuffle=shuffle, seed=1)))
        assert sorted(seen.tolist()) == list(range(1000))
    a = [b.tolist() for b in batch_indices(lengths, 32, shuffle=True, seed=1)]
    b = [b.tolist() for b in batch_indices(lengths, 32, shuffle=True, seed=1)]
    assert a == b
    # grouping by length cuts padding compared with a plain shuffle
    def padded(batches):
        return sum(len(x) * lengths[x].max() for x in batches)
    grouped = padded(batch_indices(lengths, 32, shuffle=True, seed=1))
    plain = padded(batch_indices(lengths, 32, shuffle=True, seed=1, group_by_length=False))
    assert grouped < 0.8 * plain


def test_caps_too_small_for_the_classes(tmp_path):
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(200)],
                          "label": [i % 10 for i in range(200)]})
    path = tmp_path / "ten.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(path), max_val=8))
    assert e.value.field == "data.max_val" and "10 classes" in str(e.value)
