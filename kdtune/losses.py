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


def feature_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor,
                 kind: str = "mse") -> torch.Tensor:
    """Hidden-state distillation loss over the real (unpadded) tokens.

    ``mse``: mean squared error per hidden unit (TinyBERT's hidden-state loss, Jiao et al., 2020,
    "TinyBERT: Distilling BERT for Natural Language Understanding", eq. 8), with the student's
    states already projected to the teacher's width. ``cosine``: mean over tokens of
    ``1 - cos(student, teacher)`` (DistilBERT's cosine embedding loss, Sanh et al., 2019).
    ``mask`` is ``[batch, tokens]`` with 1 for real tokens.
    """
    m = mask.to(student_hidden.dtype).unsqueeze(-1)
    tokens = m.sum().clamp_min(1.0)
    s, t = student_hidden.float(), teacher_hidden.float()
    if kind == "mse":
        return ((s - t) ** 2 * m).sum() / (tokens * s.shape[-1])
    if kind == "cosine":
        cos = F.cosine_similarity(s, t, dim=-1, eps=1e-6)
        return ((1.0 - cos) * m.squeeze(-1)).sum() / tokens
    raise ValueError(f"unknown feature loss {kind!r}; use 'mse' or 'cosine'")


def combine_teacher_logits(logits: list[torch.Tensor], weights: list[float],
                           mode: str = "weighted") -> torch.Tensor:
    """Multi-teacher targets: a weighted average of the teachers' logits.

    ``weighted``: ``sum_i w_i * z_i``. ``confidence``: per example the weights are scaled by
    each teacher's confidence (its top softmax probability) and renormalised, so the teacher
    that is surer about an example counts more there (cf. Zhang et al., 2022, "Confidence-Aware
    Multi-Teacher Knowledge Distillation").
    """
    if len(logits) != len(weights):
        raise ValueError(f"{len(logits)} teachers but {len(weights)} weights")
    stacked = torch.stack([z.float() for z in logits])  # [teachers, batch, classes]
    w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, 1)
    if mode == "confidence":
        w = w * stacked.softmax(-1).amax(-1)  # [teachers, batch]
        w = w / w.sum(0, keepdim=True).clamp_min(1e-12)
    elif mode != "weighted":
        raise ValueError(f"unknown combine mode {mode!r}; use 'weighted' or 'confidence'")
    else:
        w = w.expand(-1, stacked.shape[1])
    return (w.unsqueeze(-1) * stacked).sum(0)
