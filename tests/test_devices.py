"""`device=auto|cpu|cuda` resolved per library, with and without a GPU (torch's and JAX's answers faked)."""

from __future__ import annotations

import pytest
import torch

from pbrl.devices import check_device, jax_platform, torch_device
from pbrl.types import PbrlError


@pytest.mark.parametrize("has_gpu, setting, expected", [
    (False, "auto", "cpu"), (True, "auto", "cuda"), (False, "cpu", "cpu"), (True, "cpu", "cpu"),
    (True, "cuda", "cuda"), (True, "cuda:1", "cuda:1"),
])
def test_torch_device(monkeypatch, has_gpu: bool, setting: str, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    assert torch_device(setting) == expected


def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PbrlError, match=r"^reward.vlm.device=cuda: torch .* sees no CUDA device here; use device=cpu"):
        torch_device("cuda", "reward.vlm.device")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:x", "", None])
def test_bad_settings(bad) -> None:
    with pytest.raises(PbrlError, match=r"device: expected one of auto \| cpu \| cuda \(or cuda:N\)"):
        check_device(bad)


def test_jax_platform(monkeypatch) -> None:
    import jax

    real = jax.devices

    def cpu_only(backend=None):
        if backend == "gpu":
            raise RuntimeError("Unknown backend: 'gpu' requested, but no platforms that are instances of gpu")
        return real(backend)

    monkeypatch.setattr(jax, "devices", cpu_only)
    assert jax_platform("auto") == "cpu" and jax_platform("cpu") == "cpu"
    with pytest.raises(PbrlError, match="device=cuda: JAX .* has no GPU backend here"):
        jax_platform("cuda")
    monkeypatch.setattr(jax, "devices", lambda backend=None: ["a gpu"])
    assert jax_platform("auto") == "gpu" and jax_platform("cuda:0") == "gpu" and jax_platform("cpu") == "cpu"


def test_the_run_device_reaches_the_reward_model(monkeypatch) -> None:
    from omegaconf import OmegaConf

    from pbrl.run.builder import build_reward_model

    model = {"_target_": "pbrl.rewards.ensemble.EnsembleReward", "n_members": 1, "hidden": [8]}
    cfg = OmegaConf.create({"device": "auto", "reward": {"model": model}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert build_reward_model(cfg, 3, 2, seed=0).device == torch.device("cpu")  # auto without a GPU: the CPU path
    cfg.device = "cuda"
    with pytest.raises(PbrlError, match="device=cuda: torch .* sees no CUDA device"):
        build_reward_model(cfg, 3, 2, seed=0)
