"""Split determinism and stratification, tokenisation, batching on a device, bad data."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import synthetic
import torch

from kdtune.batches import (
    DeviceSplit,
    batch_indices,
    encode,
    gather_padded,
    row_positions,
    stratified_subset,
)
from kdtune.config import ConfigError, DataConfig
from kdtune.data import load_splits
from kdtune.models import load_tokenizer

NAMES = synthetic.LABEL_NAMES

ROOT = Path(__file__).resolve().parents[1]


def cfg(path, **kw):
    return DataConfig(path=str(path), label_names=NAMES, **kw)


def test_split_is_deterministic_stratified_and_disjoint(text_data):
    a = load_splits(cfg(text_data, seed=3))
    b = load_splits(cfg(text_data, seed=3))
    c = load_splits(cfg(text_data, seed=4))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert (len(a.train), len(a.val), len(a.test)) == (2800, 600, 600)  # 4,000 rows, 15% / 15%
    for part in (a.train, a.val, a.test):  # 1,000 rows per class -> equal shares
        counts = part["label"].value_counts()
        assert counts.max() - counts.min() <= 1
    texts = [set(p["text"]) for p in (a.train, a.val, a.test)]
    assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert a.source.startswith("local:")


def test_the_shipped_spaces_read_ag_news_with_its_label_names(ag_news):
    """AG News itself (skipped without ../shared): every shipped space that names the file names
    the same one; it is read as 4 balanced classes under the spaces' label names."""
    from kdtune.config import load_config

    paths = {load_config(p).data.path for p in (ROOT / "search_spaces").glob("*.yaml")} - {None}
    assert paths == {"../shared/data/ag_news/ag_news_7600.csv"}
    assert (ROOT / paths.pop()).resolve() == ag_news.resolve()
    data = load_config("search_spaces/alpha_temp.yaml", {"data.max_train": None, "data.max_val": None,
                                                         "data.max_test": None}).data
    s = load_splits(data)
    assert s.source == "local:../shared/data/ag_news/ag_news_7600.csv"
    assert s.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert (len(s.train), len(s.val), len(s.test)) == (5320, 1140, 1140)  # 7,600 rows
    for part in (s.train, s.val, s.test):  # 1,900 rows per class -> equal shares
        counts = part["label"].value_counts()
        assert counts.max() - counts.min() <= 1


def test_caps_keep_stratification(text_data):
    s = load_splits(cfg(text_data, max_train=200, max_val=80, max_test=100))
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


def test_missing_file_and_columns(tmp_path, text_data):
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(tmp_path / "nope.csv")))
    assert e.value.field == "data.path"
    # a mistyped path never silently becomes a hub download: the error names the path
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(tmp_path / "typo.csv"), hub="ag_news"))
    assert e.value.field == "data.path" and "typo.csv" in str(e.value)
    assert "hub_fallback" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_splits(cfg(text_data, text_column="body"))
    assert e.value.field == "data.text_column" and "columns" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(path=str(text_data), label_names=["a", "b"]))
    assert e.value.field == "data.label_names"


def test_encode_and_dynamic_padding(text_data):
    # 24 tokens: shorter than many generated texts (up to ~35), so truncation is exercised
    s = load_splits(cfg(text_data, max_train=64, max_val=16, max_test=16, max_length=24))
    tok = load_tokenizer("embedded:all-MiniLM-L6-v2")
    enc = encode(s.train["text"], s.train["label"].to_numpy(), tok, 24)
    assert len(enc) == 64 and enc.lengths.max() == 24
    index = np.array([0, 5, 9])
    batch = enc.collate(index)
    assert batch["input_ids"].shape == (3, enc.lengths[index].max())
    assert batch["attention_mask"].sum().item() == enc.lengths[index].sum()
    ref = tok(list(s.train["text"].iloc[index]), truncation=True, max_length=24, padding=True)
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


