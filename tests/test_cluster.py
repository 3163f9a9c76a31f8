"""Run where users run: a two-node Ray cluster on this machine, results on an S3 server.

One module fixture starts an S3-compatible server (moto's server mode) on 127.0.0.1 and a
two-node cluster (``ray.cluster_utils.Cluster``, 1 CPU per node, so two trials land on two
nodes). The smoke search runs there with its results on ``s3://``, is killed after its first
finished trial, and ``--resume s3://...`` from a fresh working directory finishes it with no
trial lost or run twice. Bad storage and bad resources fail in one line before any training.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import checkpointed_unfinished, kill_search_when, smoke_raw
from optuna.trial import TrialState

from kdtune import search
from kdtune.config import load_config
from kdtune.devices import DeviceError, trial_device
from kdtune.errors import ConfigError
from kdtune.record import Record, Store

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "kdtune-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; AWS_* set for every process started here.

    Its own process (``python -m moto.server``), not moto's in-process thread: inside a
    pytest-xdist worker the thread stopped answering (a 60 s read timeout on the first call)."""
    import boto3
    from conftest import free_port, wait_http

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", 120, server)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def ray_cluster(s3):
    """Two Ray nodes of 1 CPU each."""
    import ray
    from conftest import start_local_ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the session's local Ray: this module's searches join the cluster instead
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()
    start_local_ray()


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    return ray_cluster.address


def _space(tmp_path: Path, name: str, text_data: Path, **search_overrides) -> Path:
    raw = smoke_raw(text_data)  # the data path is absolute: any cwd
    raw["name"] = name
    raw["cache_dir"] = str(ROOT / ".cache/kdtune")  # a shared cache: the teacher is reused
    raw["data"].update(max_train=96)
    raw["train"].update(eval_every=1.0)
    raw["search"].update({"num_samples": 5, "grace_period": 1.0,
                          "confirm": {"top_k": 0, "seeds": 0}, **search_overrides})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished(uri: str) -> list[dict]:
    return list(Record(uri).finished().values())


def test_kill_then_resume_from_s3_on_a_two_node_cluster(cluster, tmp_path, text_data):
    space = _space(tmp_path, "onS3", text_data)
    uri = f"s3://{BUCKET}/runs/onS3"
    cmd = [sys.executable, "-m", "kdtune.search", "--space", str(space), "--address", cluster,
           "--results-dir", f"s3://{BUCKET}/runs", "--no-report"]
    kill_search_when(cmd, lambda: len(_finished(uri)) >= 1, 300, cwd=ROOT)
    before = {e["trial_id"]: e for e in _finished(uri)}
    assert 1 <= len(before) < 5 and not Store(uri).is_file("summary.md")
    # a driver on "another machine": no local copy of anything, the first driver's working
    # copy of the studies (SQLite) gone with its disk
    first = Record(uri).work_dir
    assert (ROOT / first / "optuna.db").is_file()
    shutil.rmtree(ROOT / first)
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    os.chdir(fresh)
    try:
        assert search.main(["--resume", uri, "--address", cluster, "--no-report"]) == 0
    finally:
        os.chdir(ROOT)
    record = Record(uri)
    trials = record.read_csv("trials.csv")
    after = _finished(uri)
    ids = [e["trial_id"] for e in after]
    assert len(trials) == 5 and len(ids) == len(set(ids)) == 5  # none lost, none run twice
    for tid, entry in before.items():
        row = trials[trials["trial_id"] == tid].iloc[0]
        assert row["progress"] == pytest.approx(entry["progress"])
    history = record.read_csv("history.csv")
    assert history["node_id"].nunique() == 2  # trials ran on both nodes
    assert (history["device"] == "cpu").all()  # gpus_per_trial 0: the CPU, even beside a GPU
    assert record.store.is_file("optuna.db")  # the studies survive the driver's disk
    # TPE's history is intact: every trial of both runs is in the uploaded studies, told
    local = tmp_path / "optuna.db"
    record.store.download("optuna.db", local)
    studies = optuna.get_all_study_summaries(f"sqlite:///{local}")
    told = [t for st in studies for t in optuna.load_study(
        study_name=st.study_name, storage=f"sqlite:///{local}").get_trials()]
    states = [t.state for t in told]
    # every trained trial is told, even one that ended just before the kill whose tell the
    # uploaded copy missed (a CI run had two told FAIL); a trial suggested in the last instant
    # before the kill (never trained: Ray's restored state did not know it) is closed as FAIL,
    # never left RUNNING. At most one per trial slot: both nodes' trials can end, and be
    # replaced, within one snapshot interval (a clean-clone run had two)
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 5, states
    assert {t.user_attrs["trial_id"] for t in told if t.state != TrialState.FAIL} == set(ids)
    assert TrialState.RUNNING not in states, states
    assert states.count(TrialState.FAIL) == len(states) - 5 <= 2, states
    assert record.store.is_file("models/distilled/model.safetensors")
    assert json.loads(record.store.read_text("record.json"))["schema"] == 2


