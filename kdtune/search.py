"""CLI: ``python -m kdtune.search --space search_spaces/alpha_temp.yaml``.

Stages: read and validate the space -> load and split the data -> tokenise once -> teacher
stage (fine-tune once, cached with its logits) -> the student's initial weights -> Ray Tune
(Optuna TPE in a ConcurrencyLimiter, ASHA on epochs) -> results files and the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from kdtune.cli import ArgumentParser, fail
from kdtune.config import ConfigError, ExperimentConfig, load_config
from kdtune.files import atomic_write_json, atomic_write_text

log = logging.getLogger("kdtune.search")


def finished_trials(path: Path) -> set[str]:
    """Ids of the trials ``FinishedTrialsLog`` recorded as finished (terminated or errored)."""
    if not path.is_file():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["trial_id"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    return ids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog="kdtune.search", description=__doc__.split("\n")[0])
    p.add_argument("--space", help="search-space YAML file")
    p.add_argument("--name", help="experiment name (default: the file's `name`)")
    p.add_argument("--num-samples", type=int, help="number of trials (overrides search.num_samples)")
    p.add_argument("--results-dir", help="where experiments are written (default: results)")
    p.add_argument("--address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--resume", metavar="EXPERIMENT_DIR", nargs="?", const="",
                   help="continue an interrupted search: results/<experiment>, or with no value "
                        "the experiment named by --space/--name")
    p.add_argument("--restart-errored", action="store_true",
                   help="with --resume: run errored trials again")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the space and data, print the resolved config and budget, start nothing")
    p.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def trial_budget(cfg: ExperimentConfig) -> dict[str, Any]:
    """Upper bound of trial-epochs, and ASHA's rungs."""
    s, epochs = cfg.search, cfg.train.epochs
    rungs, t = [], s.grace_period
    while t < epochs:
        rungs.append(t)
        t *= s.reduction_factor
    return {"num_samples": s.num_samples, "max_epochs_per_trial": epochs,
            "max_trial_epochs": s.num_samples * epochs, "asha_rungs": rungs,
            "max_concurrent": s.max_concurrent,
            "anchors": cfg.anchor_points() if s.anchors else []}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "httpx", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _experiment_dir(args: argparse.Namespace, cfg: ExperimentConfig) -> Path:
    return Path(cfg.results_dir) / cfg.name


def _load(args: argparse.Namespace) -> tuple[ExperimentConfig, Path]:
    if args.resume == "" and args.space:  # --resume with no value: the experiment --name names
        named = load_config(args.space, {k: v for k, v in (("name", args.name),
                                                           ("results_dir", args.results_dir)) if v})
        args.resume = str(Path(named.results_dir) / named.name)
    if args.resume is not None:
        if args.num_samples is not None:
            raise ConfigError("--num-samples", "a resumed search keeps its own num_samples; "
                              "drop --num-samples or start a new --name")
        if args.resume == "":
            raise ConfigError("--resume", "give results/<experiment>, or --space and --name")
        exp = Path(args.resume)
        space = exp / "config.yaml"
        if not space.is_file():
            raise ConfigError("--resume", f"{str(exp)!r} is not a kdtune experiment "
                              "(no config.yaml); give results/<experiment>")
        cfg = load_config(space)
        return cfg, exp
    if not args.space:
        raise ConfigError("--space", "give a search-space YAML file, e.g. "
                          "--space search_spaces/alpha_temp.yaml")
    overrides: dict[str, Any] = {}
    if args.name is not None:
        overrides["name"] = args.name
    if args.num_samples is not None:
        overrides["search.num_samples"] = args.num_samples
    if args.results_dir is not None:
        overrides["results_dir"] = args.results_dir
    cfg = load_config(args.space, overrides)
    exp = _experiment_dir(args, cfg)
    if exp.exists() and any(exp.iterdir()):
        if not args.overwrite:
            raise ConfigError("--name", f"experiment {str(exp)!r} exists; pass --resume {exp} to "
                              "continue it, --overwrite to replace it, or another --name")
        if not args.dry_run:  # a dry run starts nothing and deletes nothing
            shutil.rmtree(exp)
    return cfg, exp


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _setup_logging(args.verbose)
    try:
        cfg, exp_dir = _load(args)
        if args.dry_run:
            return _dry_run(cfg)
        return run_search(cfg, exp_dir, args)
    except ConfigError as exc:
        return fail("kdtune.search", exc)


def _dry_run(cfg: ExperimentConfig) -> int:
    import yaml

    from kdtune.data import load_splits

    splits = load_splits(cfg.data)  # validates the source, columns and labels
    print(cfg.to_yaml(), end="")
    budget = trial_budget(cfg)
    budget["data"] = {"source": splits.source, "train": len(splits.train), "val": len(splits.val),
                      "test": len(splits.test), "labels": splits.label_names}
    print(yaml.safe_dump({"budget": budget}, sort_keys=False), end="")
    print("dry run: nothing was started")
    return 0


