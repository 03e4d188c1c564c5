"""Diagnostic: is an OPPO failure in the contextual policy or in its optimal context z*?

Rebuilds one cell of ``bench/offline_prefs.py`` (same rollouts, dataset, seeds and OPPO settings, so the trained
policy is the benchmark's), then evaluates that one policy under other contexts:

* ``z*``: what OPPO deploys (Kang et al. 2023);
* ``z* / |z*|``: the same direction at unit norm, where the encoder's norm term keeps the embeddings;
* ``top-10% embedding``: the mean embedding of the tenth of segments with the highest win rate in the labels
  (an oracle context the labels define, not something OPPO can deploy as is);
* ``nearest embedding``: the embedding of the dataset segment closest to ``z*``.

If the top-10% context succeeds where ``z*`` fails, the hindsight policy has learned the task and the failure is
``z*``'s: it is out of the embeddings' range (its norm is printed beside theirs), so the policy extrapolates.

Usage:  python bench/oppo_context.py --task drawer-open --seed 1 --dataset dense [--update-md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench import offline_prefs as op  # noqa: E402
from bench.common import publish  # noqa: E402

from pbrl.agents.offline_data import OfflineData  # noqa: E402
from pbrl.agents.oppo import OPPOLearner  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.envs import eval_seed, evaluate, load_task  # noqa: E402
from pbrl.run.offline_learners import build_learner  # noqa: E402


def win_rates(data: OfflineData) -> np.ndarray:
    """Per segment, its share of preference mass over its comparisons (0.5 for a tie; 0 if never compared)."""
    wins, games = np.zeros(len(data.obs)), np.zeros(len(data.obs))
    np.add.at(wins, data.first, data.p)
    np.add.at(wins, data.second, 1.0 - data.p)
    np.add.at(games, data.first, 1.0)
    np.add.at(games, data.second, 1.0)
    return wins / np.maximum(games, 1.0)


@torch.no_grad()
def embeddings(learner: OPPOLearner, data: OfflineData, chunk: int = 512) -> torch.Tensor:
    return torch.cat([learner.encoder(torch.as_tensor(data.obs[i:i + chunk]), torch.as_tensor(data.acts[i:i + chunk]))
                      for i in range(0, len(data.obs), chunk)])


def contexts(learner: OPPOLearner, data: OfflineData, top_frac: float = 0.1) -> tuple[dict[str, torch.Tensor], dict]:
    """The contexts to compare (see the module docstring) and what describes them: norms, win rates near ``z*``."""
    z = embeddings(learner, data)
    z_star = learner.z_star.detach().clone()
    rate = win_rates(data)
    top = np.argsort(-rate, kind="stable")[: max(1, int(top_frac * len(rate)))]
    near = np.argsort((z - z_star).norm(dim=1).numpy(), kind="stable")
    found = {"z*": z_star, "z* / |z*|": z_star / z_star.norm(), f"top-{100 * top_frac:.0f}% embedding": z[top].mean(0),
             "nearest embedding": z[near[0]]}
    info = {"z_star_norm": float(z_star.norm()), "embedding_norm": float(z.norm(dim=1).mean()),
            "win_rate_near_z_star": float(rate[near[:50]].mean()), "win_rate_top": float(rate[top].mean())}
    return found, info


def evaluate_contexts(learner: OPPOLearner, found: dict[str, torch.Tensor], task_name: str, seed: int,
                      episodes: int, episode_length: int) -> dict[str, tuple[float, float]]:
    """Success and mean return of the one trained policy under every context (``z*`` restored afterwards)."""
    task, keep, out = load_task(task_name), learner.policy.z_star.clone(), {}
    try:
        for name, z in found.items():
            learner.policy.z_star.copy_(z)
            res = evaluate(task, learner.policy.act, n_episodes=episodes, seed=eval_seed(seed),
                           episode_length=episode_length)
            out[name] = (res.success_rate, res.return_mean)
            print(f"{name:24s} success {res.success_rate:.2f} return {res.return_mean:.0f}", flush=True)
    finally:
        learner.policy.z_star.copy_(keep)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="drawer-open")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dataset", choices=("dense", "sparse"), default="dense")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--update-md", action="store_true")
    cli = ap.parse_args()
    args = op.parse(["--steps", str(cli.steps), "--datasets", cli.dataset, "--tasks", cli.task])  # the benchmark's cell
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = op.make_datasets(cli.task, args, Path(tmp), cli.seed)[cli.dataset][0]
        with PreferenceStore(path, create=False) as store:
            data = OfflineData.from_store(store)
    torch.manual_seed(cli.seed)  # as op.run_method
    learner = build_learner(op.algo_cfg("oppo", {}, args, cli.dataset), data, np.random.default_rng([cli.seed, 4]))
    for step in range(args.steps):
        learner.update(step)
    found, info = contexts(learner, data)
    got = evaluate_contexts(learner, found, cli.task, cli.seed, args.eval_episodes, args.episode_length)
    escape = str.maketrans({"|": r"\|"})  # "z* / |z*|" inside a markdown table cell
    rows = "\n".join(f"| {k.translate(escape)} | {v[0]:.2f} | {v[1]:.0f} |" for k, v in got.items())
    publish(f"## OPPO's context: {cli.task}, {cli.dataset}, seed {cli.seed} (`bench/oppo_context.py`)\n\n"
            f"One OPPO policy ({args.steps} steps, the `bench/offline_prefs.py` cell), {args.eval_episodes} episodes "
            f"per context. |z*| = {info['z_star_norm']:.2f}; the embeddings' mean norm {info['embedding_norm']:.2f}; "
            f"the 50 segments nearest z* win {100 * info['win_rate_near_z_star']:.0f}% of their comparisons (the top "
            f"tenth {100 * info['win_rate_top']:.0f}%).\n\n| context | success | return |\n|---|---|---|\n{rows}",
            f"oppo-context:{cli.task}-{cli.dataset}-{cli.seed}", cli.update_md)


if __name__ == "__main__":
    sys.exit(main())
