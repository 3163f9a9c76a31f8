"""What every row of ``bench_kd`` shares: the mode, the config derived from a shipped space, the
prepared data (``kdtune.stages.prepare``: one split, one tokenisation, one cached teacher)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import ROOT
from benchmarks.reference import SEED_MAX_LENGTH
from kdtune.config import ExperimentConfig, load_config

#: Shared with ``python -m kdtune.search`` run from the project root: the teacher is tuned once.
CACHE_DIR = ROOT / ".cache" / "kdtune"


@dataclass
class Mode:
    """Sizes of one benchmark mode.

    The config is the shipped ``space`` with ``overrides`` (dotted keys, as
    ``kdtune.config.load_config`` takes them) and nothing else changed; data sizes,
    ``max_length`` and the teacher's fine-tuning stay the space's, so the teacher cache it
    shares with that space's searches (and the tests) is reused.
    """

    name: str
    space: str  # the search-space YAML the config derives from, relative to the project root
    repeats: int  # interleaved timed repeats of rows 1-2 and 6-7 (the median is reported)
    epochs: int  # epochs per timed run in rows 1-2
    overrides: dict[str, Any] = field(default_factory=dict)
    rows: tuple[int, ...] = (1, 2, 3, 4, 5)  # the rows run unless --rows says otherwise
    matmul_seconds: float = 0.25  # row 7: each GEMM shape's matmul loop runs at least this long
    quality_seeds: int = 0  # row 6c: seeds of kdtune's and the Trainer's CE epoch (0: off)


#: Both searches of rows 3-4 skip the confirm stage: it is not part of the search being
#: compared (run_info's search_seconds excludes it anyway) and would only add time.
SEARCH_OVERRIDES = {"search.confirm.top_k": 0}

MODES = {
    # smoke.yaml's data cut to 64 train rows (80 val rows, max_length 64) and its teacher, with
    # 4 trials of 1 epoch in one study (both anchors, baseline fixed), validation twice per
    # epoch, ASHA grace 0.5 epoch, reduction factor 2 (one rung inside the epoch). It checks
    # that every row runs and that its numbers add up, in the test suite's time; its timings
    # and F1 mean little (2 steps per epoch).
    "quick": Mode("quick", "search_spaces/smoke.yaml", repeats=1, epochs=1,
                  overrides={"search.num_samples": 4, "search.baseline": "fixed",
                             "train.epochs": 1, "data.max_train": 64}),
    # The quickstart, alpha_temp.yaml unchanged: 1200 train / 400 val rows, 14 trials x 3
    # epochs (10 KD + a tuned CE arm of 4), validation twice per epoch, ASHA grace 0.5 epoch (or
    # the warm-up's end), reduction factor 3.
    "full": Mode("full", "search_spaces/alpha_temp.yaml", repeats=3, epochs=1,
                 rows=(1, 2, 3, 4, 5, 6, 7), quality_seeds=10),
    # Rows 6-7 (transformers.Trainer, utilisation) at a test's size: smoke.yaml cut to 48 train
    # / 24 val rows of at most 16 tokens (2 steps per epoch). It checks that the rows run and
    # print their fields in seconds; its numbers mean nothing. Rows 6-7 are off in --quick,
    # whose run the test suite already waits minutes for.
    "tiny": Mode("tiny", "search_spaces/smoke.yaml", repeats=1, epochs=1,
                 overrides={"data.max_train": 48, "data.max_val": 24, "data.max_test": 24,
                            "data.max_length": 16},
                 rows=(6, 7), matmul_seconds=0.01, quality_seeds=2),
}


def resolve_mode(name: str, repeats: int | None = None, epochs: int | None = None) -> Mode:
    mode = copy.deepcopy(MODES[name])
    if repeats is not None:
        mode.repeats = repeats
    if epochs is not None:
        mode.epochs = epochs
    return mode


def base_overrides(mode: Mode, device: torch.device, data: str | None = None,
                   teacher_model: str | None = None) -> dict[str, Any]:
    """The mode's overrides plus absolute paths (the bench runs from any directory)."""
    space = load_config(ROOT / mode.space, mode.overrides)
    out: dict[str, Any] = {"name": f"bench_{mode.name}", "cache_dir": str(CACHE_DIR),
                           **mode.overrides}
    if data:
        out["data.path"] = str(Path(data).resolve())
    elif space.data.path and not Path(space.data.path).is_absolute():
        out["data.path"] = str((ROOT / space.data.path).resolve())  # ../shared, never copied
    if teacher_model:
        out["teacher.model"] = teacher_model
    if device.type == "cuda":  # trials must be given a GPU share, or Ray gives them none
        out["search.gpus_per_trial"] = round(1.0 / space.search.max_concurrent, 4)
    return out


@dataclass
class Bench:
    """One benchmark run: its mode, device, config, scratch folder and prepared data."""

    mode: Mode
    device: torch.device
    overrides: dict[str, Any]
    workdir: Path  # scratch: search records, inputs of child processes
    out: Path  # where results (and the searches' small record files) are written

    @cached_property
    def cfg(self) -> ExperimentConfig:
        return self.config()

    def config(self, extra: dict[str, Any] | None = None) -> ExperimentConfig:
        """The mode's config with ``extra`` overrides, validated by kdtune."""
        return load_config(ROOT / self.mode.space, {**self.overrides, **(extra or {})})

    def write_space(self, name: str, extra: dict[str, Any] | None = None) -> Path:
        """A search-space file of the config (plus ``extra``) for ``python -m kdtune.search``."""
        cfg = self.config({**(extra or {}), "name": name})
        path = self.workdir / f"{name}.yaml"
        path.write_text(cfg.to_yaml())
        load_config(path)  # round-trips: a bad override fails here, not inside the search
        return path

    @cached_property
    def prep(self) -> Any:
        from kdtune.stages import prepare

        return prepare(self.cfg)  # the teacher is fine-tuned once and cached in .cache/kdtune

    @cached_property
    def trial_data(self) -> Any:
        """What a trial of the config reads (``kdtune.recipe.TrialData``)."""
        return self.prep.trial_data(self.cfg)

    @cached_property
    def seed_encoded(self) -> dict[str, Any]:
        """Train and val tokenised as the seed did: the teacher's tokenizer, max_length 150
        (padded to it by ``benchmarks.reference``)."""
        enc = self.prep.splits.encode(self.prep.teacher_tokenizer, SEED_MAX_LENGTH)
        return {"train": enc["train"], "val": enc["val"]}

    def release(self) -> None:
        """Drop the prepared data before the searches (they prepare their own)."""
        for name in ("prep", "trial_data", "seed_encoded"):
            self.__dict__.pop(name, None)
