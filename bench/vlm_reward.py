"""VLM-RM reward cost: CLIP frames/s, and the wall-time overhead of a VLM-rewarded SAC run vs plain SAC.

1. frames/s of :class:`pbrl.rewards.vlm.ClipReward` (preprocess + image tower + projection) on rendered-size
   frames, in episode-sized batches, on the CPU and (when there is one) the GPU;
2. SAC on the task for ``--steps`` steps twice, single-threaded: plain SB3 SAC on the true reward, and SAC
   on the VLM reward alone (every step rendered, each finished episode scored in one batch and written into
   the replay buffer, ``reward.vlm.weight=1``); the ratio of their ``learn()`` wall times, with the time
   spent rendering and scoring; once per ``--frame-strides`` value (``reward.vlm.frame_stride``: render and
   score every k-th step, interpolate in between).

    python bench/vlm_reward.py --model tiny --steps 1000 --frame-strides 1,4 [--update-benchmarks]
    python bench/vlm_reward.py --model ViT-B-32 --pretrained laion2b_s34b_b79k --device cuda   # GPU machine

Needs open_clip (the ``vlm`` extra) and, for real weights, a checkpoint or open_clip's cache.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish  # noqa: E402
from pbrl.agents.pebble import silent_logger  # noqa: E402

MARK = "vlm-reward"


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def frames_per_second(reward: Callable[[np.ndarray], np.ndarray], size: int, batch: int, repeats: int) -> float:
    """Frames/s of ``reward`` on random ``size``x``size`` frames, ``batch`` frames a call (after a warm-up)."""
    frames = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    reward(frames)
    t0 = time.perf_counter()
    for _ in range(repeats):
        reward(frames)
    return repeats * batch / (time.perf_counter() - t0)


def sac_wall(task, *, steps: int, seed: int, episode_length: int,
             frame_reward: Optional[Callable] = None, frame_stride: int = 1) -> tuple[float, float]:
    """Seconds in ``SAC.learn(steps)`` and in rendering; plain SAC on the true reward when ``frame_reward`` is None."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from pbrl.agents.pebble import build_sac
    from pbrl.envs.make import make_env
    from pbrl.run.builder import make_venv

    kwargs = dict(batch_size=256, policy_kwargs={"net_arch": [256, 256]})
    learning_starts = min(1000, steps // 2)
    if frame_reward is None:
        venv = DummyVecEnv([lambda: Monitor(make_env(task, seed=seed, episode_length=episode_length))])
        model = SAC("MlpPolicy", venv, learning_starts=learning_starts, seed=seed, device="cpu", verbose=0, **kwargs)
    else:
        venv = make_venv(task, seed=seed, episode_length=episode_length, frame_reward=frame_reward, vlm_weight=1.0,
                         frame_stride=frame_stride)
        model = build_sac(venv, seed=seed, seed_steps=learning_starts, buffer_size=steps, sac_kwargs=kwargs)
    render = Timed(venv.venv.env_method) if frame_reward is not None else None
    if render is not None:
        venv.venv.env_method = render  # the wrapper renders through env_method("render")
    t0 = time.perf_counter()
    silent_logger(model)  # no /tmp/SB3-<time> folder per run
    model.learn(steps)
    wall = time.perf_counter() - t0
    venv.close()
    return wall, (render.seconds if render else 0.0)


def table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    return "\n".join([*lines, *(f"| {a} | {b} |" for a, b in rows)])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="tiny", help="open_clip model; tiny = random tiny CLIP (no weights)")
    p.add_argument("--pretrained", default=None, help="open_clip tag (from its cache), e.g. laion2b_s34b_b79k")
    p.add_argument("--checkpoint", default=None, help="local open_clip weights file")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--task", default="halfcheetah")
    p.add_argument("--steps", type=int, default=1000, help="SAC steps per run (0 = skip the SAC comparison)")
    p.add_argument("--episode-length", type=int, default=100)
    p.add_argument("--frame-strides", default="1", help="comma-separated reward.vlm.frame_stride values, one run each")
    p.add_argument("--batch", type=int, default=100, help="frames per reward call (an episode)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="a line added under the table (how/where it was measured)")
    p.add_argument("--update-benchmarks", action="store_true",
                   help=f"rewrite the {MARK}:<model> section of BENCHMARKS.md")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    from importlib.metadata import version

    from pbrl.envs.tasks import load_task
    from pbrl.rewards.vlm import ClipReward, load_open_clip

    args = parse_args(argv)
    torch.set_num_threads(1)  # a benchmark script, not library code: one thread for both runs
    task = load_task(args.task)
    backbone = load_open_clip(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint, device=args.device)
    reward = ClipReward(backbone, goal=task.prompts["goal"], baseline=task.prompts["baseline"])
    size = task.camera.width
    rows = [(f"CLIP reward frames/s ({args.model}, {backbone.device}, {size}x{size} frames, batch {args.batch})",
             f"{frames_per_second(reward, size, args.batch, args.repeats):.1f}")]
    if args.steps:
        plain, _ = sac_wall(task, steps=args.steps, seed=args.seed, episode_length=args.episode_length)
        rows.append((f"plain SAC learn() wall, {args.steps} steps", f"{plain:.1f} s"))
        for stride in (int(k) for k in args.frame_strides.split(",")):
            scored = Timed(reward)
            vlm, render_s = sac_wall(task, steps=args.steps, seed=args.seed, episode_length=args.episode_length,
                                     frame_reward=scored, frame_stride=stride)
            rows += [(f"VLM-rewarded SAC learn() wall, frame_stride {stride}", f"{vlm:.1f} s"),
                     ("  of which rendering / VLM scoring", f"{render_s:.1f} s / {scored.seconds:.1f} s "
                                                            f"({scored.calls} batched calls)"),
                     (f"**overhead ratio** (VLM / plain), frame_stride {stride}", f"**{vlm / plain:.2f}x**")]
    block = (f"## VLM-RM reward ({args.task}, `bench/vlm_reward.py --model {args.model} --steps {args.steps} "
             f"--frame-strides {args.frame_strides}`)\n\n"
             + table(rows, ("measure", "value"))
             + f"\n\n{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
               f"open_clip {version('open_clip_torch')}, "
               f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}. {args.note}")
    publish(block, f"{MARK}:{args.model}", args.update_benchmarks)


if __name__ == "__main__":
    main()
