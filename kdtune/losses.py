"""The knowledge-distillation loss, as a pure function."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class KDLossParts(NamedTuple):
    loss: torch.Tensor  # the combined loss that is back-propagated
    ce: torch.Tensor  # cross-entropy with the hard labels
    kd: torch.Tensor  # T^2-scaled KL divergence to the teacher's softened distribution


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            alpha: float, temperature: float) -> KDLossParts:
    """Response-based KD loss (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network").

    ``loss = alpha * CE(student, labels)
             + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))``

    The KL term uses ``reduction='batchmean'`` (the mathematically correct mean over examples) and
    is multiplied by ``T^2`` so its gradients keep their scale as ``T`` changes, exactly as the
    seed report and torchdistill's ``KDLoss`` (``torchdistill/losses/mid_level.py``) do.
    ``alpha = 1`` gives plain cross-entropy; the teacher logits carry no gradient.

    Returns the combined loss and, for monitoring, the unweighted CE and the T^2-scaled KD term.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    student_logits = student_logits.float()
    ce = F.cross_entropy(student_logits, labels)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kd = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    return KDLossParts(alpha * ce + (1.0 - alpha) * kd, ce, kd)
