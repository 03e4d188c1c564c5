"""Headline benchmarks with >= 5 seeds per cell, each cell one script run through Hydra sweeps.

Every group of a cell is one ``-m seed=0,...`` sweep through a real Hydra launcher (``--launcher local`` =
hydra-joblib-launcher, ``slurm`` / ``ray_cluster`` for a cluster), into ``ROOT/<group>/``; the table comes
from ``pbrl report``'s aggregation (rliable IQM and mean with 95% stratified-bootstrap CIs, P(X > Y)), and
each goal is judged on the CI of a contrast between two groups (ratio or difference of means). Cells:

- ``halfcheetah``: PEBBLE (500 labels, oracle teacher) vs SAC on the true reward with the same learner and
  settings (configs/algo/sac.yaml) vs SB3 SAC with its own defaults. Goal: PEBBLE >= 0.9x true-reward SAC.
- ``prefppo``: pbrl's PrefPPO (``algo=ppo``) vs imitation's preference comparisons (its defaults, in
  .venv-imitation) at the same env (HalfCheetah v5 vs v4: checked step-for-step identical first), steps and
  labels, plus pbrl's PrefPPO with imitation's settings (fragments of 100 steps, PPO on 8 envs x 256 steps,
  32x32 policy; diagnosis: does a gap come from the settings?). Goal: PrefPPO >= imitation.
- ``drawer-open``: PEBBLE (500 labels) vs true-reward SAC, success rate. Goal: PEBBLE >= true-reward SAC.

Measured cost on one quiet core of the 2-core dev VM (one thread per run, 100k steps): PEBBLE HalfCheetah 48
min, SAC 42 min; drawer-open PEBBLE 76 min, SAC 66 min (BENCHMARKS.md, online sections); with CrossQ (``--learner
crossq``, the default) HalfCheetah PEBBLE 8.0 and true reward 3.8 min per 20k steps. ``--dry-run`` prints the
commands and the core-hour estimate of a cell.

    python bench/headline.py --cell halfcheetah --seeds 5 --jobs 2 --update-benchmarks
    python bench/headline.py --cell prefppo --seeds 5 --jobs 2 --update-benchmarks
    python bench/headline.py --cell drawer-open --seeds 5 --launcher slurm \\
        --launcher-override hydra.launcher.partition=cpu --update-benchmarks
    python bench/headline.py --cell halfcheetah --report-only runs/headline/halfcheetah-...   # re-aggregate
    python bench/headline.py --cell halfcheetah --smoke                                     # minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import BENCHMARKS, RAW, publish, read_section, update_section  # noqa: E402
from bench.online_pbrl import feedback_schedule, machine_info, show  # noqa: E402

from pbrl.analysis.aggregate import aggregate, compare  # noqa: E402
from pbrl.analysis.render import comparison_table, final_table, fmt_ci  # noqa: E402
from pbrl.analysis.runs import FINISHED, load_runs  # noqa: E402
from pbrl.analysis.stats import contrast  # noqa: E402
from pbrl.resources import resource_dir  # noqa: E402
from pbrl.utils import atomic_write_text  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
IMITATION_PYTHON = REPO / ".venv-imitation" / "bin" / "python"
#: measured minutes per 100k-step run on one quiet core (see the docstring); PPO cells: from --smoke timings
#: CrossQ HalfCheetah: 5x the measured 20k-step runs (PEBBLE 500 labels 8.0 min, true reward 3.8 min, one core
#: each; BENCHMARKS.md headline:halfcheetah); drawer-open: that times SAC's drawer-open / HalfCheetah ratio (estimate)
MINUTES_PER_100K = {"pebble-sac:halfcheetah": 48, "sac:halfcheetah": 42, "pebble-sac:drawer-open": 76,
                    "sac:drawer-open": 66, "pebble-crossq:halfcheetah": 40, "crossq:halfcheetah": 19,
                    "pebble-crossq:drawer-open": 63, "crossq:drawer-open": 30,
                    "prefppo:halfcheetah": 20, "imitation:halfcheetah": 20}
#: --learner -> bench/baseline_sac.py's ``settings`` with the same learner and hyperparameters
LEARNER_SETTINGS = {"crossq": "crossq", "sac": "pbrl"}


@dataclasses.dataclass(frozen=True)
class Group:
    """One setting of a cell: a sweep over seeds of one command."""

    name: str
    kind: str                     # pbrl | baseline | imitation (which program runs it)
    overrides: tuple[str, ...]
    cost_key: str


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    task: str
    metric: str                   # return | success
    groups: tuple[Group, ...]
    goal: tuple[str, str, str, float]   # (X, Y, ratio|difference, threshold): met when the CI is >= threshold
    goal_text: str


def pbrl_overrides(task: str, steps: int, labels: int, algo: str, extra: Sequence[str] = (), *,
                   final_episodes: int = 10, evals: int = 10) -> tuple[str, ...]:
    """pbrl train overrides of bench/online_pbrl.py's protocol: oracle teacher, labels spent by 65% of training."""
    every, per_round, _ = feedback_schedule(steps, labels, 1000, 0.65)
    return (f"task={task}", f"algo={algo}", "feedback=scripted", "feedback.preset=oracle", "reward=ensemble",
            "query=disagreement", f"budget.env_steps={steps}", f"budget.labels={labels}",
            f"budget.per_round={per_round}", f"budget.every={every}", "threads=1", "eval.video=false",
            f"eval.every={max(1, steps // evals)}", "eval.episodes=1", f"eval.final_episodes={final_episodes}",
            f"checkpoint_every={max(1, steps // evals)}", *extra)


