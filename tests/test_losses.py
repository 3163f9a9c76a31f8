"""Hand-computed checks of the KD loss."""

import math

import pytest
import torch

from kdtune.losses import kd_loss


def test_alpha_one_is_plain_cross_entropy():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = torch.tensor([[0.0, 3.0, 0.0], [1.0, 1.0, 5.0]])
    y = torch.tensor([0, 2])
    parts = kd_loss(s, t, y, alpha=1.0, temperature=4.0)
    assert torch.allclose(parts.loss, torch.nn.functional.cross_entropy(s, y))
    assert parts.kd > 0  # still measured for monitoring


def test_identical_logits_give_zero_kd():
    s = torch.tensor([[1.0, -2.0, 0.5]])
    parts = kd_loss(s, s.clone(), torch.tensor([1]), alpha=0.3, temperature=2.5)
    assert parts.kd.item() == pytest.approx(0.0, abs=1e-7)
    assert parts.loss.item() == pytest.approx(0.3 * parts.ce.item(), rel=1e-5)


def test_hand_computed_value_with_t_squared():
    # Two classes, student logits (0, 0) -> q = (0.5, 0.5); teacher (ln 3, 0) at T = 1 -> p = (.75, .25)
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    y = torch.tensor([0])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    one = kd_loss(s, t, y, alpha=0.0, temperature=1.0)
    assert one.kd.item() == pytest.approx(kl, rel=1e-5)
    assert one.ce.item() == pytest.approx(math.log(2.0), rel=1e-5)
    # At T = 2 the teacher softens to softmax((ln 3)/2, 0) = (sqrt3/(1+sqrt3), 1/(1+sqrt3)); x T^2 = 4.
    p = math.sqrt(3) / (1 + math.sqrt(3))
    kl2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    two = kd_loss(s, t, y, alpha=0.25, temperature=2.0)
    assert two.kd.item() == pytest.approx(4.0 * kl2, rel=1e-5)
    assert two.loss.item() == pytest.approx(0.25 * math.log(2) + 0.75 * 4.0 * kl2, rel=1e-5)


def test_batchmean_reduction_and_no_teacher_gradient():
    s = torch.randn(5, 4, requires_grad=True)
    t = torch.randn(5, 4, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    parts = kd_loss(s, t, y, alpha=0.5, temperature=3.0)
    single = [kd_loss(s[i:i + 1], t[i:i + 1], y[i:i + 1], 0.5, 3.0).kd for i in range(5)]
    assert parts.kd.item() == pytest.approx(torch.stack(single).mean().item(), rel=1e-5)
    parts.loss.backward()
    assert s.grad is not None and t.grad is None


def test_fixed_seed_regression_value():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    parts = kd_loss(s, t, y, alpha=0.7, temperature=3.0)
    # Stored from the first run of this implementation (torch 2.13, CPU).
    assert parts.loss.item() == pytest.approx(REGRESSION_LOSS, rel=1e-5)


@pytest.mark.parametrize("alpha,temperature", [(-0.1, 1.0), (1.1, 1.0), (0.5, 0.0), (0.5, -2.0)])
def test_rejects_bad_hyperparameters(alpha, temperature):
    with pytest.raises(ValueError):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), alpha, temperature)


REGRESSION_LOSS = 1.354098916053772



def test_logit_mse_hand_computed_and_registered():
    from kdtune.losses import LOGIT_LOSSES, logit_loss, logit_mse_loss

    # student (0, 0), teacher (ln 3, 0): MSE = (ln 3)^2 / 2 = 1.0986123^2 / 2 = 0.6034745
    # CE of (0, 0) with label 0 = ln 2 = 0.6931472; alpha 0.25: 0.25 * 0.6931472 + 0.75 * 0.6034745
    # = 0.1732868 + 0.4526059 = 0.6258927 (temperature plays no part)
    s, t, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([0])
    for temperature in (1.0, 7.0):
        parts = logit_mse_loss(s, t, y, alpha=0.25, temperature=temperature)
        assert parts.kd.item() == pytest.approx(0.6034745, abs=1e-6)
        assert parts.loss.item() == pytest.approx(0.6258927, abs=1e-6)
    assert LOGIT_LOSSES["kl"] is kd_loss and logit_loss("mse") is logit_mse_loss
    with pytest.raises(ValueError, match="unknown logit loss 'nope'"):
        logit_loss("nope")


def test_a_registered_loss_is_a_valid_config_value():
    """Registering is all it takes: the config accepts the name, the trainer uses the function."""
    from kdtune.errors import ConfigError
    from kdtune.losses import LOGIT_LOSSES, register_logit_loss
    from kdtune.params import TrainParams

    with pytest.raises(ConfigError, match="train.logit_loss: must be one of 'kl', 'mse'"):
        TrainParams(logit_loss="half_kl")

    @register_logit_loss("half_kl")
    def half_kl(student, teacher, labels, alpha, temperature):
        parts = kd_loss(student, teacher, labels, alpha, temperature)
        return parts._replace(loss=0.5 * parts.loss)

    try:
        assert TrainParams(logit_loss="half_kl").logit_loss == "half_kl"
    finally:
        del LOGIT_LOSSES["half_kl"]
