"""Reading an exported policy bundle (``policy.onnx`` + ``policy.json`` written by ``pbrl export``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

SCHEMA_VERSION = 1


class BundleError(ValueError):
    """The bundle is missing, malformed, or not something this runtime can run."""


@dataclasses.dataclass(frozen=True)
class Bundle:
    """The parts of ``policy.json`` the runtime uses, validated.

    Attributes:
        directory: where ``policy.json`` lives.
        model_path: the ONNX file.
        obs_dim, act_dim: vector sizes.
        obs_names, act_names: entry names (for logging and for mapping robot signals).
        low, high: ``(act_dim,)`` float32 action bounds in the robot's units.
        control_period_s: the training control period (seconds), or None.
        input_name, output_name: graph I/O names.
        meta: the whole document.
    """

    directory: Path
    model_path: Path
    obs_dim: int
    act_dim: int
    obs_names: tuple[str, ...]
    act_names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    control_period_s: Optional[float]
    input_name: str
    output_name: str
    meta: dict[str, Any]


def _field(meta: dict[str, Any], path: str, source: Path) -> Any:
    node: Any = meta
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise BundleError(f"{source}: missing field {path!r}")
        node = node[key]
    return node


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle from its directory or its ``policy.json``."""
    path = Path(path)
    meta_path = path / "policy.json" if path.is_dir() else path
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: not found; expected the policy.json written by `pbrl export`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from None
    if _field(meta, "schema_version", meta_path) != SCHEMA_VERSION:
        raise BundleError(f"{meta_path}: schema_version {meta['schema_version']}, this runtime reads {SCHEMA_VERSION}")
    if _field(meta, "format", meta_path) != "onnx":
        raise BundleError(f"{meta_path}: format {meta['format']!r}; the runtime runs ONNX (pbrl export --format onnx)")
    model_path = meta_path.parent / _field(meta, "file", meta_path)
    if not model_path.is_file():
        raise BundleError(f"{model_path}: missing (named in {meta_path})")
    low = np.asarray(_field(meta, "action.low", meta_path), np.float32)
    high = np.asarray(_field(meta, "action.high", meta_path), np.float32)
    act_dim, obs_dim = int(_field(meta, "action.dim", meta_path)), int(_field(meta, "observation.dim", meta_path))
    if low.shape != (act_dim,) or high.shape != (act_dim,) or not np.all(low < high):
        raise BundleError(f"{meta_path}: action.low/high must be {act_dim} numbers with low < high")
    period = meta.get("control_period_s")
    return Bundle(directory=meta_path.parent, model_path=model_path, obs_dim=obs_dim, act_dim=act_dim,
                  obs_names=tuple(_field(meta, "observation.names", meta_path)),
                  act_names=tuple(_field(meta, "action.names", meta_path)), low=low, high=high,
                  control_period_s=None if period is None else float(period),
                  input_name=str(_field(meta, "io.input", meta_path)),
                  output_name=str(_field(meta, "io.output", meta_path)), meta=meta)
