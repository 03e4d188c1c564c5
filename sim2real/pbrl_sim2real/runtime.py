"""The control-side policy: validate the observation, run the ONNX graph, clip, return the action.

Shape and dtype mistakes are wiring bugs and always raise :class:`ObservationError`. Non-finite values
(a dropped sensor, a NaN from a filter) raise too, unless a ``safe_action`` is configured, in which case
that action is returned and counted in ``n_unsafe`` so the caller can alarm or stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import onnxruntime as ort

from pbrl_sim2real.bundle import Bundle, BundleError, load_bundle

SafeAction = Union[None, str, Sequence[float], np.ndarray]


class ObservationError(ValueError):
    """An observation the policy must not act on."""


class PolicyRuntime:
    """Run an exported policy one observation at a time.

    Args:
        bundle: a :class:`Bundle` or the bundle directory / ``policy.json`` path.
        safe_action: what to return for a non-finite observation: None (raise), ``"zeros"`` (zero clipped to
            the bounds), ``"hold"`` (the last good action, zeros before the first), or an explicit vector.
        threads: ONNX Runtime intra-op threads (1 gives the lowest latency for small MLPs).
    """

    def __init__(self, bundle: Union[Bundle, str, Path], *, safe_action: SafeAction = None, threads: int = 1) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        b = self.bundle
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(b.model_path), opts, providers=["CPUExecutionProvider"])
        shape = self.session.get_inputs()[0].shape
        if shape[-1] != b.obs_dim:
            raise BundleError(f"{b.model_path}: graph takes {shape[-1]} observations, policy.json says {b.obs_dim}")
        self._zeros = np.clip(np.zeros(b.act_dim, np.float32), b.low, b.high)
        self._safe_mode, self._safe = self._parse_safe(safe_action)
        self._last = self._zeros.copy()
        self._batch = np.zeros((1, b.obs_dim), np.float32)
        self._out = np.zeros((1, b.act_dim), np.float32)
        self._binding = self._bind()
        self.n_unsafe = 0

    def _bind(self) -> ort.IOBinding:
        """Bind the graph's input and output to two fixed buffers: no per-call allocation (~6 us saved)."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.bundle.input_name, self._batch)
        binding.bind_output(self.bundle.output_name, "cpu", 0, np.float32, list(self._out.shape),
                            self._out.ctypes.data)
        return binding

    def _parse_safe(self, safe: SafeAction) -> tuple[Optional[str], np.ndarray]:
        if safe is None or isinstance(safe, str):
            if safe not in (None, "zeros", "hold"):
                raise ValueError(f"safe_action: expected None, 'zeros', 'hold' or a vector, got {safe!r}")
            return safe, self._zeros
        vec = np.asarray(safe, np.float32)
        if vec.shape != (self.bundle.act_dim,) or not np.all(np.isfinite(vec)):
            raise ValueError(f"safe_action: expected {self.bundle.act_dim} finite numbers, got {vec.tolist()}")
        return "fixed", np.clip(vec, self.bundle.low, self.bundle.high)

    def validate(self, obs: np.ndarray) -> np.ndarray:
        """The observation as float32 ``(obs_dim,)``, or :class:`ObservationError` naming the problem."""
        arr = np.asarray(obs)
        if arr.dtype.kind not in "fiu":  # float, signed, unsigned; bool, complex, str, object refused
            raise ObservationError(f"observation: expected a real-valued array, got dtype {arr.dtype}")
        if arr.shape != (self.bundle.obs_dim,):
            raise ObservationError(f"observation: expected shape ({self.bundle.obs_dim},), got {arr.shape}")
        return arr.astype(np.float32, copy=False)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action ``(act_dim,)`` float32 within ``[low, high]`` for one raw observation."""
        x = self.validate(obs)
        if not np.isfinite(x).all():
            bad = [self.bundle.obs_names[i] for i in np.flatnonzero(~np.isfinite(x))[:3]]
            if self._safe_mode is None:
                raise ObservationError(f"observation: NaN/inf in {', '.join(bad)}; refusing to act")
            self.n_unsafe += 1
            return (self._last if self._safe_mode == "hold" else self._safe).copy()
        self._batch[0] = x
        self.session.run_with_iobinding(self._binding)
        action = self._out[0].copy()
        if not np.isfinite(action).all():  # a graph that produced NaN must never reach the motors
            raise ObservationError("policy output: NaN/inf action; refusing to act")
        np.minimum(action, self.bundle.high, out=action)  # two ufuncs: ~3x cheaper than np.clip per call
        np.maximum(action, self.bundle.low, out=action)
        self._last = action
        return action

    def reset(self) -> None:
        """Forget the held action (call at the start of an episode)."""
        self._last = self._zeros.copy()
