"""Logging for every kdtune command: one format, each line printed once, chatty libraries quiet."""

from __future__ import annotations

import logging
import warnings

NOISY = ("urllib3", "filelock", "httpx", "httpcore", "fsspec", "datasets", "huggingface_hub",
         "transformers", "ray", "optuna", "matplotlib")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in NOISY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        # Libraries that add their own handler *and* propagate print every line twice: keep
        # one path (ours).
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    # Deprecations raised inside the libraries kdtune drives are theirs to fix and would
    # otherwise print once per trial; kdtune's own (and the user's code's) still show.
    for name in NOISY:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=rf"{name}(\.|$)")
