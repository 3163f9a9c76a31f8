"""What the trial processes' fork server imports once, so each trial process need not.

On the CPU the concurrency rows start their trial processes from a ``forkserver``: torch,
transformers' BERT and DistilBERT code and kdtune's trainer are imported there once, and
every trial process forks from it already holding them (on CUDA they are spawned instead).
"""

from transformers import BertForSequenceClassification, DistilBertForSequenceClassification

import benchmarks.gpu.concurrency  # noqa: F401 - the trial worker and everything it imports

MODELS = (BertForSequenceClassification, DistilBertForSequenceClassification)
