"""P-IQL pieces: episodes stitched back from stored segments, relabelling, and the TorchRL IQL learner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omegaconf import OmegaConf

from pbrl.agents.iql import IQLLearner
from pbrl.agents.transitions import TransitionData, relabel_runs, stitch_runs, store_runs
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Trajectory
from pbrl.envs import load_task
from pbrl.resources import resource_dir
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.run.iql import RNG_FILE, build_iql
from pbrl.run.offline import _restore, _save_checkpoint
from pbrl.types import Labels, PbrlError


def _episode(T: int, episode_id: int, rng: np.random.Generator) -> Trajectory:
    return Trajectory(obs=rng.standard_normal((T + 1, 3)).astype(np.float32),
                      acts=rng.uniform(-1, 1, (T, 2)).astype(np.float32), rewards=np.zeros(T, np.float32),
                      episode_id=episode_id)


def test_overlapping_segments_stitch_back_into_their_episode() -> None:
    rng = np.random.default_rng(0)
    ep = _episode(20, 7, rng)
    segs = [ep.segment(s, 8) for s in (8, 0, 4, 12)]  # overlapping windows covering steps 0..19, out of order
    (obs, acts), = stitch_runs(segs)
    np.testing.assert_array_equal(obs, ep.obs[:20])  # every stored step once (the final obs is never stored)
    np.testing.assert_array_equal(acts, ep.acts)
    data = TransitionData.from_runs([(obs, acts)], [np.arange(20, dtype=np.float32)])
    assert len(data.obs) == 19  # step 19 has no stored successor
    np.testing.assert_array_equal(data.next_obs[5], ep.obs[6])
    np.testing.assert_array_equal(data.acts[5], ep.acts[5])
    assert data.rewards[5] == 5.0 and not data.terminals.any()


def test_gaps_split_runs_and_contradicting_ids_stay_apart() -> None:
    rng = np.random.default_rng(1)
    ep = _episode(30, 0, rng)
    runs = stitch_runs([ep.segment(0, 5), ep.segment(5, 5), ep.segment(20, 5)])
    assert [len(o) for o, _ in runs] == [10, 5]  # 0..4 + 5..9 touch; 20..24 is after a gap
    other = _episode(10, 0, rng)  # an unrelated segment that reuses episode id 0 over the same steps
    runs = stitch_runs([ep.segment(0, 5), other.segment(2, 5)])
    assert sorted(len(o) for o, _ in runs) == [5, 5]
    data = TransitionData.from_runs(runs, [np.zeros(5, np.float32)] * 2)
    assert len(data.obs) == 8  # 4 + 4: no transition crosses from one to the other


def _labelled_store(path: Path) -> Path:
    """Three 16-step episodes as overlapping 8-step segments: 4 labelled pairs, the last segment unlabelled."""
    rng = np.random.default_rng(2)
    eps = [_episode(16, i, rng) for i in range(3)]
    segs = [e.segment(s, 8) for e in eps for s in (0, 4, 8)]
    with PreferenceStore(path) as store:
        store.add_pairs(segs[0::2][:4], segs[1::2][:4], Labels(np.array([1, 0, 0.5, 1], np.float32), np.zeros(4, bool)),
                        source="scripted")
        store.add_segments(segs[8:])  # unlabelled segments still hold transitions
    return path


def test_store_runs_and_relabel_on_a_real_store(tmp_path: Path) -> None:
    with PreferenceStore(_labelled_store(tmp_path / "s.sqlite"), create=False) as store:
        runs = store_runs(store)
    assert sorted(len(o) for o, _ in runs) == [16, 16, 16]
    model = EnsembleReward(3, 2, n_members=2, hidden=(8,), seed=0)
    rewards = relabel_runs(model, runs)
    for (obs, acts), r in zip(runs, rewards):  # a Markovian model: each step scored alone
        np.testing.assert_allclose(r, model.predict(obs, acts), atol=1e-6)
    with PreferenceStore(tmp_path / "empty.sqlite") as empty, pytest.raises(PbrlError, match="no segments"):
        store_runs(empty)


def test_a_reloaded_reward_fit_builds_the_iql_that_the_fit_built(tmp_path: Path) -> None:
    """A run that loads its fitted reward (a resumed run; the offline bench's IQL variants sharing one fit) builds
    IQL from the torch state the fit left: the transformer's dropout draws from the global generator, so without
    the saved state the networks would start elsewhere."""
    store, run_dir = _labelled_store(tmp_path / "s.sqlite"), tmp_path / "run"
    run_dir.mkdir()
    reward = OmegaConf.load(resource_dir("configs") / "reward" / "transformer.yaml")
    reward.model.d_model, reward.model.n_heads, reward.epochs = 16, 2, 2
    algo = OmegaConf.merge(OmegaConf.load(resource_dir("configs") / "algo" / "iql.yaml"), {"hidden": [16, 16]})
    cfg = OmegaConf.create({"algo": algo, "reward": reward, "seed": 0})

    def built() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        learner = build_iql(cfg, load_task("drawer-open"), store, run_dir, np.random.default_rng(0))
        return {k: v.clone() for k, v in learner.loss.state_dict().items()}

    fitted = built()
    fit_time = (run_dir / "reward_fit.json").stat().st_mtime_ns
    reloaded = built()
    assert (run_dir / "reward_fit.json").stat().st_mtime_ns == fit_time  # loaded, not fitted again
    assert fitted.keys() == reloaded.keys() and all(torch.equal(fitted[k], reloaded[k]) for k in fitted)
    (run_dir / RNG_FILE).unlink()  # a run directory from before the state was saved still loads, elsewhere
    assert not all(torch.equal(fitted[k], v) for k, v in built().items())


def test_relabelling_normalises_as_algo_reward_normalize_asks() -> None:
    """Default ``none``: IQL sees the reward model's output as is (the CPL code's P-IQL). ``auto``: raw where
    episodes end early (hopper: a zero-mean reward would make staying alive a cost), zero mean and unit variance
    elsewhere (drawer-open). A run configured before the key existed followed ``reward.normalize``."""
    from omegaconf import OmegaConf

    from pbrl.envs import load_task
    from pbrl.resources import resource_dir
    from pbrl.run.iql import relabelled

    rng = np.random.default_rng(3)
    runs = [(rng.normal(size=(12, 3)).astype(np.float32), rng.uniform(-1, 1, (12, 2)).astype(np.float32))
            for _ in range(2)]
    model = EnsembleReward(3, 2, n_members=2, hidden=(8,), seed=0)
    raw = np.concatenate([model.predict(o, a) for o, a in runs])
    kept = np.r_[0:11, 12:23]  # the last step of a run has no s'
    standard = (raw - raw.mean()) / raw.std()
    algo = OmegaConf.load(resource_dir("configs") / "algo" / "iql.yaml")
    assert algo.reward_normalize == "none"
    cfg = OmegaConf.create({"algo": algo, "reward": {"normalize": "standard"}})  # reward.normalize is not IQL's
    drawer, info = relabelled(cfg, load_task("drawer-open"), model, runs)
    np.testing.assert_allclose(drawer.rewards, raw[kept], atol=1e-6)
    assert info["reward_raw_mean"] == pytest.approx(raw.mean(), abs=1e-6)
    cfg.algo.reward_normalize = "auto"
    np.testing.assert_allclose(relabelled(cfg, load_task("hopper"), model, runs)[0].rewards, raw[kept], atol=1e-6)
    np.testing.assert_allclose(relabelled(cfg, load_task("drawer-open"), model, runs)[0].rewards, standard[kept],
                               atol=1e-4)
    legacy = OmegaConf.create({"algo": {"name": "iql"}, "reward": {"normalize": "standard"}})
    np.testing.assert_allclose(relabelled(legacy, load_task("hopper"), model, runs)[0].rewards, standard[kept],
                               atol=1e-4)
    cfg.algo.reward_normalize = "minmax"
    with pytest.raises(PbrlError, match=r"algo.reward_normalize: expected standard \| scale \| none \| auto \| "
                                        r"return_range, got 'minmax'"):
        relabelled(cfg, load_task("drawer-open"), model, runs)


class _FirstFeatureReward:
    """A reward model whose reward is the first observation feature: the relabelled values are set by hand."""

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return obs[..., 0].astype(np.float32)


def test_return_range_scales_by_episode_length_over_the_return_range() -> None:
    """IQL's D4RL scaling (and the Preference Transformer code's): r * T / (max return - min return). Three whole
    episodes of T = 4 steps with returns 2, 6 and 10: every reward is multiplied by 4 / 8 = 0.5, signs and zero kept."""
    from omegaconf import OmegaConf

    from pbrl.envs import load_task
    from pbrl.resources import resource_dir
    from pbrl.run.iql import relabelled

    steps = [np.array([0.5, 0.5, 0.5, 0.5]), np.array([3.0, -1.0, 2.0, 2.0]), np.array([4.0, 4.0, 4.0, -2.0])]
    runs = [(np.c_[r, np.zeros((4, 2))].astype(np.float32), np.zeros((4, 2), np.float32)) for r in steps]
    algo = OmegaConf.load(resource_dir("configs") / "algo" / "iql.yaml")
    algo.reward_normalize = "return_range"
    cfg = OmegaConf.create({"algo": algo, "reward": {"normalize": "standard"}})
    data, info = relabelled(cfg, load_task("drawer-open"), _FirstFeatureReward(), runs)
    expected = np.concatenate([r[:-1] for r in steps]) * 4 / (10 - 2)  # the last step of a run has no s'
    np.testing.assert_allclose(data.rewards, expected, atol=1e-6)
    assert info["reward_scale"] == pytest.approx(2.0) and info["reward_shift"] == 0.0


def test_return_range_of_partial_runs_uses_their_mean_step_reward() -> None:
    """Runs cut from episodes differ in length: a long run's larger return must not set the range. Runs of 2 steps
    (mean 1) and 6 steps (mean 3, return 18): the factor is 1 / (3 - 1), not 6 / (18 - 2); one run has no range."""
    from pbrl.run.iql import return_range_scale

    assert return_range_scale([np.array([1.0, 1.0]), np.full(6, 3.0)]) == pytest.approx(0.5)
    with pytest.raises(PbrlError, match=r"algo.reward_normalize=return_range: the store's 1 run\(s\)"):
        return_range_scale([np.array([1.0, 2.0, 3.0])])


def test_single_step_segments_give_no_transitions() -> None:
    with pytest.raises(PbrlError, match="no transitions"):
        TransitionData.from_runs([(np.zeros((1, 3), np.float32), np.zeros((1, 2), np.float32))], [np.zeros(1)])


def _bandit(n: int, seed: int) -> TransitionData:
    """Actions uniform in [-1, 1], reward -4 (a - 0.5)^2: behaviour cloning gives mean action 0, the best is 0.5."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, 2)).astype(np.float32)
    acts = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return TransitionData(obs=obs, acts=acts, rewards=(-4 * (acts[:, 0] - 0.5) ** 2).astype(np.float32),
                          next_obs=rng.standard_normal((n, 2)).astype(np.float32), terminals=np.zeros(n, bool))


