"""``python -m kdtune.report results/<experiment>``: argument parsing and the render orchestration."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from kdtune.cli import ArgumentParser, fail
from kdtune.files import atomic_write_text
from kdtune.report.document import Doc
from kdtune.report.experiment import ReportError, load_experiment
from kdtune.report.sections import (
    efficiency_section,
    facts,
    leaderboard_section,
    model_sections,
    pareto_section,
    plot_sections,
    retrain_section,
)
from kdtune.report.verdict import verdict

log = logging.getLogger("kdtune.report")

PROG = "kdtune.report"
DESCRIPTION = "CLI: ``python -m kdtune.report results/<experiment>``: the report a practitioner reads."


def render(exp_dir: Path, *, top: int = 10, efficiency: bool = True,
           remeasure: bool = False) -> Path:
    """Write ``report.md``, ``report.html`` and ``report/`` for an experiment; returns the HTML path."""
    exp_dir = Path(exp_dir)
    exp = load_experiment(exp_dir)
    out = exp_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):
        stale.unlink()
    doc = Doc(exp_dir)
    doc.heading(f"kdtune report: `{exp.cfg.name}`", 1)
    doc.bullets(facts(exp))
    doc.heading("Verdict")
    for p in verdict(exp, top):
        doc.para(p)
    leaderboard_section(doc, exp, out, top)
    pareto_section(doc, exp, out)
    model_sections(doc, exp, out)
    efficiency_section(doc, exp, out, efficiency, remeasure)
    plot_sections(doc, exp, out, top)
    retrain_section(doc, exp)
    atomic_write_text(exp_dir / "report.md", doc.render_md())
    html_path = exp_dir / "report.html"
    atomic_write_text(html_path, doc.render_html(f"kdtune report: {exp.cfg.name}"))
    log.info("report written: %s", html_path)
    return html_path


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("experiment", help="experiment folder, e.g. results/alpha_temp")
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
        html_path = render(Path(args.experiment), top=args.top, efficiency=not args.no_efficiency,
                           remeasure=args.remeasure)
    except ReportError as exc:
        return fail(PROG, exc)
    exp_dir = html_path.parent
    print(f"report: {exp_dir / 'report.md'}")
    print(f"        {html_path}")
    print(f"        {exp_dir / 'report'}/ (plots and tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
