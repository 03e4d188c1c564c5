"""Where the networks run: ``device=auto|cpu|cuda`` resolved per library (torch and JAX see GPUs separately).

``auto`` is the GPU when the library has one and the CPU otherwise, so the default on a machine without a GPU is
exactly the CPU path. ``cuda`` asks for the GPU and fails with a one-line error when the library has none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

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


def jax_compile_cache() -> Optional[Path]:
    """Turn on JAX's persistent compilation cache; the directory in use (None: off).

    Why: compiling CrossQ's jitted update costs ~10-20 s of CPU in every process, more than a short run's updates;
    from the cache a second run (a sweep's next seed, a resumed run, ``pbrl export``'s reload) loads it in well under
    a second. Compiled programs are keyed by JAX on the program, its shapes, the JAX version and the device, so a
    stale entry is never used. ``PBRL_JAX_CACHE=DIR`` moves it, ``PBRL_JAX_CACHE=off`` disables it, and a cache the
    user configured for JAX (``JAX_COMPILATION_CACHE_DIR``) is left as it is. Default: ``$XDG_CACHE_HOME/pbrl/jax``
    (``~/.cache/pbrl/jax``): JAX runs what it finds there, so it must be a directory only the user can write.
    """
    import jax

    setting = os.environ.get("PBRL_JAX_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    current = jax.config.jax_compilation_cache_dir
    if current and not setting:
        return Path(current)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(setting) if setting else base / "pbrl" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail a training run
        return None
    if str(path) != current:
        jax.config.update("jax_compilation_cache_dir", str(path))  # also after earlier compiles (tested)
    return path
