"""Shared CLI plumbing: argparse errors and bad input end in one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any

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


def add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="override one setting, dotted (train.epochs=1, search.strategy=grid); "
                        "the value is read as YAML and checked by the config's own validation; "
                        "repeatable")


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=1", ...]`` as ``{"train.epochs": 1}`` (values read as YAML scalars)."""
    import yaml

    from kdtune.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError("--set", f"expected KEY=VALUE with a dotted key such as "
                              f"train.epochs=1, got {item!r}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}", f"cannot read {text!r} as a value") from None
    return out
