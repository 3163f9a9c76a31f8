"""Seeds in rounds: train both models on a round's fresh seeds, look, stop once decided.

A self-training pick, when the search has one, trains on the same seeds in every round; the
looks (and so the stopping) follow the KD-vs-CE question alone.

With a fixed ``--seeds N`` there is one round and one look. With ``--seeds auto`` the rounds
follow :class:`~kdtune.retrain.sequential.Design` ``looks`` (e.g. 3, 5, 7, 9, 10 seeds) and stop
at the first look whose decision is not inconclusive, with the group-sequential levels. A seed
on which either model diverged is left out of the paired test and counted as that model's
failure (it is reported, never scored silently).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kdtune.retrain.decision import decide
from kdtune.retrain.pool import Job, RunPool
from kdtune.retrain.runs import Run
from kdtune.retrain.sequential import Design

log = logging.getLogger("kdtune.retrain")

MODELS = ("student", "baseline")  # the pair the decision and its stopping are about


@dataclass
class Outcome:
    """Every run, each look's decision, and the weights of each model's best seed."""

    runs: dict[str, list[Run]] = field(default_factory=lambda: {m: [] for m in MODELS})
    looks: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, tuple[Run, Any]] = field(default_factory=dict)  # model -> (run, state dict)

    @property
    def decision(self) -> dict[str, Any]:
        return self.looks[-1]

    def failures(self) -> dict[str, list[int]]:
        """Seeds on which each model diverged."""
        return {m: [r.seed for r in runs if r.diverged] for m, runs in self.runs.items()}

    def paired(self, metric: str = "macro_f1", other: str = "baseline") -> tuple[list[float], list[float]]:
        """Test ``metric`` of the student and ``other`` on the seeds where neither diverged."""
        s, b = [], []
        for rs, rb in zip(self.runs["student"], self.runs[other], strict=True):
            if not (rs.diverged or rb.diverged):
                s.append(rs.test[metric])
                b.append(rb.test[metric])
        return s, b

    def keep(self, run: Run, state: Any) -> None:
        """Keep the weights of the best validation seed of each model (lowest seed on ties)."""
        held = self.best.get(run.model)
        if run.diverged and held is not None:
            return
        if (held is None or (held[0].diverged and not run.diverged)
                or (run.val["macro_f1"], -run.seed) > (held[0].val["macro_f1"], -held[0].seed)):
            self.best[run.model] = (run, state)


def _jobs(picks: dict[str, Any], seeds: list[int], epochs: int, same: bool,
          execution: dict[str, Any]) -> list[Job]:
    names = [m for m in picks if not (same and m == "baseline")]
    return [Job(name, {**picks[name].hparams, **execution, "epochs": epochs, "seed": seed})
            for seed in seeds for name in names]


def run_rounds(pool: RunPool, picks: dict[str, Any], design: Design, seeds: list[int],
               epochs: int, execution: dict[str, Any] | None = None) -> Outcome:
    """Train round after round until the decision is reached or the last look is spent.
    ``picks`` are the student, the baseline and optionally more models trained on the same
    seeds; ``execution`` overrides how runs execute (kdtune.params.EXECUTION: precision, ...)."""
    same = picks["student"].hparams == picks["baseline"].hparams
    out, done = Outcome({m: [] for m in picks}), 0
    for k, n in enumerate(design.looks):
        new = seeds[done:n]
        log.info("round %d of at most %d: seeds %s (%d runs)", k + 1, len(design.looks), new,
                 len(new) * (1 if same else 2))
        for run, state in pool.run(_jobs(picks, new, epochs, same, execution or {})):
            out.runs[run.model].append(run)
            out.keep(run, state)
            if same:  # CE-only pick: the baseline is the same training
                twin = Run(**{**run.__dict__, "model": "baseline"})
                out.runs["baseline"].append(twin)
                out.keep(twin, state)
        done = n
        student, baseline = out.paired()
        look = decide([s - b for s, b in zip(student, baseline, strict=True)], design, look=k,
                      final=k == len(design.looks) - 1)
        look["seeds_run"] = n
        out.looks.append(look)
        log.info("look %d (%d seeds): %s", k + 1, n, look["kind"])
        if look["kind"] != "inconclusive":
            break
    return out
