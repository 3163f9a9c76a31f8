"""Where the report's files go: ``report.md``, ``report.html`` and ``report/`` (PNGs and CSVs).

They are written into the experiment's local folder (``Experiment.dir``: the experiment itself,
or the working copy of a record on object storage); for a remote record they are uploaded
beside the results afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from kdtune.files import atomic_write_text
from kdtune.record import Experiment
from kdtune.record import record as R
from kdtune.record.store import storage_error

log = logging.getLogger("kdtune.report")


class Outputs:
    """The report's files of one experiment."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.base = exp.dir
        self.dir = exp.dir / R.REPORT_DIR

    def prepare(self) -> None:
        """Create ``report/`` and remove the previous run's plots (a plot may not be drawn now)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.png"):
            stale.unlink()

    def path(self, name: str) -> Path:
        """``report/<name>``."""
        return self.dir / name

    def csv(self, name: str, frame: pd.DataFrame) -> Path:
        """Write ``report/<name>`` (a CSV of what a table shows)."""
        path = self.path(name)
        atomic_write_text(path, frame.to_csv(index=False))
        return path

    def finish(self, markdown: str, page: str) -> Path:
        """Write ``report.md`` and ``report.html`` (uploading everything for a remote record)."""
        atomic_write_text(self.base / R.REPORT_MD, markdown)
        html_path = self.base / R.REPORT_HTML
        atomic_write_text(html_path, page)
        if self.exp.record.store.remote:
            self.upload()
        return html_path

    def upload(self) -> None:
        """Copy the report beside a remote record's results (one-line error if storage fails)."""
        store = self.exp.record.store
        try:
            kept = {p.name for p in self.dir.iterdir()}
            for name in store.listdir(R.REPORT_DIR):  # no stale plot of an earlier report stays
                if name not in kept:
                    store.delete(f"{R.REPORT_DIR}/{name}")
            for name in (R.REPORT_MD, R.REPORT_HTML, R.REPORT_DIR):
                store.upload(self.base / name, name)
        except OSError as exc:
            raise storage_error(exc, store.root, "experiment") from None
        log.info("report uploaded to %s", store.uri(R.REPORT_HTML))
