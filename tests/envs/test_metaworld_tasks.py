"""The memoised Meta-World goal list: envs made through it behave exactly like Meta-World's own, built once."""

from __future__ import annotations

import gymnasium as gym
import metaworld
import numpy as np
import pytest

from pbrl.envs import load_task, make_env
from pbrl.envs import metaworld_tasks


def _trajectory(env: gym.Env, seed: int, steps: int = 25) -> np.ndarray:
    obs = [env.reset(seed=seed)[0]]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs.append(env.step(rng.uniform(-1, 1, env.action_space.shape))[0])
    return np.stack(obs)


@pytest.mark.parametrize("name", ["drawer-open", "sweep-into"])
def test_memoised_env_matches_metaworld_own_make(name: str) -> None:
    task = load_task(name)
    metaworld_tasks.clear()
    theirs = gym.make(task.env_id, max_episode_steps=task.episode_length, disable_env_checker=True,
                      seed=7, **task.env_kwargs)  # Meta-World's own factory, no memo
    first, second = make_env(task, seed=7), make_env(task, seed=7)  # built, then from the memo
    reference = _trajectory(theirs, 7)
    np.testing.assert_array_equal(_trajectory(first, 7), reference)
    np.testing.assert_array_equal(_trajectory(second, 7), reference)
    for episode_seed in (1, 2, 3):  # the goal drawn at each reset comes from the same list
        np.testing.assert_array_equal(_trajectory(second, episode_seed, 3), _trajectory(theirs, episode_seed, 3))


def test_goal_lists_are_per_seed_and_copies_are_independent() -> None:
    metaworld_tasks.clear()
    original = metaworld.MT1
    with metaworld_tasks.memoised_mt1():
        a, b, other = metaworld.MT1("drawer-open-v3", seed=3), metaworld.MT1("drawer-open-v3", seed=3), \
            metaworld.MT1("drawer-open-v3", seed=4)
    assert [t.data for t in a.train_tasks] == [t.data for t in b.train_tasks]
    assert [t.data for t in a.train_tasks] != [t.data for t in other.train_tasks]
    a.train_tasks.clear()  # one caller's list is its own
    with metaworld_tasks.memoised_mt1():
        assert len(metaworld.MT1("drawer-open-v3", seed=3).train_tasks) == len(b.train_tasks) == 50
    assert metaworld.MT1 is original  # the swap ends with the block: Meta-World's own class is back


def test_unseeded_envs_are_not_memoised_and_the_global_generator_is_untouched() -> None:
    metaworld_tasks.clear()
    np.random.seed(11)
    expected = np.random.random()
    np.random.seed(11)
    make_env(load_task("drawer-open"), seed=5)
    make_env(load_task("drawer-open"), seed=5)
    assert np.random.random() == expected
    with metaworld_tasks.memoised_mt1():
        np.random.seed(0)
        a = metaworld.MT1("drawer-open-v3", seed=None)
        b = metaworld.MT1("drawer-open-v3", seed=None)  # drawn from the global generator: a new list each time
    assert [t.data for t in a.train_tasks] != [t.data for t in b.train_tasks]
    assert not any(key[1] is None for key in metaworld_tasks._BUILT)
