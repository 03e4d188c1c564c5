"""``pbrl train``: one online preference-learning run, from a checked config to its artefacts.

The order keeps a refused command from writing anything: the run directory and the config are checked
(:mod:`pbrl.run.config`), every component that can refuse input is built (task, environments, labeller,
reward model), and only then are ``config.yaml``/``.hydra/`` written and the store opened. A directory holding
a finished run is left as it is. Resuming goes through the components' ``state_dict()``/``load_state_dict()``
(feedback loop, labeller, trainer, environment wrapper, session), and feedback rounds labelled after the last
checkpoint are fitted on, never asked again (:meth:`pbrl.agents.preference.FeedbackLoop.resume`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.utils import set_random_seed

from pbrl.agents.backends import OFF_POLICY_ALGOS, backend_of, get_backend
from pbrl.agents.pebble import PebbleConfig, PebbleTrainer, sac_policy_fn
from pbrl.agents.pref_ppo import PPOConfig, PrefPPOTrainer, build_ppo
from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.devices import torch_device
from pbrl.envs.make import make_env
from pbrl.envs.rollout import eval_seed, film, write_video
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.labeller import Labeller
from pbrl.report import plot_curves
from pbrl.rewards.wrappers import LearnedRewardVecEnv, RewardNormalizer
from pbrl.run import builder, tblog
from pbrl.run.checkpoint import find_checkpoint, read_components, read_info, save_checkpoint
from pbrl.run.config import OFFLINE_ALGOS, check_train
from pbrl.run.rundir import read_summary, run_dir_state, write_run_config, write_summary
from pbrl.run.session import EvalSettings, RunSession, fmt_metric, random_policy_return
from pbrl.types import RewardModel

log = logging.getLogger(__name__)
STORE_FILE = "store.sqlite"


@dataclasses.dataclass
class Parts:
    """The components of an online run, built (and so checked) before anything is written."""

    task: TaskSpec
    venv: LearnedRewardVecEnv
    labeller: Labeller
    source: str
    labeller_rng: np.random.Generator
    reward_model: RewardModel
    schedule: FeedbackSchedule
    normalizer: RewardNormalizer


def run_training(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train or resume the run in ``run_dir``; return its summary (``already_finished`` when it was done)."""
    if run_dir_state(cfg, run_dir) == "finished":
        return {**read_summary(run_dir), "already_finished": True}
    warnings = check_train(cfg)
    tblog.check_logger(str(cfg.get("logger", "none")))
    if cfg.algo.name in OFFLINE_ALGOS:  # reward-free learners on a fixed dataset (CPL, OPPO, BC)
        from pbrl.run.offline import run_offline

        return run_offline(cfg, run_dir)
    torch.set_num_threads(int(cfg.threads))
    set_random_seed(int(cfg.seed))
    parts = _build(cfg, run_dir)
    store: Optional[PreferenceStore] = None
    try:
        write_run_config(cfg, run_dir)
        for warning in warnings:
            log.warning(warning)
        store = PreferenceStore(run_dir / STORE_FILE)
        store.set_meta("task", parts.task.name)
        feedback = FeedbackLoop(
            reward_model=parts.reward_model, labeller=parts.labeller, store=store, schedule=parts.schedule,
            source=parts.source, rng=np.random.default_rng([int(cfg.seed), 2]), normalizer=parts.normalizer,
            conservative_k=float(cfg.reward.conservative_k))
        return _train(cfg, run_dir, parts, feedback)
    finally:
        parts.venv.close()
        if store is not None:
            store.close()


def _build(cfg: DictConfig, run_dir: Path) -> Parts:
    """Every component that checks user input, in the order a user would fix them; writes nothing."""
    builder.device_setting(cfg)  # bad device / backend: one-line error before anything is written
    if cfg.algo.name in OFF_POLICY_ALGOS:
        get_backend(str(cfg.algo.get("backend", "sb3")), str(cfg.algo.name))
    task = builder.build_task(cfg)
    schedule = builder.build_schedule(cfg)
    normalizer = builder.build_normalizer(cfg, task)
    store_path = run_dir / STORE_FILE
    if store_path.exists():  # refuse a foreign file before anything is written next to it
        PreferenceStore(store_path, create=False).close()
    labeller_rng = np.random.default_rng([int(cfg.seed), 1])
    labeller, source = builder.build_labeller(cfg, task, labeller_rng)
    venv = builder.make_venv(task, seed=int(cfg.seed), n_envs=int(cfg.algo.get("n_envs", 1)),
                             episode_length=cfg.episode_length, frame_reward=builder.build_vlm_reward(cfg, task),
                             vlm_weight=builder.vlm_weight(cfg), randomisation=builder.build_randomisation(cfg, task),
                             record_states=builder.needs_states(cfg, task), frame_stride=builder.vlm_frame_stride(cfg))
    try:
        obs_dim, act_dim = venv.observation_space.shape[0], venv.action_space.shape[0]
        reward_model = builder.build_reward_model(cfg, obs_dim, act_dim, int(cfg.seed))
    except BaseException:
        venv.close()
        raise
    return Parts(task, venv, labeller, source, labeller_rng, reward_model, schedule, normalizer)