def make_cell(name: str, steps: int, labels: int, final_episodes: int = 10, evals: int = 10,
              learner: str = "crossq") -> Cell:
    """The groups of a cell at ``steps`` env steps and ``labels`` labels; ``evals`` evaluations along the way.

    ``learner`` (``crossq`` | ``sac``) is PEBBLE's ``algo`` and the true-reward baseline's learner, with the
    same settings (configs/algo/<learner>.yaml): the contrast isolates the learned reward."""
    base = ("threads=1", f"steps={steps}", f"eval.every={max(1, steps // evals)}", f"eval.final_episodes={final_episodes}")
    pbrl_overrides_ = functools.partial(pbrl_overrides, final_episodes=final_episodes, evals=evals)
    if name in ("halfcheetah", "drawer-open"):
        if learner not in LEARNER_SETTINGS:
            raise SystemExit(f"headline: --learner {learner!r}; expected one of {', '.join(LEARNER_SETTINGS)}")
        true = f"{learner}-true-reward"
        groups = [Group("pebble", "pbrl", pbrl_overrides_(name, steps, labels, learner), f"pebble-{learner}:{name}"),
                  Group(true, "baseline", (f"task={name}", f"settings={LEARNER_SETTINGS[learner]}", *base),
                        f"{learner}:{name}")]
        if name == "halfcheetah":
            groups.append(Group("sb3-sac-defaults", "baseline", (f"task={name}", "settings=sb3", *base),
                                f"sac:{name}"))
        metric = "return" if name == "halfcheetah" else "success"
        goal = ("pebble", true, "ratio", 0.9) if name == "halfcheetah" else ("pebble", true, "difference", 0.0)
        text = f"PEBBLE >= 0.9x true-reward {learner} return" if name == "halfcheetah" else \
            f"PEBBLE success >= true-reward {learner} success"
        return Cell(name, name, metric, tuple(groups), goal, text)
    if name == "prefppo":
        matched = ("segment_length=100", "algo.n_envs=8", "algo.ppo.n_steps=256", "algo.ppo.policy_kwargs.net_arch=[32,32]")
        groups = (Group("prefppo", "pbrl", pbrl_overrides_("halfcheetah", steps, labels, "ppo"), "prefppo:halfcheetah"),
                  Group("prefppo-imitation-settings", "pbrl", pbrl_overrides_("halfcheetah", steps, labels, "ppo", matched),
                        "prefppo:halfcheetah"),
                  Group("imitation", "imitation", (f"steps={steps}", f"labels={labels}", f"final_episodes={final_episodes}"),
                        "imitation:halfcheetah"))
        return Cell(name, "halfcheetah", "return", groups, ("prefppo", "imitation", "difference", 0.0),
                    "PrefPPO return >= imitation's preference comparisons")
    raise SystemExit(f"headline: unknown cell {name!r}; expected halfcheetah, prefppo or drawer-open")


