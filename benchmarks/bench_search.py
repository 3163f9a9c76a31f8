"""Tabular benchmark of kdtune's search: ``python -m benchmarks.bench_search [--quick|--build|--live]``.

Also runs as ``python benchmarks/bench_search.py --quick``. The code is in benchmarks/search/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.search.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
