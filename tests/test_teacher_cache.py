"""The teacher stage: cache miss builds, a second run hits, damage is detected and rebuilt."""

import logging

import numpy as np
import pytest

from kdtune.config import load_config
from kdtune.stages import prepare


@pytest.fixture()
def tiny_cfg(tmp_path, smoke_space):
    return load_config(smoke_space, {
        "cache_dir": str(tmp_path / "cache"), "data.max_train": 48, "data.max_val": 16,
        "data.max_test": 16, "data.max_length": 32})


def test_cache_hit_and_corruption(tiny_cfg, smoke_space, caplog):
    from concurrent.futures import ThreadPoolExecutor

    # two searches on one cache at once (two terminals, two test workers): the cache lock makes
    # the second wait for the first's teacher and reuse it, never build it too
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: prepare(tiny_cfg), range(2)))
    first, again = sorted(runs, key=lambda r: r.teacher.cache_hit)
    assert not first.teacher.cache_hit
    assert first.teacher.logits["train"].shape == (48, 4)
    assert again.teacher.cache_hit and again.teacher.key == first.teacher.key
    np.testing.assert_array_equal(again.teacher.logits["train"], first.teacher.logits["train"])
    # Any change to the data changes the key.
    other = load_config(smoke_space, {
        "cache_dir": tiny_cfg.cache_dir, "data.max_train": 48, "data.max_val": 16,
        "data.max_test": 16, "data.max_length": 32, "data.seed": 1})
    from kdtune.data import load_splits
    from kdtune.teacher_cache import cache_key
    fingerprint = load_splits(tiny_cfg.data).fingerprint()
    assert cache_key(tiny_cfg, fingerprint, first.teacher_tokenizer, tiny_cfg.teacher) == first.teacher.key
    assert cache_key(other, load_splits(other.data).fingerprint(), first.teacher_tokenizer,
                     other.teacher) != first.teacher.key
    # the device and precision are recorded, not looked up: the same teacher is found again
    assert first.teacher.metrics["device"] == "cpu" and "precision" in first.teacher.metrics
    # A truncated logits file is detected and rebuilt, never used.
    path = first.teacher.dir / "logits_train.npy"
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        rebuilt = prepare(tiny_cfg)
    assert not rebuilt.teacher.cache_hit
    assert "damaged" in caplog.text
    np.testing.assert_allclose(rebuilt.teacher.logits["train"], first.teacher.logits["train"],
                               atol=1e-4)
    # A damaged model folder too.
    weights = rebuilt.teacher.dir / "model" / "model.safetensors"
    weights.write_bytes(b"\0" * 16)
    assert not prepare(tiny_cfg).teacher.cache_hit


def test_hidden_states_are_in_the_manifest(tiny_cfg, caplog):
    from kdtune.teacher import hidden_states, load_cached

    prep = prepare(tiny_cfg)
    states = hidden_states(prep.teacher, prep.teacher_encoded["train"], [0, 5], 16)
    assert states[5].shape == (prep.teacher_encoded["train"].tokens, 384)
    assert type(states[5]) is np.ndarray  # a plain array (zero-copy in Ray's object store)
    manifest = (prep.teacher.dir / "manifest.json").read_text()
    assert "hidden/train_block5.npy" in manifest
    # an edit of the same size is caught by the sha256, and the cache is rebuilt
    path = prep.teacher.dir / "hidden" / "train_block5.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert load_cached(prep.teacher.dir, prep.teacher.key) is None
    assert "train_block5.npy does not match its sha256" in caplog.text


def test_the_experiment_keeps_its_teacher(tiny_cfg, tmp_path):
    """A resume or a retrain anywhere uses exactly the experiment's teacher: read from the
    record (checked by sha256), even with the cache gone; a damaged copy is refused."""
    import shutil

    from kdtune.errors import ConfigError
    from kdtune.record import Record
    from kdtune.record.record import TEACHERS as KEPT
    from kdtune.teacher import keep_teacher

    first = prepare(tiny_cfg)
    record = Record(str(tmp_path / "exp"))
    record.create(tiny_cfg)
    keep_teacher(record, first.teacher)
    kept = tmp_path / "exp" / KEPT / first.teacher.key
    assert (kept / "manifest.json").is_file() and (kept / "model" / "config.json").is_file()
    shutil.rmtree(tiny_cfg.cache_dir)  # another machine: no cache at all
    again = prepare(tiny_cfg, record=record)
    assert again.teacher.dir == kept and again.teacher.key == first.teacher.key
    np.testing.assert_array_equal(again.teacher.logits["train"], first.teacher.logits["train"])
    assert not (tmp_path / "cache" / "teachers").exists()  # nothing fine-tuned again
    logits = kept / "logits_train.npy"
    logits.write_bytes(logits.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ConfigError, match="fails its sha256 manifest"):
        prepare(tiny_cfg, record=record)
