"""ONNX files of a torch classifier: fp32 export, dynamic int8 quantisation, sessions.

The fp32 graph comes from torch's maintained exporter (``torch.onnx.export(..., dynamo=True)``,
through ``torch.export`` and onnxscript, opset 18, graph optimised) with dynamic batch and
sequence dimensions; inputs are ``input_ids`` and
``attention_mask`` (plus ``token_type_ids`` when the model's forward takes them and the tokenizer
returns them), the output is ``logits``. int8 is ``onnxruntime.quantization.quantize_dynamic``
with int8 weights. Sessions run on the CPU with ``threads`` intra-op threads and one inter-op
thread, as the latency protocol asks.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kdtune.errors import ConfigError

log = logging.getLogger(__name__)

OPSET = 18
REQUIRED = ("onnx", "onnxruntime", "onnxscript")


def check_installed() -> None:
    """Fail with a one-line error unless onnx and onnxruntime import."""
    missing = []
    for name in REQUIRED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError("--onnx", f"{' and '.join(missing)} not installed; "
                          "pip install kdtune[export]")


def input_names(model: Any, tokenizer: Any) -> list[str]:
    """The graph's inputs: ids and mask, plus token type ids when model and tokenizer use them."""
    names = ["input_ids", "attention_mask"]
    takes = "token_type_ids" in inspect.signature(model.forward).parameters
    if takes and "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        names.append("token_type_ids")
    return names


def _logits_module(model: Any, names: list[str]) -> Any:
    """A module with positional inputs ``names`` that returns the logits tensor only."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, args, strict=True))).logits

    # eval() on the wrapper too: export restores the wrapper's mode recursively afterwards
    return Logits().eval()


MAX_BATCH, MAX_SEQUENCE = 4096, 8192  # the graph's dynamic dimensions accept up to these


def export_onnx(model: Any, sample: dict[str, np.ndarray], names: list[str], path: Path) -> Path:
    """fp32 ONNX of ``model`` traced on ``sample`` (a padded batch of at least two rows)."""
    import torch

    args = tuple(torch.from_numpy(_feed(sample, name)) for name in names)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    sequence = torch.export.Dim("sequence", min=1, max=MAX_SEQUENCE)
    # forward(*args): the shapes of its one varargs input, one {dim: name} per tensor
    shapes = (tuple({0: batch, 1: sequence} for _ in names),)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export names each axis once and notes the others share it: known, and the
        # exported graph is checked against torch on the whole test split afterwards
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        # one line per torchvision operator it cannot register: kdtune exports no vision ops
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        program = torch.onnx.export(_logits_module(model, names), args, input_names=names,
                                    output_names=["logits"], dynamic_shapes=shapes,
                                    opset_version=OPSET, dynamo=True, optimize=True,
                                    verbose=False)
    program.save(str(path))
    log.info("wrote %s (%.1f MB)", path, file_mb(path))
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation (int8 weights, activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    log.info("wrote %s (%.1f MB)", dst, file_mb(dst))
    return dst


def session(path: Path, threads: int) -> Any:
    """A CPU onnxruntime session with ``threads`` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(sess: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """``run(batch) -> logits`` for the latency protocol; absent token type ids are zeros."""
    names = [i.name for i in sess.get_inputs()]

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        return sess.run(["logits"], {n: _feed(batch, n) for n in names})[0]

    return run


def _feed(batch: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name in batch:
        return np.ascontiguousarray(batch[name], dtype=np.int64)
    return np.zeros_like(batch["input_ids"], dtype=np.int64)  # single texts: segment 0


def file_mb(path: Path) -> float:
    """Size of an ONNX file with its external data file, if any, in MB."""
    extra = path.with_name(path.name + ".data")
    return (path.stat().st_size + (extra.stat().st_size if extra.is_file() else 0)) / 1e6
