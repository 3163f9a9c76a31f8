"""Where a kdtune training step's time goes: ``torch.profiler`` (CPU) over a few steps of
``kdtune.trainer.Trainer.train_steps``, each op's *self* time put in one group.

The trainer is left as it is; only labels are added around it for the profile (instance
attributes and ``torch.nn.utils.clip_grad_norm_``, all restored after): the batch gather is
``kdtune::data``; gradient clipping and the learning-rate schedule are ``kdtune::optimiser``,
as torch already labels ``Optimizer.step`` / ``Optimizer.zero_grad``. An op belongs to

1. data / gather: anything under ``kdtune::data`` (index gather, padding mask, dtype of ids);
2. optimiser: anything under an optimiser label (AdamW, clipping, schedule, zero_grad);
3. embedding gradient: anything under the embedding's backward (a dense vocab x hidden
   gradient: 30522 x 384 for MiniLM, written whole every step);
4. else by its own name or its nearest named ancestor: matmuls (mm, addmm, bmm, linear,
   matmul), attention (softmax, scaled_dot_product_*), layer norm; dtype casts (bf16
   autocast's copies of weights and activations) are told apart from the rest of "other".

Shares are of the profiled steps' wall time; "other: rest" is every op not listed plus the
Python and profiler time between ops.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

GROUPS = ("matmuls", "attention", "layer norm", "optimiser", "embedding gradient",
          "data / gather", "other: dtype casts", "other: rest")
DATA, OPTIMISER = "kdtune::data", "kdtune::optimiser"
EMBEDDING_BACKWARD = ("EmbeddingBackward0", "aten::embedding_backward",
                      "aten::embedding_dense_backward")
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
           "aten::_addmm_activation")
CASTS = ("aten::to", "aten::_to_copy", "aten::copy_")
_MISSING = object()


def labelled(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)
    return wrapper


@contextlib.contextmanager
def patched(targets: list[tuple[Any, str, str]]) -> Iterator[None]:
    """Each ``(owner, attribute, label)`` replaced by a labelled wrapper, then put back as it
    was (an instance attribute deleted again, so its class's method shows through)."""
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name, _ in targets]
    for owner, name, label in targets:
        setattr(owner, name, labelled(label, getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


def labels(trainer: Any) -> contextlib.AbstractContextManager[None]:
    """The trainer's batch gather, gradient clipping and schedule step labelled for a profile."""
    return patched([(trainer.train, "batch", DATA), (trainer.scheduler, "step", OPTIMISER),
                    (torch.nn.utils, "clip_grad_norm_", OPTIMISER)])


def group(event: Any) -> str:
    """The group of one profiled op, from its name and its ancestors' (rules in the docstring)."""
    chain = []
    while event is not None:
        chain.append(event.name)
        event = event.cpu_parent
    if any(n.startswith(DATA) for n in chain):
        return "data / gather"
    if any(n.startswith(OPTIMISER) or n.startswith("Optimizer.") for n in chain):
        return "optimiser"
    if any(n in EMBEDDING_BACKWARD for n in chain):
        return "embedding gradient"
    for name in chain:  # the op itself first, then its nearest named ancestor
        if name in CASTS:
            return "other: dtype casts"
        if name in MATMULS or "mkldnn" in name:
            return "matmuls"
        if "softmax" in name or "scaled_dot_product" in name:
            return "attention"
        if "layer_norm" in name:
            return "layer norm"
    return "other: rest"


def profile_steps(trainer: Any, steps: int, warm: int) -> dict[str, Any]:
    """``warm`` untimed steps of epoch 1, then ``steps`` profiled ones of epoch 2: seconds per
    group, their shares of the wall time, and the costliest ops of "other: rest"."""
    trainer.train_steps(epoch=1, max_steps=warm)
    with labels(trainer), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        trainer.train_steps(epoch=2, max_steps=steps)
        wall = time.perf_counter() - t0
    seconds: Counter[str] = Counter()
    rest: Counter[str] = Counter()
    for event in prof.events():
        g, s = group(event), event.self_cpu_time_total / 1e6
        seconds[g] += s
        if g == "other: rest":
            rest[event.name] += s
    seconds["other: rest"] += max(0.0, wall - sum(seconds.values()))  # between ops
    return {"steps": steps, "wall_seconds": wall, "seconds": {g: seconds[g] for g in GROUPS},
            "shares": {g: seconds[g] / wall for g in GROUPS},
            "top_other_ops": {k: v / wall for k, v in rest.most_common(8)}}
