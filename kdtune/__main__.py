"""``kdtune`` (console script) and ``python -m kdtune``: one command with four subcommands.

``kdtune search|report|retrain|export ...`` runs ``python -m kdtune.<subcommand> ...`` with the
same arguments; ``kdtune --version`` prints the version.
"""

from __future__ import annotations

import sys

from kdtune.cli import EXIT_BAD_INPUT
from kdtune.version import __version__

SUBCOMMANDS = {
    "search": "search a space (kdtune search --space search_spaces/alpha_temp.yaml)",
    "report": "render an experiment's report (kdtune report results/<experiment>)",
    "retrain": "decide KD vs tuned CE on fresh seeds, save the model to ship",
    "export": "ONNX / int8 export with agreement and latency checks",
}


def usage() -> str:
    lines = [f"usage: kdtune {{{','.join(SUBCOMMANDS)}}} ... | kdtune --version", "",
             "Tune knowledge distillation of transformer text classifiers.", ""]
    lines += [f"  {name:<8} {what}" for name, what in SUBCOMMANDS.items()]
    lines += ["", "kdtune <subcommand> --help shows its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import importlib

    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else EXIT_BAD_INPUT
    if args[0] == "--version":
        print(f"kdtune {__version__}")
        return 0
    if args[0] not in SUBCOMMANDS:
        print(f"kdtune: error: unknown subcommand {args[0]!r}; one of {', '.join(SUBCOMMANDS)} "
              "(see kdtune --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    module = importlib.import_module(f"kdtune.{args[0]}.cli")
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
