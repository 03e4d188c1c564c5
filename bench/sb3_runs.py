"""A run directory with an SB3 policy, made without ``pbrl train``: for the export benchmarks and tests.

Not part of the package (nothing in ``pbrl/`` needs it): bench scripts import it as ``bench.sb3_runs``, tests through
``tests/bench_modules.py``. It has exactly what the exporters read (``config.yaml`` with ``task``/``algo``/``seed``/
``episode_length``, and ``policy.zip``), so export and the sim2real runtime can be exercised in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import yaml

from pbrl.agents.pebble import silent_logger
from pbrl.envs.make import make_env
from pbrl.envs.tasks import load_task
from pbrl.resources import resource_dir
from pbrl.types import PbrlError


def write_sb3_run(run_dir: Path, *, task: str = "halfcheetah", algo: str = "sac", steps: int = 0,
                  net_arch: Sequence[int] = (256, 256), seed: int = 0, episode_length: Optional[int] = None,
                  weight_scale: float = 1.0) -> Path:
    """Build (and train for ``steps`` env steps) an SB3 ``algo`` policy on ``task``; save it as a run dir.

    ``weight_scale`` multiplies the SAC actor's weights: at 3 an untrained HalfCheetah actor makes the cheetah
    flail and travel, a chaotic closed loop (export parity tests and ``bench/export_parity.py``).
    """
    from stable_baselines3 import PPO, SAC

    spec = load_task(task)
    horizon = int(episode_length or spec.episode_length)
    env = make_env(spec, seed=seed, episode_length=horizon)
    kwargs = dict(policy_kwargs={"net_arch": list(net_arch)}, seed=seed, device="cpu", verbose=0)
    if algo == "sac":
        model = SAC("MlpPolicy", env, learning_starts=min(100, max(steps // 2, 1)), batch_size=32, **kwargs)
    elif algo == "ppo":
        model = PPO("MlpPolicy", env, n_steps=max(64, steps), batch_size=32, n_epochs=1, **kwargs)
    else:
        raise PbrlError(f"algo: expected sac or ppo, got {algo!r}")
    if steps:
        silent_logger(model)  # no /tmp/SB3-<time> folder per run
        model.learn(total_timesteps=steps)
    if weight_scale != 1.0 and algo == "sac":
        import torch

        with torch.no_grad():
            for layer in [*model.policy.actor.latent_pi, model.policy.actor.mu]:
                if hasattr(layer, "weight"):
                    layer.weight.mul_(weight_scale)
    env.close()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "policy.zip")
    return write_run_config(run_dir, task=spec.name, algo=algo, seed=seed, episode_length=horizon)


def write_run_config(run_dir: Path, *, task: str, algo: str, seed: int, episode_length: int) -> Path:
    """The part of a run's ``config.yaml`` the exporters read (task as in tasks/*.yaml, algo name, seed)."""
    config = {"task": yaml.safe_load((resource_dir("tasks") / f"{task}.yaml").read_text()),
              "algo": {"name": algo}, "seed": seed, "episode_length": episode_length}
    (Path(run_dir) / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Path(run_dir)
