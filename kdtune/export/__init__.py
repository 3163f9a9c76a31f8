"""``python -m kdtune.export EXPERIMENT_DIR``: ONNX / int8 export of a kdtune student, checked.

The exported students of an experiment (``models/distilled/`` and ``retrain/model/``) are
exported to fp32 ONNX and dynamically quantised to int8; every artefact is compared with the
torch model on the held-out test split (prediction agreement, macro-F1) and timed with the
one latency protocol of :mod:`kdtune.latency`. Modules:

* :mod:`kdtune.export.inputs`: the only place that reads the experiment folder;
* :mod:`kdtune.export.onnx_files`: ``torch.onnx.export``, int8 quantisation, onnxruntime sessions;
* :mod:`kdtune.export.agreement`: predictions, agreement, macro-F1 and timing of one artefact;
* :mod:`kdtune.export.table`: the result table, the size/speed target, ``export.json`` / ``.md``;
* :mod:`kdtune.export.source`: one source folder end to end (and its model card);
* :mod:`kdtune.export.hub`: ``--push-to-hub``;
* :mod:`kdtune.export.cli`: the command line (``main``).

Heavy libraries (torch, transformers, onnx, onnxruntime) are imported only when needed, so bad
input fails fast.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The command line (:func:`kdtune.export.cli.main`), imported on first use."""
    from kdtune.export.cli import main as cli_main

    return cli_main(argv)
