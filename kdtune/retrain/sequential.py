"""Group-sequential boundaries for the paired t-test over seeds: look after every round of seeds.

``kdtune.retrain --seeds auto`` adds seeds in rounds and looks at the data after each round.
Looking repeatedly at a fixed level inflates the error rates (at five looks a nominal 0.05 test
rejects a true null about twice as often), so each look uses a corrected critical value:

* **alpha spending** (Lan & DeMets 1983): a spending function ``a(tau)`` says how much of the
  total error rate may be spent by information fraction ``tau = n / n_max``;
  ``obrien-fleming``: ``a(tau) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(tau))`` (spends almost nothing
  early, keeps the last look near the fixed-sample level); ``pocock``:
  ``a(tau) = alpha * ln(1 + (e - 1) tau)`` (spends evenly, stops earlier, costs more at the end);
  gsDesign's ``sfLDOF`` / ``sfLDPocock``.
* **boundaries on the t statistic**: under the null the sequence of paired t statistics
  ``t_k = mean_k / (sd_k / sqrt(n_k))`` at the looks has a distribution that does not depend on
  the unknown SD (it is pivotal), so the critical value ``c_k`` of look k is solved so that the
  probability of first crossing at look k is exactly ``a(tau_k) - a(tau_{k-1})``, by a seeded
  simulation of that null distribution (:func:`boundaries`). This is exact for the t test up to
  simulation error (200,000 sequences: about 0.0005 on the total level), where the usual
  normal-theory boundaries converted to t would be off at 2-9 degrees of freedom.
* a single look is the fixed-sample test: ``c = t_{1 - alpha/sides, n - 1}`` exactly.

The same function gives the two-sided superiority boundaries (total ``alpha``) and the
one-sided boundaries of the two one-sided equivalence tests (total ``alpha`` per side).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SPENDING = ("obrien-fleming", "pocock")
SIMULATIONS = 200_000
SIMULATION_SEED = 20261203
MIN_LOOK = 2  # a t statistic needs two seeds


def spent(spending: str, alpha: float, tau: float) -> float:
    """The share of ``alpha`` that may be spent by information fraction ``tau`` (0 < tau <= 1)."""
    from scipy.stats import norm

    tau = min(max(tau, 0.0), 1.0)
    if tau == 0.0:
        return 0.0
    if spending == "obrien-fleming":
        return float(2.0 - 2.0 * norm.cdf(norm.ppf(1.0 - alpha / 2.0) / math.sqrt(tau)))
    if spending == "pocock":
        return float(alpha * math.log(1.0 + (math.e - 1.0) * tau))
    raise ValueError(f"unknown spending function {spending!r}; one of {', '.join(SPENDING)}")


def schedule(max_seeds: int, first: int = 3, step: int = 2) -> tuple[int, ...]:
    """Cumulative seeds at each look: ``first``, ``first + step``, ..., ``max_seeds`` (always last)."""
    first = max(MIN_LOOK, min(first, max_seeds))
    looks = list(range(first, max_seeds + 1, max(1, step)))
    if looks[-1] != max_seeds:
        looks.append(max_seeds)
    return tuple(looks)


def _t_at(cum: np.ndarray, cum_sq: np.ndarray, n: int) -> np.ndarray:
    """Paired t statistics of the first ``n`` differences of every simulated sequence."""
    mean = cum[:, n - 1] / n
    var = np.maximum(cum_sq[:, n - 1] - n * mean * mean, 0.0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean / np.sqrt(var / n)


@functools.lru_cache(maxsize=64)
def boundaries(looks: tuple[int, ...], alpha: float, spending: str = "obrien-fleming",
               sides: int = 2, simulations: int = SIMULATIONS) -> tuple[float, ...]:
    """Critical values of the t statistic at each look (``|t| >= c`` with ``sides`` 2, ``t >= c``
    with 1) whose first-crossing probabilities under the null follow the spending function."""
    from scipy.stats import t as student_t

    if any(n < MIN_LOOK for n in looks) or list(looks) != sorted(set(looks)):
        raise ValueError(f"looks must be increasing seed counts >= {MIN_LOOK}, got {looks}")
    if len(looks) == 1:
        return (float(student_t.ppf(1.0 - alpha / sides, looks[0] - 1)),)
    rng = np.random.default_rng(SIMULATION_SEED)
    draws = rng.standard_normal((simulations, looks[-1]))
    cum, cum_sq = np.cumsum(draws, axis=1), np.cumsum(draws * draws, axis=1)
    del draws
    alive = np.ones(simulations, dtype=bool)
    out, before = [], 0.0
    for n in looks:
        t = _t_at(cum, cum_sq, n)
        stat = np.abs(t) if sides == 2 else t
        target = spent(spending, alpha, n / looks[-1])
        crossings = int(round((target - before) * simulations))
        candidates = np.sort(stat[alive])[::-1]
        # the boundary sits halfway between the last statistic that crosses and the first that
        # does not, so exactly ``crossings`` of the surviving sequences cross here
        if crossings <= 0:
            c = float(candidates[0]) * 1.0001 + 1e-9
        elif crossings >= len(candidates):
            c = float(candidates[-1])
        else:
            c = float(0.5 * (candidates[crossings - 1] + candidates[crossings]))
        out.append(c)
        alive &= ~(stat >= c)
        before = target
    return tuple(out)


@dataclass(frozen=True)
class Design:
    """How many seeds are looked at when, and at which corrected levels.

    ``looks`` are cumulative seed counts; ``alpha`` the two-sided level of the superiority test
    (KD better or worse); ``equivalence_alpha`` the level of each of the two one-sided
    equivalence tests; ``margin`` the equivalence margin in macro-F1 units (0.005 = 0.5 points).
    """

    looks: tuple[int, ...]
    margin: float = 0.005
    alpha: float = 0.05
    equivalence_alpha: float = 0.05
    spending: str = "obrien-fleming"
    power: float = 0.8

    def __post_init__(self) -> None:
        if self.spending not in SPENDING:
            raise ValueError(f"unknown spending function {self.spending!r}")
        if not self.margin > 0:
            raise ValueError(f"the equivalence margin must be > 0, got {self.margin}")

    @classmethod
    def fixed(cls, seeds: int, **kwargs) -> Design:
        """One look after ``seeds`` seeds: the fixed-sample tests."""
        return cls(looks=(max(seeds, 1),), **kwargs)

    @property
    def sequential(self) -> bool:
        return len(self.looks) > 1

    def superiority(self) -> tuple[float, ...]:
        """Two-sided critical |t| per look (total ``alpha``)."""
        return self._bounds(self.alpha, 2)

    def equivalence(self) -> tuple[float, ...]:
        """One-sided critical t per look of each equivalence test (total ``equivalence_alpha``)."""
        return self._bounds(self.equivalence_alpha, 1)

    def _bounds(self, alpha: float, sides: int) -> tuple[float, ...]:
        if self.looks[0] < MIN_LOOK:
            return (math.inf,)
        return boundaries(self.looks, alpha, self.spending, sides)

    def nominal_levels(self) -> list[dict[str, float | int]]:
        """Per look: seeds, critical values, and the nominal p-values they correspond to."""
        from scipy.stats import t as student_t

        out = []
        for n, c, e in zip(self.looks, self.superiority(), self.equivalence(), strict=True):
            df = max(n - 1, 1)
            out.append({"seeds": n, "superiority_t": c, "equivalence_t": e,
                        "superiority_p": float(2 * student_t.sf(c, df)),
                        "equivalence_p": float(student_t.sf(e, df))})
        return out

    def as_dict(self) -> dict:
        return {"looks": list(self.looks), "margin": self.margin, "alpha": self.alpha,
                "equivalence_alpha": self.equivalence_alpha,
                "spending": self.spending if self.sequential else "none (one look)",
                "power": self.power, "levels": self.nominal_levels()}
