"""``python -m kdtune.retrain results/<experiment>``: the final, multi-seed decision.

Re-trains the recommended KD configuration and the tuned CE-only baseline on fresh seeds
(:mod:`kdtune.retrain.retraining`), decides (KD better, worse, equivalent within a margin, or
inconclusive with the seeds that would decide) and names the model to ship; the experiment's
report, when the search wrote one, is rendered again with that decision in it. :func:`main` is
the command line; ``--seeds auto`` adds seeds in rounds until the decision is reached.
"""

from __future__ import annotations

import argparse
import sys

from kdtune.cli import ArgumentParser, add_set_option, fail, parse_sets
from kdtune.errors import ConfigError
from kdtune.formatting import pm
from kdtune.logs import setup_logging
from kdtune.record import record as R
from kdtune.retrain.report import RetrainReport
from kdtune.retrain.runs import REPRODUCTION_TOLERANCE
from kdtune.retrain.sequential import SPENDING

PROG = "kdtune.retrain"
EXIT_NOT_REPRODUCED = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a usage error exits 2 with one line."""
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("experiment", help="a finished search: results/<experiment> or its URI")
    p.add_argument("--trial", help="KD trial id from trials.csv (default: the recommended one)")
    p.add_argument("--baseline-trial", help="CE-only trial id (default: the tuned CE baseline)")
    p.add_argument("--seeds", default="auto",
                   help="fresh seeds per model, or 'auto' (default): rounds of seeds until the "
                        "decision is reached or --max-seeds is spent")
    p.add_argument("--max-seeds", type=int, default=10, help="seeds at most with --seeds auto (10)")
    p.add_argument("--round", type=int, default=2, dest="round_size",
                   help="seeds added per round with --seeds auto, after a first look at 3 (2)")
    p.add_argument("--margin", type=float, default=0.5,
                   help="equivalence margin in points of test macro-F1 (default 0.5)")
    p.add_argument("--spending", choices=SPENDING, default="obrien-fleming",
                   help="alpha-spending function of --seeds auto (default obrien-fleming)")
    p.add_argument("--sequential", action="store_true",
                   help="run one seed after another in this process instead of side by side as "
                        "Ray tasks")
    p.add_argument("--epochs", type=int, help="epochs of every run (default: the trial's)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired bootstrap resamples over test examples (default 1000)")
    p.add_argument("--threads", type=int, help="torch threads of every run (default: "
                                               "search.cpus_per_trial, as the search's trials)")
    p.add_argument("--check-reproduction", action="store_true",
                   help="also re-run the search trial at its own seed (its own run, never one of "
                        "the verdict's seeds), and exit 1 if it does not reproduce the trial's "
                        "validation macro-F1 within 0.5 points")
    add_set_option(p)  # only search.* and train.eval_batch_size: what runs where, never the data
    p.add_argument("--no-report", action="store_true",
                   help="do not render the experiment's report again with the decision")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express, as :class:`ConfigError` naming the flag."""
    from kdtune.retrain.options import check_retrain_options

    args.seeds = check_retrain_options(
        seeds=args.seeds, max_seeds=args.max_seeds, round_size=args.round_size, margin=args.margin,
        epochs=args.epochs, threads=args.threads, bootstrap=args.bootstrap, prefix="--")


def print_report(report: RetrainReport) -> None:
    """The decision and where things went, on standard output."""
    summary = report.summary
    print(f"re-trained trial {report.student['trial_id']} (KD) and "
          f"{report.baseline['trial_id'] or 'CE at its hyperparameters'} (CE-only baseline) on "
          f"fresh seeds {report.seeds} ({len(report.looks)} look(s), {report.execution}) in "
          f"{report.seconds:.0f} s")
    for model in ("student", "baseline"):
        print(f"  {model:>8}: test macro-F1 {pm(summary[model]['test_macro_f1'])}, "
              f"accuracy {pm(summary[model]['test_accuracy'])}")
    rep = report.reproduction
    if rep["checked"]:
        print(f"  reproduction: val macro-F1 {rep['retrained_val_macro_f1']:.4f} vs "
              f"{rep['trial_val_macro_f1']:.4f} recorded ({100 * rep['difference']:+.2f} points)")
    print(f"  decision: {report.verdict['kind']}. {report.verdict['text']}")
    if report.versus_self_training:
        print(f"  KD vs self-training: {report.versus_self_training['kind']}. "
              f"{report.versus_self_training['text']}")
    print(f"  ship: {report.ship['model']} ({report.ship['reason']}): "
          f"{report.experiment}/{report.model['dir']}")
    print(f"  results: {report.experiment}/{R.RETRAIN}")


def refresh_report(experiment: str) -> None:
    """Render the experiment's report again, now with the retrain's decision, when the search
    wrote one (a search run with ``--no-report`` gets none here either)."""
    from kdtune.record import Record

    if not Record(experiment).store.is_file("report.md"):
        return
    from kdtune import report

    path = report.render_after_results(experiment)
    if path is not None:
        print(f"  report: {path}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0, 1 when --check-reproduction fails, 2 on bad input."""
    from kdtune.retrain.options import retrain as retrain_experiment

    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        check_args(args)
        report = retrain_experiment(args.experiment, seeds=args.seeds, max_seeds=args.max_seeds,
                                    round_size=args.round_size, margin=args.margin,
                                    spending=args.spending, trial=args.trial,
                                    baseline_trial=args.baseline_trial, epochs=args.epochs,
                                    bootstrap=args.bootstrap, threads=args.threads,
                                    check_reproduction=args.check_reproduction,
                                    sequential=args.sequential, sets=parse_sets(args.sets))
    except ConfigError as exc:
        return fail(PROG, exc)
    print_report(report)
    if not args.no_report:
        refresh_report(args.experiment)
    rep = report.reproduction
    if args.check_reproduction and not rep["within_tolerance"]:
        print(f"{PROG}: error: reproduction: trial {rep['trial_id']} was not reproduced within "
              f"{100 * REPRODUCTION_TOLERANCE:.1f} points ({rep['note'] or 'see retrain.json'})",
              file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    return 0
