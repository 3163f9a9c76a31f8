"""What the trial processes' fork server imports once, so each trial process need not.

The concurrency rows start their trial processes from a ``forkserver`` (CUDA-safe: the server
never touches CUDA): torch, transformers' BERT and DistilBERT code and kdtune's trainer are
imported there once, and every trial process forks from it already holding them.
"""

from transformers import BertForSequenceClassification, DistilBertForSequenceClassification

import benchmarks.gpu.concurrency  # noqa: F401 - the trial worker and everything it imports

MODELS = (BertForSequenceClassification, DistilBertForSequenceClassification)
