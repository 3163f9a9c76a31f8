"""Shared fixtures: the AG News file in ../shared (never copied into the project)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AG_NEWS = ROOT.parent / "shared" / "data" / "ag_news" / "ag_news_7600.csv"

# Spaces name ../shared relative to the project root, as the README's commands do; module-scoped
# fixtures run before function-scoped ones, so change directory at import time too.
os.chdir(ROOT)

# Tests run offline; never let a library try the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    # Search spaces name ../shared relative to the project root, as the README's commands do.
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def ag_news() -> Path:
    if not AG_NEWS.is_file():
        pytest.fail(f"AG News data not found at {AG_NEWS}; tests need ../shared beside the repo")
    return AG_NEWS


@pytest.fixture(scope="session")
def smoke_search(tmp_path_factory, ag_news) -> Path:
    """One real 6-trial smoke search (3 KD + 3 tuned CE, then 2 confirm runs), run once per test session and never modified.

    Modules that write into an experiment take a copy (``copy_experiment``) instead.
    """
    from kdtune import search

    out = tmp_path_factory.mktemp("session_results")
    rc = search.main(["--space", "search_spaces/smoke.yaml", "--name", "smoke-session",
                      "--num-samples", "6", "--results-dir", str(out), "--no-report"])
    assert rc == 0
    return out / "smoke-session"


def copy_experiment(src: Path, parent: Path) -> Path:
    dst = parent / src.name
    shutil.copytree(src, dst)
    return dst
