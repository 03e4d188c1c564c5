"""pbrl export for offline learners (CPL's Gaussian actor, OPPO's contextual policy with z* baked in)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from bench_modules import load_bench
from pbrl.agents.bc import GaussianActor
from pbrl.agents.oppo import ContextPolicy
from pbrl.export import export_run
from pbrl.agents.offline_policy import load_policy, save_policy
from pbrl.types import PbrlError

write_run_config = load_bench("sb3_runs").write_run_config


def _stats(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(17).astype(np.float32), rng.uniform(0.5, 3.0, 17).astype(np.float32)


def _run(tmp_path: Path, algo: str, policy: torch.nn.Module) -> Path:
    save_policy(policy, tmp_path / "policy.pt")
    return write_run_config(tmp_path, task="halfcheetah", algo=algo, seed=0, episode_length=40)


def _onnx_actions(bundle: Path, obs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(bundle / "policy.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["action"], {"obs": obs})[0]


def test_cpl_actor_export_matches_act_with_normalisation_inside(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mean, std = _stats(1)
    run = _run(tmp_path, "cpl", GaussianActor(17, 6, hidden=(32, 32), dropout=0.25, obs_mean=mean, obs_std=std))
    meta = json.loads(export_run(run).read_text())
    assert meta["algo"] == "cpl" and meta["parity"]["passed"] and meta["policy"]["class"] == "GaussianActor"
    norm = meta["observation"]["normalisation"]
    assert norm["kind"] == "standardise" and np.allclose(norm["mean"], mean) and np.allclose(norm["std"], std)
    obs = (np.random.default_rng(2).standard_normal((300, 17)) * 5 + mean).astype(np.float32)
    np.testing.assert_allclose(_onnx_actions(run / "export", obs), load_policy(run / "policy.pt").act(obs), atol=1e-5)


def test_oppo_export_bakes_in_z_star(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mean, std = _stats(3)
    policy = ContextPolicy(17, 6, z_dim=4, hidden=(32, 32), obs_mean=mean, obs_std=std)
    policy.z_star.copy_(torch.tensor([2.0, -1.5, 0.5, 3.0]))
    run = _run(tmp_path, "oppo", policy)
    meta = json.loads(export_run(run).read_text())
    assert meta["parity"]["passed"] and meta["policy"]["z_star"] == [2.0, -1.5, 0.5, 3.0]
    obs = (np.random.default_rng(4).standard_normal((300, 17)) * 2 + mean).astype(np.float32)
    exported = _onnx_actions(run / "export", obs)
    np.testing.assert_allclose(exported, load_policy(run / "policy.pt").act(obs), atol=1e-5)
    with torch.no_grad():
        zero_context = policy.with_context(torch.as_tensor(obs), torch.zeros(4)).numpy()
    assert np.abs(exported - zero_context).max() > 1e-2  # z* really is in the graph


def test_offline_policy_file_errors(tmp_path: Path) -> None:
    write_run_config(tmp_path, task="halfcheetah", algo="oppo", seed=0, episode_length=40)
    with pytest.raises(PbrlError, match="policy.pt: missing"):
        export_run(tmp_path)
    (tmp_path / "policy.pt").write_bytes(b"not a torch file")
    with pytest.raises(PbrlError, match="policy.pt: cannot load as a pbrl offline policy"):
        export_run(tmp_path)