def sweep_command(group: Group, seeds: int, root: Path, launcher: Sequence[str], imitation_python: Path) -> list[str]:
    """The ``-m`` command of one group: its program, the launcher, its own sweep dir, the seeds."""
    common = ["-m", *launcher, f"hydra.sweep.dir={root / group.name}", f"seed={','.join(map(str, range(seeds)))}"]
    if group.kind == "pbrl":
        return [sys.executable, "-m", "pbrl.cli", "train", *common, *group.overrides]
    search = f"hydra.searchpath=[file://{resource_dir('configs')}]"  # hydra/launcher=local|slurm|ray_cluster
    program = [sys.executable, str(BENCH / "baseline_sac.py")] if group.kind == "baseline" else \
        [str(imitation_python), str(BENCH / "imitation_pc.py")]
    return [*program, common[0], search, *common[1:], *group.overrides]


def core_hours(cell: Cell, seeds: int, steps: int) -> float:
    return sum(MINUTES_PER_100K[g.cost_key] * steps / 100_000 * seeds for g in cell.groups) / 60


def check_env_versions(imitation_python: Path) -> str:
    """imitation's HalfCheetah-v4 (gymnasium 0.29) vs pbrl's v5: returns of one fixed action sequence."""
    import gymnasium as gym
    import numpy as np

    env = gym.make("HalfCheetah-v5")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ours = sum(float(env.step(rng.uniform(-1, 1, env.action_space.shape))[1]) for _ in range(1000))
    out = subprocess.run([str(imitation_python), str(BENCH / "imitation_pc.py"), "--fingerprint", "HalfCheetah-v4"],
                         capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])["return"]
    if abs(ours - theirs) > 1e-6 * max(1.0, abs(ours)):
        raise SystemExit(f"headline: HalfCheetah-v5 here ({ours:.6f}) and imitation's v4 ({theirs:.6f}) differ; "
                         "the comparison would not be on the same env")
    return f"HalfCheetah-v5 (pbrl) and imitation's HalfCheetah-v4 (gymnasium 0.29) give the same return " \
           f"({ours:.4f}) for 1000 fixed random actions from reset(seed=0)"


def run_sweeps(cmds: dict[str, list[str]], root: Path) -> None:
    """One group after another (each sweep runs its seeds in parallel through the launcher); logs in ROOT."""
    for name, cmd in cmds.items():
        log = root / f"{name}.log"
        print(f"[{datetime.datetime.now():%H:%M:%S}] sweep {name}: {show(cmd)}\n  log: {log}", flush=True)
        with open(log, "wb") as fh:
            proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            print(f"headline: sweep {name} exited {proc.returncode}; see {log} (aggregating what finished)",
                  file=sys.stderr)


