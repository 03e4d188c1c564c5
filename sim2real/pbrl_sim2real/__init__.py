"""Robot-side runtime for policies exported by ``pbrl export``: numpy + onnxruntime only (no torch, no pbrl)."""

from pbrl_sim2real.bundle import Bundle, BundleError, load_bundle
from pbrl_sim2real.rate import Rate
from pbrl_sim2real.runtime import ObservationError, PolicyRuntime

__all__ = ["Bundle", "BundleError", "ObservationError", "PolicyRuntime", "Rate", "load_bundle"]
__version__ = "0.1.0"
