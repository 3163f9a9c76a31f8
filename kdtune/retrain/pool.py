"""Where the retrain's runs execute: side by side as Ray tasks, or one after another here.

Every run of a round (both models, all its seeds) is submitted at once as a Ray task with the
search's ``cpus_per_trial`` / ``gpus_per_trial``, so Ray runs as many side by side as the
machine or cluster has slots; the training data travels once through the object store. A task
uses the device Ray assigned it and ``threads`` torch threads, as a search trial does, so a seed
gives the same numbers here, in a task or in a trial. ``sequential`` runs them in this process,
one after another (the reference the parallel speed-up is measured against).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kdtune.logs import progress_bar
from kdtune.retrain.runs import Run, train_run

log = logging.getLogger("kdtune.retrain")


@dataclass(frozen=True)
class Job:
    """One seed of one model: ``name`` is "student" or "baseline", ``values`` its hparams."""

    name: str
    values: dict[str, Any]


def _task(data: Any, test: Any, job: Job, threads: int, metric: str, mode: str) -> tuple[Run, Any]:
    """Runs inside a Ray task: the device Ray assigned, ``threads`` torch threads."""
    import ray
    import torch

    from kdtune.devices import hide_unassigned_gpus, trial_device

    gpu_ids = ray.get_gpu_ids()
    hide_unassigned_gpus(gpu_ids)
    torch.set_num_threads(max(1, threads))
    return train_run(data, test, job.name, job.values, trial_device(gpu_ids), metric, mode)


class RunPool:
    """Runs jobs on the data of one experiment; :meth:`run` returns results in job order."""

    def __init__(self, data: Any, test: Any, *, threads: int, cpus: float, gpus: float,
                 metric: str, mode: str, device: Any, sequential: bool = False) -> None:
        self.data, self.test, self.threads = data, test, threads
        self.cpus, self.gpus, self.metric, self.mode = cpus, gpus, metric, mode
        self.device, self.sequential = device, sequential
        self._refs: tuple[Any, Any] | None = None

    def run(self, jobs: list[Job]) -> list[tuple[Run, Any]]:
        if self.sequential:
            return [self._here(job) for job in jobs]
        return self._ray(jobs)

    def _here(self, job: Job) -> tuple[Run, Any]:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # as a search trial: cpus_per_trial threads
        try:
            return train_run(self.data, self.test, job.name, job.values, self.device, self.metric,
                             self.mode)
        finally:
            torch.set_num_threads(previous)

    def _ray(self, jobs: list[Job]) -> list[tuple[Run, Any]]:
        import ray

        if self._refs is None:  # once per retrain: every task reads the same objects
            self._refs = (ray.put(self.data), ray.put(self.test))
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=1)(_task)
        refs = [task.remote(*self._refs, job, self.threads, self.metric, self.mode) for job in jobs]
        log.info("%d runs submitted as Ray tasks (%g CPU, %g GPU each)", len(refs), self.cpus,
                 self.gpus)
        with progress_bar(len(refs), "retrain runs", "run") as bar:
            pending = list(refs)
            while pending:  # as they finish, so the bar's ETA follows real completions
                done, pending = ray.wait(pending, num_returns=1)
                if bar is not None:
                    bar.update(len(done))
        return ray.get(refs)
