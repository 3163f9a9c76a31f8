"""Logging for every kdtune command: one format, each line printed once, chatty libraries quiet."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NOISY = ("urllib3", "filelock", "httpx", "httpcore", "fsspec", "datasets", "huggingface_hub",
         "transformers", "ray", "optuna", "matplotlib")


FORMAT, DATEFMT = "%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT,
                        datefmt=DATEFMT)
    for name in NOISY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        # Libraries that add their own handler *and* propagate print every line twice: keep
        # one path (ours).
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    # Deprecations raised inside the libraries kdtune drives are theirs to fix and would
    # otherwise print once per trial; kdtune's own (and the user's code's) still show.
    for name in NOISY:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=rf"{name}(\.|$)")


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str, enabled: bool = True,
                 initial: int = 0) -> Iterator[Any]:
    """A tqdm bar with an ETA for a long driver stage, shown only on a terminal (tqdm's
    ``disable=None``: off when stderr is a file or a pipe, as in CI and Ray workers); yields the
    bar, or None when there is none."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None, leave=False,
               dynamic_ncols=True)
    try:
        yield None if bar.disable else bar
    finally:
        bar.close()


@contextlib.contextmanager
def kept_log(record: Any, name: str) -> Iterator[None]:
    """kdtune's log lines meanwhile (INFO and up), also appended to ``name`` in the experiment record
    (``driver.log``, ``retrain/driver.log``) once the record exists: the log travels with the
    results, to object storage too. A resume appends to it."""
    fd, tmp = tempfile.mkstemp(prefix="kdtune-", suffix=".log")
    os.close(fd)
    handler = logging.FileHandler(tmp, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    own = logging.getLogger("kdtune")  # kdtune's lines at INFO, whatever the host configured
    level = own.level
    if own.getEffectiveLevel() > logging.INFO:
        own.setLevel(logging.INFO)
    own.addHandler(handler)
    try:
        yield
    finally:
        own.removeHandler(handler)
        own.setLevel(level)
        handler.close()
        text = Path(tmp).read_text(encoding="utf-8")
        Path(tmp).unlink(missing_ok=True)
        if text and record.exists():
            record.write_text(name, (record.read_text(name) or "") + text)
