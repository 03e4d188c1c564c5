"""Policy export for robots: ONNX/TorchScript graphs with normalisation and action scaling inside.

``pbrl export RUN_DIR`` -> :func:`export_run`; algorithms plug in through :data:`EXPORTERS`.
"""

from pbrl.export.bundle import export_run
from pbrl.export.registry import EXPORTERS, RunInfo, get_exporter, load_run

__all__ = ["EXPORTERS", "RunInfo", "export_run", "get_exporter", "load_run"]
