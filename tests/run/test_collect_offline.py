"""Offline dataset building: behaviour mixture, segment cutting, pairing, oracle-critic scores, Minari I/O."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.run.collect import (CollectSpec, behaviour_kinds, bias_vector, build_dataset, critic_advantage,
                               cut_segments, noisy, pair_indices)
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Trajectory
from pbrl.envs import load_task, make_env
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.types import PbrlError


def _traj(T: int, episode_id: int, reward: float) -> Trajectory:
    return Trajectory(obs=np.zeros((T + 1, 3), np.float32), acts=np.zeros((T, 2), np.float32),
                      rewards=np.full(T, reward, np.float32), episode_id=episode_id)


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(PbrlError, match="collect.pairing"):
        CollectSpec(pairing="all")
    with pytest.raises(PbrlError, match="random_frac"):
        CollectSpec(random_frac=0.7, suboptimal_frac=0.5)
    with pytest.raises(PbrlError, match="collect.suboptimal_bias"):
        CollectSpec(suboptimal_bias=-0.5)
    with pytest.raises(PbrlError, match="collect.n_segments: expected >= 2"):
        CollectSpec(n_segments=0)


def test_suboptimal_bias_is_one_shared_offset(rng: np.random.Generator) -> None:
    """Sub-optimal episodes act with expert + the dataset's offset (same direction every episode); experts do not."""
    spec = CollectSpec(noise_std=0.0, suboptimal_noise=0.0, suboptimal_bias=0.5)
    bias = bias_vector(spec, 4, seed=3)
    assert np.isclose(np.linalg.norm(bias), 0.5) and np.array_equal(bias, bias_vector(spec, 4, seed=3))
    assert not np.allclose(bias, bias_vector(spec, 4, seed=4))  # the direction follows the dataset seed
    expert = lambda obs: np.full(4, 0.1, np.float32)  # noqa: E731
    obs = np.zeros(3, np.float32)
    assert np.allclose(noisy(expert, "suboptimal", spec, rng, bias)(obs), np.clip(0.1 + bias, -1, 1))
    assert np.allclose(noisy(expert, "expert", spec, rng, bias)(obs), 0.1)
    rand = noisy(expert, "random", spec, rng, bias)(obs)
    assert rand.shape == (4,) and np.all(np.abs(rand) <= 1)


def test_behaviour_kinds_follow_the_shares(rng: np.random.Generator) -> None:
    kinds = behaviour_kinds(CollectSpec(episodes=10, random_frac=0.2, suboptimal_frac=0.3), rng)
    assert sorted(kinds) == ["expert"] * 5 + ["random"] * 2 + ["suboptimal"] * 3


def test_cut_segments_windows_and_padding() -> None:
    segs = cut_segments([_traj(10, 0, 1.0), _traj(3, 1, 1.0)], length=4, stride=3)
    assert [(s.episode_id, s.start) for s in segs] == [(0, 0), (0, 3), (0, 6), (1, 0)]
    assert segs[-1].rewards.tolist() == [1.0, 1.0, 1.0, 0.0]  # the short episode is padded with zero reward


def test_pair_indices_sparse_dense_and_aligned(rng: np.random.Generator) -> None:
    f, s = pair_indices(10, "sparse", 4, rng)
    assert len(f) == 5 and len(set(f) | set(s)) == 10  # disjoint: every segment compared once
    f, s = pair_indices(9, "dense", 4, rng)
    assert len(f) == 2 * 6  # two full groups of 4 -> 6 comparisons each; the 9th segment is left out
    starts = np.array([0, 0, 5, 5, 0, 5])
    f, s = pair_indices(6, "sparse", 4, rng, starts)
    assert len(f) == 2 and np.all(starts[f] == starts[s])


def test_build_dataset_labels_follow_returns(tmp_path, rng: np.random.Generator) -> None:
    trajs = [_traj(8, i, float(i)) for i in range(4)]
    spec = CollectSpec(episodes=4, segment_length=4, stride=4, pairing="dense", group_size=4, aligned=True)
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        stats = build_dataset(store, trajs, spec, teacher_from_preset("oracle", rng=rng).label, seed=0)
        assert stats == {"segments": 8, "pairs": 12, "answered": 12}  # 2 start buckets x 6 pairs
        for row in store.labels():
            a, b = store.get_segments([row.first_id, row.second_id])
            assert a.start == b.start
            assert row.label == (1.0 if a.episode_id > b.episode_id else 0.0)  # episode i has reward i per step


def test_build_dataset_too_few_segments_is_an_error(tmp_path, rng: np.random.Generator) -> None:
    with PreferenceStore(tmp_path / "s.sqlite") as store, pytest.raises(PbrlError, match="only 1 segment"):
        build_dataset(store, [_traj(4, 0, 1.0)], CollectSpec(segment_length=4, aligned=False),
                      teacher_from_preset("oracle", rng=rng).label, seed=0)


def test_critic_advantage_from_sac_checkpoint(tmp_path) -> None:
    from stable_baselines3 import PPO, SAC

    task = load_task("drawer-open")
    env = make_env(task, seed=0, episode_length=20)
    SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu").save(tmp_path / "sac.zip")
    PPO("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, n_steps=8, batch_size=8, seed=0,
        device="cpu").save(tmp_path / "policy.zip")
    env.close()
    score = critic_advantage(str(tmp_path / "sac.zip"), n_samples=4)
    seg = Trajectory(obs=np.random.default_rng(0).standard_normal((6, 39)).astype(np.float32),
                     acts=np.zeros((5, 4), np.float32), rewards=np.zeros(5, np.float32)).segment(0, 5)
    adv = score(seg)
    assert adv.shape == (5,) and np.all(np.isfinite(adv)) and np.any(adv != 0)
    with pytest.raises(PbrlError, match="not a SAC checkpoint"):
        critic_advantage(str(tmp_path))  # a run dir holding a PPO policy.zip
    with pytest.raises(PbrlError, match="collect.critic: .* not found"):
        critic_advantage(str(tmp_path / "nope.zip"))


@pytest.mark.slow  # Minari + h5py import and an env: ~30 s on the shared machine
def test_minari_round_trip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("minari", reason="Minari I/O needs the 'data' extra")
    from pbrl.run.minari_io import export_minari, import_minari
    from pbrl.envs import expert_policy, rollout

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    task = load_task("drawer-open")
    env = make_env(task, seed=0, episode_length=15)
    trajs = [rollout(env, expert_policy(task), seed=i, episode_id=i, task_name=task.name) for i in range(2)]
    env.close()
    export_minari(trajs, "pbrl/drawer-open/unit-v0", task)
    back = import_minari("pbrl/drawer-open/unit-v0", task)
    assert len(back) == 2
    for a, b in zip(trajs, back):
        np.testing.assert_allclose(a.obs, b.obs)
        np.testing.assert_allclose(a.acts, b.acts)
        np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-6)
        np.testing.assert_allclose(a.terms["near_object"], b.terms["near_object"], rtol=1e-6)
        assert np.array_equal(a.success, b.success)
    with pytest.raises(PbrlError, match="minari export .*"):
        export_minari(trajs, "pbrl/drawer-open/unit-v0", task)  # the id exists already
    with pytest.raises(PbrlError, match="minari_in: cannot load dataset"):
        import_minari("pbrl/drawer-open/missing-v0", task)
