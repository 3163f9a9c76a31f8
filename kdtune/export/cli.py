"""``python -m kdtune.export EXPERIMENT_DIR``: arguments, the cheap checks, the run, the output.

Every check that needs no model (folders, ``--threads``, onnx installed, the hub token) runs
before anything expensive; bad input ends in one ``kdtune.export: error: <field>: ...`` line on
stderr and exit code 2. The result table of each source is printed on stdout.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtune.cli import ArgumentParser, fail
from kdtune.errors import ConfigError, check
from kdtune.export import hub, onnx_files
from kdtune.export.inputs import SOURCES, check_experiment, check_labels, experiment_inputs, source_dirs

if TYPE_CHECKING:  # torch and transformers are imported after the cheap checks
    from kdtune.export.source import Options

log = logging.getLogger("kdtune.export")

PROG = "kdtune.export"
DESCRIPTION = ("Export a kdtune experiment's student to ONNX (fp32, int8) and check every artefact "
               "against the torch model on the held-out test split (agreement, macro-F1, latency).")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("experiment", help="results/<experiment>: the folder a search wrote")
    p.add_argument("--onnx", action="store_true", help="export fp32 ONNX (opset 18, torch.onnx dynamo)")
    p.add_argument("--int8", action="store_true",
                   help="also quantise it to dynamic int8 with onnxruntime (implies --onnx)")
    p.add_argument("--source", choices=[*SOURCES, "all"], default="all",
                   help="models/distilled, retrain/model, or all that exist (default)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for timing torch and onnxruntime (default 1)")
    p.add_argument("--push-to-hub", metavar="REPO", default=None,
                   help="upload the model folder, its ONNX files and card to this hub repo")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> dict[str, Path]:
    """The cheap checks, in order; returns ``{source: model folder}``."""
    check(args.threads >= 1, "--threads", f"must be >= 1, got {args.threads}")
    exp_dir = Path(args.experiment)
    check_experiment(exp_dir)
    dirs = source_dirs(exp_dir, args.source)
    if args.onnx or args.int8:
        onnx_files.check_installed()
    if args.push_to_hub is not None:
        _check_repo(args.push_to_hub)
        check(len(dirs) == 1, "--push-to-hub", f"pushes one model but {' and '.join(dirs)} were "
              "found; add --source distilled or --source retrained")
        hub.check_token()
    return dirs


def _check_repo(repo: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise ConfigError("--push-to-hub", f"{repo!r} is not a repo id ({exc}); give "
                          "<user-or-org>/<name>") from None


def run_export(exp_dir: Path, dirs: dict[str, Path], options: Options,
               push_to: str | None = None) -> list[dict[str, Any]]:
    """Export every source folder; returns their ``export.json`` documents."""
    from kdtune.export.source import TestSplit, export_source

    cfg, label_names, texts, labels = experiment_inputs(exp_dir)
    for model_dir in dirs.values():
        check_labels(model_dir, label_names)
    split = TestSplit(cfg.name, label_names, texts, labels, cfg.data.max_length)
    docs = [export_source(source, model_dir, exp_dir, split, options)
            for source, model_dir in dirs.items()]
    if push_to is not None:
        (source, model_dir), = dirs.items()
        url = hub.push(push_to, model_dir, exp_dir / "export" / source)
        log.info("pushed %s to %s (%s)", model_dir, push_to, url)
    return docs


def _setup_logging(verbose: bool) -> None:
    """kdtune's INFO (or DEBUG) lines; other libraries (onnxruntime logs to root) warnings only."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kdtune").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0 on success, 2 on bad input."""
    args = parse_args(argv)
    try:
        dirs = check_args(args)
        _setup_logging(args.verbose)
        from kdtune.export.source import Options
        from kdtune.latency import Protocol

        options = Options(onnx=args.onnx or args.int8, int8=args.int8,
                          protocol=Protocol(threads=args.threads))
        docs = run_export(Path(args.experiment), dirs, options, args.push_to_hub)
    except ConfigError as exc:
        return fail(PROG, exc)
    from kdtune.export.table import markdown_table

    for doc in docs:
        print(f"\n{doc['source']} ({doc['model_dir']}), {doc['test_rows']} test rows:\n")
        print(markdown_table(doc["rows"]))
        print(f"\n{doc['target']['line']}\nwritten: {doc['export_dir']}/export.json, export.md")
    return 0
