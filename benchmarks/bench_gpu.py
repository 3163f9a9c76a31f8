"""kdtune's one-shot GPU check: correctness first, then kdtune against the seed's loop.

``PYTHONPATH=. python benchmarks/bench_gpu.py --out DIR`` on a CUDA machine (one run of at
most 5 minutes: a hard 240 s deadline, then a watchdog); ``--device cpu --tiny`` runs every
row that does not need CUDA with tiny models in seconds (the test does). Needs torch, numpy and
transformers only: no Ray, Optuna, scikit-learn, pandas, datasets, data files or downloads
(models are randomly initialised from their configs, token lengths drawn like AG News's).

Rows (written to ``DIR/bench_gpu.md`` and ``.json`` as each finishes; the code is in
``benchmarks/gpu/``):

1. correctness: (a) host syncs per training step, (b) a checkpoint round trip, (c) feature KD
   with caches on ``cuda``, ``cuda:0`` and the host, (d) ``latency.measure_torch`` on CUDA,
   (e) teacher hidden states on CUDA, (f) bf16 vs fp32 teacher logits, (g) the KD loss over
   the same 50 steps in bf16 and fp32;
2. one student epoch, seed-style in fp32 and in bf16 autocast vs kdtune's Trainer, for a
   MiniLM pair and for DistilBERT-base / BERT-base, with tokens/s and achieved TFLOP/s;
3. caching teacher logits (BERT-base), seed-style fp32 and bf16 vs kdtune;
4. trials per hour of a DistilBERT-base trial with 1, 4 and 8 concurrent processes;
5. peak memory per trial, utilisation, GPU memory per trial process.

A row without a measurement reads ``n/a (no CUDA)``, ``n/a (deadline)`` or ``n/a (error)``
with its reason; the run exits 0 whatever the rows say, and 2 on bad arguments.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing is downloaded

if __package__ in (None, ""):  # run as a file: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))



def main(argv: list[str] | None = None) -> int:
    """The check's command line (:func:`benchmarks.gpu.runner.main`), imported only here: the
    spawned trial processes import this file as their ``__mp_main__`` and need none of it."""
    from benchmarks.gpu.runner import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
