"""``pbrl export RUN_DIR``: graph + ``policy.json`` (layout, bounds, timing, provenance, parity numbers).

``policy.json`` is the contract with the robot side (``sim2real/``): everything the runtime needs to feed
raw observations and get actions in the robot's units, and everything a person needs to trace the file back
to the run and config it came from.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import platform
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from pbrl.envs.make import make_env
from pbrl.envs.rollout import eval_seed
from pbrl.export.layout import env_layout
from pbrl.export.parity import ParityReport, check_parity
from pbrl.export.policy import ExportablePolicy
from pbrl.export.registry import RunInfo, get_exporter, load_run
from pbrl.export.writers import FORMATS, INPUT, OPSET, OUTPUT, load_graph, write_graph
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json

SCHEMA_VERSION = 1
META_FILE = "policy.json"


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def policy_metadata(run: RunInfo, policy: ExportablePolicy, layout: dict[str, Any], fmt: str, graph_file: Path,
                    parity: ParityReport) -> dict[str, Any]:
    """The ``policy.json`` document."""
    module = policy.module
    versions = {d: _version(d) for d in ("pbrl", "torch", "stable_baselines3", "numpy", "gymnasium", "mujoco",
                                          "onnx", "onnxruntime")}
    versions.update(python=platform.python_version(), onnx_opset=OPSET if fmt == "onnx" else None)
    return {
        "schema_version": SCHEMA_VERSION, "format": fmt, "file": graph_file.name, "sha256": _sha256(graph_file),
        "io": {"input": INPUT, "output": OUTPUT, "dtype": "float32", "batch_axis": 0},
        "algo": policy.algo, "task": run.task.name, "env_id": run.task.env_id,
        "observation": {"dim": module.obs_dim, "names": layout["obs_names"], **module.describe()},
        "action": {"dim": module.act_dim, "names": layout["act_names"], "low": module.low.tolist(),
                   "high": module.high.tolist(), "clipped_in_graph": True},
        "control_period_s": layout["control_period_s"],
        "policy": policy.details,
        "source": {"run_dir": str(run.run_dir.resolve()), "config_hash": run.config_hash, "seed": run.seed},
        "versions": versions, "parity": parity.as_dict(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_run(run_dir: Path, *, fmt: str = "onnx", out: Optional[Path] = None, n_obs: int = 1000,
               tolerance: float = 1e-5, episodes: int = 10) -> Path:
    """Export the run's policy to ``out`` (default ``RUN_DIR/export``) and check it on ``episodes`` closed-loop
    evaluation episodes (:func:`pbrl.export.parity.check_parity`); returns ``policy.json``."""
    if fmt not in FORMATS:
        raise PbrlError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if episodes < 1 or n_obs < 0:
        raise PbrlError(f"--episodes / --n-obs: expected >= 1 and >= 0, got {episodes} and {n_obs}")
    run = load_run(Path(run_dir))
    policy = get_exporter(run.algo)(run)
    env = make_env(run.task, seed=run.seed, episode_length=run.episode_length)
    try:
        layout = env_layout(env)
        if env.observation_space.shape != (policy.module.obs_dim,):
            raise PbrlError(f"{run.run_dir}: policy expects {policy.module.obs_dim} observations, "
                            f"task {run.task.name} gives {env.observation_space.shape}")
        if not (np.allclose(env.action_space.low, policy.module.low.numpy())
                and np.allclose(env.action_space.high, policy.module.high.numpy())):
            raise PbrlError(f"{run.run_dir}: the policy's action bounds differ from task {run.task.name}'s")
    finally:
        env.close()
    out = Path(out) if out is not None else run.run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    graph_file = out / FORMATS[fmt]
    write_graph(policy.module, fmt, graph_file)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of a few observations: one thread is fastest (and fair to other work)
    try:
        report = check_parity(run.task, policy.reference, load_graph(graph_file, fmt), seed=eval_seed(run.seed),
                              episode_length=run.episode_length, n_obs=n_obs, tolerance=tolerance, episodes=episodes)
    finally:
        torch.set_num_threads(threads)
    if not report.passed:
        graph_file.unlink()
        raise PbrlError(f"export parity check failed for {run.run_dir}: {report.summary()}")
    meta_path = out / META_FILE
    atomic_write_json(meta_path, policy_metadata(run, policy, layout, fmt, graph_file, report))
    return meta_path
