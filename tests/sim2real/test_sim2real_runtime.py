"""The robot-side runtime: no torch/pbrl import, validation, safe actions, clipping, timing, examples."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench_modules import load_bench
from pbrl.export import export_run

SIM2REAL = Path(__file__).resolve().parents[2] / "sim2real"
sys.path.insert(0, str(SIM2REAL))
from pbrl_sim2real import BundleError, ObservationError, PolicyRuntime, Rate, load_bundle  # noqa: E402

write_sb3_run = load_bench("sb3_runs").write_sb3_run


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    run = write_sb3_run(tmp_path_factory.mktemp("run"), algo="sac", net_arch=(32, 32), episode_length=40)
    return export_run(run, n_obs=100).parent


def test_runtime_imports_without_torch_or_pbrl(bundle_dir: Path, tmp_path: Path) -> None:
    from stable_baselines3 import SAC

    obs = np.random.default_rng(0).standard_normal((5, 17)).astype(np.float32) * 3
    np.save(tmp_path / "obs.npy", obs)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        sys.path.insert(0, {str(SIM2REAL)!r})
        import numpy as np
        from pbrl_sim2real import PolicyRuntime
        rt = PolicyRuntime({str(bundle_dir)!r})
        acts = np.stack([rt.act(o) for o in np.load({str(tmp_path / "obs.npy")!r})])
        np.save({str(tmp_path / "acts.npy")!r}, acts)
        loaded = [m for m in sys.modules if m.split(".")[0] in ("torch", "pbrl") and sys.modules[m] is not None]
        print("LOADED", loaded)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1500:]
    assert "LOADED []" in res.stdout
    model = SAC.load(bundle_dir.parent / "policy.zip", device="cpu")
    np.testing.assert_allclose(np.load(tmp_path / "acts.npy"), model.predict(obs, deterministic=True)[0], atol=1e-5)


def test_observation_validation(bundle_dir: Path) -> None:
    rt = PolicyRuntime(bundle_dir)
    good = np.zeros(17)
    assert rt.act(good).dtype == np.float32 and rt.act(good).shape == (6,)
    assert rt.act(good.astype(np.int64)).shape == (6,)
    with pytest.raises(ObservationError, match=r"expected shape \(17,\), got \(16,\)"):
        rt.act(np.zeros(16))
    with pytest.raises(ObservationError, match=r"expected shape \(17,\), got \(1, 17\)"):
        rt.act(np.zeros((1, 17)))
    with pytest.raises(ObservationError, match="expected a real-valued array, got dtype <U1"):
        rt.act(np.array(["a"] * 17))
    with pytest.raises(ObservationError, match="got dtype bool"):
        rt.act(np.zeros(17, bool))
    bad = good.copy()
    bad[3] = np.nan
    bad[9] = np.inf
    with pytest.raises(ObservationError, match="NaN/inf in qpos:bshin, qvel:rootz; refusing to act"):
        rt.act(bad)


def test_safe_actions(bundle_dir: Path) -> None:
    nan = np.full(17, np.nan)
    hold = PolicyRuntime(bundle_dir, safe_action="hold")
    np.testing.assert_array_equal(hold.act(nan), np.zeros(6))  # nothing held yet
    last = hold.act(np.ones(17)).copy()
    np.testing.assert_array_equal(hold.act(nan), last)
    assert hold.n_unsafe == 2
    fixed = PolicyRuntime(bundle_dir, safe_action=[5.0, -5.0, 0.1, 0, 0, 0])
    np.testing.assert_allclose(fixed.act(nan), [1.0, -1.0, 0.1, 0, 0, 0])  # clipped into the bounds
    with pytest.raises(ValueError, match="safe_action: expected 6 finite numbers"):
        PolicyRuntime(bundle_dir, safe_action=[0.0])
    with pytest.raises(ValueError, match="safe_action: expected None, 'zeros', 'hold'"):
        PolicyRuntime(bundle_dir, safe_action="brake")


def test_actions_stay_in_bounds_for_huge_inputs(bundle_dir: Path) -> None:
    rt = PolicyRuntime(bundle_dir)
    acts = np.stack([rt.act(o) for o in np.random.default_rng(2).standard_normal((50, 17)) * 1e6])
    assert acts.min() >= -1.0 and acts.max() <= 1.0 and np.isfinite(acts).all()


def test_bundle_errors(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="policy.json: not found"):
        load_bundle(tmp_path)
    meta = {**json.loads((bundle_dir / "policy.json").read_text()), "file": str(bundle_dir / "policy.onnx")}
    for change, message in [({"format": "torchscript"}, "the runtime runs ONNX"),
                            ({"schema_version": 99}, "schema_version 99"),
                            ({"file": "gone.onnx"}, "gone.onnx: missing")]:
        (tmp_path / "policy.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(BundleError, match=message):
            load_bundle(tmp_path / "policy.json")
    del meta["action"]
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="missing field 'action.low'"):
        load_bundle(tmp_path)


def test_rate_is_drift_free_and_counts_overruns() -> None:
    now, slept = [0.0], []

    def sleeper(s: float) -> None:
        slept.append(s)
        now[0] += s

    rate = Rate(0.01, clock=lambda: now[0], sleeper=sleeper)
    for work in (0.002, 0.004, 0.0, 0.025, 0.001):
        now[0] += work
        rate.sleep()
    assert slept == pytest.approx([0.008, 0.006, 0.01, 0.009])  # ticks at 0.01, 0.02, 0.03 | overrun | 0.065
    assert rate.overruns == 1
    with pytest.raises(ValueError, match="period_s: expected > 0"):
        Rate(0.0)


def test_drive_mujoco_example(bundle_dir: Path) -> None:
    res = subprocess.run([sys.executable, str(SIM2REAL / "examples" / "drive_mujoco.py"), str(bundle_dir),
                          "--steps", "40", "--nan-at", "3"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1500:]
    fields = dict(kv.split("=") for kv in res.stdout.split())
    assert fields["steps"] == "40" and fields["safe_actions"] == "1"
    assert np.isfinite(float(fields["return"]))
