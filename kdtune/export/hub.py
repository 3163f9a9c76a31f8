"""``--push-to-hub REPO``: upload an exported model folder with its ONNX files and card.

The token is checked before any work (:func:`check_token`); the upload is one commit of a staging
folder holding the ``save_pretrained`` files, the model card and ``onnx/`` (``model.onnx``,
``model.int8.onnx``, ``export.json``, ``export.md``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from kdtune.errors import ConfigError

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"


def check_token() -> None:
    """Fail with a one-line error when no Hugging Face token is configured, or when offline."""
    import huggingface_hub
    from huggingface_hub import constants

    if huggingface_hub.get_token() is None:
        raise ConfigError("--push-to-hub", "no Hugging Face token; set HF_TOKEN or run "
                          "huggingface-cli login")
    if constants.HF_HUB_OFFLINE:
        raise ConfigError("--push-to-hub", "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so "
                          "nothing can be uploaded; unset it")


def push(repo: str, model_dir: Path, export_dir: Path) -> str:
    """Create ``repo`` (if needed) and upload the folder; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="model", exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kdtune-push-") as tmp:
        stage = Path(tmp) / "repo"
        shutil.copytree(model_dir, stage)
        if export_dir.is_dir():
            shutil.copytree(export_dir, stage / ONNX_DIR, dirs_exist_ok=True)
        log.info("uploading %s to %s", stage, repo)
        info = api.upload_folder(repo_id=repo, folder_path=stage, repo_type="model",
                                 commit_message="kdtune export: model, ONNX files and card")
    return str(info)
