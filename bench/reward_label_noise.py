"""Noise-robust Bradley-Terry (``reward.model.label_noise``): accuracy lost to 10% mistakes, per assumed share.

Runs ``bench/reward_learning.py`` once per ``--label-noise`` value on the same tasks, seeds, teachers and pairs
(everything else equal), then compares: held-out accuracy with the rational and the 10%-mistake teacher, and the
drop between them, per model and label count. The issue's goal: the Gaussian model loses <= 3 points.

    python bench/reward_label_noise.py --seeds 0,1,2,3,4,5,6,7,8,9 --noise 0,0.1,0.2 --update-benchmarks
    python bench/reward_label_noise.py --results-dir bench/results --seeds 0,1,2,3,4,5,6,7,8,9   # the published runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, ROOT, publish
from bench.reward_learning import mean_accuracy

MARK = "reward-label-noise"


def run(eps: str, args: argparse.Namespace) -> Path:
    """One reward_learning.py run at ``label_noise = eps`` (skipped if its results exist); its JSON path."""
    suffix = f"_label_noise{eps}"
    path = args.results_dir / f"reward_learning{suffix}.json"
    if not path.exists() or args.rerun:
        subprocess.run([sys.executable, str(ROOT / "bench" / "reward_learning.py"), "--seeds", args.seeds,
                        "--n-test", str(args.n_test), "--models", args.models, "--teachers", "rational,mistake0.1",
                        "--counts", args.counts, "--imitation-tasks", "none", "--label-noise", eps,
                        "--suffix", suffix, "--results-dir", str(args.results_dir)], check=True, stdout=subprocess.DEVNULL)
    return path


def render(results: dict[str, dict], args: argparse.Namespace) -> str:
    counts = [int(c) for c in args.counts.split(",")]
    head = "| model | label_noise | " + " | ".join(f"{n}: clean / 10% / drop" for n in counts) + " | mean drop |"
    lines = ["## Noise-robust Bradley-Terry: accuracy lost to 10% mistaken labels", "",
             f"`python bench/reward_label_noise.py {' '.join(sys.argv[1:])}`. Held-out accuracy (%), mean over "
             f"tasks and seeds {args.seeds}; every run sees the same pairs and labels (same seeds), only the "
             f"assumed share of random answers differs. Setup as reward-learning above.", "",
             head, "|---|---|" + "---|" * (len(counts) + 1)]
    verdicts: list[str] = []
    costs: list[str] = []
    base, clean0 = next(iter(results)), []
    for model in args.models.split(","):
        for eps, res in results.items():
            rows, cells, drops, cleans = res["rows"], [], [], []
            for n in counts:
                clean = 100 * mean_accuracy(rows, model=model, n=n, teacher="rational", lib="pbrl")
                noisy = 100 * mean_accuracy(rows, model=model, n=n, teacher="mistake0.1", lib="pbrl")
                drops.append(clean - noisy)
                cleans.append(clean)
                cells.append(f"{clean:.1f} / {noisy:.1f} / **{clean - noisy:.1f}**")
            lines.append(f"| {model} | {eps} | " + " | ".join(cells) + f" | {np.mean(drops):.1f} |")
            if eps == base:
                clean0 = cleans
            else:
                costs.append(f"{model} {eps}: {max(c0 - c for c0, c in zip(clean0, cleans)):.1f}")
            if model == "gaussian":
                met = "met" if max(drops) <= 3 else "NOT met"
                verdicts.append(f"label_noise {eps}: worst drop {max(drops):.1f} ({met})")
    runs = "; ".join(f"label_noise {eps}: {r['info']['machine']}, {r['info']['wall_s']:.0f} s"
                     for eps, r in results.items())
    lines += ["", "Goal, the Gaussian model loses <= 3 points at every label count: " + "; ".join(verdicts) + ". "
              f"Largest loss of clean-label accuracy against label_noise {base} (any count): " + "; ".join(costs)
              + ".", "", f"Runs: {runs}."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--noise", default="0,0.1,0.2", help="label_noise values to compare")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--models", default="gaussian,ensemble")
    p.add_argument("--counts", default="50,100,250,1000")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--rerun", action="store_true", help="run again even where results exist")
    p.add_argument("--results-dir", type=Path, default=RAW, help="where reward_learning.py's results are (or go)")
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    results = {eps: json.loads(run(eps, args).read_text()) for eps in args.noise.split(",")}
    publish(render(results, args), MARK, args.update_benchmarks)


if __name__ == "__main__":
    main()
