"""``python -m kdtune.report results/<experiment>``: argument parsing and the render orchestration."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from kdtune.cli import ArgumentParser, fail
from kdtune.errors import ConfigError
from kdtune.record import load_experiment
from kdtune.report.document import Doc
from kdtune.report.facts import facts
from kdtune.report.outputs import Outputs
from kdtune.report.plot_sections import plot_sections
from kdtune.report.record_sections import export_section, ranking_section, retrain_section
from kdtune.report.sections import efficiency_section, leaderboard_section, model_sections, pareto_section
from kdtune.report.verdict_inputs import verdict

log = logging.getLogger("kdtune.report")

PROG = "kdtune.report"
DESCRIPTION = ("Render report.md and a self-contained report.html for a kdtune experiment (a "
               "folder or a storage URI).")


def render(root: str | Path, *, top: int = 10, efficiency: bool = True,
           remeasure: bool = False) -> Path:
    """Write ``report.md``, ``report.html`` and ``report/``; returns the local HTML path.

    Raises :class:`~kdtune.errors.ConfigError` (one line) when ``root`` is not an experiment.
    """
    exp = load_experiment(root)
    out = Outputs(exp)
    out.prepare()
    doc = Doc(out.base)
    doc.heading(f"kdtune report: `{exp.cfg.name}`", 1)
    doc.bullets(facts(exp))
    doc.heading("Verdict (provisional)")
    for p in verdict(exp, top):
        doc.para(p)
    leaderboard_section(doc, exp, out, top)
    ranking_section(doc, exp, out)
    pareto_section(doc, exp, out)
    model_sections(doc, exp, out)
    efficiency_section(doc, exp, out, efficiency, remeasure)
    export_section(doc, exp)
    plot_sections(doc, exp, out, top)
    retrain_section(doc, exp)
    html_path = out.finish(doc.render_md(), doc.render_html(f"kdtune report: {exp.cfg.name}"))
    log.info("report written: %s", html_path)
    return html_path


def render_after_results(root: str | Path) -> Path | None:
    """:func:`render` at the end of a command whose results are already written (a search, a
    retrain): a failure is logged with the command that retries it, never raised."""
    try:
        return render(root)
    except Exception:  # noqa: BLE001 - the results files are written; keep them visible
        log.exception("could not render the report; run python -m kdtune.report %s", root)
        return None


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("experiment", help="experiment folder or URI, e.g. results/alpha_temp")
    p.add_argument("--top", type=int, default=10, help="trials in the leaderboard (default 10)")
    p.add_argument("--no-efficiency", action="store_true",
                   help="do not load the models to measure latency and throughput")
    p.add_argument("--remeasure", action="store_true",
                   help="measure efficiency again instead of reusing report/efficiency.csv")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.top < 1:
        return fail(PROG, "--top must be >= 1")
    try:
        html_path = render(args.experiment, top=args.top, efficiency=not args.no_efficiency,
                           remeasure=args.remeasure)
    except ConfigError as exc:
        return fail(PROG, exc)
    base = html_path.parent
    print(f"report: {base / 'report.md'}")
    print(f"        {html_path}")
    print(f"        {base / 'report'}/ (plots and tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
