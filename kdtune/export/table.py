"""The export result table, the size/speed target and the ``export.json`` / ``export.md`` files.

One row per artefact (torch fp32, ONNX fp32, ONNX int8) with the columns of :data:`COLUMNS`;
the same markdown rendering goes to ``export.md``, to stdout and into the model card. The target
is stated once (:data:`TARGET`): int8 ONNX at least 2x faster than fp32 torch at batch 1 on the
CPU while losing at most 0.5 points of test macro-F1.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtune.latency import Protocol

TARGET = "int8 ONNX at least 2x faster than fp32 torch on CPU, losing at most 0.5 points of macro-F1"
MIN_SPEEDUP = 2.0
MAX_F1_LOSS_POINTS = 0.5
INT8 = "onnx int8"

# (row key, column header, format); "{batch}" is the throughput batch size
COLUMNS = [
    ("artefact", "artefact", "{}"),
    ("size_mb", "file size MB", "{:.1f}"),
    ("agreement_pct", "agreement %", "{:.1f}"),
    ("macro_f1", "test macro-F1", "{:.4f}"),
    ("delta_f1_points", "ΔF1 (points)", "{:+.2f}"),
    ("latency_ms", "latency ms (batch 1)", "{:.2f}"),
    ("throughput", "throughput ex/s (batch {batch})", "{:.0f}"),
    ("speedup", "speed-up vs torch", "{:.2f}x"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return fmt.format(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table (the columns of :data:`COLUMNS`)."""
    batch = rows[0].get("throughput_batch", 32) if rows else 32
    header = [title.format(batch=batch) for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(r.get(key), fmt) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def target(rows: list[dict[str, Any]], protocol: Protocol) -> dict[str, Any]:
    """Whether the int8 row meets :data:`TARGET`; ``passed`` is None without an int8 row."""
    out: dict[str, Any] = {"text": TARGET, "min_speedup": MIN_SPEEDUP,
                           "max_f1_loss_points": MAX_F1_LOSS_POINTS, "passed": None}
    row = next((r for r in rows if r["artefact"] == INT8), None)
    if row is None:
        out["line"] = f"Target: {TARGET}: not evaluated (run with --int8)."
        return out
    speed, delta = row["speedup"], row["delta_f1_points"]
    fast = speed is not None and speed >= MIN_SPEEDUP
    kept = delta >= -MAX_F1_LOSS_POINTS
    out.update(passed=fast and kept, speedup=speed, delta_f1_points=delta)
    verdict = "PASS" if fast and kept else "FAIL"
    out["line"] = (f"Target: {TARGET}: **{verdict}**: int8 ONNX is {_cell(speed, '{:.2f}x')} "
                   f"{'faster' if fast else 'faster (needs 2x)'} than fp32 torch at batch 1 on "
                   f"{protocol.threads} thread(s), ΔF1 {delta:+.2f} points"
                   f"{'' if kept else ' (more than 0.5 lost)'}.")
    return out


def environment() -> dict[str, Any]:
    """Versions and machine the numbers were measured with."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            **versions}


def document(meta: dict[str, Any], rows: list[dict[str, Any]], protocol: Protocol) -> dict[str, Any]:
    """The content of ``export.json``: ``meta`` (source, folders, test rows), rows, target."""
    return {**meta, "protocol": asdict(protocol), "environment": environment(), "rows": rows,
            "target": target(rows, protocol)}


def markdown(doc: dict[str, Any]) -> str:
    """The content of ``export.md``: the same numbers as ``export.json``."""
    p, env = doc["protocol"], doc["environment"]
    timed = max(0, min(doc["test_rows"] // p["throughput_batch"], p["throughput_batches"] + 1) - 1)
    return "\n".join([
        f"# Export of the {doc['source']} student of `{doc['experiment']}`", "",
        f"Model `{doc['model_dir']}`, checked on the held-out test split ({doc['test_rows']} rows): "
        "agreement is the share of predictions equal to the torch model's.", "",
        markdown_table(doc["rows"]), "",
        doc["target"]["line"], "",
        f"Latency protocol (kdtune.latency): median of {p['examples']} single rows after "
        f"{p['warmup']} warm-up calls; throughput over {timed} timed batch(es) of "
        f"{p['throughput_batch']} after one untimed; {p['threads']} thread(s); tokenisation excluded.",
        f"Environment: {env['cpu']} ({env['cpu_count']} CPUs), python {env['python']}, torch "
        f"{env['torch']}, onnxruntime {env['onnxruntime']}.", ""])


def write(folder: Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``export.json`` and ``export.md`` into ``folder``."""
    from kdtune.files import atomic_write_text

    js, md_path = folder / "export.json", folder / "export.md"
    atomic_write_text(js, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(md_path, markdown(doc))
    return js, md_path
