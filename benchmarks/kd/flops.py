"""FLOPs of a BERT-style classifier's training step, counted from its shapes, and what plain
matmuls of the step's GEMM shapes achieve on this machine (the physical limit row 7 compares
against).

For a batch of B rows padded to W tokens (N = B * W: padded tokens are computed, so they
count), hidden size H, intermediate size I, L blocks and C classes, a multiply-add is 2 FLOPs:

    forward  = L * (2*N*H*3H      Q, K and V projections
                  + 2*N*H*H       attention output projection
                  + 2*N*H*I * 2   feed-forward up and down
                  + 2*B*W*W*H     QK^T (all heads together: heads * head_dim = H)
                  + 2*B*W*W*H)    attention weights x V
             + 2*B*H*H + 2*B*H*C  pooler and classifier (first token only)
    training = 3 * forward        backward: an input-gradient and a weight-gradient matmul of
                                  the same size for every forward matmul

Not counted: the embedding lookup (a gather), layer norms, softmax, GELU, dropout, the loss
and the optimiser: none is a matmul; the step profile (:mod:`benchmarks.kd.step_profile`)
shows what they cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.common import clocks, since


@dataclass(frozen=True)
class Shapes:
    """The sizes the FLOP count needs, from a transformers BERT-style config."""

    hidden: int
    intermediate: int
    layers: int
    classes: int

    @classmethod
    def of(cls, config: Any) -> Shapes:
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                   config.num_labels)


def forward_flops(s: Shapes, rows: int, width: int) -> int:
    """The forward pass's matmul FLOPs of one batch (the formula in the module docstring)."""
    n, h = rows * width, s.hidden
    block = 2 * n * h * 3 * h + 2 * n * h * h + 2 * n * h * s.intermediate * 2
    attention = 2 * (2 * rows * width * width * h)
    return s.layers * (block + attention) + 2 * rows * h * h + 2 * rows * h * s.classes


def step_flops(s: Shapes, rows: int, width: int) -> int:
    """One training step's matmul FLOPs: forward + backward = 3 x forward."""
    return 3 * forward_flops(s, rows, width)


def gemms(s: Shapes, tokens: int) -> dict[tuple[int, int, int], int]:
    """The step's dense GEMMs as ``{(m, k, n): count}`` for ``tokens`` rows: per linear layer
    ``in -> out`` the forward ``(N, in) @ (in, out)``, the input gradient ``(N, out) @ (out,
    in)`` and the weight gradient ``(out, N) @ (N, in)``. The attention matmuls (batched, small)
    and the pooler / classifier (one row per example) are left out: they are not the bulk."""
    h, i, n = s.hidden, s.intermediate, tokens
    linears = [(h, h)] * 4 + [(h, i), (i, h)]  # Q, K, V, output; feed-forward up, down
    out: dict[tuple[int, int, int], int] = {}
    for k_in, k_out in linears:
        for shape in ((n, k_in, k_out), (n, k_out, k_in), (k_out, n, k_in)):
            out[shape] = out.get(shape, 0) + s.layers
    return out


def seconds_per_call(m: int, k: int, n: int, dtype: torch.dtype,
                     min_seconds: float) -> dict[str, float]:
    """Mean time of ``torch.matmul`` of an ``(m, k) @ (k, n)`` pair in ``dtype`` on this thread,
    looped for at least ``min_seconds`` of wall time (and 3 calls) after 2 untimed ones; on
    both clocks of ``benchmarks.common.clocks``."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(2):
        torch.matmul(a, b)
    calls, start = 0, clocks()
    while calls < 3 or since(start)["wall"] < min_seconds:
        torch.matmul(a, b)
        calls += 1
    return {clock: s / calls for clock, s in since(start).items()}


def matmul_gflops(shapes: dict[tuple[int, int, int], int], dtype: torch.dtype,
                  min_seconds: float) -> dict[str, Any]:
    """GFLOP/s of a matmul loop over ``shapes`` weighted by their counts, as the step has them,
    on each clock; with each shape's own rate (CPU time)."""
    flops, seconds = 0.0, {"wall": 0.0, "cpu": 0.0}
    each = {}
    for (m, k, n), count in shapes.items():
        t = seconds_per_call(m, k, n, dtype, min_seconds)
        flops += count * 2 * m * k * n
        seconds = {c: s + count * t[c] for c, s in seconds.items()}
        each[f"{m}x{k}x{n}"] = 2 * m * k * n / t["cpu"] / 1e9
    return {**{c: flops / s / 1e9 for c, s in seconds.items()}, "per_shape_gflops": each}