def _train(cfg: DictConfig, run_dir: Path, parts: Parts, feedback: FeedbackLoop) -> dict[str, Any]:
    ckpt = find_checkpoint(run_dir)
    if ckpt is not None:
        read_info(ckpt)  # refuses a checkpoint of another format before anything is loaded
    saved = _components(ckpt)
    model = _load_or_build_agent(cfg, parts.venv, ckpt)
    session = RunSession(
        run_dir=run_dir, task=parts.task, feedback=feedback, policy_fn=sac_policy_fn(model),
        episodes_fn=lambda: parts.venv.episodes, total_steps=int(cfg.budget.env_steps),
        initial_step=model.num_timesteps, state=saved.get("session"),
        settings=EvalSettings(every=int(cfg.eval.every), episodes=int(cfg.eval.episodes),
                              reward_pairs=int(cfg.eval.reward_pairs), checkpoint_every=int(cfg.checkpoint_every),
                              seed=int(cfg.seed), episode_length=cfg.episode_length))
    trainer = _make_trainer(cfg, model, parts.venv, feedback, session)
    tb = tblog.attach(str(cfg.get("logger", "none")), run_dir, model, session)
    run_state = saved.get("run", {})
    if saved:
        feedback.load_state_dict(saved["feedback"])
        trainer.load_state_dict(saved["trainer"])
        parts.venv.load_state_dict(saved["venv"])
        parts.labeller_rng.bit_generator.state = run_state["labeller_rng"]
        parts.labeller.load_state_dict(saved.get("labeller", {}))
        session.phase("resume", "resuming %s from its checkpoint at step %d (labels %d/%d)", run_dir,
                      model.num_timesteps, feedback.labels_used, feedback.schedule.max_labels)
    elif feedback.rounds():  # killed before its first checkpoint: start again, keeping the labels
        session.phase("resume", "restarting %s from step 0 (killed before its first checkpoint); labels %d/%d "
                      "already stored", run_dir, feedback.labels_used, feedback.schedule.max_labels)
    else:
        session.phase("start", "new run in %s: %s, %s, %s feedback, %d env steps, %d labels", run_dir,
                      parts.task.name, cfg.algo.name, cfg.feedback.name, int(cfg.budget.env_steps),
                      int(cfg.budget.labels))
    trainer.resume()  # fit on labels stored since the checkpoint; rounds already labelled are not asked again
    random_return = run_state.get("random_return")
    if random_return is None:
        space = parts.venv.action_space
        random_return = random_policy_return(parts.task, space.low, space.high, seed=int(cfg.seed),
                                             episode_length=cfg.episode_length)

    def checkpoint() -> None:
        components = {"feedback": feedback.state_dict(), "trainer": trainer.state_dict(),
                      "venv": parts.venv.state_dict(), "session": session.state_dict(),
                      "run": {"labeller_rng": parts.labeller_rng.bit_generator.state, "random_return": random_return},
                      "labeller": parts.labeller.state_dict()}  # e.g. the target labels PEARL transfer remembers
        save_checkpoint(run_dir, components=components, info={"env_steps": model.num_timesteps, "time": time.time()},
                        save_files=lambda d: _save_agent(model, d, with_buffer=cfg.algo.name in OFF_POLICY_ALGOS))

    session.checkpoint_fn = checkpoint
    if model.num_timesteps < int(cfg.algo.seed_steps):
        session.phase("seed", "random actions until step %d (algo.seed_steps), then the first feedback round",
                      int(cfg.algo.seed_steps))
    try:
        trainer.train()
        checkpoint()
    finally:
        session.close()
    summary = _finish(cfg, run_dir, parts.task, model, feedback, session, random_return)
    if tb is not None:
        tb.close()  # every dump was flushed already; a killed run loses no event
    return summary


def _save_agent(model: Any, directory: Path, *, with_buffer: bool) -> None:
    model.save(directory / "agent.zip")
    if with_buffer:
        model.save_replay_buffer(directory / "replay_buffer.pkl")


def _components(ckpt: Optional[Path]) -> dict[str, Any]:
    """The checkpoint's state dicts (none without one); a checkpoint of an earlier version saved the feedback
    loop's under ``learner`` and no labeller state (the loop was ``PreferenceLearner``)."""
    saved = read_components(ckpt) if ckpt is not None else {}
    if "learner" in saved and "feedback" not in saved:
        saved["feedback"] = saved.pop("learner")
    return saved


