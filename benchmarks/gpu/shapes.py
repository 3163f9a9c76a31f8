"""Models, synthetic rows and FLOP counts for the GPU check: nothing downloaded, no data file.

Models are randomly initialised from their configs (full size, or tiny stand-ins for the CPU
test); token lengths are drawn like AG News's; FLOPs are counted from a model's shapes and the
tokens it computes on, so tokens/s and TFLOP/s compare across loops that pad differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks import reference
from kdtune.batches import Encoded

LABELS = ["World", "Sports", "Business", "Sci/Tech"]

# Token lengths of AG News texts, measured on the project's CPU machine from
# ../shared/data/ag_news/ag_news_7600.csv (all 7600 rows, the text column) with the embedded
# all-MiniLM-L6-v2 tokenizer (bert-base-uncased's WordPiece vocabulary of 30522), [CLS] and
# [SEP] included, without truncation: the log-lengths have mean 3.9195 and standard deviation
# 0.2932 (a lognormal with median 50.4 tokens). Truncated at 150 the lengths have median 50,
# p90 69, p99 122, mean 52.6, min 18 and max 150. Draws are rounded and clipped to
# [AG_NEWS_MIN_TOKENS, 150]. No data row is used or copied.
AG_NEWS_LOG_MEAN = 3.9195
AG_NEWS_LOG_STD = 0.2932
AG_NEWS_MIN_TOKENS = 18

#: (training, forward) multipliers of PaLM's count (Chowdhery et al., 2022, appendix B):
#: ``6N + 12 L h s`` FLOPs per token to train, a third of that forward only.
TRAIN, FORWARD = (6, 12), (2, 4)


def model_config(name: str, tiny: bool) -> Any:
    """The architectures compared, as configs (random initialisation, nothing downloaded)."""
    from transformers import BertConfig, DistilBertConfig

    n = len(LABELS)
    if tiny:  # no attention dropout: on the CPU it sends SDPA down a path ~50x slower
        small = {"vocab_size": 1000, "hidden_size": 32, "num_attention_heads": 4,
                 "intermediate_size": 64, "num_labels": n, "attention_probs_dropout_prob": 0.0}
        return {"minilm-2": BertConfig(num_hidden_layers=2, **small),
                "minilm-6": BertConfig(num_hidden_layers=3, **small),
                "distilbert-base": DistilBertConfig(vocab_size=1000, dim=48, n_layers=2, n_heads=4,
                                                    hidden_dim=96, num_labels=n,
                                                    attention_dropout=0.0),
                "bert-base": BertConfig(vocab_size=1000, hidden_size=48, num_hidden_layers=3,
                                        num_attention_heads=4, intermediate_size=96,
                                        num_labels=n, attention_probs_dropout_prob=0.0)}[name]
    minilm = {"vocab_size": 30522, "hidden_size": 384, "num_attention_heads": 12,
              "intermediate_size": 1536, "num_labels": n}
    return {"minilm-2": BertConfig(num_hidden_layers=2, **minilm),  # the 2-layer slice
            "minilm-6": BertConfig(num_hidden_layers=6, **minilm),  # all-MiniLM-L6-v2's shape
            "distilbert-base": DistilBertConfig(num_labels=n),  # 6 layers, 768 wide
            "bert-base": BertConfig(num_labels=n)}[name]  # 12 layers, 768 wide


def build_model(name: str, tiny: bool, seed: int = 0) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(model_config(name, tiny))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def vocab_of(model: torch.nn.Module) -> int:
    return int(model.config.vocab_size)


def synthetic_split(rows: int, vocab: int, seed: int) -> Encoded:
    """``rows`` random texts with AG News's token lengths ([CLS] ... [SEP]) and 4 labels."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(AG_NEWS_LOG_MEAN, AG_NEWS_LOG_STD, rows)),
                      AG_NEWS_MIN_TOKENS, reference.SEED_MAX_LENGTH).astype(np.int64)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    ids = rng.integers(min(1000, vocab // 2), vocab, int(offsets[-1])).astype(np.int32)
    ids[offsets[:-1]] = 101 if vocab > 102 else 1  # [CLS]
    ids[offsets[1:] - 1] = 102 if vocab > 102 else 2  # [SEP]
    labels = rng.integers(0, len(LABELS), rows).astype(np.int64)
    return Encoded(ids, offsets, labels, pad_id=0)


@dataclass(frozen=True)
class Shape:
    """What a transformer's FLOPs per token depend on."""

    layers: int
    width: int
    matmul_params: int  # parameters applied to every token: the encoder blocks' weights


def _per_token(name: str) -> bool:
    """Encoder-block parameters; embeddings are lookups, pooler and head run once per row."""
    return not any(part in name for part in ("embeddings", "pooler", "classifier"))


def shape_of(model: torch.nn.Module) -> Shape:
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layers
    width = getattr(cfg, "hidden_size", None) or cfg.dim
    params = sum(p.numel() for n, p in model.named_parameters() if _per_token(n))
    return Shape(int(layers), int(width), int(params))


def flops(shape: Shape, widths: np.ndarray, kind: tuple[int, int] = TRAIN) -> float:
    """FLOPs of rows computed at ``widths`` tokens each (their real lengths, or the width of
    the padded batch each sat in): per row ``w * (a * N + b * L * h * w)``."""
    w = np.asarray(widths, dtype=np.float64)
    a, b = kind
    return float(np.sum(w * (a * shape.matmul_params + b * shape.layers * shape.width * w)))


def batch_widths(lengths: np.ndarray, batches: list[np.ndarray]) -> np.ndarray:
    """Each row's computed width when batches are padded to their longest row."""
    return np.concatenate([np.full(len(b), int(lengths[b].max())) for b in batches if len(b)])
