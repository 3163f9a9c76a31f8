"""The one error type for bad input: a single line naming the field and the fix (exit code 2)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; ``str(err)`` is one line naming the field and the fix."""

    def __init__(self, field_name: str, message: str):
        # One line whatever the input held: keys and values from a file may contain newlines.
        self.field = " ".join(str(field_name).split()) or repr(field_name)
        super().__init__(f"{self.field}: {' '.join(str(message).split())}")


def check(cond: bool, field_name: str, message: str) -> None:
    """Raise :class:`ConfigError` unless ``cond``."""
    if not cond:
        raise ConfigError(field_name, message)


class SearchInterrupted(RuntimeError):
    """A search stopped before it finished (Ctrl-C, a kill); every finished trial is kept.

    ``root`` is the experiment, which ``python -m kdtune.search --resume <root>`` continues.
    """

    def __init__(self, root: str, reason: str = ""):
        self.root = root
        why = f" ({reason})" if reason else ""
        super().__init__(f"search interrupted{why}; finished trials are kept; resume it with "
                         f"python -m kdtune.search --resume {root}")