def test_a_lost_nodes_trial_continues_from_its_checkpoint_elsewhere(ray_cluster, tmp_path,
                                                                      text_data):
    """A third node joins, then dies (removed, not drained) while its trial holds after its
    epoch-1 checkpoint (kdtune.faults, set on that node only): Ray retries the trial
    (search.max_failures 1) from that checkpoint on a node that is left; the search finishes
    with every trial once, none re-run from scratch."""
    from kdtune import faults

    lossy = ray_cluster.add_node(num_cpus=1, env_vars={faults.HOLD_ENV: "60"})
    ray_cluster.wait_for_nodes()
    # three trials, one per node; no early stopping, so the held trial is never stopped instead
    space = _space(tmp_path, "nodeloss", text_data, num_samples=3, max_concurrent=3,
                   strategy="tpe", baseline="fixed")
    exp = tmp_path / "nodeloss"
    cmd = [sys.executable, "-m", "kdtune.search", "--space", str(space), "--address",
           ray_cluster.address, "--results-dir", str(tmp_path), "--no-report"]
    with open(tmp_path / "driver.log", "w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            deadline = time.time() + 300
            while not (len(_finished(str(exp))) == 2 and checkpointed_unfinished(exp)):
                assert proc.poll() is None and time.time() < deadline, _tail(err)
                time.sleep(0.5)
            time.sleep(3)  # one experiment snapshot later: Ray's state names the checkpoint
            ray_cluster.remove_node(lossy, allow_graceful=False)
            assert proc.wait(timeout=300) == 0, _tail(err)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    ids = [e["trial_id"] for e in _finished(str(exp))]
    assert len(trials) == 3 and len(ids) == len(set(ids)) == 3
    assert (trials["status"] == "completed").all() and (trials["progress"] == 2).all()
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    moved = history[history["resumed_from_step"] > 0]
    assert moved["trial_id"].nunique() == 1, history  # the lost node's trial, and only it
    lost = history[history["trial_id"] == moved["trial_id"].iloc[0]]
    # before the loss on the lost node, after it on another, from the checkpoint's step on
    assert lost["node_id"].nunique() == 2
    assert (moved["step"] > moved["resumed_from_step"]).all()
    assert not history.duplicated(["trial_id", "progress"]).any()


def _tail(err) -> str:
    err.seek(0)
    return err.read()[-3000:]


@pytest.mark.parametrize("results_dir, env, message", [
    ("s3://kdtune-test-no-such-bucket/x", {}, "bucket does not exist"),  # ids alike on every xdist worker
    (f"s3://{BUCKET}/x", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "unreachable"),
    # no credentials anywhere (instance metadata off: never a request off this machine): the
    # default chain finds none, the probe's real write is refused, one line
    (f"s3://{BUCKET}/x", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                          "AWS_EC2_METADATA_DISABLED": "true"}, "access was denied"),
    ("ftp://host/x", {}, "unknown storage scheme"),
])
def test_bad_storage_is_one_line_before_any_work(s3, tmp_path, text_data, results_dir, env, message):
    space = _space(tmp_path, "bad", text_data)
    child_env = {**os.environ}
    for k, v in env.items():
        if v is None:
            child_env.pop(k, None)
        else:
            child_env[k] = v
    child_env["HOME"] = str(tmp_path)  # no ~/.aws here
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kdtune.search", "--space", str(space),
                           "--results-dir", results_dir], cwd=ROOT, env=child_env,
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "--results-dir" in lines[0] and message in lines[0], lines[0]
    assert time.perf_counter() - t0 < 60  # refused before Ray, the data or the teacher


