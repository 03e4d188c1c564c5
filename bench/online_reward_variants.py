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

``--reuse VARIANT=RUN_DIR`` takes a finished run instead of starting that variant again (e.g. the
ensemble-disagreement run of ``bench/online_pbrl.py``, which is the same command): every override of the
variant's command except ``out`` must equal the value in the run's ``config.yaml``, or it is refused.
Each task gets its own BENCHMARKS.md section (``online-reward-variants:<task>``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish  # noqa: E402
from bench.online_pbrl import launch, make_plan, parse_args as online_args, pbrl_command, show  # noqa: E402

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
NOT_COMPARED = ("out", "threads")  # overrides that may differ between a reused run and a new one


def variant_command(plan, out: Path, variant: str, extra: Sequence[str]) -> list[str]:
    """online_pbrl's ``pbrl train`` command with the reward/query choices swapped for ``variant``."""
    cmd = [c for c in pbrl_command(plan, out, extra) if not c.startswith(("reward=", "query="))]
    return [*cmd, *VARIANTS[variant]]


def check_reuse(run_dir: Path, cmd: Sequence[str]) -> None:
    """Refuse a finished run whose config differs from ``cmd``'s overrides (or that has no summary)."""
    import yaml
    from omegaconf import OmegaConf

    for need in ("config.yaml", "summary.json"):
        if not (run_dir / need).is_file():
            raise SystemExit(f"--reuse: {run_dir / need} not found (expected a finished pbrl run directory)")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    for override in (c for c in cmd if "=" in c and not c.startswith("-")):
        key, want = override.split("=", 1)
        if key in NOT_COMPARED:
            continue
        have = OmegaConf.select(cfg, key)
        if OmegaConf.is_dict(have):  # a config group (reward=ensemble, query=uniform): compare its name
            have = next((have[k] for k in ("name", "strategy") if k in have), have)
        if have != yaml.safe_load(want) and str(have) != want:
            raise SystemExit(f"--reuse: {run_dir} has {key}={have!r}, the variant's command has {key}={want}")


def summarise(dirs: dict[str, Path], walls: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for name, d in dirs.items():
        s = json.loads((d / "summary.json").read_text())
        rows.append({"variant": name, "return": s["return_mean"], "return_std": s.get("return_std"),
                     "success": s.get("success_rate"), "reward_accuracy": s.get("reward_accuracy"),
                     "corr_segment": s.get("reward_corr_segment"), "labels": s["labels_used"],
                     "wall_s": walls.get(name, math.nan)})
    return rows


def render(plan, rows: list[dict], cmds: dict[str, list[str]], machine: dict[str, Any],
           reused: Sequence[str] = ()) -> str:
    fmt = lambda v, f=".2f": "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, f)  # noqa: E731
    lines = [f"## Online reward variants: {plan.task}, {plan.steps} steps, {plan.labels} labels, seed {plan.seed}"
             + (" (tiny smoke scale — not a result)" if plan.quick or plan.steps < 50_000 else ""), "",
             "| variant | final return | success | reward accuracy | corr. segment | labels | wall (min) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ret = fmt(r["return"], ".1f") + ("" if r.get("return_std") is None else f" ± {r['return_std']:.1f}")
        lines.append(f"| {r['variant']} | {ret} | {fmt(r.get('success'))} | {fmt(r['reward_accuracy'])} | "
                     f"{fmt(r['corr_segment'])} | {r['labels']} | {fmt(r['wall_s'] / 60, '.1f')} |")
    lines += ["", f"Machine: {machine['cpu']}, {machine['nproc']} cores, {machine['date']}; the variants started "
              f"here ran side by side (1 thread each)" + (f"; reused: {', '.join(reused)}." if reused else "."), "",
              "Commands:", ""]
    lines += [f"- `{show(c)}`" for c in cmds.values()]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--reuse", action="append", default=[], metavar="VARIANT=RUN_DIR")
    own, rest = p.parse_known_args(argv)
    args = online_args(rest)
    args.variants = [v for v in own.variants.split(",") if v]
    args.reuse = {}
    for item in own.reuse:
        name, sep, path = item.partition("=")
        if not sep or name not in args.variants:
            raise SystemExit(f"--reuse: expected VARIANT=RUN_DIR with VARIANT one of --variants, got {item!r}")
        args.reuse[name] = Path(path).resolve()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (args.runs_dir / f"variants_{plan.task}_{plan.steps}_s{plan.seed}_{stamp}").resolve()
    dirs = {v: args.reuse.get(v, root / v) for v in args.variants}
    cmds = {v: variant_command(plan, dirs[v], v, args.pbrl_override) for v in args.variants}
    for name, run_dir in args.reuse.items():
        check_reuse(run_dir, cmds[name])
    print(f"plan: {plan}\n" + "\n".join(f"{k}: {show(c)}" + (" (reused)" if k in args.reuse else "")
                                         for k, c in cmds.items()), flush=True)
    if args.dry_run:
        return 0
    started = launch(root, {k: c for k, c in cmds.items() if k not in args.reuse}, args.heartbeat,
                     prog="online_reward_variants")
    if started is None:
        return 1
    walls, machine = started
    block = render(plan, summarise(dirs, walls), cmds, machine, reused=list(args.reuse))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results_dir / f"variants_{plan.task}_{plan.steps}.md", block + "\n")
    publish("\n" + block, f"{MARK}:{plan.task}", args.update_benchmarks, args.benchmarks_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
