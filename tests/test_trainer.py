"""The trainer's evaluation schedule: rungs inside epochs and the size of their subset."""

from __future__ import annotations

import pytest


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


def _rung(progress: float, f1: float, full: bool):
    from kdtune.trainer import RungMetrics

    return RungMetrics(progress=progress, epoch=int(progress + 0.999), step=int(10 * progress),
                       loss=0.0, ce_loss=0.0, kd_loss=0.0, kd_ce_ratio=0.0, feature_loss=0.0,
                       train_accuracy=0.0, val_accuracy=f1, val_macro_f1=f1, val_loss=1.0 - f1,
                       val_rows=400 if full else 240, full_val=full)


class _Holder:
    """What KeepBest reads of a trainer: its model's weights."""

    def __init__(self) -> None:
        import torch

        self.model = torch.nn.Linear(2, 2)


def test_keep_best_never_selects_a_subset_score():
    """The quickstart's teacher: a mid-epoch subset score (0.9091 at 1.5 epochs) above both
    whole-split ones (0.8782, 0.8905) must not choose the weights; the best whole-split epoch
    does. (The teacher stage kept the subset's weights before, scoring 0.89215.)"""
    import torch

    from kdtune.trainer import KeepBest

    keep, holder = KeepBest("val_macro_f1", "max"), _Holder()
    for progress, f1, full in ((0.5, 0.80, False), (1.0, 0.8782, True), (1.5, 0.9091, False),
                               (2.0, 0.8905, True)):
        with torch.no_grad():
            holder.model.weight.fill_(progress)  # weights tell which evaluation was kept
        keep(_rung(progress, f1, full), holder)
    assert keep.score == 0.8905 and keep.progress == 2.0 and keep.epoch == 2
    assert float(keep.state["weight"][0, 0]) == 2.0
    low = KeepBest("val_loss", "min")  # a loss is minimised
    for progress, f1, full in ((1.0, 0.80, True), (1.5, 0.99, False), (2.0, 0.70, True)):
        low(_rung(progress, f1, full), holder)
    assert low.progress == 1.0 and low.score == pytest.approx(0.2)


def test_teacher_stage_selects_with_keep_best():
    """The teacher's fine-tuning and the retrain's runs share the one whole-split rule."""
    import inspect

    from kdtune import teacher
    from kdtune.retrain import runs

    assert "KeepBest(" in inspect.getsource(teacher._fine_tune_once)
    assert "KeepBest(" in inspect.getsource(runs.train_run)


def test_the_optimiser_is_fused_adamw_with_the_same_update():
    """The fused AdamW kernel on CPU (one pass over all parameters; 4.8x cheaper per step on the
    quickstart's student) gives AdamW's update: one step matches torch's reference loop, whose
    first step moves each weight by lr * sign(grad) (bias-corrected moments: m / sqrt(v) =
    g / |g|) plus the decoupled decay lr * wd * w."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from kdtune.batches import Encoded
    from kdtune.params import TrainParams
    from kdtune.trainer import Trainer

    data = Encoded(np.arange(8, dtype=np.int32) + 1, np.arange(0, 9, 2), np.array([0, 1] * 2), 0)
    config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    trainer = Trainer(model, data, data, TrainParams(epochs=1, batch_size=4, alpha=1.0,
                                                     learning_rate=1e-3, weight_decay=0.01),
                      ["x", "y"], device=torch.device("cpu"))
    assert trainer.optimizer.defaults["fused"] is True
    w = model.classifier.weight
    before = w.detach().clone()
    w.grad = torch.full_like(w, -0.5)
    for other in model.parameters():
        if other is not w:
            other.grad = None
    lr = trainer.optimizer.param_groups[0]["lr"]
    trainer.optimizer.step()
    expected = before * (1 - lr * 0.01) + lr  # grad < 0: +lr; eps is negligible at |g| = 0.5
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-7)
