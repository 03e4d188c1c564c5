"""Benchmark: reward-free offline learning from preferences (CPL, OPPO) against BC and P-IQL on Meta-World, over seeds.

For every task and seed: roll out the scripted expert mixture (noisy expert, a consistently mis-aimed sub-optimal
expert -- a constant action offset shared by its episodes -- and random episodes), cut 64-step segments, and build
two datasets from them as in CPL (Hejna et al. 2024, Sec. 5):

* ``dense``: ``--dense-segments`` segments, every pair inside groups of ``--group-size`` labelled;
* ``sparse``: ``--sparse-segments`` segments in disjoint pairs.

Labels come from the rational scripted teacher on the true return. On each dataset we train BC on all segments,
BC on the preferred segment of each pair, CPL and OPPO for ``--steps`` gradient steps and report the evaluation
success rate (``--eval-episodes`` episodes). A seed is both the data seed (rollouts, segment choice, labels) and the
training seed. The table gives the mean over seeds per task, and per dataset the mean over tasks and seeds with a
stratified-bootstrap 95% CI (rliable, :func:`pbrl.analysis.stats.mean_over_tasks`; needs ``pip install
'pbrl[report]'``) and the worst task; the goals (CPL >= preferred-BC + 10 points, OPPO > BC on all data) are
judged on the CI of the paired difference.

The two-step baselines (learned reward + IQL; a separate registry, ``REWARD_IQL``): P-IQL (ensemble reward),
PT-IQL (Preference Transformer reward), P-IQL r(s) (the ensemble on observations only), P-IQL (standardised r)
(IQL on the zero-mean, unit-variance reward, pbrl's default before it followed the CPL code's raw reward) and
P-IQL / PT-IQL (return-range r) (IQL's D4RL scaling r * T / (max - min episode return), which the Preference
Transformer code applies to its relabelled reward; ``algo.reward_normalize=return_range``) fit their reward on
the dataset's labels first, with the unit's seed, relabel every stored step and train IQL for ``--steps``;
P-IQL (50k steps) and PT-IQL (50k steps) train IQL for 50000 steps on the same fits (~18 core-minutes per dense
P-IQL cell with its rollouts, IQL ~13), and CPL (50k steps) is CPL at that budget (BC warm-up 10000; ~10
core-minutes), so they are also compared at 10x the configs' budget. Variants that fit the same reward (model,
inputs, epochs) in one run fit it once per store and seed, the rest load it (rows unchanged). The reward
fit (``--reward-epochs``, early stop at 97% train accuracy) follows CPL's P-IQL schedule, which trains its reward in the
first 10% of its steps (50k of 500k, 96 pairs per batch): 5 epochs over the ~10k pairs at 5000 steps. One dense
P-IQL cell on one idle core: the fit and relabelling 283 s (~55 s per epoch of 8624 pairs; the reward configs' 50
epochs, what `pbrl train algo=iql` uses, would take ~45 min), IQL 19 ms per gradient step (97 s). Their paired
gaps against P-IQL (CPL, OPPO, PT-IQL, P-IQL r(s); same task, dataset and seed) are reported with the same CI.

Cost, one idle core per process, single-threaded, ``--steps 5000`` (the configs' default): per (task, seed) the
rollouts take ~1.7 min (1819 episodes), the dense unit's four trainings ~5 min (per gradient step BC 19 ms, CPL
10 ms, OPPO 17 ms) and the sparse unit's ~12 min (BC 19, CPL 38, OPPO 62 ms: its batches hold 64 segments, the
dense ones 16). So the 6 x 3 benchmark of these four is ~2.6 core-hours dense and ~4.3 sparse. P-IQL adds ~8 min
per dense unit with its own rollouts (~2.5 core-hours for 6 x 3); PT-IQL ~13 min (the transformer's 5 epochs
and its relabelling of every stored step in 64-step windows take ~9.4 min, against ~5 for the ensemble).
Split it over two processes side by side (each single-threaded; both build the same rollouts), then merge:

    python bench/offline_prefs.py --steps 5000 --datasets dense --out runs/bench/op_dense \\
        --methods "BC (all),BC (preferred),CPL,OPPO"
    python bench/offline_prefs.py --steps 5000 --datasets sparse --out runs/bench/op_sparse \\
        --methods "BC (all),BC (preferred),CPL,OPPO"
    python bench/offline_prefs.py --from-rows runs/bench/op_dense/rows.json,runs/bench/op_sparse/rows.json --update-md

The published table is re-rendered from its merged rows with
``--from-rows bench/results/offline_prefs/rows.json``. A side run (other tasks, seeds, datasets or methods with the
same settings) is published by merging it into that file and re-rendering:

    python bench/offline_prefs.py --from-rows bench/results/offline_prefs/rows.json,runs/bench/side/rows.json \
        --save-rows bench/results/offline_prefs/rows.json --update-md

Every report also draws the table as a plot (``OUT/summary.png``; the published one,
``bench/results/offline_prefs/summary.png``, with ``--from-rows ... --update-md``): per method the mean over tasks and
seeds with its 95% CI, and each task's mean, one panel per dataset.

A killed run continues where it stopped when started again with the same ``--out`` (finished (task, seed) units
are kept in ``rows.json``). ``--quick`` is a smoke run (~300 steps, 5 reward-fit epochs; minutes per task and seed).
Offline actors use :class:`~pbrl.agents.offline_data.MaskDropout`: CPU per gradient step, same data, CPL dense
14.7 -> 11.5 ms, BC 25.4 -> 21.3 ms (-22% / -16%) against ``nn.Dropout``.

Usage:  python bench/offline_prefs.py [--quick] [--tasks drawer-open,button-press] [--seeds 0,1,2] [--update-md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, ROOT, publish  # noqa: E402
from bench.offline_prefs_table import (  # noqa: E402
    FULL_TASKS, METHODS, SETTINGS, cell_key, coverage, merge_runs, method_line, method_settings, mixture, piql_line,
    plot_summary, seeded_rows, sizes, table, verdict)

from pbrl.agents.offline_data import OfflineData  # noqa: E402
from pbrl.run.collect import CollectSpec, build_dataset, collect_episodes  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.envs import eval_seed, evaluate, expert_policy, load_task  # noqa: E402
from pbrl.feedback.teachers import teacher_from_preset  # noqa: E402
from pbrl.resources import resource_dir  # noqa: E402
from pbrl.run.offline_learners import build_learner  # noqa: E402
from pbrl.utils import atomic_write_json  # noqa: E402

PLOT = ROOT / "bench" / "results" / "offline_prefs" / "summary.png"  # the published summary plot
MARK = "offline_prefs"
QUICK_TASKS = "drawer-open,button-press,plate-slide"


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The benchmark's settings from ``argv`` (default: the command line)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=None, help=f"comma-separated tasks (default: {FULL_TASKS}; --quick: "
                                                   f"{QUICK_TASKS})")
    ap.add_argument("--episodes", type=int, default=None,
                    help="rollouts per task, shared by both datasets (default: enough for the larger dataset)")
    ap.add_argument("--episode-length", type=int, default=150)
    ap.add_argument("--dense-segments", type=int, default=2500)
    ap.add_argument("--sparse-segments", type=int, default=20000)
    ap.add_argument("--noise", type=float, default=0.3, help="action-noise std of expert and sub-optimal episodes")
    ap.add_argument("--suboptimal-frac", type=float, default=0.4)
    ap.add_argument("--suboptimal-bias", type=float, default=1.0, help="norm of the sub-optimal action offset")
    ap.add_argument("--random-frac", type=float, default=0.2)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--stride", type=int, default=8, help="steps between segment starts within an episode")
    ap.add_argument("--steps", type=int, default=5000, help="gradient steps per method (5000: the BC / CPL / OPPO "
                    "configs' default; IQL's is 50000, the P-IQL (50k steps) column)")
    ap.add_argument("--bc-steps", type=int, default=None, help="CPL BC warm-up (default: steps // 5)")
    ap.add_argument("--eval-episodes", type=int, default=25)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; each is a data seed (its own rollouts, "
                                                      "segments and labels) and the training seed of every method")
    ap.add_argument("--hidden", default=None, help="MLP sizes for every method, e.g. 128,128 (default: configs)")
    ap.add_argument("--batch-pairs", type=int, default=None, help="pairs (BC: segments) per batch (default: configs)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate of every method (default: configs)")
    ap.add_argument("--std", default=None, help="action std of BC and CPL actors: learned, or a fixed number "
                                                 "(0.7071: the CPL code's MSE actor; default: configs)")
    ap.add_argument("--cpl-bc-weight", type=float, default=None, help="CPL's BC regulariser (default: config)")
    ap.add_argument("--reward-epochs", type=int, default=None,
                    help="reward fit epochs of P-IQL / PT-IQL (default: ~10%% of --steps in batches of 96 pairs, "
                         "CPL's P-IQL schedule; 5 at 5000 steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded machine)")
    ap.add_argument("--quick", action="store_true", help="the reduced scale run on a shared 2-core machine")
    ap.add_argument("--update-md", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--out", default=str(RAW / "offline_prefs"))
    ap.add_argument("--datasets", default="dense,sparse",
                    help="comma-separated subset of dense,sparse to train on (both are built from the same rollouts "
                         "either way, so a dense-only and a sparse-only run of one seed merge into the full unit)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated subset of {list(METHODS)} (the others' cells stay empty)")
    ap.add_argument("--keep-data", action="store_true", help="keep the datasets (stores) in --out")
    ap.add_argument("--from-rows", default=None,
                    help="re-render the table from finished runs' rows.json (comma-separated: runs of other tasks "
                         "with the same settings are merged)")
    ap.add_argument("--plot", default=None,
                    help=f"write the summary plot (per method: mean success over tasks and seeds with its 95%% CI, "
                         f"and each task's mean) here (default: OUT/summary.png while training; with --from-rows "
                         f"and --update-md {PLOT})")
    ap.add_argument("--save-rows", default=None,
                    help="with --from-rows: write the merged rows.json here (atomically; it may be one of the inputs, "
                         "which is how a side run is published into bench/results/offline_prefs/rows.json)")
    args = ap.parse_args(argv)
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    if args.save_rows and not args.from_rows:
        ap.error("--save-rows: needs --from-rows (the runs to merge)")
    bad = [d for d in args.datasets.split(",") if d not in ("dense", "sparse")]
    if bad or not args.datasets:
        ap.error(f"--datasets: expected some of dense,sparse, got {args.datasets!r}")
    args.tasks = args.tasks or (QUICK_TASKS if args.quick else FULL_TASKS)
    if args.quick:
        args.episodes, args.dense_segments, args.sparse_segments = 48, 320, 1000
        args.stride = 4
        args.steps, args.eval_episodes, args.hidden, args.batch_pairs, args.lr = 300, 8, "128,128", 16, 1e-3
        args.reward_epochs = args.reward_epochs or 5  # small datasets: 5 passes take seconds
    try:
        args.seed_list = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if args.reward_epochs is None:  # CPL's P-IQL fits its reward in the first 10% of its steps (50k of 500k, 96 pairs
        args.reward_epochs = max(1, round(0.1 * args.steps * 96 / 10000))  # each); ~10k pairs in either dataset
    if args.episodes is None:  # every episode yields (length - 64) // stride + 1 aligned segments
        per_episode = (args.episode_length - 64) // args.stride + 1
        args.episodes = -(-max(args.dense_segments, args.sparse_segments) // per_episode)
    return args


def make_datasets(task_name: str, args: argparse.Namespace, out: Path, seed: int) -> dict[str, tuple[Path, dict]]:
    """Collect once per seed, then write the dense and sparse stores (segment subsets of the same rollouts)."""
    task = load_task(task_name)
    base = dict(episodes=args.episodes, episode_length=args.episode_length, segment_length=64, stride=args.stride,
                noise_std=args.noise, random_frac=args.random_frac, suboptimal_frac=args.suboptimal_frac,
                suboptimal_noise=args.noise, suboptimal_bias=args.suboptimal_bias)
    trajs = collect_episodes(task, expert_policy(task), CollectSpec(**base), seed)
    paths = {}
    for pairing, n in (("dense", args.dense_segments), ("sparse", args.sparse_segments)):
        if pairing not in args.datasets.split(","):
            continue
        path = out / f"{task_name}-{pairing}-s{seed}.sqlite"
        path.unlink(missing_ok=True)
        spec = CollectSpec(**base, pairing=pairing, n_segments=n, group_size=args.group_size)
        teacher = teacher_from_preset("oracle", rng=np.random.default_rng(seed))
        with PreferenceStore(path) as store:
            store.set_meta("task", task_name)
            counts = build_dataset(store, trajs, spec, teacher.label, seed=seed)
        print(json.dumps({"task": task_name, "dataset": pairing, "seed": seed, **counts}), flush=True)
        paths[pairing] = (path, counts)
    return paths


def algo_cfg(name: str, overrides: dict, args: argparse.Namespace, pairing: str):
    cfg = OmegaConf.load(resource_dir("configs") / "algo" / f"{name}.yaml")
    cfg.steps = args.steps
    if name == "cpl":
        cfg.bc_steps = args.bc_steps if args.bc_steps is not None else args.steps // 5
    if "pairing" in cfg:
        cfg.pairing = pairing
    if args.hidden:
        cfg.hidden = [int(h) for h in args.hidden.split(",")]
    if args.batch_pairs:
        cfg["batch_segments" if name == "bc" else "batch_pairs"] = args.batch_pairs
    if args.lr:
        cfg.lr = args.lr
    if name in ("bc", "cpl") and getattr(args, "std", None) is not None:
        cfg.std = args.std
    if name == "cpl" and getattr(args, "cpl_bc_weight", None) is not None:
        cfg.bc_weight = args.cpl_bc_weight
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def run_method(task_name: str, data: OfflineData, method: str, pairing: str, args, seed: int,
               store: Optional[Path] = None, fits: Optional[Path] = None) -> dict:
    """Train ``method`` on ``data`` with ``seed`` and evaluate it (the IQL methods read ``store``, the data's file,
    and share their reward fits through ``fits``: see :func:`build_reward_iql`)."""
    name, overrides = METHODS[method]
    torch.manual_seed(seed)
    cfg = algo_cfg(name, overrides, args, pairing)
    rng = np.random.default_rng([seed, 4])
    if method in REWARD_IQL:
        learner = build_reward_iql(method, cfg, load_task(task_name), store, args, seed, rng, fits)
    else:
        learner = build_learner(cfg, data, rng)
    t0 = time.time()
    for step in range(int(cfg.steps)):
        learner.update(step)
    train_s = time.time() - t0
    res = evaluate(load_task(task_name), learner.policy.act, n_episodes=args.eval_episodes, seed=eval_seed(seed),
                   episode_length=args.episode_length)
    return {"task": task_name, "dataset": pairing, "method": method, "seed": seed, "success": res.success_rate,
            "return": res.return_mean, "train_s": train_s, "eval_s": time.time() - t0 - train_s,
            **method_settings(cfg), **getattr(learner, "reward_info", {})}


# ---- P-IQL / PT-IQL (learned reward + IQL, the offline-PbRL papers' baseline) ------------------------------------
#: IQL method of METHODS -> reward config (configs/reward/<name>.yaml; PT-IQL*: the transformer): fitted on the
#: labels, every stored step relabelled, then IQL (configs/algo/iql.yaml) trains on the transitions (pbrl.run.iql,
#: as `pbrl train algo=iql`).
REWARD_IQL = {m: "transformer" if m.startswith("PT-IQL") else "ensemble"
              for m, (algo, _) in METHODS.items() if algo == "iql"}


def build_reward_iql(method: str, cfg, task, store: Optional[Path], args, seed: int, rng: np.random.Generator,
                     fits: Optional[Path] = None):
    """The IQL learner of ``method`` on ``store`` of ``task``, its reward fitted with ``seed``.

    With ``fits`` (a directory per store and seed), variants that fit the same reward (model, inputs, epochs: e.g.
    P-IQL and its 50k-step or return-range variants) fit it once: the later ones load it, with the torch state the
    fit left (``pbrl.run.iql.fitted_reward``), so their rows equal those of a fit of their own. Without, the fit
    happens in a scratch directory, not kept."""
    import contextlib
    import tempfile

    from pbrl.rewards.transformer import ARCH_VERSION
    from pbrl.run.iql import FIT_FILE, build_iql

    if store is None:
        raise ValueError(f"{method}: the IQL methods fit their reward on the store's file; none given")
    reward = OmegaConf.load(resource_dir("configs") / "reward" / f"{REWARD_IQL[method]}.yaml")
    if getattr(args, "reward_epochs", None):
        reward.epochs = args.reward_epochs
    key = f"{REWARD_IQL[method]}-{cfg.get('reward_inputs', 'obs_act')}-e{reward.epochs}"
    with (tempfile.TemporaryDirectory() if fits is None else contextlib.nullcontext(fits / key)) as where:
        run_dir = Path(where)
        run_dir.mkdir(parents=True, exist_ok=True)
        shared = (run_dir / FIT_FILE).is_file()
        learner = build_iql(OmegaConf.create({"algo": cfg, "reward": reward, "seed": seed}), task, store, run_dir, rng)
    learner.reward_info["reward_epoch_cap"] = float(reward.epochs)  # stamped on the row: merges refuse mixed caps
    if REWARD_IQL[method] == "transformer":  # and mixed Preference Transformers
        learner.reward_info["pt_version"] = float(ARCH_VERSION)
    if shared:  # reward_s is then the load's, not the fit's
        learner.reward_info["reward_fit_shared"] = 1.0
    return learner


def load_resume(out: Path, args: argparse.Namespace) -> list[dict]:
    """Rows of an earlier run in ``out`` with the same settings (a killed run continues); [] when there is none."""
    path = out / "rows.json"
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    bad = [k for k in SETTINGS if saved["args"].get(k) != vars(args).get(k)]
    if bad:
        raise SystemExit(f"--out {out}: holds a run with a different {bad[0]} ({saved['args'].get(bad[0])} vs "
                         f"{vars(args).get(bad[0])}); choose another --out")
    return seeded_rows(saved)


def unit_done(rows: list[dict], task: str, seed: int, methods: list[str],
              datasets: tuple[str, ...] = ("dense", "sparse")) -> bool:
    have = {cell_key(r) for r in rows}
    return all((task, d, m, seed) in have for d in datasets for m in methods)


def run_unit(task: str, seed: int, args: argparse.Namespace, out: Path) -> list[dict]:
    """Datasets of one (task, seed) and every method trained on both."""
    import shutil

    rows = []
    paths = make_datasets(task, args, out, seed)
    fits = {pairing: out / f"{task}-{pairing}-s{seed}-reward-fits" for pairing in paths}
    for where in fits.values():  # a killed run's fits belong to the stores make_datasets just replaced
        shutil.rmtree(where, ignore_errors=True)
    try:
        for pairing, (path, counts) in paths.items():
            with PreferenceStore(path, create=False) as store:
                data = OfflineData.from_store(store)
            for method in args.methods.split(","):
                rows.append({**run_method(task, data, method, pairing, args, seed, path, fits[pairing]), **counts})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if not args.keep_data:  # hundreds of MB per task; the rows are what the benchmark keeps
            for path, _ in paths.values():
                path.unlink(missing_ok=True)
            for where in fits.values():
                shutil.rmtree(where, ignore_errors=True)
    return rows


def main() -> None:
    args = parse()
    if args.from_rows:
        saved = merge_runs([json.loads(Path(p).read_text()) for p in args.from_rows.split(",")])
        if args.save_rows:
            atomic_write_json(Path(args.save_rows), saved)
            print(f"{len(saved['rows'])} rows merged into {args.save_rows}", flush=True)
        plot = args.plot or (PLOT if args.update_md else None)
        args = argparse.Namespace(**{**saved["args"], "update_md": args.update_md})
        report(saved["rows"], args, time.time() - saved.get("wall_s", 0.0), plot)
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, t_start = load_resume(out, args), time.time()
    methods = args.methods.split(",")
    for task_name in args.tasks.split(","):
        for seed in args.seed_list:
            if unit_done(rows, task_name, seed, methods, tuple(args.datasets.split(","))):
                print(f"{task_name} seed {seed}: done in {out / 'rows.json'}, skipped", flush=True)
                continue
            new = run_unit(task_name, seed, args, out)
            rows = [r for r in rows if (r["task"], r["seed"], r["dataset"]) not in
                    {(n["task"], n["seed"], n["dataset"]) for n in new}] + new
            saved = {k: v for k, v in vars(args).items() if k != "seed_list"}
            atomic_write_json(out / "rows.json", {"args": saved, "rows": rows, "wall_s": time.time() - t_start})
            report(rows, args, t_start, Path(args.plot or out / "summary.png"))


def note(args: argparse.Namespace, rows: Sequence[dict] = ()) -> str:
    """How to read the table: what the data are and what the scale leaves out."""
    seeds = getattr(args, "seeds", str(getattr(args, "seed", 0)))
    if args.quick:
        return ("Reduced `--quick` scale (~300 gradient steps per method, 8 evaluation episodes, so one episode is "
                "12.5 points): a smoke run, not a result. The target scale is the docstring's split command.")
    return (f"Why the mis-aimed expert: with zero-mean action noise only the expert stays the mean action, so cloning "
            f"*all* data already reached 88-96% success and no preference method could show anything; a sub-optimal "
            f"behaviour that is wrong in one consistent direction (like the partly trained SAC policies behind CPL's "
            f"datasets) makes the average behaviour fail, and only the preference contrast can undo it. Seeds {seeds} "
            f"(each its own datasets and training), {args.eval_episodes} evaluation episodes per cell; all methods "
            f"use the configs' networks and {args.steps} gradient steps (CPL: the first {args.steps // 5} of them BC "
            f"warm-up){longer_note(rows, args.steps)}. CIs: rliable's stratified bootstrap over seeds within tasks "
            f"(`pbrl.analysis.stats`).")


def longer_note(rows: Sequence[dict], steps: int) -> str:
    """The methods whose rows trained for other than the run's ``steps`` (their stamped ``steps`` / ``bc_steps``), in
    words ('' when none)."""
    other = {r["method"]: r for r in rows if float(r.get("steps", steps)) != steps}
    parts = [f"{m} {int(r['steps'])}" + (f" ({int(r['bc_steps'])} BC)" if "bc_steps" in r else "")
             for m, r in other.items()]
    return f", except {', '.join(parts)}" if parts else ""


def report(rows: list[dict], args: argparse.Namespace, t_start: float, plot: Optional[Path | str] = None) -> None:
    """Print the table (and update BENCHMARKS.md) with every task finished so far; with ``plot``, draw it there
    (:func:`plot_summary`; the published section shows the published plot)."""
    done = list(dict.fromkeys(r["task"] for r in rows))
    scale = (f"{len(done)} task(s) ({', '.join(done)}), {args.episodes} episodes x {args.episode_length} steps per task, "
             f"dense {sizes(rows, 'dense')} / sparse {sizes(rows, 'sparse')} segments of 64 steps, {args.steps} "
             f"gradient steps per method (hidden {args.hidden or 'config'}, batch {args.batch_pairs or 'config'}, lr "
             f"{args.lr or 'config'}), {args.eval_episodes} eval episodes, seeds {getattr(args, 'seeds', '0')}; "
             f"total wall {time.time() - t_start:.0f} s")
    text = (f"## Offline preferences: CPL / OPPO vs BC and P-IQL (`bench/offline_prefs.py`)\n\n"
            f"Success rate (%; per task the mean over seeds) in the environment after offline training on datasets from `pbrl.run.collect` "
            f"({mixture(args)}; rational return teacher; time-aligned pairs; dense = all pairs in groups of "
            f"{args.group_size}, sparse = disjoint pairs). Scale run: {scale}.\n\n{table(rows, args)}\n\n"
            f"{verdict(rows)} {'' if args.quick else coverage(rows)} {piql_line(rows)} {method_line(rows)}\n\n"
            f"{note(args, rows)}")
    if plot:
        plot_summary(rows, Path(plot))
        print(f"summary plot: {plot}", flush=True)
        if Path(plot).resolve() == PLOT.resolve():
            text += f"\n\n![success per method: mean over tasks and seeds, 95% CI, task means]({PLOT.relative_to(ROOT)})"
    publish(text, MARK, args.update_md)


if __name__ == "__main__":
    sys.exit(main())