def evaluate_cell(cell: Cell, root: Path, reps: int) -> dict:
    """Aggregate the cell's run dirs with pbrl report's machinery; judge the goal on a contrast's CI."""
    groups = {g.name: load_runs([root / g.name]) for g in cell.groups if (root / g.name).exists()}
    results = aggregate(groups, cell.metric, reps=reps, curve_reps=max(100, reps // 4))
    by_name = {r.label: r for r in results}
    x, y, kind, threshold = cell.goal
    pairs = [(a.label, b.label, compare(a, b, reps=reps), min(g.final.n if g.final else 0 for g in (a, b)))
             for i, a in enumerate(results) for b in results[i + 1:]]
    goal, note = None, "a group has no finished run"
    if x in by_name and y in by_name and by_name[x].final and by_name[y].final:
        if kind == "ratio" and by_name[y].final.mean.value <= 0:
            note = f"{y}'s mean return is <= 0, where a ratio means nothing"
        else:
            goal = contrast(by_name[x].final.values, by_name[y].final.values, kind, reps=reps)
            if min(by_name[x].final.n, by_name[y].final.n) < 3:
                note = "fewer than 3 seeds in a group: no claim either way"
    return {"results": results, "pairs": pairs, "goal": goal, "note": note}


def verdict(goal, threshold: float, note: str = "a group has no finished run") -> str:
    if goal is None:
        return f"**not measured** ({note})"
    if note.startswith("fewer than 3 seeds"):
        return f"**not judged** ({note})"
    if goal.low >= threshold:
        return f"**met** (the whole 95% CI is >= {threshold})"
    if goal.high < threshold:
        return f"**not met** (the whole 95% CI is < {threshold})"
    return f"**not supported by the CI** (it contains {threshold}: more seeds or a larger effect needed)"


def render(cell: Cell, ev: dict, cmds: dict[str, list[str]], root: Path, seeds: int, steps: int, labels: int,
           machine: dict, env_note: str, smoke: bool) -> str:
    x, y, kind, threshold = cell.goal
    results = ev["results"]
    runs = [r for g in results for r in g.runs]
    cpu_h = sum((r.summary or {}).get("wall_s", 0.0) for r in runs) / 3600
    unfinished = [r for r in runs if r.status != FINISHED]
    label = f"ratio of means {x} / {y}" if kind == "ratio" else f"difference of means {x} − {y}"
    lines = [
        f"## Headline: {cell.name}, {steps} env steps, {labels} labels, {seeds} seeds per group"
        + (" — SMOKE SCALE, not a result" if smoke else ""), "",
        final_table(results, cell.metric), "",
        f"Goal: {cell.goal_text}. {label} = {fmt_ci(ev['goal'], 2)} (95% CI, independent bootstrap over "
        f"the runs of each group) → {verdict(ev['goal'], threshold, ev['note'])}.", "",
        "Probability of improvement (final " + cell.metric + "):", "", comparison_table(ev["pairs"]), "",
    ]
    if unfinished:
        lines += [f"**{len(unfinished)} run(s) without a result** (not in the statistics): "
                  + ", ".join(f"`{r.path.name}` ({r.status})" for r in unfinished), ""]
    if env_note:
        lines += [f"Env check: {env_note}.", ""]
    lines += [f"Run directories: `{show([str(root)])}` (re-aggregate: `pbrl report "
              + " ".join(f"{g.name}={show([str(root / g.name)])}" for g in cell.groups) + "`). "
              f"Training time summed over finished runs: {cpu_h:.1f} core-hours.", "",
              "Commands (one sweep per group, started in this order):", "", "```",
              *[show(c) for c in cmds.values()], "```", "",
              f"Date {machine['date']}; {machine['nproc']} cores, {machine['cpu']}; Python {machine['python']}, "
              + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + "."]
    return "\n".join(lines)


def summary_row(cell: Cell, ev: dict, seeds: int, steps: int) -> str:
    """One row of the headline summary table: every group's n and CI, and the goal's verdict."""
    cells = "; ".join(f"{g.label} {fmt_ci(g.final.iqm if g.final else None, 2 if cell.metric == 'success' else 1)}"
                      f" (n={g.final.n if g.final else 0})" for g in ev["results"])
    return f"| {cell.name} ({cell.metric}, {steps} steps) | IQM [95% CI]: {cells} | {cell.goal_text}: " \
           f"{fmt_ci(ev['goal'], 2)} → {verdict(ev['goal'], cell.goal[3], ev['note'])} |"


def update_summary(path: Path, cell: Cell, row: str) -> None:
    """Keep one row per cell in the ``headline-summary`` section (rows of other cells are kept)."""
    rows = [ln for ln in (read_section(path, "headline-summary") or "").splitlines() if ln.startswith("| ") and
            not ln.startswith("| cell") and not ln.startswith(f"| {cell.name} (")]
    head = "| cell | groups: IQM [95% CI] (n seeds) | goal: contrast [95% CI] → verdict |\n|---|---|---|"
    update_section(path, "headline-summary", "\n".join([head, *sorted(rows + [row])]))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", required=True, choices=("halfcheetah", "prefppo", "drawer-open"))
    p.add_argument("--seeds", type=int, default=5, help="seeds per group (>= 5 for a headline result)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--learner", default="crossq", choices=tuple(LEARNER_SETTINGS),
                   help="PEBBLE's algo and the true-reward baseline's learner (halfcheetah, drawer-open cells)")
    p.add_argument("--labels", type=int, default=500)
    p.add_argument("--smoke", action="store_true", help="tiny scale (2 seeds, 3000 steps, 40 labels): checks the "
                                                         "machinery in minutes; the table says it is not a result")
    p.add_argument("--launcher", default="local", help="hydra/launcher config: local (joblib), slurm, ray_cluster, "
                                                       "submitit_local, ...")
    p.add_argument("--jobs", type=int, default=2, help="runs at once with --launcher local")
    p.add_argument("--launcher-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra launcher setting, e.g. hydra.launcher.partition=cpu (repeatable)")
    p.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "headline")
    p.add_argument("--report-only", type=Path, metavar="ROOT", help="aggregate an earlier run's ROOT, run nothing")
    p.add_argument("--imitation-python", type=Path, default=IMITATION_PYTHON)
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--results-dir", type=Path, default=RAW, help="where a copy of the table goes")
    p.add_argument("--update-benchmarks", action="store_true", help="write the cell's section of BENCHMARKS.md")
    p.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS)
    p.add_argument("--dry-run", action="store_true", help="print the commands and the core-hour estimate")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps, args.labels = min(args.seeds, 2), 3000, 40
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cell = make_cell(args.cell, args.steps, args.labels, final_episodes=2 if args.smoke else 10,
                     evals=2 if args.smoke else 10, learner=args.learner)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (args.report_only or args.runs_dir / f"{cell.name}-{args.steps}-{stamp}").resolve()
    launcher = [f"hydra/launcher={args.launcher}", *args.launcher_override]
    if args.launcher == "local":
        launcher.append(f"hydra.launcher.n_jobs={args.jobs}")
    cmds = {g.name: sweep_command(g, args.seeds, root, launcher, args.imitation_python) for g in cell.groups}
    print(f"cell {cell.name}: {len(cell.groups)} groups x {args.seeds} seeds, {args.steps} steps; estimated "
          f"{core_hours(cell, args.seeds, args.steps):.1f} core-hours on one quiet core per run", flush=True)
    if args.dry_run:
        print("\n".join(show(c) for c in cmds.values()))
        return 0
    env_note = check_env_versions(args.imitation_python) if cell.name == "prefppo" else ""
    machine = machine_info()
    if args.report_only is None:
        root.mkdir(parents=True, exist_ok=True)
        run_sweeps(cmds, root)
    ev = evaluate_cell(cell, root, args.reps)
    block = render(cell, ev, cmds, root, args.seeds, args.steps, args.labels, machine, env_note, args.smoke)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = f"headline_{cell.name}_{args.steps}" + ("_smoke" if args.smoke else "")
    atomic_write_text(args.results_dir / f"{name}.md", block + "\n")
    publish("\n" + block, f"headline:{cell.name}", args.update_benchmarks, args.benchmarks_file)
    if args.update_benchmarks:
        update_summary(args.benchmarks_file, cell, summary_row(cell, ev, args.seeds, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