def _load_or_build_agent(cfg: DictConfig, venv: LearnedRewardVecEnv, ckpt: Optional[Path]) -> Any:
    algo = str(cfg.algo.name)
    kwargs = builder.container(cfg.algo[algo])  # algo=sac: algo.sac, algo=crossq: algo.crossq, algo=ppo: algo.ppo
    device = builder.device_setting(cfg)
    if algo in OFF_POLICY_ALGOS:
        backend = get_backend(str(cfg.algo.get("backend", "sb3")), algo)
        if ckpt:
            model = backend.load(ckpt / "agent.zip", venv, algo=algo, device=device)
            model.load_replay_buffer(ckpt / "replay_buffer.pkl")
            return model
        return backend.build(venv, algo=algo, seed=int(cfg.seed), seed_steps=int(cfg.algo.seed_steps), kwargs=kwargs,
                             buffer_size=min(int(cfg.algo.buffer_size), int(cfg.budget.env_steps)), device=device)
    if ckpt:
        from stable_baselines3 import PPO

        return PPO.load(ckpt / "agent.zip", env=venv, device=torch_device(device))
    return build_ppo(venv, seed=int(cfg.seed), ppo_kwargs=kwargs, device=torch_device(device))


def _make_trainer(cfg: DictConfig, model: Any, venv: LearnedRewardVecEnv, feedback: FeedbackLoop,
                  session: RunSession) -> PebbleTrainer | PrefPPOTrainer:
    total = int(cfg.budget.env_steps)
    common = dict(on_chunk=session.on_chunk, step_callback=session.callback)
    if cfg.algo.name in OFF_POLICY_ALGOS:
        pcfg = PebbleConfig(total_steps=total, seed_steps=int(cfg.algo.seed_steps),
                            unsup_steps=int(cfg.algo.unsup_steps),
                            entropy_k=int(cfg.algo.entropy_k), reset_critic=bool(cfg.algo.reset_critic),
                            update_after_reset=int(cfg.algo.update_after_reset),
                            chunk_steps=min(int(cfg.eval.every), int(cfg.checkpoint_every)))
        return PebbleTrainer(model, venv, feedback, pcfg, **common)
    pcfg = PPOConfig(total_steps=total, seed_steps=int(cfg.algo.seed_steps))
    return PrefPPOTrainer(model, venv, feedback, pcfg, rng=np.random.default_rng([int(cfg.seed), 3]), **common)


def _finish(cfg: DictConfig, run_dir: Path, task: TaskSpec, model: Any, feedback: FeedbackLoop,
            session: RunSession, random_return: float) -> dict[str, Any]:
    """Final evaluation with video, then policy, reward model, curves and summary (written last)."""
    session.phase("final-eval", "final evaluation: %d episodes", int(cfg.eval.final_episodes))
    row = session.evaluate_now(model.num_timesteps, episodes=int(cfg.eval.final_episodes))
    if cfg.eval.video:
        seed = eval_seed(int(cfg.seed))
        env = make_env(task, seed=seed, render=True, episode_length=cfg.episode_length)
        try:
            write_video(run_dir / "eval.mp4", film(env, session.policy_fn, seed=seed, steps=int(cfg.eval.video_steps)))
        finally:
            env.close()
    model.save(run_dir / "policy.zip")
    torch.save(feedback.reward_model.state_dict(), run_dir / "reward_model.pt")
    plot_curves(session.metrics, run_dir / "curves.png", baseline=random_return,
                title=f"{task.name} · {cfg.algo.name} · {cfg.feedback.name} · seed {cfg.seed}")
    summary = {
        "task": task.name, "algo": cfg.algo.name, "feedback": cfg.feedback.name, "seed": int(cfg.seed),
        "backend": str(cfg.algo.get("backend", "sb3")) if cfg.algo.name in OFF_POLICY_ALGOS else None,
        "device": builder.device_setting(cfg),  # the setting; where each part ran:
        "devices": {"learner": backend_of(model).device_of(model),
                    "reward_model": str(getattr(feedback.reward_model, "device", "?"))},
        "return_mean": row["return_mean"], "return_std": row["return_std"], "success_rate": row["success_rate"],
        "random_return": random_return, "labels_used": row["labels_used"], "labels_answered": row["labels_answered"],
        "reward_accuracy": row.get("reward_accuracy"), "reward_corr_segment": row.get("reward_corr_segment"),
        "env_steps": int(model.num_timesteps), "wall_s": session.wall_s, "eval_s": session.eval_s,
        "run_dir": str(run_dir),
    }
    write_summary(run_dir, summary)
    log.info("finished: return %.1f (random policy %.1f), labels %d, reward accuracy %s", row["return_mean"],
             random_return, row["labels_used"], fmt_metric(row.get("reward_accuracy")), extra={"phase": "done"})
    return summary