def test_device_batches_match_the_tokenizer_and_gather_ragged_rows(text_data):
    # 24 tokens: shorter than many generated texts (up to ~35), so truncation is exercised
    s = load_splits(cfg(text_data, max_train=64, max_val=16, max_test=16, max_length=24))
    tok = load_tokenizer("embedded:all-MiniLM-L6-v2")
    enc = encode(s.train["text"], s.train["label"].to_numpy(), tok, 24)
    split = DeviceSplit(enc, torch.device("cpu"), {"teacher": np.arange(64 * 4, dtype=np.float32)
                                                   .reshape(64, 4)})
    index = np.array([7, 2, 40])
    ref = tok(list(s.train["text"].iloc[index]), truncation=True, max_length=24, padding=True)
    batch = split.batch(index)
    assert batch["input_ids"].tolist() == ref["input_ids"]
    assert batch["attention_mask"].tolist() == ref["attention_mask"]
    assert split.targets["teacher"][split.index(index)][:, 0].tolist() == [28.0, 8.0, 160.0]
    # per-token rows (hidden states) gathered and padded with zeros: row i, token j -> value
    flat = torch.arange(enc.tokens, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    rows = gather_padded(flat, split.starts, split.lengths, split.index(index),
                         batch["input_ids"].shape[1])[0]
    for r, i in enumerate(index):
        n = enc.lengths[i]
        assert rows[r, :n, 0].tolist() == list(range(enc.offsets[i], enc.offsets[i] + n))
        assert not rows[r, n:].any()


def test_gather_by_hand_and_row_positions():
    flat = torch.tensor([10, 11, 12, 20, 30, 31])  # rows: [10 11 12] [20] [30 31]
    starts, lengths = torch.tensor([0, 3, 4]), torch.tensor([3, 1, 2])
    out, mask = gather_padded(flat, starts, lengths, torch.tensor([2, 1]), 3, pad=-1)
    assert out.tolist() == [[30, 31, -1], [20, -1, -1]]
    assert mask.tolist() == [[True, True, False], [True, False, False]]
    assert row_positions(np.array([4, 0]), np.array([2, 3])).tolist() == [4, 5, 0, 1, 2]


def test_subset_and_stratified_subset(text_data):
    s = load_splits(cfg(text_data, max_train=64, max_val=40, max_test=16, max_length=32))
    tok = load_tokenizer("embedded:all-MiniLM-L6-v2")
    enc = encode(s.val["text"], s.val["label"].to_numpy(), tok, 32)
    rows = stratified_subset(enc.labels, 20, seed=0)
    assert len(rows) == 20 and sorted(np.bincount(enc.labels[rows]).tolist()) == [5, 5, 5, 5]
    sub = enc.subset(rows)
    assert sub.collate(np.array([3]))["input_ids"].tolist() == enc.collate(rows[[3]])["input_ids"].tolist()


def test_sentence_pairs_are_tokenised_as_pairs(tmp_path):
    words = ["red", "blue", "green", "black"]
    frame = pd.DataFrame({"premise": [f"the {w} car number {i}" for i in range(40) for w in words[:2]],
                          "hypothesis": [f"a {w} thing" for _ in range(40) for w in words[2:]],
                          "label": [0, 1] * 40})
    path = tmp_path / "pairs.csv"
    frame.to_csv(path, index=False)
    s = load_splits(DataConfig(path=str(path), text_column="premise", text_pair_column="hypothesis"))
    tok = load_tokenizer("embedded:all-MiniLM-L6-v2")
    enc = s.encode(tok, 32)["train"]
    row = s.train.iloc[0]
    ref = tok(row["text"], row["text_pair"], truncation=True, max_length=32)
    batch = enc.collate(np.array([0]))
    assert batch["input_ids"][0].tolist() == ref["input_ids"]
    assert batch["token_type_ids"][0].tolist() == ref["token_type_ids"]
    assert 1 in batch["token_type_ids"][0].tolist()  # the second segment is marked


def test_own_validation_and_test_splits(tmp_path):
    def write(name, n, start):
        frame = pd.DataFrame({"text": [f"row {start + i}" for i in range(n)],
                              "label": [i % 2 for i in range(n)]})
        frame.to_csv(tmp_path / name, index=False)
        return str(tmp_path / name)

    s = load_splits(DataConfig(path=write("train.csv", 100, 0), val_split=write("dev.csv", 20, 1000),
                               test_split=write("test.csv", 30, 2000)))
    assert (len(s.train), len(s.val), len(s.test)) == (100, 20, 30)
    assert s.test["text"].iloc[0] == "row 2000" and s.val["text"].iloc[0] == "row 1000"
    s = load_splits(DataConfig(path=str(tmp_path / "train.csv"), test_split=str(tmp_path / "test.csv"),
                               val_fraction=0.2))
    assert (len(s.train), len(s.val), len(s.test)) == (80, 20, 30)


def test_unreachable_hub_is_one_line_and_fast(tmp_path):
    space = tmp_path / "hub.yaml"
    space.write_text("name: hub\ndata: {hub: ag_news, label_names: [a, b, c, d]}\n"
                     "space: {alpha: {type: uniform, low: 0, high: 1}}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: connection refused
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kdtune.search", "--space", str(space), "--dry-run",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "data.hub" in lines[0] and "127.0.0.1:9" in lines[0], proc.stderr
    assert seconds < 30  # no minutes of retries


def test_unlabelled_test_split_is_one_line(tmp_path):
    """GLUE's test splits carry label -1: one line saying to use a labelled split."""
    train = pd.DataFrame({"text": [f"row {i}" for i in range(60)], "label": [i % 2 for i in range(60)]})
    test = pd.DataFrame({"text": [f"test {i}" for i in range(20)], "label": [-1] * 20})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ConfigError) as err:
        load_splits(DataConfig(path=str(tmp_path / "train.csv"), test_split=str(tmp_path / "test.csv")))
    assert str(err.value).startswith("data.label_column: data.test_split has 20 rows labelled -1")
    assert "use a labelled split" in str(err.value)


def test_eval_batches_by_token_budget_hand_computed():
    from kdtune.batches import eval_batches

    # lengths sorted: [2, 3, 3, 4, 10, 12]; median 3.5 -> int 3; budget 2 rows x 3 = 6 tokens
    lengths = np.array([10, 3, 2, 12, 4, 3])
    batches = [b.tolist() for b in eval_batches(lengths, 2)]
    # [2, 3] -> 2 x 3 = 6 fits; adding the second 3 -> 3 x 3 = 9 > 6: new batch
    # [3, 4] -> 2 x 4 = 8 > 6: 3 alone; [4] then 2 x 10 > 6; [10]; [12] (a row always goes)
    assert batches == [[2, 1], [5], [4], [0], [3]]
    assert sorted(i for b in batches for i in b) == list(range(6))  # every row once
    assert eval_batches(np.array([], dtype=int), 8) == []


def test_quickstart_without_the_file_and_the_hub_is_one_line(tmp_path):
    """The quickstart falls back to the hub when the shared file is absent; with neither, one
    line naming both, exit 2 (run from a folder where ../shared does not exist)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "kdtune.search", "--space",
                           str(ROOT / "search_spaces" / "alpha_temp.yaml"), "--dry-run",
                           "--results-dir", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("kdtune.search: error: data.hub: data.path "
                               "'../shared/data/ag_news/ag_news_7600.csv' not found and could not "
                               "load 'ag_news'"), lines[0]


def test_the_api_takes_a_dataframe_or_a_dataset(tmp_path):
    """kdtune.run_search(space, data=frame): the frame is written once by content and the
    experiment's data.path points at it, so resume and retrain read the same rows."""
    import datasets

    from kdtune.api import _data_file
    from kdtune.config import load_config

    frame = pd.DataFrame({"text": [f"row {i} about {'sports' if i % 2 else 'markets'}" for i in range(80)],
                          "label": [i % 2 for i in range(80)]})
    raw = {"cache_dir": str(tmp_path / "cache")}
    path = _data_file(frame, raw)
    assert path.endswith(".parquet") and _data_file(frame, raw) == path  # same rows, same file
    assert _data_file(datasets.Dataset.from_pandas(frame), raw) == path  # a Dataset too
    assert _data_file(frame.assign(label=1 - frame["label"]), raw) != path
    cfg = load_config("search_spaces/smoke.yaml", {"data.path": path, "data.hub": None,
                                                   "data.hub_fallback": False,
                                                   "data.label_names": ["a", "b"]})
    splits = load_splits(cfg.data)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 80
    with pytest.raises(ConfigError, match="data: a pandas DataFrame or a datasets.Dataset"):
        _data_file([1, 2], raw)
