"""Shared CLI plumbing: argparse errors and bad input end in one line and exit code 2."""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line (``prog: error: ...``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, message: object) -> int:
    """Print ``prog: error: message`` on one line to stderr and return exit code 2."""
    text = " ".join(str(message).split())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return EXIT_BAD_INPUT
