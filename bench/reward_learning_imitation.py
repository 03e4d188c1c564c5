"""The `imitation` (1.0.1) side of bench/reward_learning.py; runs in imitation's OWN virtual environment.

imitation pins gymnasium 0.29 / SB3 2.2, so it cannot share pbrl's environment: this script imports
nothing from pbrl. It reads the exact pairs pbrl trained on (an .npz written by reward_learning.py),
trains imitation's reward ensemble (``RewardEnsemble`` of ``BasicRewardNet`` + ``PreferenceModel`` +
``CrossEntropyRewardLoss`` + ``EnsembleTrainer``) with the same sizes, epochs, batch size and learning
rate, and writes held-out accuracy and training throughput to a JSON file.

    .venv-imitation/bin/python bench/reward_learning_imitation.py IN.npz OUT.json
"""

from __future__ import annotations

import json
import sys
import time

import gymnasium as gym
import numpy as np
import torch as th
from imitation.algorithms import preference_comparisons as pc
from imitation.data.types import TrajectoryWithRew
from imitation.rewards.reward_nets import BasicRewardNet, RewardEnsemble
from imitation.util import logger as imit_logger


def fragments(obs: np.ndarray, act: np.ndarray) -> list[TrajectoryWithRew]:
    """imitation wants L+1 observations per fragment; the last one is unused (use_next_state=False)."""
    out = []
    for o, a in zip(obs, act):
        out.append(TrajectoryWithRew(obs=np.concatenate([o, o[-1:]]), acts=a, infos=None, terminal=False,
                                     rews=np.zeros(len(a), np.float32)))
    return out


def build(obs_dim: int, act_dim: int, hidden: tuple[int, ...], members: int, seed: int):
    th.manual_seed(seed)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    nets = [BasicRewardNet(obs_space, act_space, use_state=True, use_action=True, use_next_state=False,
                           use_done=False, hid_sizes=hidden) for _ in range(members)]
    return RewardEnsemble(obs_space, act_space, members=nets)


def segment_returns(net: RewardEnsemble, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
    n, length, d = obs.shape
    flat_o, flat_a = obs.reshape(-1, d), act.reshape(n * length, -1)
    r = net.predict(flat_o, flat_a, flat_o, np.zeros(n * length, bool))  # ensemble mean
    return r.reshape(n, length).sum(-1)


def run_count(data: dict, n: int, epochs: int, cfg: dict, seed: int) -> dict:
    net = build(data["obs1"].shape[-1], data["act1"].shape[-1], tuple(cfg["hidden"]), cfg["members"], seed)
    model = pc.PreferenceModel(net)
    logger = imit_logger.configure(format_strs=[])
    trainer = pc.EnsembleTrainer(model, pc.CrossEntropyRewardLoss(), rng=np.random.default_rng(seed),
                                 batch_size=cfg["batch_size"], epochs=epochs, lr=cfg["lr"], custom_logger=logger)
    ds = pc.PreferenceDataset()
    ds.push(list(zip(fragments(data["obs1"][:n], data["act1"][:n]), fragments(data["obs2"][:n], data["act2"][:n]))),
            data["p"][:n].astype(np.float32))
    t0 = time.perf_counter()
    trainer.train(ds)
    fit_s = time.perf_counter() - t0
    r1 = segment_returns(net, data["test_obs1"], data["test_act1"])
    r2 = segment_returns(net, data["test_obs2"], data["test_act2"])
    tp = data["test_p"]
    strict = tp != 0.5
    acc = float(np.mean(np.where(tp[strict] > 0.5, r1[strict] > r2[strict], r1[strict] < r2[strict])))
    return {"n": n, "epochs": epochs, "accuracy": acc, "fit_s": fit_s, "pairs_per_s": n * epochs / fit_s}


def main(argv: list[str]) -> int:
    th.set_num_threads(1)
    src, dst = argv[0], argv[1]
    raw = np.load(src)
    data = {k: raw[k] for k in raw.files}
    cfg = json.loads(str(data.pop("config")))
    results = [run_count(data, int(n), int(e), cfg, cfg["seed"]) for n, e in zip(cfg["counts"], cfg["epochs"])]
    with open(dst, "w") as fh:
        json.dump({"results": results, "imitation_version": __import__("imitation").__version__}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
