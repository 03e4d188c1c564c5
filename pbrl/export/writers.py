"""Serialise an :class:`ExportModule` to ONNX or TorchScript, and load it back for the parity check."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pbrl.export.policy import ExportModule
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_bytes

#: ``--format`` -> file name inside the bundle.
FORMATS: dict[str, str] = {"onnx": "policy.onnx", "torchscript": "policy.pt"}
OPSET = 17
INPUT, OUTPUT = "obs", "action"

GraphFn = Callable[[np.ndarray], np.ndarray]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the 'export' extra: pip install 'pbrl[export]' ({exc})") from None


def write_graph(module: ExportModule, fmt: str, path: Path) -> None:
    """Write ``module`` (batch-dynamic, float32 input ``obs``, output ``action``) atomically to ``path``."""
    example = torch.zeros(1, module.obs_dim, dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes are not user errors
        if fmt == "onnx":
            _require_onnx()
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(module, example), buf)
        else:
            raise PbrlError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    atomic_write_bytes(path, buf.getvalue())


def load_graph(path: Path, fmt: str) -> GraphFn:
    """The written graph as ``(n, obs_dim) float32 -> (n, act_dim) float32``, on one CPU thread."""
    if fmt == "onnx":
        _require_onnx()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda obs: session.run([OUTPUT], {INPUT: np.asarray(obs, np.float32)})[0]
    scripted = torch.jit.load(str(path), map_location="cpu")

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return scripted(torch.as_tensor(np.asarray(obs, np.float32))).numpy()
    return run
