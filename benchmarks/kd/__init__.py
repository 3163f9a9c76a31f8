"""``bench_kd``: kdtune against the seed-style KD loop, and kdtune's Ray Tune machinery.

One module per row, each printing both measurements, their ratio (kdtune / reference), the
target and PASS/FAIL: :mod:`~benchmarks.kd.row_epoch` (rows 1-2, KD epoch vs the seed-style
loop and vs CE-only), :mod:`~benchmarks.kd.row_asha` (row 3, ASHA vs running every trial to
completion), :mod:`~benchmarks.kd.row_overhead` (row 4, Ray's overhead on a trial) and
:mod:`~benchmarks.kd.row_memory` (row 5, a trial's memory vs a process with the teacher),
:mod:`~benchmarks.kd.row_trainer` (row 6, kdtune's CE and KD epochs vs ``transformers.Trainer``
as users run it, :mod:`~benchmarks.kd.hf_trainer`) and :mod:`~benchmarks.kd.row_utilisation`
(row 7, the training step's GFLOP/s vs plain matmuls, :mod:`~benchmarks.kd.flops`, and where
its time goes, :mod:`~benchmarks.kd.step_profile`);
:mod:`~benchmarks.kd.context` derives the config from a shipped space and prepares the data,
:mod:`~benchmarks.kd.main` runs the rows.
"""
