"""pbrl export on real sbx (JAX) SAC and CrossQ policies: flax weights copied into torch, checked against sbx and
against the actor computed by hand from its parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from bench_modules import load_bench
from pbrl.envs import load_task, make_env
from pbrl.export import export_run, load_run
from pbrl.export.sbx import actor_core, export_sac
from pbrl.types import PbrlError

write_run_config = load_bench("sb3_runs").write_run_config

EPISODE = 15  # short: the closed-loop return check amplifies float32 differences (issue 17 replaces it)


def _sbx_run(run_dir: Path, algo: str = "sac") -> Path:
    """A run dir with a freshly initialised sbx policy (random weights: the copy is what is tested).

    CrossQ's BatchRenorm layers get random running statistics and affine parameters (at initialisation they are
    the identity, which would hide a wrong copy).
    """
    import jax
    import sbx

    env = make_env(load_task("halfcheetah"), seed=0, episode_length=EPISODE)
    model = getattr(sbx, {"sac": "SAC", "crossq": "CrossQ"}[algo])("MlpPolicy", env, policy_kwargs={"net_arch": [32, 24]},
                                                                   seed=0)
    env.close()
    if algo == "crossq":
        rng = np.random.default_rng(3)
        state = model.policy.actor_state
        params = jax.tree_util.tree_map(np.array, state.params)
        stats = jax.tree_util.tree_map(np.array, state.batch_stats)
        for name in stats:
            n = stats[name]["mean"].shape[0]
            stats[name]["mean"] = rng.normal(0, 2, n).astype(np.float32)
            stats[name]["var"] = rng.uniform(0.1, 5, n).astype(np.float32)
            params[name]["scale"] = rng.uniform(0.5, 2, n).astype(np.float32)
            params[name]["bias"] = rng.normal(0, 0.5, n).astype(np.float32)
        model.policy.actor_state = state.replace(params=params, batch_stats=stats)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "policy.zip")
    write_run_config(run_dir, task="halfcheetah", algo=algo, seed=0, episode_length=EPISODE)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["algo"]["backend"] = "sbx"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


@pytest.fixture(scope="module")
def sbx_run(tmp_path_factory) -> Path:
    return _sbx_run(tmp_path_factory.mktemp("sbx"))


@pytest.fixture(scope="module")
def crossq_run(tmp_path_factory) -> Path:
    return _sbx_run(tmp_path_factory.mktemp("crossq"), "crossq")


def _by_hand(run: Path, obs: np.ndarray, algo: str = "sac") -> np.ndarray:
    """The deterministic action from the flax parameters with numpy: tanh(mean head), rescaled to the bounds.

    CrossQ normalises the input and every hidden activation with BatchRenorm's running statistics:
    ``(x - mean) / sqrt(var + 1e-3) * scale + bias`` (sbx's BatchRenorm with ``use_running_average``).
    """
    import sbx

    state = getattr(sbx, {"sac": "SAC", "crossq": "CrossQ"}[algo]).load(run / "policy.zip").policy.actor_state
    p = state.params.get("params", state.params)
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731

    def renorm(x: np.ndarray, i: int) -> np.ndarray:
        if algo != "crossq":
            return x
        st, aff = state.batch_stats[f"BatchRenorm_{i}"], p[f"BatchRenorm_{i}"]
        return (x - f64(st["mean"])) / np.sqrt(f64(st["var"]) + 1e-3) * f64(aff["scale"]) + f64(aff["bias"])

    x = renorm(obs.astype(np.float64), 0)
    for i, name in enumerate(("Dense_0", "Dense_1")):
        x = renorm(np.maximum(x @ f64(p[name]["kernel"]) + f64(p[name]["bias"]), 0.0), i + 1)
    mean = x @ f64(p["Dense_2"]["kernel"]) + f64(p["Dense_2"]["bias"])
    low, high = -1.0, 1.0  # halfcheetah's action bounds
    return low + 0.5 * (np.tanh(mean) + 1.0) * (high - low)


def _obs(n: int = 300) -> np.ndarray:
    """Observations up to 100x the usual scale: many actions saturate, others do not.

    XLA and torch sum float32 products in different orders, so on these inputs the two agree to ~1e-5 (both are
    within ~6e-6 of the float64 computation), not bit for bit as torch-to-torch exports do.
    """
    rng = np.random.default_rng(1)
    return (rng.standard_normal((n, 17)) * np.array([1.0, 10.0, 100.0])[rng.integers(0, 3, n), None]).astype(np.float32)


def test_sbx_onnx_bundle_matches_sbx_predict_and_the_hand_computed_actor(sbx_run: Path) -> None:
    meta = json.loads(export_run(sbx_run).read_text())
    assert meta["algo"] == "sac" and meta["policy"]["backend"] == "sbx" and meta["policy"]["net_arch"] == [32, 24]
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] < 1e-5
    from sbx import SAC

    obs = _obs()
    session = ort.InferenceSession(str(sbx_run / "export" / "policy.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(["action"], {"obs": obs})[0]
    np.testing.assert_allclose(exported, SAC.load(sbx_run / "policy.zip").predict(obs, deterministic=True)[0],
                               atol=2e-5)
    expected = _by_hand(sbx_run, obs)
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    assert np.any(np.abs(expected) > 0.999) and np.any(np.abs(expected) < 0.9)  # saturated and unsaturated both seen


def test_crossq_bundle_matches_sbx_and_the_hand_computed_batch_renorm_actor(crossq_run: Path, tmp_path: Path) -> None:
    meta = json.loads(export_run(crossq_run, fmt="torchscript", out=tmp_path / "cq").read_text())
    assert meta["algo"] == "crossq" and meta["parity"]["passed"] and meta["policy"]["net_arch"] == [32, 24]
    from sbx import CrossQ

    obs = _obs()
    graph = torch.jit.load(str(tmp_path / "cq" / "policy.pt"))
    with torch.no_grad():
        exported = graph(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, CrossQ.load(crossq_run / "policy.zip").predict(obs, deterministic=True)[0],
                               atol=2e-5)
    np.testing.assert_allclose(exported, _by_hand(crossq_run, obs, "crossq"), atol=2e-5)


def test_sbx_torchscript_bundle(sbx_run: Path, tmp_path: Path) -> None:
    meta = json.loads(export_run(sbx_run, fmt="torchscript", out=tmp_path / "ts").read_text())
    assert meta["file"] == "policy.pt" and meta["parity"]["passed"]
    graph = torch.jit.load(str(tmp_path / "ts" / "policy.pt"))
    obs = _obs(50)
    with torch.no_grad():
        np.testing.assert_allclose(graph(torch.as_tensor(obs)).numpy(), _by_hand(sbx_run, obs), atol=1e-5)


def test_a_wrong_copy_fails_parity(sbx_run: Path, tmp_path: Path, monkeypatch) -> None:
    """A copy 1% off in its weights (e.g. a wrong dtype round trip) must not pass as an export."""
    import pbrl.export.sbx as sbx_export

    good = sbx_export._linear

    def one_percent_off(dense):
        layer = good(dense)
        with torch.no_grad():
            layer.weight.mul_(1.01)
        return layer

    monkeypatch.setattr(sbx_export, "_linear", one_percent_off)
    with pytest.raises(PbrlError, match="parity check failed"):
        export_run(sbx_run, out=tmp_path / "bad")


def test_sbx_export_errors(sbx_run: Path, tmp_path: Path) -> None:
    with pytest.raises(PbrlError, match="activation 'softsign' has no torch twin"):
        actor_core({"params": {}}, 1, "softsign")
    with pytest.raises(PbrlError, match=r"unexpected sbx actor parameters \['Dense_0'\]"):
        actor_core({"params": {"Dense_0": {}}}, 2, "relu")
    (tmp_path / "config.yaml").write_text((sbx_run / "config.yaml").read_text().replace("backend: sbx", "backend: tf"))
    with pytest.raises(PbrlError, match=r"algo.backend: expected sb3 \| sbx, got 'tf'"):
        export_sac(load_run(tmp_path))
    (tmp_path / "config.yaml").write_text((sbx_run / "config.yaml").read_text())
    (tmp_path / "policy.zip").write_bytes(b"not a zip")
    with pytest.raises(PbrlError, match="policy.zip: cannot load as sbx SAC"):
        export_run(tmp_path)
