"""Where the networks run: ``device=auto|cpu|cuda`` resolved per library (torch and JAX see GPUs separately).

``auto`` is the GPU when the library has one and the CPU otherwise, so the default on a machine without a GPU is
exactly the CPU path. ``cuda`` asks for the GPU and fails with a one-line error when the library has none.
"""

from __future__ import annotations

from typing import Any

from pbrl.types import PbrlError

DEVICES = ("auto", "cpu", "cuda")


def check_device(setting: Any, field: str = "device") -> str:
    """``setting`` as one of :data:`DEVICES` (``cuda:N`` allowed), or a one-line error naming ``field``."""
    text = str(setting)
    if text in DEVICES or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise PbrlError(f"{field}: expected one of {' | '.join(DEVICES)} (or cuda:N), got {setting!r}")


def torch_device(setting: Any, field: str = "device") -> str:
    """The torch device for ``setting``: ``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    text = check_device(setting, field)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise PbrlError(f"{field}={text}: torch {torch.__version__} sees no CUDA device here; use device=cpu or auto")
    return text


def jax_platform(setting: Any, field: str = "device") -> str:
    """JAX's platform for ``setting`` (``cpu`` or ``gpu``): ``auto`` -> ``gpu`` when JAX has one, else ``cpu``."""
    import jax

    text = check_device(setting, field)
    if text == "cpu":
        return "cpu"
    try:
        jax.devices("gpu")
        return "gpu"
    except RuntimeError:
        if text == "auto":
            return "cpu"
        raise PbrlError(f"{field}={text}: JAX {jax.__version__} has no GPU backend here (a CUDA jaxlib, e.g. "
                        f"`pip install jax[cuda12]`, matching the pinned jax); use device=cpu or auto") from None