def run_search(cfg: ExperimentConfig, exp_dir: Path, args: argparse.Namespace) -> int:
    import ray
    from optuna.samplers import TPESampler
    from optuna.storages import RDBStorage
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from kdtune.pipeline import prepare
    from kdtune.results import test_metrics_table, write_results
    from kdtune.trainable import kd_trial
    from kdtune.tuning import AnchoredASHA, FinishedTrialsLog, PruneAwareOptunaSearch, param_space

    t_start = time.perf_counter()
    done_log = exp_dir / "trials_done.jsonl"
    if args.resume is not None and not args.restart_errored and \
            len(finished_trials(done_log)) >= cfg.search.num_samples and \
            (exp_dir / "summary.md").is_file():
        print(f"{exp_dir}: all {cfg.search.num_samples} trials had finished; nothing to resume "
              "(--restart-errored runs errored trials again)")
        return 0

    # 1-3. Data, tokens, the cached teacher and the student's initial weights. The experiment
    # folder is made only once they succeed, so a bad model name leaves nothing behind.
    prep = prepare(cfg)
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(exp_dir / "config.yaml", cfg.to_yaml())
    splits, teacher = prep.splits, prep.teacher
    info: dict[str, Any] = prep.info()
    atomic_write_json(exp_dir / "run_info.json", info)
    print(f"data: {splits.source} ({len(splits.train)} train / {len(splits.val)} val / "
          f"{len(splits.test)} test)")
    print(f"teacher: {'reused cached' if teacher.cache_hit else 'fine-tuned and cached'} "
          f"{teacher.dir}; val acc {teacher.metrics['val']['accuracy']:.4f}")

    # 4. Ray Tune: TPE (seeded, study in SQLite beside the results) + ASHA on epochs.
    # Snapshot the experiment state every 2 s (it is small) so a kill loses little.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if args.address:
        ray.init(address=args.address, include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                 logging_level=logging.WARNING, ignore_reinit_error=True)
    srch = cfg.search
    anchors = cfg.anchor_points() if srch.anchors else []
    storage = RDBStorage(f"sqlite:///{(exp_dir / 'optuna.db').resolve()}")
    searcher = PruneAwareOptunaSearch(
        # several objectives (e.g. macro-F1 vs latency): Optuna's multi-objective TPE
        metric=srch.objectives or srch.metric,
        mode=srch.modes if srch.objectives else srch.mode, points_to_evaluate=anchors or None,
        sampler=TPESampler(seed=srch.seed), storage=storage, study_name=cfg.name,
        max_epochs=cfg.train.epochs)
    scheduler = AnchoredASHA(anchors, metric=srch.metric, mode=srch.mode,
                             time_attr="training_iteration", max_t=cfg.train.epochs,
                             grace_period=srch.grace_period, reduction_factor=srch.reduction_factor)
    trainable = tune.with_resources(
        tune.with_parameters(kd_trial, data=prep.trial_data(cfg),
                             threads=max(1, int(srch.cpus_per_trial))),
        {"cpu": srch.cpus_per_trial, "gpu": srch.gpus_per_trial})
    run_config = tune.RunConfig(
        name="tune", storage_path=str(exp_dir.resolve()),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1,
                                                checkpoint_score_attribute=srch.metric,
                                                checkpoint_score_order=srch.mode),
        failure_config=tune.FailureConfig(max_failures=srch.max_failures),
        callbacks=[FinishedTrialsLog(str((exp_dir / "trials_done.jsonl").resolve()))])
    tune_dir = exp_dir / "tune"
    t_search = time.perf_counter()
    if args.resume is not None and tune.Tuner.can_restore(str(tune_dir.resolve())):
        print(f"resuming {exp_dir}: finished trials are kept, unfinished ones continue")
        tuner = tune.Tuner.restore(str(tune_dir.resolve()), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=args.restart_errored)
    else:
        tuner = tune.Tuner(trainable, param_space=param_space(cfg), run_config=run_config,
                           tune_config=tune.TuneConfig(
                               search_alg=ConcurrencyLimiter(searcher,
                                                             max_concurrent=srch.max_concurrent),
                               scheduler=scheduler, num_samples=srch.num_samples,
                               reuse_actors=True))
    results = tuner.fit()
    search_seconds = time.perf_counter() - t_search
    finished = finished_trials(done_log)
    if len(finished) < srch.num_samples:  # Ctrl-C: Ray stops the trials and fit() returns
        ray.shutdown()
        print(f"\nsearch interrupted: {len(finished)} of {srch.num_samples} trials finished and "
              f"are kept; continue with: python -m kdtune.search --resume {exp_dir}",
              file=sys.stderr)
        return 130

    # 5. Results: tables, the best trials evaluated on validation and held-out test, summary.
    info.update(search_seconds=search_seconds, total_seconds=time.perf_counter() - t_start)
    evaluation = write_results(exp_dir, results, cfg, prep, info)
    info["total_seconds"] = time.perf_counter() - t_start
    atomic_write_json(exp_dir / "run_info.json", info)
    if not args.no_report:
        try:
            from kdtune import report
        except ImportError:  # pragma: no cover - the report module ships with kdtune
            report = None
        if report is not None:
            try:
                print(f"report: {report.render(exp_dir)}")
            except Exception:  # noqa: BLE001 - the results files are written; keep them visible
                log.exception("could not render the report; run python -m kdtune.report %s", exp_dir)
    if evaluation["picks"]["best"] is None:
        ray.shutdown()
        print(f"search finished without a usable trial (every trial errored or diverged); see "
              f"{exp_dir / 'trials.csv'}", file=sys.stderr)
        return 1
    print(f"\nsearch finished in {info['total_seconds']:.0f} s; results in {exp_dir}")
    for name, (acc, f1) in test_metrics_table(evaluation).items():
        print(f"  {name:>9}: test accuracy {acc:.4f}, macro-F1 {f1:.4f}")
    print(f"  summary: {exp_dir / 'summary.md'}")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
