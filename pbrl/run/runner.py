"""``pbrl train``: one online preference-learning run, from a resolved config to its artefacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.utils import set_random_seed

from pbrl.agents.pebble import PebbleConfig, PebbleTrainer, build_sac, sac_policy_fn
from pbrl.agents.pref_ppo import PPOConfig, PrefPPOTrainer, build_ppo
from pbrl.agents.preference import PreferenceLearner
from pbrl.data.store import PreferenceStore
from pbrl.envs.make import make_env
from pbrl.envs.rollout import evaluate, film, write_video
from pbrl.report import plot_curves
from pbrl.run import builder, tblog
from pbrl.run.checkpoint import find_checkpoint, read_episodes, read_state, save_checkpoint
from pbrl.run.session import EvalSettings, RunSession
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json, atomic_write_text

ALGOS = ("sac", "ppo")


def write_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write the resolved config; a resumed run must have the same one (except ``out``)."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    path = run_dir / "config.yaml"
    if path.exists():
        old = OmegaConf.load(path)
        new = OmegaConf.create(text)
        for key in set(old.keys()) | set(new.keys()):
            if key != "out" and old.get(key) != new.get(key):
                raise PbrlError(f"{path}: this run dir holds a run with a different {key!r}; use a new out= to start "
                                f"a new run, or the same overrides to resume it")
    atomic_write_text(path, text)


def run_training(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train (or resume) a run in ``run_dir`` and return its summary."""
    from pbrl.run.offline import OFFLINE_ALGOS, run_offline

    tblog.check_logger(str(cfg.get("logger", "none")))
    if cfg.algo.name in OFFLINE_ALGOS:  # reward-free learners on a fixed dataset (CPL, OPPO, BC)
        return run_offline(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.algo.name not in ALGOS:
        raise PbrlError(f"algo: {cfg.algo.name!r} is not an online preference learner; expected one of {ALGOS}")
    write_config(cfg, run_dir)
    torch.set_num_threads(int(cfg.threads))
    set_random_seed(int(cfg.seed))
    task = builder.build_task(cfg)
    schedule = builder.build_schedule(cfg)
    venv = builder.make_venv(task, seed=int(cfg.seed), n_envs=int(cfg.algo.get("n_envs", 1)),
                             episode_length=cfg.episode_length, frame_reward=builder.build_vlm_reward(cfg, task),
                             vlm_weight=builder.vlm_weight(cfg), randomisation=builder.build_randomisation(cfg, task),
                             record_states=builder.needs_states(cfg, task),
                             frame_stride=builder.vlm_frame_stride(cfg))
    obs_dim, act_dim = venv.observation_space.shape[0], venv.action_space.shape[0]
    labeller_rng = np.random.default_rng([int(cfg.seed), 1])
    labeller, source = builder.build_labeller(cfg, task, labeller_rng)
    store = PreferenceStore(run_dir / "store.sqlite")
    store.set_meta("task", task.name)
    learner = PreferenceLearner(
        reward_model=builder.build_reward_model(cfg, obs_dim, act_dim, int(cfg.seed)), labeller=labeller,
        store=store, schedule=schedule, source=source, rng=np.random.default_rng([int(cfg.seed), 2]),
        normalizer=builder.build_normalizer(cfg), conservative_k=float(cfg.reward.get("conservative_k", 0.0)))
    try:
        return _train(cfg, run_dir, task, venv, learner, labeller_rng)
    finally:
        venv.close()
        store.close()


def _train(cfg, run_dir, task, venv, learner, labeller_rng) -> dict[str, Any]:
    ckpt = find_checkpoint(run_dir)
    state = read_state(ckpt) if ckpt else {}
    model = _load_or_build_agent(cfg, venv, ckpt)
    if ckpt:
        _restore(ckpt, state, learner, venv, labeller_rng)
    total = int(cfg.budget.env_steps)
    session = RunSession(
        run_dir=run_dir, task=task, learner=learner, policy_fn=sac_policy_fn(model),
        episodes_fn=lambda: venv.episodes, total_steps=total, initial_step=model.num_timesteps, state=state.get("session"),
        settings=EvalSettings(every=int(cfg.eval.every), episodes=int(cfg.eval.episodes),
                              reward_pairs=int(cfg.eval.reward_pairs), checkpoint_every=int(cfg.checkpoint_every),
                              seed=int(cfg.seed), episode_length=cfg.episode_length))
    trainer = _make_trainer(cfg, model, venv, learner, session, state)
    tb = tblog.attach(str(cfg.get("logger", "none")), run_dir, model, session)
    if ckpt and learner.store.count_labels(sources=[learner.source]) > state.get("labels_fitted", 0):
        learner.fit()  # labels written after the last checkpoint are never lost: refit on all of them
        trainer.refresh_reward()

    def checkpoint() -> None:
        save_checkpoint(run_dir, model=model, reward_model=learner.reward_model, episodes=list(venv.episodes),
                        with_buffer=cfg.algo.name == "sac", state=_state(trainer, learner, labeller_rng, session))

    session.checkpoint_fn = checkpoint
    random_return = state.get("random_return")
    if random_return is None:
        space = venv.action_space
        rand = np.random.default_rng(int(cfg.seed))
        random_return = evaluate(task, lambda o: rand.uniform(space.low, space.high), n_episodes=1,
                                 seed=10_000 + int(cfg.seed), episode_length=cfg.episode_length).return_mean
    trainer.random_return = random_return
    try:
        trainer.train()
        checkpoint()
    finally:
        session.close()
    summary = _finish(cfg, run_dir, task, model, learner, session, random_return)
    if tb is not None:
        tb.close()  # every dump was flushed already; a killed run loses no event
    return summary


def _load_or_build_agent(cfg: DictConfig, venv, ckpt: Optional[Path]):
    kwargs = builder.container(cfg.algo.sac if cfg.algo.name == "sac" else cfg.algo.ppo)
    if cfg.algo.name == "sac":
        if ckpt:
            from stable_baselines3 import SAC

            model = SAC.load(ckpt / "agent.zip", env=venv, device="cpu")
            model.load_replay_buffer(ckpt / "replay_buffer.pkl")
            return model
        return build_sac(venv, seed=int(cfg.seed), seed_steps=int(cfg.algo.seed_steps),
                         buffer_size=min(int(cfg.algo.buffer_size), int(cfg.budget.env_steps)), sac_kwargs=kwargs)
    if ckpt:
        from stable_baselines3 import PPO

        return PPO.load(ckpt / "agent.zip", env=venv, device="cpu")
    return build_ppo(venv, seed=int(cfg.seed), ppo_kwargs=kwargs)


def _make_trainer(cfg, model, venv, learner, session, state):
    total = int(cfg.budget.env_steps)
    common = dict(on_chunk=session.on_chunk, step_callback=session.callback)
    if cfg.algo.name == "sac":
        pcfg = PebbleConfig(total_steps=total, seed_steps=int(cfg.algo.seed_steps), unsup_steps=int(cfg.algo.unsup_steps),
                            entropy_k=int(cfg.algo.entropy_k), reset_critic=bool(cfg.algo.reset_critic),
                            chunk_steps=min(int(cfg.eval.every), int(cfg.checkpoint_every)))
        return PebbleTrainer(model, venv, learner, pcfg, next_feedback=state.get("next_feedback"),
                             critic_was_reset=bool(state.get("critic_was_reset", False)), **common)
    pcfg = PPOConfig(total_steps=total, seed_steps=int(cfg.algo.seed_steps))
    return PrefPPOTrainer(model, venv, learner, pcfg, next_feedback=int(state.get("next_feedback", 0)),
                          rng=np.random.default_rng([int(cfg.seed), 3]), **common)


def _restore(ckpt: Path, state: dict, learner: PreferenceLearner, venv, labeller_rng) -> None:
    learner.reward_model.load_state_dict(torch.load(ckpt / "reward_model.pt", weights_only=False))
    learner.fitted = bool(state["fitted"])
    learner.normalizer.shift, learner.normalizer.scale = state["normalizer"]
    learner.rng.bit_generator.state = state["learner_rng"]
    labeller_rng.bit_generator.state = state["labeller_rng"]
    venv.episodes.extend(read_episodes(ckpt))
    venv.episodes_done = int(state["episodes_done"])
    if learner.fitted:
        venv.reward_fn = learner.reward_fn


def _state(trainer, learner, labeller_rng, session) -> dict[str, Any]:
    return {
        "env_steps": trainer.model.num_timesteps,
        "next_feedback": trainer.next_feedback,
        "critic_was_reset": getattr(trainer, "critic_was_reset", False),
        "fitted": learner.fitted,
        "labels_fitted": learner.store.count_labels(sources=[learner.source]),
        "normalizer": [learner.normalizer.shift, learner.normalizer.scale],
        "learner_rng": learner.rng.bit_generator.state,
        "labeller_rng": labeller_rng.bit_generator.state,
        "episodes_done": trainer.venv.episodes_done,
        "random_return": getattr(trainer, "random_return", None),
        "session": session.state(),
        "time": time.time(),
    }


def _finish(cfg, run_dir, task, model, learner, session, random_return) -> dict[str, Any]:
    """Final evaluation with video, then policy, reward model, curves and summary."""
    row = session.evaluate_now(model.num_timesteps, episodes=int(cfg.eval.final_episodes))
    if cfg.eval.video:
        env = make_env(task, seed=10_000 + int(cfg.seed), render=True, episode_length=cfg.episode_length)
        try:
            write_video(run_dir / "eval.mp4", film(env, session.policy_fn, seed=10_000 + int(cfg.seed),
                                                  steps=int(cfg.eval.video_steps)))
        finally:
            env.close()
    model.save(run_dir / "policy.zip")
    torch.save(learner.reward_model.state_dict(), run_dir / "reward_model.pt")
    plot_curves(session.metrics, run_dir / "curves.png", baseline=random_return,
                title=f"{task.name} · {cfg.algo.name} · {cfg.feedback.name} · seed {cfg.seed}")
    summary = {
        "task": task.name, "algo": cfg.algo.name, "feedback": cfg.feedback.name, "seed": int(cfg.seed),
        "return_mean": row["return_mean"], "return_std": row["return_std"], "success_rate": row["success_rate"],
        "random_return": random_return, "labels_used": row["labels_used"], "labels_answered": row["labels_answered"],
        "reward_accuracy": row.get("reward_accuracy"), "reward_corr_segment": row.get("reward_corr_segment"),
        "env_steps": int(model.num_timesteps), "wall_s": session.wall_s, "eval_s": session.eval_s,
        "run_dir": str(run_dir),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return summary
