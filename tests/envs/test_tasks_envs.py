"""Every shipped task builds a real env whose info carries the declared reward terms."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from pbrl.envs import eval_seed, evaluate, expert_policy, list_tasks, load_task, make_env, rollout
from pbrl.envs.tasks import task_from_dict
from pbrl.resources import resource_dir
from pbrl.types import PbrlError

MUJOCO = ["halfcheetah", "hopper", "walker2d"]
METAWORLD = ["reach", "button-press", "drawer-open", "door-open", "window-open", "sweep-into"]


def test_required_tasks_are_shipped() -> None:
    assert set(MUJOCO + METAWORLD) <= set(list_tasks())
    assert (resource_dir("tasks") / "halfcheetah.yaml").is_file()


@pytest.mark.parametrize("name", list_tasks())
def test_task_env_reports_named_terms(name: str) -> None:
    task = load_task(name)
    env = make_env(task, seed=0, episode_length=5)
    try:
        traj = rollout(env, lambda o: env.action_space.sample(), seed=0, task_name=name)
    finally:
        env.close()
    assert len(traj) == 5 and traj.obs.shape[0] == 6
    assert set(traj.terms) == set(task.reward_terms)
    assert all(np.all(np.isfinite(v)) for v in traj.terms.values())
    assert (traj.success is not None) == (task.suite == "metaworld")


def test_mujoco_terms_add_up_to_reward() -> None:
    env = make_env(load_task("halfcheetah"), seed=1, episode_length=20)
    traj = rollout(env, lambda o: env.action_space.sample(), seed=1)
    env.close()
    np.testing.assert_allclose(traj.terms["reward_forward"] + traj.terms["reward_ctrl"], traj.rewards, atol=1e-5)


def test_metaworld_expert_succeeds() -> None:
    task = load_task("drawer-open")
    res = evaluate(task, expert_policy(task), n_episodes=1, seed=0, episode_length=200)
    assert res.success_rate == 1.0
    assert res.return_mean > 500


def test_headless_video(tmp_path: Path) -> None:
    task = load_task("halfcheetah")
    video = tmp_path / "v.mp4"
    evaluate(task, lambda o: np.zeros(6, np.float32), n_episodes=1, seed=0, episode_length=12,
             video_path=video, video_steps=8)
    frames = iio.imread(video)
    assert frames.shape[0] == 8 and frames.shape[-1] == 3
    assert frames.std() > 1.0  # a rendered scene, not a blank frame


def test_evaluation_episodes_are_seeded_apart_from_training() -> None:
    """A run with seed s evaluates on episodes seeded 10000 + s, 10000 + s + 1, ... (never its training seeds)."""
    assert (eval_seed(0), eval_seed(7), eval_seed(np.int64(3))) == (10_000, 10_007, 10_003)
    task = load_task("halfcheetah")
    policy = lambda o: np.full(6, 0.3, np.float32)  # noqa: E731
    res = evaluate(task, policy, n_episodes=2, seed=eval_seed(1), episode_length=5)
    env = make_env(task, seed=0, episode_length=5)
    try:
        by_hand = [rollout(env, policy, seed=seed).true_return for seed in (10_001, 10_002, 10_003)]
    finally:
        env.close()
    np.testing.assert_allclose(res.returns, by_hand[:2])
    assert by_hand[0] != by_hand[1] != by_hand[2]  # the seeds matter, so the comparison above could fail


def test_unknown_task_and_bad_fields(tmp_path: Path) -> None:
    with pytest.raises(PbrlError, match="unknown task 'nope'.*halfcheetah"):
        load_task("nope")
    with pytest.raises(PbrlError, match=r"task\.env_id: missing \(required\)"):
        task_from_dict({"name": "x", "suite": "mujoco", "episode_length": 5, "reward_terms": ["r"]}, source="task")
    with pytest.raises(PbrlError, match="key 'suite': expected one of mujoco, metaworld, got 'atari'"):
        task_from_dict({"name": "x", "suite": "atari", "env_id": "X", "episode_length": 5, "reward_terms": ["r"]},
                       source="x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(PbrlError, match="not valid YAML"):
        load_task(str(bad))


def _task_file(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((resource_dir("tasks") / "halfcheetah.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "mytask.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"sucess_key": "x"}, r"key 'sucess_key': unknown key \(did you mean 'success_key'\?\)"),
    ({"episode_length": "long"}, r"key 'episode_length': expected an integer >= 1, got 'long'"),
    ({"reward_terms": "reward_forward"}, r"key 'reward_terms': expected a non-empty list"),
    ({"camera": {"nmae": "track"}}, r"key 'camera.nmae': unknown key \(did you mean 'name'\?\)"),
    ({"prompts": {"gaol": "run"}}, r"key 'prompts.gaol': unknown key \(did you mean 'goal'\?\)"),
    ({"heron": {"term": "x"}}, r"key 'heron': expected a list of ranking entries"),
])
def test_task_file_schema_names_file_and_key(tmp_path: Path, changes: dict, message: str) -> None:
    path = _task_file(tmp_path, **changes)
    with pytest.raises(PbrlError, match=f"task file {re.escape(str(path))}: {message}"):
        load_task(str(path))


def test_declared_extra_blocks_reach_the_task(tmp_path: Path) -> None:
    task = load_task(str(_task_file(tmp_path)))
    assert set(task.extra) == {"heron", "randomisation"} and task.extra["randomisation"]["mass"] == [0.8, 1.2]


@pytest.mark.parametrize("name", MUJOCO)
def test_locomotion_video_camera_follows_the_robot(name: str) -> None:
    """The robot stays in the frame when it has run 15 m: its (brown) pixels are there at x=0 and x=15."""
    task = load_task(name)
    env = make_env(task, seed=0, render=True)
    env.reset(seed=0)
    base = env.unwrapped
    robot_pixels = []
    for x in (0.0, 15.0):
        qpos = base.data.qpos.copy()
        qpos[0] = x
        base.set_state(qpos, np.zeros_like(base.data.qvel))
        frame = env.render().astype(int)
        robot_pixels.append(int(((frame[..., 0] - frame[..., 2]) > 40).sum()))  # red >> blue: the robot's colour
    env.close()
    assert robot_pixels[0] > 50 and robot_pixels[1] > 0.5 * robot_pixels[0], robot_pixels


def test_missing_reward_term_is_named() -> None:
    task = load_task("halfcheetah", overrides={"reward_terms": ["reward_forward", "reward_flying"]})
    env = make_env(task, seed=0)
    env.reset(seed=0)
    with pytest.raises(PbrlError, match=r"\['reward_flying'\] not in the env's info"):
        env.step(env.action_space.sample())
    env.close()


def test_metaworld_horizon_limit() -> None:
    with pytest.raises(PbrlError, match="exceeds Meta-World's limit of 500"):
        make_env(load_task("reach"), seed=0, episode_length=600)


class _DivergingEnv:
    """Stands in for a simulation that blows up (a real MuJoCo divergence is not reproducible on demand)."""

    def __new__(cls):
        import gymnasium as gym

        class Env(gym.Env):
            observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
            action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

            def reset(self, *, seed=None, options=None):
                return np.zeros(2), {}

            def step(self, action):
                return np.array([np.nan, 0.0]), 0.0, False, False, {"reward_forward": 0.0, "reward_ctrl": 0.0}

        return Env()


def test_nan_observation_is_reported() -> None:
    from pbrl.envs import TaskInfoWrapper

    env = TaskInfoWrapper(_DivergingEnv(), load_task("halfcheetah"))
    env.reset()
    with pytest.raises(PbrlError, match="NaN/inf in the observation at step 1"):
        env.step(np.zeros(1, np.float32))


def test_metaworld_frames_are_turned_upright() -> None:
    import dataclasses

    task = load_task("reach")
    assert task.camera.flip  # Meta-World renders with OpenGL's bottom-left origin
    raw_task = dataclasses.replace(task, camera=dataclasses.replace(task.camera, flip=False))
    frames = []
    for t in (task, raw_task):
        env = make_env(t, seed=0, render=True)
        env.reset(seed=0)
        frames.append(env.render())
        env.close()
    np.testing.assert_array_equal(frames[0], frames[1][::-1])


@pytest.mark.parametrize("name", list_tasks())
def test_early_termination_is_declared_where_the_env_ends_episodes(name: str) -> None:
    """``early_termination`` (which picks the default reward normalisation) matches the real env: gymnasium's
    MuJoCo envs end an episode on falling exactly when they have ``terminate_when_unhealthy`` on."""
    task = load_task(name)
    env = make_env(task, seed=0)
    try:
        ends_early = bool(getattr(env.unwrapped, "_terminate_when_unhealthy", False))
        if task.early_termination:  # and it really happens: random actions topple the robot within the horizon
            traj = rollout(env, lambda o: env.action_space.sample(), seed=0, task_name=name)
            assert len(traj) < task.episode_length
    finally:
        env.close()
    assert task.early_termination == ends_early


def test_early_termination_must_be_a_bool() -> None:
    with pytest.raises(PbrlError, match="early_termination: expected true or false"):
        task_from_dict({"name": "t", "suite": "mujoco", "env_id": "x", "episode_length": 5, "reward_terms": ["r"],
                        "early_termination": "yes"})
