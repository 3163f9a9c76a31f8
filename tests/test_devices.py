"""Device handling that only a GPU box or a cluster reaches, checked here: device identity,
precision by capability, CPU trials never touching CUDA, the per-GPU feature-cache budget."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from kdtune.config import load_config
from kdtune.devices import autocast, precision, same_device
from kdtune.errors import ConfigError
from kdtune.recipe import DEVICE_FEATURE_BUDGET_MB, feature_budget_mb


def test_same_device_normalises_the_index():
    assert same_device("cuda", "cuda:0") and same_device(torch.device("cuda:0"), "cuda")
    assert same_device("cpu", torch.device("cpu"))
    assert not same_device("cuda:1", "cuda") and not same_device("cpu", "cuda:0")
    # what feature_kd compared before: torch says these differ, and took the slow path
    assert torch.device("cuda") != torch.device("cuda:0")


def test_precision_follows_the_gpus_bf16_capability(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision(cuda) == "bf16-autocast"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # T4, V100
    assert precision(cuda) == "fp32"
    import contextlib

    assert isinstance(autocast(cuda), contextlib.nullcontext)  # no autocast there


def test_feature_cache_budget_is_shared_by_the_trials_on_a_gpu():
    assert feature_budget_mb(1.0) == DEVICE_FEATURE_BUDGET_MB
    assert feature_budget_mb(0.125) == DEVICE_FEATURE_BUDGET_MB / 8  # 8 trials share 4 GB
    assert feature_budget_mb(0.0) == DEVICE_FEATURE_BUDGET_MB  # no share: the device is its own


def test_more_than_one_gpu_per_trial_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="search.gpus_per_trial: must be in \\[0, 1\\]"):
        load_config("search_spaces/smoke.yaml", {"search.gpus_per_trial": 2})


def test_a_cpu_trial_hides_the_gpus():
    """kd_trial calls hide_unassigned_gpus before anything can touch CUDA (in a child process:
    the variable is process-wide)."""
    code = ("import os; from kdtune.devices import hide_unassigned_gpus; hide_unassigned_gpus([]);"
            "print(repr(os.environ['CUDA_VISIBLE_DEVICES']));"
            "hide_unassigned_gpus([0]); print('kept')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"})
    assert out.stdout.split() == ["''", "kept"]
    import inspect

    from kdtune import trainable

    source = inspect.getsource(trainable.kd_trial)
    assert source.index("hide_unassigned_gpus(gpu_ids)") < source.index("trial_device(gpu_ids)")


def test_max_concurrent_auto_from_the_clusters_resources():
    from kdtune.cluster import concurrency

    cfg = load_config("search_spaces/smoke.yaml", {"search.max_concurrent": "auto"})
    assert concurrency(cfg, {"CPU": 16.0}) == 16  # one CPU per trial
    gpu = load_config("search_spaces/smoke.yaml", {"search.max_concurrent": "auto",
                                                   "search.gpus_per_trial": 0.125,
                                                   "search.cpus_per_trial": 1})
    assert concurrency(gpu, {"CPU": 16.0, "GPU": 1.0}) == 8  # eight trials share the GPU
    assert concurrency(gpu, {"CPU": 64.0, "GPU": 4.0}) == 32  # four GPUs, 8 each
    assert concurrency(gpu, {"CPU": 4.0, "GPU": 4.0}) == 4  # CPUs bind first
    assert concurrency(load_config("search_spaces/smoke.yaml"), {"CPU": 99.0}) == 2  # as written
    with pytest.raises(ConfigError, match="search.max_concurrent: must be >= 1 or 'auto'"):
        load_config("search_spaces/smoke.yaml", {"search.max_concurrent": "many"})


def test_train_precision_auto_follows_the_hardware(monkeypatch):
    from kdtune import devices
    from kdtune.params import TrainParams

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_bf16", lambda: True)  # AMX / AVX-512 BF16
    assert devices.resolve_precision(cpu, "auto") == "bf16" and precision(cpu) == "bf16-autocast"
    assert devices.resolve_precision(cpu, "fp32") == "fp32"
    with autocast(cpu, "auto"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(devices, "cpu_bf16", lambda: False)  # a CPU without native bf16
    assert devices.resolve_precision(cpu, "auto") == "fp32" and precision(cpu) == "fp32"
    assert devices.resolve_precision(cpu, "bf16") == "bf16"  # asked for: taken as asked
    with autocast(cpu, "auto"):
        assert not torch.is_autocast_enabled("cpu")
    assert devices.resolve_precision(torch.device("mps"), "auto") == "fp32"
    with pytest.raises(ConfigError, match="train.precision: must be 'auto', 'bf16' or 'fp32'"):
        TrainParams(precision="fp16")