def test_credentials_from_a_file_work_without_environment_keys(s3, tmp_path):
    """The default credential chain is used as it is: keys in a credentials file (as an
    instance profile or IRSA would provide them) are enough; nothing refuses them up front."""
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = file-key\naws_secret_access_key = file-secret\n")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")
    code = (f"from kdtune.record import Record; r = Record('s3://{BUCKET}/from-file'); r.probe(); "
            "r.store.write_text('x.txt', 'ok'); print(r.store.read_text('x.txt'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_node_gone_since_the_listing_is_left_out_of_the_preflight(cluster, caplog):
    """A node Ray still lists alive but can no longer schedule on (removed a moment before: a CI
    run's pre-flight met the node the node-loss test had just removed) is left out with a
    warning, not a traceback. Here the vanished node is a node id that does not exist."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from kdtune.cluster import _gather, ray_session

    def report(node_id: str) -> dict:
        return {"node_id": node_id, "problem": None}

    with ray_session(cluster):
        task = ray.remote(num_cpus=0)(report)
        real = ray.get_runtime_context().get_node_id()
        gone = "ab" * 28  # a well-formed node id no node has
        refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False),
                             max_retries=0).remote(n): {"NodeID": n, "NodeManagerHostname": h}
                for n, h in ((real, "here"), (gone, "vanished"))}
        with caplog.at_level("WARNING", logger="kdtune.cluster"):
            reports = _gather(refs, timeout_s=60)
    assert reports == [{"node_id": real, "problem": None}]
    assert "node vanished (abababab) left the cluster" in caplog.text


def test_preflight_checks_every_node(cluster, tmp_path, text_data):

    from kdtune.cluster import preflight, ray_session, teacher_builder

    cfg = load_config(_space(tmp_path, "pre", text_data))
    record = Record(f"s3://{BUCKET}/pre")
    with ray_session(cluster):
        reports = preflight(cfg, record)
        assert len(reports) == 2 and {r["problem"] for r in reports} == {None}
        assert not record.store.listdir(".kdtune-preflight")  # markers cleaned up
        with pytest.raises(ConfigError) as err:  # a node where a dependency cannot be imported
            preflight(cfg, record, modules=("torch", "kdtune_no_such_dependency"))
        assert err.value.field.startswith("node ") and "kdtune_no_such_dependency" in str(err.value)
        big = load_config(_space(tmp_path, "big", text_data, cpus_per_trial=4))
        with pytest.raises(ConfigError, match="largest node has 1"):
            preflight(big, record)
        gpu = load_config(_space(tmp_path, "gpu", text_data, gpus_per_trial=1))
        with pytest.raises(ConfigError, match="the cluster has no GPU"):
            preflight(gpu, record)
        assert teacher_builder(driver_has_gpu=False) is None  # no GPU anywhere: run it here
        with pytest.raises(ConfigError) as err:  # a node that does not answer in time
            preflight(cfg, record, timeout_s=0.0)
        assert "did not answer the pre-flight check within 0 s" in str(err.value)
        assert err.value.field.startswith("node ") and "\n" not in str(err.value)


def test_teacher_stage_runs_as_a_task_on_the_gpu_node(ray_cluster, tmp_path, text_data):
    """No GPU on the driver, one in the cluster: the teacher stage is a Ray task on that node.

    The node declares one logical GPU (placement only: there is no CUDA here), so the task runs
    with the CPU as its device; it must produce the teacher the driver caches and reuses.
    """
    import ray

    from kdtune.cluster import preflight, ray_session, teacher_builder
    from kdtune.stages import prepare

    node = ray_cluster.add_node(num_cpus=1, num_gpus=1)
    ray_cluster.wait_for_nodes()
    cfg = load_config(_space(tmp_path, "remote", text_data), {"cache_dir": str(tmp_path / "cache"),
                                                   "data.max_train": 48})
    try:
        with ray_session(ray_cluster.address):
            assert ray.cluster_resources()["GPU"] == 1
            assert teacher_builder(driver_has_gpu=True) is None
            # the GPU node advertises a GPU that torch (a CPU build here) cannot use: refused
            with pytest.raises(ConfigError, match="advertises 1 GPU\\(s\\) but torch .* cannot use CUDA"):
                preflight(cfg, Record(str(tmp_path / "rec")))
            remote = prepare(cfg, builder=teacher_builder(False, device_type="cpu"))
    finally:
        ray_cluster.remove_node(node)
    assert not remote.teacher.cache_hit and remote.teacher.logits["train"].shape == (48, 4)
    local = prepare(cfg)  # the cache the driver wrote from the task's result
    assert local.teacher.cache_hit and local.teacher.key == remote.teacher.key


def test_a_trial_uses_what_ray_assigned():
    assert trial_device([], cuda_available=True).type == "cpu"  # no GPU given: CPU on a GPU box
    assert str(trial_device([3], cuda_available=True)) == "cuda:0"  # the first visible one
    with pytest.raises(DeviceError, match="Ray assigned GPU\\(s\\) \\[0\\] but torch cannot use CUDA"):
        trial_device([0], cuda_available=False)  # never a silent fall-back to the CPU


def test_the_drivers_own_node_skips_only_what_the_driver_imported_from_the_same_file(
        tmp_path, monkeypatch):
    """node_check on the driver's node: a module the driver imported, that this interpreter
    would load from the same file, is not imported again; from another file, or with another
    interpreter, or one the driver could not import, it is (and its failure is the one line)."""
    from kdtune.node_check import PYTHON, driver_imports, node_check
    from kdtune.version import __version__

    (tmp_path / "kdtune_boom.py").write_text("raise ImportError('broken on this node')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    store = Store(str(tmp_path / "rec"))
    store.write_text("pre/driver-1", "driver")

    def check(imported):
        return node_check(__version__, ("kdtune_boom",), str(tmp_path / "rec"), "driver-1",
                          "node-a", 0.0, "pre", imported)["problem"]

    same = {PYTHON: sys.executable, "kdtune_boom": str(tmp_path / "kdtune_boom.py")}
    assert check(same) is None  # the driver's import stands for its own node's
    assert "broken on this node" in check({**same, "kdtune_boom": "/elsewhere/kdtune_boom.py"})
    assert "broken on this node" in check({**same, PYTHON: "/another/python"})
    assert "broken on this node" in check(None)  # another node: everything is imported
    # the driver's side: what imports is listed with its file, what does not is left out
    listed = driver_imports(("json", "kdtune_boom"))
    assert listed[PYTHON] == sys.executable and listed["json"].endswith("json/__init__.py")
    assert "kdtune_boom" not in listed
    assert store.read_text("pre/node-a") == "node-a"  # the storage check still ran
