"""Ray Tune samplers for the parameters of a search space (OptunaSearch converts them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray import tune

from kdtune.config import ParamSpace


def tune_distribution(p: ParamSpace) -> Any:
    """A Ray Tune sampler for one parameter (randint's ``high`` is inclusive here)."""
    if p.type == "uniform":
        return tune.uniform(p.low, p.high)
    if p.type == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.type == "quniform":
        return tune.quniform(p.low, p.high, p.q)
    if p.type == "randint":
        return tune.randint(int(p.low), int(p.high) + 1)
    return tune.choice(list(p.values))


def arm_space(space: Sequence[ParamSpace]) -> dict[str, Any]:
    return {p.name: tune_distribution(p) for p in space}
