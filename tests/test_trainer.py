"""The trainer's evaluation schedule: rungs inside epochs and the size of their subset."""

from __future__ import annotations


def test_rung_subset_is_sized_to_a_tenth_of_the_epoch():
    """Hand-computed: k extra evaluations of m rows cost k * m * 0.5 / n_train of an epoch."""
    from kdtune.trainer import evaluation_points, intermediate_rows

    assert intermediate_rows(1200, 400, 2, 4) == 240  # 0.1 * 1200 / (0.5 * 1)
    assert intermediate_rows(1200, 400, 4, 4) == 80  # 0.1 * 1200 / (0.5 * 3)
    assert intermediate_rows(1200, 100, 2, 4) == 100  # never more than the split
    assert intermediate_rows(160, 80, 2, 4) == 32  # at least 8 rows per class
    assert intermediate_rows(1200, 400, 1, 4) == 0  # one evaluation per epoch: the whole split
    assert evaluation_points(38, 2) == [19, 38]
    assert evaluation_points(5, 4) == [1, 2, 4, 5]
