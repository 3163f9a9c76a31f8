"""Shared fixtures: a generated text data set (tests/synthetic.py) and a smoke space reading it,
which every test uses unless it measures AG News itself; the AG News file in ../shared (never
copied into the project) for those few, which skip where it is absent (a clean clone); a local
Ray, an MLflow server and the session's smoke search."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic
import yaml

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


def start_local_ray() -> None:
    import logging

    import ray

    from kdtune.cluster import no_gc_thread

    no_gc_thread()  # the cluster's nodes, started from this process, inherit it too
    # address="local": a new instance even where a cluster test (or a user) left one running
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             logging_level=logging.WARNING)


#: Test files that read the session's smoke search: one xdist group, so it runs once.
SMOKE_SEARCH_FILES = {"test_report.py", "test_retrain.py", "test_search.py", "test_tracking.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Each test file runs whole on one xdist worker (its module fixtures are built once), and the
    files of SMOKE_SEARCH_FILES together on one."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("smoke-search" if name in SMOKE_SEARCH_FILES
                                                 else name))


@pytest.fixture(scope="session", autouse=True)
def shared_ray():
    """One local Ray for every in-process search of the session: a search uses a Ray that is
    already running (and leaves it running), so each does not pay Ray's start-up."""
    import ray

    start_local_ray()
    yield
    ray.shutdown()


_TORCH_THREADS: list[int] = []  # torch's thread count when the session's first test started


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """A test that leaves torch on another thread count (a benchmark's one-thread mode, say)
    changes the speed of every in-process test after it: the count is put back and the test
    fails, naming it."""
    import torch

    if not _TORCH_THREADS:
        _TORCH_THREADS.append(torch.get_num_threads())
    yield
    left = torch.get_num_threads()
    if left != _TORCH_THREADS[0]:
        torch.set_num_threads(_TORCH_THREADS[0])
        pytest.fail(f"the test left torch on {left} threads (it found {_TORCH_THREADS[0]})")


@pytest.fixture(autouse=True)
def _logging_lock_free():
    """An exception raised inside the logging module's lock (a signal handler's, say) leaves the
    lock held by this thread: every other thread then blocks on its next log line, and the
    session hangs later somewhere else (twice, in ray.shutdown() and a thread pool). Fail the
    test that did it instead."""
    import logging

    yield
    owned = getattr(logging._lock, "_is_owned", lambda: False)()  # noqa: SLF001 - CPython RLock
    assert not owned, "the test left the logging module's lock held by the main thread"


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    # Search spaces name ../shared relative to the project root, as the README's commands do.
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def ag_news() -> Path:
    """Only for tests that measure AG News itself; everything else uses ``text_data``."""
    if not AG_NEWS.is_file():
        pytest.skip(f"AG News not found at {AG_NEWS}; CI has ../shared beside the clone")
    return AG_NEWS


@pytest.fixture(scope="session")
def text_data(tmp_path_factory) -> Path:
    """The generated 4-class data set (tests/synthetic.py), written once per session."""
    return synthetic.write(tmp_path_factory.mktemp("text_data") / "topics.csv")


def smoke_raw(text_data: Path) -> dict:
    """search_spaces/smoke.yaml as a dict, reading the generated data set."""
    from kdtune.config import load_config

    return synthetic.point_at(load_config(ROOT / "search_spaces" / "smoke.yaml").to_dict(),
                              text_data)


@pytest.fixture(scope="session")
def smoke_space(tmp_path_factory, text_data) -> Path:
    """search_spaces/smoke.yaml on the generated data set, as a file for ``--space``. Its
    results_dir and cache_dir stay relative (to the project root, where tests run)."""
    path = tmp_path_factory.mktemp("spaces") / "smoke.yaml"
    path.write_text(yaml.safe_dump(smoke_raw(text_data), sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float, proc: subprocess.Popen) -> None:
    import requests

    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, f"the server behind {url} exited"
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture(scope="session", autouse=True)
def _mlflow_boot(request, tmp_path_factory):
    """The session's MLflow tracking server (sqlite backend) on 127.0.0.1, started with the
    session when any collected test uses it, so that its ~5 s start-up overlaps the first tests
    instead of being waited for; ``mlflow_server`` waits until it answers."""
    # fixturenames is each test's whole fixture closure: the session's search is in it too
    if not any("mlflow_server" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root",
                             str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            # no job runner: MLflow 3 otherwise starts 7 huey consumer processes
                            # (~9 s of CPU each) that tracking never uses
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server(_mlflow_boot) -> str:
    """A real MLflow tracking server on 127.0.0.1, for the whole session."""
    uri, proc = _mlflow_boot
    wait_http(f"{uri}/health", 120, proc)
    return uri


@pytest.fixture(scope="session")
def smoke_search(tmp_path_factory, text_data, mlflow_server) -> Path:
    """One real 6-trial smoke search (3 KD + 3 tuned CE, then 2 confirm runs), logged to MLflow
    and TensorBoard and reported, run once per test session and never modified.

    Modules that write into an experiment take a copy (``copy_experiment``) instead.
    """
    from kdtune import search

    out = tmp_path_factory.mktemp("session_results")
    raw = smoke_raw(text_data)
    raw["search"].update(loggers=["mlflow", "tensorboard"], mlflow_tracking_uri=mlflow_server)
    space = out / "smoke-session.yaml"
    space.write_text(yaml.safe_dump(raw))
    rc = search.main(["--space", str(space), "--name", "smoke-session", "--num-samples", "6",
                      "--results-dir", str(out)])
    assert rc == 0
    return out / "smoke-session"


def kill_search_when(cmd: list[str], ready, seconds: float, **popen) -> None:
    """Start a search in its own session and SIGKILL its whole group once ``ready()`` holds
    (then one more snapshot period: Ray saves the experiment state every 2 s). Its stderr goes
    to a file, not a pipe, so a chatty search can never block on a full pipe."""
    import signal
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                start_new_session=True, **popen)
        deadline = time.time() + seconds
        try:
            while not ready():
                if proc.poll() is not None:
                    err.seek(0)
                    raise AssertionError(f"the search ended before it could be killed: "
                                         f"{err.read()[-3000:]}")
                assert time.time() < deadline, "no trial finished in time"
                time.sleep(0.5)
            time.sleep(3)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def checkpointed_unfinished(exp: Path, run: str = "tune", kind: str = "search") -> bool:
    """Some Ray trial of ``run`` in the local experiment ``exp`` that has no finished-trial
    record of ``kind`` has written a checkpoint (it is past an epoch end, holding)."""
    from kdtune.record import Record

    done = {t for t, e in Record(str(exp)).finished().items()
            if e.get("kind", "search") == kind}
    return any(not any(t in folder.name for t in done)
               for folder in (exp / run).glob("*_trial_*") if list(folder.glob("checkpoint_*")))


def copy_experiment(src: Path, parent: Path) -> Path:
    dst = parent / src.name
    shutil.copytree(src, dst)
    return dst
