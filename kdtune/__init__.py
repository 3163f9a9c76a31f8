"""kdtune: tune knowledge distillation of transformer text classifiers.

Entry points: ``python -m kdtune.search``, ``python -m kdtune.report``, ``python -m kdtune.retrain``.
"""

__version__ = "0.1.0"
