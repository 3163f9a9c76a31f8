"""kdtune's benchmarks: ``python -m benchmarks.bench_kd`` (CPU, the whole package against the
seed-style loop) and ``python benchmarks/bench_gpu.py`` (GPU throughput, torch + transformers
only). Shared: :mod:`benchmarks.common` (rows, table, files) and :mod:`benchmarks.reference`
(the seed-style reference loop)."""
