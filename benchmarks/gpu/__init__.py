"""The one-shot GPU check behind ``benchmarks/bench_gpu.py``, one concern per module.

* :mod:`~benchmarks.gpu.shapes`: the models (random weights from configs), AG News-like
  synthetic rows, FLOP counts from model shapes;
* :mod:`~benchmarks.gpu.probes`: what is measured beside time: host syncs, peak memory,
  utilisation, per-process GPU memory, TF32 settings;
* :mod:`~benchmarks.gpu.checks`: result rows that can read ``n/a`` with a reason;
* :mod:`~benchmarks.gpu.deadline`: the hard overall deadline (an alarm, then a watchdog);
* :mod:`~benchmarks.gpu.correctness`, :mod:`~benchmarks.gpu.hidden`: the correctness rows;
* :mod:`~benchmarks.gpu.epochs`, :mod:`~benchmarks.gpu.concurrency`,
  :mod:`~benchmarks.gpu.resources`: the performance rows;
* :mod:`~benchmarks.gpu.runner`: the plan of rows, the command line, the files written.

Everything imports torch, numpy, transformers (and safetensors, which transformers needs) and
the parts of kdtune that need nothing else: the GPU machine has no Ray, Optuna, pandas,
scikit-learn or datasets.
"""
