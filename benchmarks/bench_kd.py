"""Ratio benchmarks of kdtune: ``python -m benchmarks.bench_kd [--quick|--full|--tiny] [--device cpu|cuda]
[--out DIR] [--rows N,...] [--data PATH] [--teacher-model NAME]`` (or ``python
benchmarks/bench_kd.py ...``). The rows live in :mod:`benchmarks.kd`, one module each."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kd.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