def _iql(data: TransitionData, seed: int = 0, **kw) -> IQLLearner:
    torch.manual_seed(seed)
    args = dict(hidden=(32, 32), dropout=0.0, std=0.7071, lr=3e-3, gamma=0.0, expectile=0.7, temperature=3.0,
                tau=0.05, batch_size=128, steps=400, actor_cosine=False, rng=np.random.default_rng(seed))
    return IQLLearner(data, **{**args, **kw})


def test_iql_moves_the_policy_toward_high_reward_actions() -> None:
    learner = _iql(_bandit(2000, 0))
    for step in range(400):
        out = learner.update(step)
    assert set(out) >= {"loss_actor", "loss_qvalue", "loss_value"}
    act = learner.policy.act(np.random.default_rng(5).standard_normal((200, 2)).astype(np.float32))
    assert act.mean() > 0.3  # cloning the data would give ~0; the advantage weights pull toward 0.5


def test_iql_actor_lr_decays_by_cosine() -> None:
    learner = _iql(_bandit(300, 0), actor_cosine=True, steps=100)
    learner.update(50)
    assert learner.optims["actor"].param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5)
    assert learner.optims["critic"].param_groups[0]["lr"] == pytest.approx(3e-3)


def test_iql_checkpoint_resume_is_exact(tmp_path: Path) -> None:
    data = _bandit(300, 1)
    a = _iql(data, dropout=0.25)
    for step in range(5):
        a.update(step)
    _save_checkpoint(tmp_path, a, a.rng, 5)
    for step in range(5, 10):
        a.update(step)
    b = _iql(data, seed=3, dropout=0.25)  # different init and rng: everything must come from the checkpoint
    assert _restore(tmp_path, b, b.rng) == 5
    for step in range(5, 10):
        b.update(step)
    for (name, pa), pb in zip(a.loss.state_dict().items(), b.loss.state_dict().values()):
        assert torch.equal(pa, pb), name  # actor, both Q-nets, their targets, V
    obs = data.obs[:10]
    np.testing.assert_array_equal(a.policy.act(obs), b.policy.act(obs))


@pytest.mark.parametrize("key,value,match", [("expectile", 1.0, "algo.expectile"), ("gamma", 1.0, "algo.gamma"),
                                             ("temperature", 0.0, "algo.temperature"), ("tau", 0.0, "algo.tau")])
def test_iql_settings_out_of_range(key: str, value: float, match: str) -> None:
    with pytest.raises(PbrlError, match=match):
        _iql(_bandit(10, 0), **{key: value})
