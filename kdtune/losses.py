"""The distillation losses: pure functions, chosen by name from two registries.

* :data:`LOGIT_LOSSES` (``train.logit_loss``): the student's logits against the labels and the
  teacher's logits; each returns :class:`KDLossParts` (the combined loss, its CE and KD terms).
* :data:`FEATURE_LOSSES` (``train.feature_loss``): projected student hidden states against the
  teacher's over the real tokens.

Adding a loss is one function, one ``@register_logit_loss("name")`` (or
``@register_feature_loss``) line and its hand-computed test (tests/test_losses.py), as
torchdistill's ``register_loss_wrapper``. The module imports torch only inside the functions,
so config validation can read the registries' names without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

LogitLoss = Callable[..., "KDLossParts"]
FeatureLoss = Callable[..., "torch.Tensor"]
LOGIT_LOSSES: dict[str, LogitLoss] = {}
FEATURE_LOSSES: dict[str, FeatureLoss] = {}


def register_logit_loss(name: str) -> Callable[[LogitLoss], LogitLoss]:
    """Register ``fn(student_logits, teacher_logits, labels, alpha, temperature) -> KDLossParts``."""
    def add(fn: LogitLoss) -> LogitLoss:
        LOGIT_LOSSES[name] = fn
        return fn
    return add


def register_feature_loss(name: str) -> Callable[[FeatureLoss], FeatureLoss]:
    """Register ``fn(student_hidden, teacher_hidden, mask) -> scalar tensor``."""
    def add(fn: FeatureLoss) -> FeatureLoss:
        FEATURE_LOSSES[name] = fn
        return fn
    return add


def _check(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


class KDLossParts(NamedTuple):
    loss: torch.Tensor  # the combined loss that is back-propagated
    ce: torch.Tensor  # cross-entropy with the hard labels
    kd: torch.Tensor  # T^2-scaled KL divergence to the teacher's softened distribution


@register_logit_loss("kl")
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
    import torch.nn.functional as F

    _check(alpha, temperature)
    student_logits = student_logits.float()
    ce = F.cross_entropy(student_logits, labels)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kd = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    return KDLossParts(alpha * ce + (1.0 - alpha) * kd, ce, kd)


@register_logit_loss("mse")
def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                   alpha: float, temperature: float) -> KDLossParts:
    """Logit matching (Ba & Caruana, 2014, "Do Deep Nets Really Need to be Deep?"; Kim et al.,
    2021, "Comparing Kullback-Leibler Divergence and Mean Squared Error Loss in Knowledge
    Distillation", who find it at least as good as KL at high temperature).

    ``loss = alpha * CE(student, labels) + (1 - alpha) * mean((z_student - z_teacher)^2)``

    the squared error averaged over examples and classes. ``temperature`` plays no part (it is
    the T -> infinity limit of the KL term up to scale); ``alpha = 1`` is plain cross-entropy.
    """
    import torch.nn.functional as F

    _check(alpha, temperature)
    student_logits = student_logits.float()
    ce = F.cross_entropy(student_logits, labels)
    kd = F.mse_loss(student_logits, teacher_logits.detach().float())
    return KDLossParts(alpha * ce + (1.0 - alpha) * kd, ce, kd)


@register_feature_loss("mse")
def feature_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per hidden unit over the real (unpadded) tokens (TinyBERT's
    hidden-state loss, Jiao et al., 2020, "TinyBERT: Distilling BERT for Natural Language
    Understanding", eq. 8), the student's states already projected to the teacher's width.
    ``mask`` is ``[batch, tokens]`` with 1 for real tokens."""
    m = mask.to(student_hidden.dtype).unsqueeze(-1)
    tokens = m.sum().clamp_min(1.0)
    s, t = student_hidden.float(), teacher_hidden.float()
    return ((s - t) ** 2 * m).sum() / (tokens * s.shape[-1])


@register_feature_loss("cosine")
def feature_cosine(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of ``1 - cos(student, teacher)`` (DistilBERT's cosine embedding
    loss, Sanh et al., 2019)."""
    import torch.nn.functional as F

    m = mask.to(student_hidden.dtype)
    tokens = m.sum().clamp_min(1.0)
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1, eps=1e-6)
    return ((1.0 - cos) * m).sum() / tokens


def feature_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor,
                 kind: str = "mse") -> torch.Tensor:
    """The registered feature loss ``kind`` (see :data:`FEATURE_LOSSES`)."""
    if kind not in FEATURE_LOSSES:
        raise ValueError(f"unknown feature loss {kind!r}; one of {', '.join(FEATURE_LOSSES)}")
    return FEATURE_LOSSES[kind](student_hidden, teacher_hidden, mask)


def logit_loss(name: str) -> LogitLoss:
    """The registered logit loss ``name`` (see :data:`LOGIT_LOSSES`)."""
    if name not in LOGIT_LOSSES:
        raise ValueError(f"unknown logit loss {name!r}; one of {', '.join(LOGIT_LOSSES)}")
    return LOGIT_LOSSES[name]


def combine_teacher_logits(logits: list[torch.Tensor], weights: list[float],
                           mode: str = "weighted") -> torch.Tensor:
    """Multi-teacher targets: a weighted average of the teachers' logits.

    ``weighted``: ``sum_i w_i * z_i``. ``confidence``: per example the weights are scaled by
    each teacher's confidence (its top softmax probability) and renormalised, so the teacher
    that is surer about an example counts more there (cf. Zhang et al., 2022, "Confidence-Aware
    Multi-Teacher Knowledge Distillation").
    """
    import torch

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
