"""Online PEBBLE with different reward models and query strategies, side by side.

Same plan as bench/online_pbrl.py (its Plan, ``pbrl train`` command and side-by-side runner are reused):
one ``pbrl train`` per variant, all started at the same moment as single-threaded processes, each with
the oracle teacher and the same steps, labels, schedule and seed. Variants (``--variants``):

  ensemble-disagreement  reward=ensemble query=disagreement   (PEBBLE default)
  ensemble-entropy       reward=ensemble query=entropy
  ensemble-uniform       reward=ensemble query=uniform
  gaussian-disagreement  reward=gaussian query=disagreement    (PEARL RRL; spread of return samples)
  gaussian-entropy       reward=gaussian query=entropy
  gaussian-conservative  reward=gaussian query=entropy reward.conservative_k=1.0

The full comparison (HalfCheetah, 100k steps, 500 labels) takes hours per variant on 2 CPU cores:

    python bench/online_reward_variants.py --task halfcheetah --steps 100000 --labels 500 --update-benchmarks
    python bench/online_reward_variants.py --quick --variants ensemble-disagreement,gaussian-entropy   # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_pbrl import launch, make_plan, parse_args as online_args, pbrl_command, show  # noqa: E402

from pbrl.utils import atomic_write_text  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "ensemble-disagreement": ["reward=ensemble", "query=disagreement"],
    "ensemble-entropy": ["reward=ensemble", "query=entropy"],
    "ensemble-uniform": ["reward=ensemble", "query=uniform"],
    "gaussian-disagreement": ["reward=gaussian", "query=disagreement"],
    "gaussian-entropy": ["reward=gaussian", "query=entropy"],
    "gaussian-conservative": ["reward=gaussian", "query=entropy", "reward.conservative_k=1.0"],
}
MARK = "online-reward-variants"


def variant_command(plan, out: Path, variant: str, extra: Sequence[str]) -> list[str]:
    """online_pbrl's ``pbrl train`` command with the reward/query choices swapped for ``variant``."""
    cmd = [c for c in pbrl_command(plan, out, extra) if not c.startswith(("reward=", "query="))]
    return [*cmd, *VARIANTS[variant]]


def summarise(dirs: dict[str, Path], walls: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for name, d in dirs.items():
        s = json.loads((d / "summary.json").read_text())
        rows.append({"variant": name, "return": s["return_mean"], "reward_accuracy": s.get("reward_accuracy"),
                     "corr_segment": s.get("reward_corr_segment"), "labels": s["labels_used"],
                     "wall_s": walls.get(name, math.nan)})
    return rows


def render(plan, rows: list[dict], cmds: dict[str, list[str]], machine: dict[str, Any]) -> str:
    fmt = lambda v, f=".2f": "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, f)  # noqa: E731
    lines = [f"## Online reward variants: {plan.task}, {plan.steps} steps, {plan.labels} labels, seed {plan.seed}"
             + (" (tiny smoke scale — not a result)" if plan.quick or plan.steps < 50_000 else ""), "",
             "| variant | final return | reward accuracy | corr. segment | labels | wall (min) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {fmt(r['return'], '.1f')} | {fmt(r['reward_accuracy'])} | "
                     f"{fmt(r['corr_segment'])} | {r['labels']} | {fmt(r['wall_s'] / 60, '.1f')} |")
    lines += ["", f"Machine: {machine['cpu']}, {machine['nproc']} cores, {machine['date']}; all variants ran "
              f"side by side (1 thread each).", "", "Commands:", ""]
    lines += [f"- `{show(c)}`" for c in cmds.values()]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--variants", default=",".join(VARIANTS))
    own, rest = p.parse_known_args(argv)
    args = online_args(rest)
    args.variants = [v for v in own.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (args.runs_dir / f"variants_{plan.task}_{plan.steps}_s{plan.seed}_{stamp}").resolve()
    dirs = {v: root / v for v in args.variants}
    cmds = {v: variant_command(plan, dirs[v], v, args.pbrl_override) for v in args.variants}
    print(f"plan: {plan}\n" + "\n".join(f"{k}: {show(c)}" for k, c in cmds.items()), flush=True)
    if args.dry_run:
        return 0
    started = launch(root, cmds, args.heartbeat, prog="online_reward_variants")
    if started is None:
        return 1
    walls, machine = started
    block = render(plan, summarise(dirs, walls), cmds, machine)
    print("\n" + block)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results_dir / f"variants_{plan.task}_{plan.steps}.md", block + "\n")
    if args.update_benchmarks:
        from reward_learning import update_benchmarks

        update_benchmarks(args.benchmarks_file, block, mark=MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
