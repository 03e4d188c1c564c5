"""Domain randomisation: parameters really change, derived constants follow, config plumbing works."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from pbrl.envs import load_task, make_env
from pbrl.envs.randomize import (ActionDelay, DynamicsRandomiser, RandomisationSpec, parse_randomisation,
                                 resolve_randomisation)
from pbrl.resources import resource_dir
from pbrl.run.builder import build_randomisation
from pbrl.types import PbrlError

DYN = RandomisationSpec(mass=(0.5, 1.5), friction=(0.5, 1.5), damping=(0.5, 1.5), actuator_gain=(0.5, 1.5))


def _find(env, cls):
    while not isinstance(env, cls):
        env = env.env
    return env


def test_dynamics_change_every_reset_and_mj_setconst_recomputes(rng) -> None:
    env = make_env(load_task("hopper"), seed=0, randomisation=DYN, episode_length=20)
    model = env.unwrapped.model
    nominal = {k: getattr(model, k).copy() for k in ("body_mass", "geom_friction", "dof_damping", "actuator_gainprm",
                                                     "body_subtreemass", "dof_invweight0")}
    env.reset(seed=1)
    first = model.body_mass.copy()
    for key in ("body_mass", "dof_damping", "actuator_gainprm"):
        assert not np.allclose(getattr(model, key), nominal[key]), key
    assert not np.allclose(model.geom_friction[:, 0], nominal["geom_friction"][:, 0])
    np.testing.assert_array_equal(model.geom_friction[:, 1:], nominal["geom_friction"][:, 1:])  # torsional/rolling kept
    factors = _find(env, DynamicsRandomiser).factors
    np.testing.assert_allclose(model.body_mass, nominal["body_mass"] * factors["mass"])
    assert np.all((factors["mass"] >= 0.5) & (factors["mass"] <= 1.5))
    # derived constants were recomputed from the new masses (mj_setConst), not left at their nominal values
    assert model.body_subtreemass[0] == pytest.approx(model.body_mass.sum(), rel=1e-9)
    assert not np.allclose(model.body_subtreemass, nominal["body_subtreemass"])
    assert not np.allclose(model.dof_invweight0, nominal["dof_invweight0"])
    env.reset()
    assert not np.allclose(model.body_mass, first)  # resampled each episode
    env.reset(seed=1)
    np.testing.assert_array_equal(model.body_mass, first)  # seeded: reproducible
    env.close()


def test_randomised_dynamics_change_the_trajectory() -> None:
    task = load_task("halfcheetah")
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 6)).astype(np.float32)

    def final_obs(randomisation):
        env = make_env(task, seed=0, randomisation=randomisation, episode_length=30)
        env.reset(seed=3)
        for a in actions:
            obs = env.step(a)[0]
        env.close()
        return obs

    nominal = final_obs(None)
    assert not np.allclose(final_obs(RandomisationSpec(mass=(0.5, 0.6))), nominal, atol=1e-3)
    np.testing.assert_allclose(final_obs(RandomisationSpec(mass=(1.0, 1.0))), nominal, atol=1e-9)


def test_action_delay_and_observation_noise() -> None:
    task = load_task("halfcheetah")
    env = make_env(task, seed=0, randomisation=RandomisationSpec(action_delay=(2, 2)), episode_length=10)
    env.reset(seed=0)
    applied = []
    base_step = env.env.step
    env.env.step = lambda a: (applied.append(np.array(a)), base_step(a))[1]
    for t in range(4):
        env.step(np.full(6, 0.1 * (t + 1), np.float32))
    assert _find(env, ActionDelay).k == 2
    np.testing.assert_allclose(np.stack(applied), [[0] * 6, [0] * 6, [0.1] * 6, [0.2] * 6], atol=1e-7)
    clean = make_env(task, seed=0, episode_length=10).reset(seed=4)[0]
    noisy_env = make_env(task, seed=0, randomisation=RandomisationSpec(obs_noise=0.5), episode_length=10)
    noisy = noisy_env.reset(seed=4)[0]
    assert noisy.dtype == clean.dtype and 0.2 < np.std(noisy - clean) < 1.0
    np.testing.assert_array_equal(noisy_env.reset(seed=4)[0], noisy)


def test_config_block_merges_over_task_ranges() -> None:
    task = load_task("hopper")
    assert task.extra["randomisation"]["mass"] == [0.8, 1.2]
    cfg = OmegaConf.load(resource_dir("configs") / "train.yaml")
    cfg.task = OmegaConf.create({"name": "hopper"})
    assert build_randomisation(cfg, task) is None  # the default config trains on nominal dynamics
    cfg.randomisation.mass = [0.5, 0.6]
    spec = build_randomisation(cfg, task)
    assert spec.mass == (0.5, 0.6) and spec.friction == (0.7, 1.3) and spec.action_delay == (0, 1)
    bare = dataclasses.replace(task, extra={})
    assert resolve_randomisation(bare, {"enabled": False, "obs_noise": 0.1}) == RandomisationSpec(obs_noise=0.1)
    with pytest.raises(PbrlError, match="randomisation.enabled: task hopper has no randomisation: block"):
        resolve_randomisation(bare, {"enabled": True})


@pytest.mark.parametrize("raw, message", [
    ({"mass": [1.2, 0.8]}, r"randomisation.mass: expected 0 < low <= high"),
    ({"mass": 1.1}, r"randomisation.mass: expected \[low, high\]"),
    ({"friction": ["a", 1]}, "randomisation.friction: expected two numbers"),
    ({"action_delay": [-1, 2]}, "randomisation.action_delay: expected 0 <= low <= high"),
    ({"obs_noise": -0.1}, "randomisation.obs_noise: expected a standard deviation >= 0"),
    ({"gravity": [0.9, 1.1]}, r"randomisation: unknown key\(s\) \['gravity'\]"),
])
def test_bad_ranges_are_one_line_errors(raw: dict, message: str) -> None:
    with pytest.raises(PbrlError, match=message):
        parse_randomisation(raw)


def test_hydra_override_of_randomisation_ranges() -> None:
    from hydra import compose, initialize_config_dir

    from pbrl.run.config import register_tasks

    register_tasks()
    with initialize_config_dir(config_dir=str(resource_dir("configs")), version_base="1.3"):
        cfg = compose("train", overrides=["task=hopper", "randomisation.mass=[0.7,1.3]",
                                          "randomisation.obs_noise=0.02"])
    spec = build_randomisation(cfg, load_task("hopper"))
    assert spec.mass == (0.7, 1.3) and spec.obs_noise == 0.02 and spec.damping == (0.8, 1.2)
