"""pbrl export on real SB3 SAC/PPO policies: graph files, policy.json, parity, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from stable_baselines3 import PPO, SAC

from bench_modules import load_bench
from pbrl.cli import main
from pbrl.export import bundle as bundle_mod
from pbrl.export import export_run, load_run
from pbrl.export.policy import ExportablePolicy, ExportModule
from pbrl.export.sb3 import export_sac
from pbrl.types import PbrlError

write_sb3_run = load_bench("sb3_runs").write_sb3_run

EPISODE = 60


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory) -> Path:
    return write_sb3_run(tmp_path_factory.mktemp("sac"), algo="sac", net_arch=(32, 32), episode_length=EPISODE)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    run = write_sb3_run(tmp_path_factory.mktemp("ppo"), algo="ppo", net_arch=(32, 32), episode_length=EPISODE)
    model = PPO.load(run / "policy.zip", device="cpu")
    with torch.no_grad():  # SB3 initialises the mean head with gain 0.01; make some actions leave the bounds
        model.policy.action_net.weight.mul_(300.0)
    model.save(run / "policy.zip")
    return run


def _extreme_obs(dim: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.standard_normal((200, dim)) * np.array([1.0, 10.0, 100.0, 1e4])[rng.integers(0, 4, 200), None]
            ).astype(np.float32)


def test_sac_onnx_bundle_matches_sb3_predict(sac_run: Path) -> None:
    meta = json.loads(export_run(sac_run).read_text())
    assert meta["format"] == "onnx" and meta["algo"] == "sac" and meta["task"] == "halfcheetah"
    assert meta["observation"]["dim"] == 17 and meta["observation"]["names"][0] == "qpos:rootz"
    assert meta["action"]["names"] == ["bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"]
    assert meta["action"]["low"] == [-1.0] * 6 and meta["control_period_s"] == pytest.approx(0.05)
    digest = hashlib.sha256((sac_run / "config.yaml").read_bytes()).hexdigest()
    assert meta["source"]["config_hash"] == f"sha256:{digest}"
    assert meta["versions"]["torch"] and meta["versions"]["onnx_opset"] == 17
    parity = meta["parity"]
    # the states of 10 closed-loop episodes (61 observations each) and 1000 perturbations of them
    assert parity["passed"] and parity["n_obs"] == 10 * (EPISODE + 1) + 1000 and parity["max_abs_diff"] < 1e-5
    assert parity["rollout_steps"] == 10 * EPISODE and len(parity["returns_export"]) == 10
    # independent check on inputs far outside the training distribution (saturated tanh, clipping)
    model = SAC.load(sac_run / "policy.zip", device="cpu")
    session = ort.InferenceSession(str(sac_run / "export" / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = _extreme_obs(17)
    exported = session.run(["action"], {"obs": obs})[0]
    np.testing.assert_allclose(exported, model.predict(obs, deterministic=True)[0], atol=1e-5)
    assert exported.min() >= -1.0 and exported.max() <= 1.0


def test_ppo_torchscript_bundle_clips_like_sb3(ppo_run: Path, tmp_path: Path) -> None:
    meta = json.loads(export_run(ppo_run, fmt="torchscript", out=tmp_path / "b").read_text())
    assert meta["file"] == "policy.pt" and meta["parity"]["passed"] and meta["policy"]["net_arch"] == [32, 32]
    model = PPO.load(ppo_run / "policy.zip", device="cpu")
    graph = torch.jit.load(str(tmp_path / "b" / "policy.pt"))
    obs = _extreme_obs(17)
    with torch.no_grad():
        exported = graph(torch.as_tensor(obs)).numpy()
    expected = model.predict(obs, deterministic=True)[0]
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    # some inputs really hit the bounds (clipping exercised), others do not
    assert np.any(np.abs(expected) == 1.0) and np.any(np.abs(expected) < 1.0)


def test_export_module_scales_normalises_and_clips() -> None:
    core = torch.nn.Identity()
    low, high = np.array([0.0, -2.0], np.float32), np.array([4.0, 2.0], np.float32)
    squash = ExportModule(core, low=low, high=high, squash=True, obs_dim=2, obs_mean=np.array([1.0, 0.0]),
                          obs_std=np.array([2.0, 0.5]), obs_clip=3.0)
    x = torch.tensor([[3.0, 0.25], [1.0, 100.0]])
    z = torch.clamp((x - torch.tensor([1.0, 0.0])) / torch.tensor([2.0, 0.5]), -3, 3)
    expected = torch.tensor(low) + 0.5 * (torch.tanh(z) + 1) * torch.tensor(high - low)
    torch.testing.assert_close(squash(x), expected)
    clip = ExportModule(core, low=low, high=high, squash=False, obs_dim=2)
    torch.testing.assert_close(clip(torch.tensor([[-5.0, 1.5], [9.0, -7.0]])), torch.tensor([[0.0, 1.5], [4.0, -2.0]]))
    assert squash.describe()["normalisation"]["kind"] == "standardise"
    assert clip.describe()["normalisation"] == {"kind": "none"}
    with pytest.raises(PbrlError, match="action bounds must be finite"):
        ExportModule(core, low=high, high=low, squash=False, obs_dim=2)


def test_parity_failure_is_reported_and_nothing_left(sac_run: Path, tmp_path: Path, monkeypatch) -> None:
    def off_by_a_bit(run):
        good = export_sac(run)
        return ExportablePolicy(module=good.module, reference=lambda o: good.reference(o) + 1e-3, algo="sac")

    monkeypatch.setattr(bundle_mod, "get_exporter", lambda algo: off_by_a_bit)
    with pytest.raises(PbrlError, match="export parity check failed .* max \\|action diff\\| 1.00e-03"):
        export_run(sac_run, out=tmp_path / "bad")
    assert not list((tmp_path / "bad").iterdir())


def test_bad_run_dirs_are_one_line_errors(sac_run: Path, tmp_path: Path) -> None:
    with pytest.raises(PbrlError, match="config.yaml: missing; expected a pbrl run directory"):
        export_run(tmp_path)
    (tmp_path / "config.yaml").write_text((sac_run / "config.yaml").read_text().replace("name: sac", "name: ddpg"))
    assert load_run(tmp_path).algo == "ddpg"
    with pytest.raises(PbrlError,
                       match="algo.name: no exporter for 'ddpg'; expected one of: bc, cpl, crossq, iql, oppo, ppo, sac"):
        export_run(tmp_path)
    (tmp_path / "config.yaml").write_text((sac_run / "config.yaml").read_text())
    with pytest.raises(PbrlError, match="policy.zip: missing"):
        export_run(tmp_path)
    with pytest.raises(PbrlError, match="--format: expected one of onnx, torchscript"):
        export_run(sac_run, fmt="tflite")


def test_cli_export(sac_run: Path, tmp_path: Path, capsys) -> None:
    main(["export", str(sac_run), "--out", str(tmp_path / "cli"), "--n-obs", "200"])
    out = capsys.readouterr().out
    assert "exported sac policy for halfcheetah" in out and "parity: max |action diff|" in out
    assert json.loads((tmp_path / "cli" / "policy.json").read_text())["parity"]["n_obs"] == 10 * (EPISODE + 1) + 200
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("pbrl: error:") and "config.yaml: missing" in err


# ------------------------------------------------------------------ parity on chaotic closed loops, and wrong exports


@pytest.fixture(scope="module")
def flailing_run(tmp_path_factory) -> Path:
    """A 1000-step HalfCheetah SAC policy with non-trivial outputs: its weights scaled x3, the cheetah flails
    and travels metres, and the closed loop is chaotic (a 1e-7 action difference changes an episode's return)."""
    return write_sb3_run(tmp_path_factory.mktemp("flail"), algo="sac", net_arch=(32, 32), seed=3, episode_length=1000,
                         weight_scale=3.0)


def test_chaotic_1000_step_policy_exports(flailing_run: Path) -> None:
    parity = json.loads(export_run(flailing_run).read_text())["parity"]
    ref, exp = np.array(parity["returns_reference"]), np.array(parity["returns_export"])
    assert parity["passed"] and parity["max_abs_diff"] < 1e-5 and parity["rollout_steps"] == 10_000
    assert np.max(np.abs(exp - ref)) > 1e-4 * np.abs(ref).max()  # per-seed returns differ: one-to-one would fail
    # t quantile 1 - 5e-5 at 9 degrees of freedom (scipy.stats.t.ppf), 10 seeds
    assert parity["return_tolerance"] == pytest.approx(6.594 * np.std(ref, ddof=1) * np.sqrt(2 / 10))


def _wrong_export(run_dir: Path, **changes) -> ExportablePolicy:
    good = export_sac(load_run(run_dir))
    module = good.module
    kwargs = dict(core=module.core, low=module.low.numpy(), high=module.high.numpy(), squash=module.squash,
                  obs_dim=module.obs_dim)
    kwargs.update(changes)
    return ExportablePolicy(module=ExportModule(**kwargs), reference=good.reference, algo="sac")


class _Scale(torch.nn.Module):
    def __init__(self, core: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.core, self.factor = core, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.core(x) * self.factor


@pytest.mark.parametrize("wrong", ["no-squash", "half-scale", "normalised"])
def test_wrong_exports_fail(flailing_run: Path, tmp_path: Path, monkeypatch, wrong: str) -> None:
    core = export_sac(load_run(flailing_run)).module.core
    changes = {"no-squash": {"squash": False},  # tanh squashing and rescaling left out
               "half-scale": {"core": _Scale(core, 0.5)},  # the action pre-activation scaled wrongly
               "normalised": {"obs_mean": np.full(17, 0.5, np.float32), "obs_std": np.full(17, 2.0, np.float32)},
               }[wrong]  # an observation normalisation the policy was not trained with
    monkeypatch.setattr(bundle_mod, "get_exporter", lambda algo: lambda run: _wrong_export(flailing_run, **changes))
    with pytest.raises(PbrlError, match=r"export parity check failed .* on \d+ obs \(tolerance 1e-05\) FAILED"):
        export_run(flailing_run, out=tmp_path / "bad", episodes=2, n_obs=100)
    assert not list((tmp_path / "bad").iterdir())


def test_wrong_action_bounds_fail(flailing_run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bundle_mod, "get_exporter", lambda algo: lambda run: _wrong_export(
        flailing_run, low=-2 * np.ones(6, np.float32), high=2 * np.ones(6, np.float32)))
    with pytest.raises(PbrlError, match="the policy's action bounds differ from task halfcheetah's"):
        export_run(flailing_run, out=tmp_path / "bad")


def test_normalisation_left_out_fails(sac_run: Path) -> None:
    """An offline-style policy whose core expects standardised observations, exported without the statistics."""
    from pbrl.export.parity import check_parity

    mean, std = np.linspace(-1, 1, 17).astype(np.float32), np.linspace(0.5, 3, 17).astype(np.float32)
    good = export_sac(load_run(sac_run))
    normalised = ExportModule(good.module.core, low=-np.ones(6), high=np.ones(6), squash=True, obs_dim=17,
                              obs_mean=mean, obs_std=std).eval()
    left_out = ExportModule(good.module.core, low=-np.ones(6), high=np.ones(6), squash=True, obs_dim=17).eval()

    def act(module):
        return lambda obs: module(torch.as_tensor(obs)).detach().numpy()
    task = load_run(sac_run).task
    ok = check_parity(task, act(normalised), act(normalised), seed=0, episode_length=EPISODE, episodes=2, n_obs=50)
    bad = check_parity(task, act(normalised), act(left_out), seed=0, episode_length=EPISODE, episodes=2, n_obs=50)
    assert ok.passed and not bad.passed and bad.max_abs_diff > 1e-3


def test_return_tolerance_by_hand() -> None:
    from pbrl.export.parity import ParityReport, return_tolerance

    # returns 1..5: sample std sqrt(2.5); t(1 - 5e-5, 4 dof) = 15.544 (scipy.stats.t.ppf); sqrt(2/5)
    assert return_tolerance([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(15.544 * np.sqrt(2.5) * np.sqrt(0.4))
    assert return_tolerance([-200.0] * 5) == pytest.approx(0.02)  # no spread: 1e-4 relative
    report = ParityReport(n_obs=10, max_abs_diff=0.0, tolerance=1e-5, returns_reference=(1.0, 2.0, 3.0),
                          returns_export=(30.0, 31.0, 32.0), return_tolerance=5.0, rollout_steps=3, seed=0)
    assert report.actions_match and not report.returns_match and not report.passed
