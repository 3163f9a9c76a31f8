"""CLI: ``python -m kdtune.search --space search_spaces/alpha_temp.yaml``.

Steps: read and validate the space -> check the storage and every Ray node -> load and split
the data, tokenise once -> teacher stage (fine-tune once, cached with its logits) -> the
student's initial weights -> Ray Tune (one TPE study per arm, routed; ASHA on training
progress) -> the confirm stage -> results files and the report.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from kdtune.cli import ArgumentParser, add_set_option, fail, parse_sets
from kdtune.errors import ConfigError, SearchInterrupted
from kdtune.logs import setup_logging
from kdtune.record import record as R
from kdtune.search.plan import SearchPlan, load_space, new_plan, resume_plan
from kdtune.search.tuning_run import EXIT_INTERRUPTED, Outcome

log = logging.getLogger("kdtune.search")
PROG = "kdtune.search"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--space", help="search-space YAML file")
    p.add_argument("--name", help="experiment name (default: the file's `name`)")
    p.add_argument("--num-samples", type=int,
                   help="number of trials (overrides search.num_samples); with --resume of a "
                        "finished search, grow it to this many trials in total")
    p.add_argument("--results-dir", help="where experiments are written: a folder, or a storage "
                                         "URI such as s3://bucket/prefix (default: results)")
    p.add_argument("--address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--resume", metavar="EXPERIMENT", nargs="?", const="",
                   help="continue an interrupted search: results/<experiment> or its URI, or with "
                        "no value the experiment named by --space/--name")
    p.add_argument("--restart-errored", action="store_true",
                   help="with --resume: run errored trials again")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the space and data, print the resolved config and budget, start nothing")
    p.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    add_set_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> SearchPlan:
    from kdtune.search.plan import experiment_root

    common = {"address": args.address, "report": not args.no_report,
              "restart_errored": args.restart_errored}
    if args.resume == "" and args.space:  # --resume with no value: the experiment --name names
        args.resume = experiment_root(load_space(args.space, args.name, None, args.results_dir))
    sets = parse_sets(args.sets)
    if args.resume is not None:
        if sets:
            raise ConfigError("--set", "a resumed search keeps its saved config; start a new "
                              "experiment (--name) to change settings")
        if args.resume == "":
            raise ConfigError("--resume", "give results/<experiment>, or --space and --name")
        return resume_plan(args.resume, args.num_samples, **common)
    if not args.space:
        raise ConfigError("--space", "give a search-space YAML file, e.g. "
                          "--space search_spaces/alpha_temp.yaml")
    cfg = load_space(args.space, args.name, args.num_samples, args.results_dir, sets)
    return new_plan(cfg, overwrite=args.overwrite, dry_run=args.dry_run, **common)


def trial_budget(plan: SearchPlan) -> dict[str, Any]:
    """Upper bound of trial-epochs, ASHA's rungs, and each arm's trials."""
    cfg = plan.cfg
    s, epochs = cfg.search, cfg.train.epochs
    rungs, t = [], cfg.grace_period
    while t < epochs - 1e-9:
        rungs.append(round(t, 6))
        t *= s.reduction_factor
    return {"num_samples": s.num_samples, "max_epochs_per_trial": epochs,
            "max_trial_epochs": s.num_samples * epochs, "asha_rungs": rungs,
            "asha_promotion": s.promotion,
            "evaluations_per_epoch": round(1 / cfg.train.eval_every),
            "max_concurrent": s.max_concurrent, "baseline": cfg.baseline_mode,
            "arms": {a.name: a.num_samples for a in cfg.arms()},
            "confirm": {"top_k": s.confirm.top_k, "seeds": s.confirm.seeds},
            "anchors": cfg.anchor_points()}


def dry_run(plan: SearchPlan) -> int:
    import yaml

    from kdtune.data import load_splits

    splits = load_splits(plan.cfg.data)  # validates the source, columns and labels
    print(plan.cfg.to_yaml(), end="")
    budget = trial_budget(plan)
    budget["data"] = {"source": splits.source, "train": len(splits.train), "val": len(splits.val),
                      "test": len(splits.test), "labels": splits.label_names}
    if splits.transfer is not None:
        budget["data"]["transfer"] = splits.transfer.info()
    budget["results"] = plan.record.root
    print(yaml.safe_dump({"budget": budget}, sort_keys=False), end="")
    print("dry run: nothing was started")
    return 0


def print_outcome(plan: SearchPlan, outcome: Outcome) -> None:
    from kdtune.record.summary_page import test_metrics

    root = plan.record.root
    if outcome.exit_code == EXIT_INTERRUPTED:
        print(f"\nsearch interrupted: finished trials are kept; continue with: "
              f"python -m kdtune.search --resume {root}", file=sys.stderr)
        return
    if outcome.evaluation is None or outcome.evaluation["picks"].get("best") is None:
        print(f"search finished without a usable trial (every trial errored or diverged); see "
              f"{root}/{R.TRIALS}", file=sys.stderr)
        return
    print(f"\nsearch finished in {outcome.info.get('total_seconds', 0):.0f} s; results in {root}")
    for name, (acc, f1) in test_metrics(outcome.evaluation).items():
        print(f"  {name:>9}: test accuracy {acc:.4f}, macro-F1 {f1:.4f}")
    print(f"  summary: {root}/{R.SUMMARY}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        plan = make_plan(args)
        if args.dry_run:
            return dry_run(plan)
        from kdtune.search.steps import run_plan

        t0 = time.perf_counter()
        outcome = run_plan(plan)
    except ConfigError as exc:
        return fail(PROG, exc)
    except SearchInterrupted as exc:  # e.g. a trial killed for memory: one line, not a traceback
        print(f"\n{PROG}: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    outcome.info.setdefault("total_seconds", time.perf_counter() - t0)
    print_outcome(plan, outcome)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
