"""The offline benchmark's rows: the methods, the settings stamped on rows, merging runs, and the table with its
95% CIs and goals (``bench/offline_prefs.py`` trains; this module only reads rows)."""

from __future__ import annotations

import argparse
import json

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from pbrl.analysis.stats import mean_over_tasks  # noqa: E402
from pbrl.utils import pyplot, save_figure  # noqa: E402

FULL_TASKS = "drawer-open,button-press,door-open,sweep-into,plate-slide,bin-picking"


METHODS = {  # name -> (algo config file, overrides)
    "BC (all)": ("bc", {"preferred_only": False}),
    "BC (preferred)": ("bc", {"preferred_only": True}),
    "CPL": ("cpl", {}),
    "OPPO": ("oppo", {}),
    "P-IQL": ("iql", {}),    # learned reward + IQL: built from the store (offline_prefs.build_reward_iql)
    "PT-IQL": ("iql", {}),
    "P-IQL r(s)": ("iql", {"reward_inputs": "obs"}),  # the reward model sees observations only
    "P-IQL (standardised r)": ("iql", {"reward_normalize": "standard"}),  # pbrl's default before the reference's raw r
    # IQL's D4RL scaling r * T / (return range), which the Preference Transformer code applies before its IQL
    "P-IQL (return-range r)": ("iql", {"reward_normalize": "return_range"}),
    "PT-IQL (return-range r)": ("iql", {"reward_normalize": "return_range"}),
    # 10x the IQL gradient steps on the same rollouts, labels and reward fit (the fit's epochs follow --steps, not
    # these): is the 5000-step P-IQL column an under-trained IQL? (Still 1/10 of the CPL code's 500k.)
    "P-IQL (50k steps)": ("iql", {"steps": 50000}),
    "PT-IQL (50k steps)": ("iql", {"steps": 50000}),
    "CPL (50k steps)": ("cpl", {"steps": 50000, "bc_steps": 10000}),  # P-IQL (50k steps)'s budget, same BC share
}

LONGER = " (50k steps)"  # the suffix of the 10x-budget variants
BC_METHODS = ("BC (all)", "BC (preferred)")
#: the paired gaps of :func:`piql_line`: every variant against P-IQL at the run's budget, and at 10x the budget
#: the reward-free learners against P-IQL (50k steps), and each longer run against its shorter self
PIQL_GAPS = ([(m, "P-IQL") for m in METHODS if m not in (*BC_METHODS, "P-IQL") and not m.endswith(LONGER)]
             + [(m, "P-IQL" + LONGER) for m in ("CPL", "OPPO", "CPL" + LONGER, "PT-IQL" + LONGER)]
             + [(m + LONGER, m) for m in ("P-IQL", "CPL", "PT-IQL")])


def piql_line(rows: list[dict]) -> str:
    """Where the reward-free learners stand against P-IQL, as the CPL/OPPO papers report them: the paired gap
    (same task, dataset and seed) of each pair in :data:`PIQL_GAPS`, mean over tasks and seeds with its
    stratified-bootstrap 95% CI."""
    parts = []
    for pairing in ("dense", "sparse"):
        for a, base in PIQL_GAPS:
            diffs = paired(rows, a, base, pairing)
            if diffs:
                parts.append(f"{pairing} {a} - {base} = {gap_text(diffs)}")
    return "Against P-IQL: " + "; ".join(parts) + "." if parts else ""


def gap_text(diffs: dict[str, dict[int, float]]) -> str:
    """A paired gap in words: mean with its CI over the complete tasks, or the plain mean where no seed is shared."""
    mean, lo, hi, seeds = ci_over_tasks(diffs)
    if seeds:
        ci = f", 95% CI [{lo:+.0f}, {hi:+.0f}]" if seeds >= 2 else " (1 seed: no CI)"
        return f"{mean:+.0f} points{ci} over {len(complete_tasks(diffs))} task(s) x {seeds} seed(s){left_out(diffs)}"
    cells = [v for by_seed in diffs.values() for v in by_seed.values()]
    return f"{np.mean(cells):+.0f} points over {len(cells)} task-seed cell(s) (no seed shared by all tasks: no CI)"


#: method settings stamped on every row: key -> (value in rows that predate the stamp, algos (or method names) that
#: have it)
ROW_SETTINGS = {"std": ("learned", ("bc", "cpl")), "bc_weight": (1.0, ("cpl",)),
                "objective": ("before issue 18", ("cpl", "oppo")),
                "reward_epoch_cap": (50, ("iql",)),  # P-IQL/PT-IQL's reward fit epochs (--reward-epochs)
                "reward_normalize": ("standard", ("iql",)),  # what IQL saw of the reward (rows before: standardised)
                # gradient steps (and CPL's BC warm-up) of the methods with a 10x variant; rows written before the
                # stamp trained for the run's --steps (--bc-steps), see seeded_rows
                "steps": (None, ("iql", "cpl")), "bc_steps": (None, ("cpl",)),
                # the Preference Transformer's version (pbrl.rewards.transformer.ARCH_VERSION): 2 = the reference
                # code's unscaled preference attention, ReLU blocks and warm-up/cosine rate; rows before: 1
                "pt_version": (1, tuple(m for m in METHODS if m.startswith("PT-")))}


#: the objective's version, stamped on CPL/OPPO rows: issue 18 fixed CPL's score (the CPL code's -||mu - a||^2)
#: and OPPO's losses (the reference's), so rows from before cannot share a mean with newer ones
OBJECTIVES = {"cpl": "cpl-code score", "oppo": "reference losses"}


def method_settings(cfg) -> dict:
    """The row's settings that only some methods have (see :data:`ROW_SETTINGS`)."""
    known = {**cfg, "objective": OBJECTIVES.get(cfg.name)}  # the reward fit's cap comes with the learner's reward_info
    return {k: known[k] for k, (_, algos) in ROW_SETTINGS.items() if cfg.name in algos and k in known}


def row_settings(row: dict) -> dict:
    """A row's method settings as text (``0.7071`` given as a flag or from a config read alike), with the old
    defaults for rows written before they were stamped."""
    algo = METHODS[row["method"]][0]
    return {k: _as_text(row.get(k, old)) for k, (old, algos) in ROW_SETTINGS.items()
            if algo in algos or row["method"] in algos}


def _as_text(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else str(number)
    except (TypeError, ValueError):
        return str(value)


def settings_of(rows: list[dict], method: str) -> dict:
    """The one set of method settings behind every row of ``method`` (an error if merged rows disagree)."""
    seen = {json.dumps(row_settings(r), sort_keys=True) for r in rows if r["method"] == method}
    if len(seen) > 1:
        raise SystemExit(f"--from-rows: {method} rows were trained with different settings: {sorted(seen)}")
    return json.loads(seen.pop()) if seen else {}


#: settings that must agree for runs (other tasks, other seeds) to share one table
SETTINGS = ("episode_length", "dense_segments", "sparse_segments", "noise", "suboptimal_frac", "suboptimal_bias",
            "random_frac", "group_size", "stride", "steps", "bc_steps", "eval_episodes", "hidden", "batch_pairs", "lr")


def seeded_rows(run: dict) -> list[dict]:
    """The run's rows, each with its seed (rows written before ``--seeds`` existed used the run's ``--seed``) and,
    on IQL / CPL rows written before their step counts were stamped, the run's ``--steps`` and ``--bc-steps``
    (what they trained for)."""
    steps, bc = run["args"]["steps"], run["args"].get("bc_steps")
    run_steps = {"steps": float(steps), "bc_steps": float(steps // 5 if bc is None else bc)}

    def stamped(r: dict) -> dict:
        algo = METHODS.get(r["method"], ("",))[0]
        keys = [k for k in ("steps", "bc_steps") if algo in ROW_SETTINGS[k][1] and k not in r]
        return {**r, **{k: run_steps[k] for k in keys}}

    return [stamped({**r, "seed": r.get("seed", run["args"].get("seed", 0))}) for r in run["rows"]]


def cell_key(row: dict) -> tuple:
    return row["task"], row["dataset"], row["method"], row["seed"]


def merge_runs(runs: list[dict]) -> dict:
    """One ``rows.json`` from runs with the same settings (an error names the one that differs).

    Runs of other tasks or seeds add rows; a later run's row replaces an earlier one for the same (task, dataset,
    method, seed), so one method can be re-run on the same data with ``--methods``.
    """
    first = runs[0]["args"]
    for run in runs[1:]:
        bad = [k for k in SETTINGS if run["args"].get(k) != first.get(k)]
        if bad:
            raise SystemExit(f"--from-rows: runs differ in {bad[0]} ({first.get(bad[0])} vs {run['args'].get(bad[0])})")
    tasks = list(dict.fromkeys(t for run in runs for t in run["args"]["tasks"].split(",")))
    cells = {cell_key(r): r for run in runs for r in seeded_rows(run)}  # later runs win
    for method in METHODS:
        settings_of(list(cells.values()), method)
    seeds = sorted({r["seed"] for r in cells.values()})
    return {"args": {**first, "tasks": ",".join(tasks), "seeds": ",".join(map(str, seeds))},
            "rows": list(cells.values()), "wall_s": sum(run.get("wall_s", 0.0) for run in runs)}


def per_task(rows: list[dict], method: str, pairing: str) -> dict[str, dict[int, float]]:
    """Success (%) of ``method`` on ``pairing`` data: task -> seed -> value."""
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["method"] == method and r["dataset"] == pairing:
            out.setdefault(r["task"], {})[r["seed"]] = 100.0 * r["success"]
    return out


def complete_tasks(by_task: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """The tasks with as many seeds as the most complete one: a task that a killed or unfinished run left with fewer
    seeds would otherwise shrink every task's mean to the seeds they share (:func:`left_out` names it)."""
    most = max((len(v) for v in by_task.values()), default=0)
    return {t: v for t, v in by_task.items() if len(v) == most}


def left_out(by_task: dict[str, dict[int, float]]) -> str:
    """The tasks :func:`complete_tasks` leaves out of the mean, in words ('' when none)."""
    complete = complete_tasks(by_task)
    missing = [f"{t} ({len(v)} seed(s))" for t, v in by_task.items() if t not in complete]
    return f"; left out of the mean for fewer seeds: {', '.join(missing)}" if missing else ""


def ci_over_tasks(by_task: dict[str, dict[int, float]]) -> tuple[float, float, float, int]:
    """``(mean, low, high, seeds)``: mean over the complete tasks (:func:`complete_tasks`) and their seeds, with
    rliable's stratified-bootstrap 95% CI (seeds resampled within each task; :func:`~pbrl.analysis.stats.mean_over_tasks`).
    """
    by_task = complete_tasks(by_task)
    seeds = sorted(set.intersection(*(set(v) for v in by_task.values()))) if by_task else []
    if not seeds:
        return float("nan"), float("nan"), float("nan"), 0
    est = mean_over_tasks(np.array([[by_task[t][s] for t in by_task] for s in seeds]))
    return est.value, est.low, est.high, len(seeds)


def summary_cells(rows: list[dict], pairing: str, methods: list[str]) -> tuple[list[str], list[str]]:
    """Per method: ``mean [95% CI]`` over tasks and seeds (with the number of tasks where it is over fewer than
    the table's, so that a mean over the easier tasks does not read as one over all), and the worst task's mean."""
    means, worst = [], []
    n_tasks = len({r["task"] for r in rows if r["dataset"] == pairing})
    for m in methods:
        got = per_task(rows, m, pairing)
        if not got:
            means.append("-")
            worst.append("-")
            continue
        mean, lo, hi, n = ci_over_tasks(got)
        tasks = len(complete_tasks(got))
        over = f" ({tasks} of {n_tasks} tasks)" if tasks < n_tasks else ""
        means.append((f"{mean:.0f} [{lo:.0f}, {hi:.0f}]" if n >= 2 else f"{mean:.0f} ({n} seed: no CI)") + over)
        task, vals = min(got.items(), key=lambda kv: np.mean(list(kv[1].values())))
        worst.append(f"{np.mean(list(vals.values())):.0f} ({task})")
    return means, worst


def table(rows: list[dict], args) -> str:
    """Per task and dataset the mean over seeds (with the seed count), then per dataset the mean over tasks with
    its CI and the worst task. Only the methods and (task, dataset) cells that have rows appear."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = ["| task | dataset | seeds | " + " | ".join(methods) + " |", "|---|---|---|" + "---|" * len(methods)]
    for pairing in ("dense", "sparse"):
        ran = [t for t in tasks if any(r["task"] == t and r["dataset"] == pairing for r in rows)]
        for t in ran:
            seeds = {r["seed"] for r in rows if r["task"] == t and r["dataset"] == pairing}
            cells = []
            for m in methods:
                vals = list(per_task(rows, m, pairing).get(t, {}).values())
                cells.append(f"{np.mean(vals):.0f}" if vals else "-")
            lines.append(f"| {t} | {pairing} | {len(seeds)} | " + " | ".join(cells) + " |")
        if ran:
            means, worst = summary_cells(rows, pairing, methods)
            lines.append(f"| **mean [95% CI]** | {pairing} | | " + " | ".join(means) + " |")
            lines.append(f"| **worst task** | {pairing} | | " + " | ".join(worst) + " |")
    return "\n".join(lines)


def coverage(rows: list[dict]) -> str:
    """The (task, dataset) cells of the full benchmark that have no rows, and per method the cells that other
    methods ran and it did not, in words ('' when none is missing)."""
    ran = {(r["task"], r["dataset"]) for r in rows}
    missing = [f"{d} on {', '.join(ts)}" for d in ("dense", "sparse")
               if (ts := [t for t in FULL_TASKS.split(",") if (t, d) not in ran])]
    text = f"Not run: {'; '.join(missing)}." if missing else ""
    for method in dict.fromkeys(r["method"] for r in rows):
        own = {(r["task"], r["dataset"]) for r in rows if r["method"] == method}
        gaps = [f"{d} on {', '.join(ts)}" for d in ("dense", "sparse")
                if (ts := [t for t in FULL_TASKS.split(",") if (t, d) in ran - own])]
        text += f" {method} not run: {'; '.join(gaps)}." if gaps else ""
    return text.strip()


def paired(rows: list[dict], a: str, b: str, pairing: str) -> dict[str, dict[int, float]]:
    """Per task and seed, the difference ``a - b`` in success points on the same (task, dataset, seed) data."""
    got = {cell_key(r): 100.0 * r["success"] for r in rows}
    out: dict[str, dict[int, float]] = {}
    for (t, d, m, s), v in got.items():
        if m == a and d == pairing and (t, d, b, s) in got:
            out.setdefault(t, {})[s] = v - got[(t, d, b, s)]
    return out


#: the issue's goals: (method, baseline, threshold in points); met when the 95% CI of the mean paired difference
#: lies above the threshold
GOALS = (("CPL", "BC (preferred)", 10.0), ("OPPO", "BC (all)", 0.0))


#: seeds per task a goal needs before it is judged (the project's evidence standard)
MIN_SEEDS = 3


def verdict(rows: list[dict]) -> str:
    """The goals on the paired differences (task, dataset, seed), mean over tasks and seeds with a 95% CI."""
    out = []
    for pairing in ("dense", "sparse"):
        parts = []
        for a, b, goal in GOALS:
            diffs = paired(rows, a, b, pairing)
            if not diffs:
                continue
            mean, lo, hi, seeds = ci_over_tasks(diffs)
            lo = round(lo, 6)  # 94 - 84 reads as 10, not 9.99..
            ok = lo >= goal if goal > 0 else lo > 0
            rel = f">= {goal:+.0f}" if goal > 0 else "> 0"
            judged = ("met" if ok else "NOT met") if seeds >= MIN_SEEDS else \
                f"not judged: {seeds} seed(s) per task, at least {MIN_SEEDS} needed"
            parts.append(f"{a} - {b} = {mean:+.0f} points, 95% CI [{lo:+.0f}, {hi:+.0f}] over "
                         f"{len(complete_tasks(diffs))} task(s) x {seeds} seed(s){left_out(diffs)} (goal {rel} on the "
                         f"CI: {judged})")
        if parts:
            out.append(f"{pairing}: " + "; ".join(parts))
    return "Goals, judged on the stratified-bootstrap CI: " + ". ".join(out) + "." if out else ""


def sizes(rows: list[dict], pairing: str) -> str:
    """Segments (pairs) per dataset as built, e.g. ``2496 (8736 pairs)``; a range when tasks differ."""
    got = {(r["segments"], r["pairs"]) for r in rows if r["dataset"] == pairing and "segments" in r}
    if not got:
        return "?"
    segs, pairs = sorted(g[0] for g in got), sorted(g[1] for g in got)
    span = lambda v: f"{v[0]}" if v[0] == v[-1] else f"{v[0]}-{v[-1]}"  # noqa: E731
    return f"{span(segs)} ({span(pairs)} pairs)"


def mixture(args: argparse.Namespace) -> str:
    """The behaviour mixture in words (older rows.json files lack the mixture flags: the old default)."""
    bias, sub = getattr(args, "suboptimal_bias", 0.0), getattr(args, "suboptimal_frac", 0.4)
    rand, noise = getattr(args, "random_frac", 0.2), getattr(args, "noise", 0.3)
    if not bias:
        return "scripted Meta-World expert mixture: 40% expert + N(0, 0.3) noise, 40% expert + N(0, 1) noise, 20% random"
    return (f"scripted Meta-World expert mixture: {100 * (1 - sub - rand):.0f}% expert + N(0, {noise}) noise, "
            f"{100 * sub:.0f}% mis-aimed expert (a constant action offset of norm {bias}, one direction for all its "
            f"episodes, + the same noise), {100 * rand:.0f}% random")


def method_line(rows: list[dict]) -> str:
    """The per-method settings of the table's rows, in words."""
    parts = []
    for method in METHODS:
        got = settings_of(rows, method)
        if got:
            parts.append(f"{method}: " + ", ".join(f"{k} {v}" for k, v in got.items()))
    return "Method settings (`--std`, `--cpl-bc-weight`, `--reward-epochs`): " + "; ".join(parts) + "." if parts else ""


MARKERS = "v^<>sDph"  # one per task in plot_summary


def plot_summary(rows: list[dict], path) -> dict[tuple[str, str], tuple[float, float, float, int, int]]:
    """One panel per dataset: per method the mean success over tasks and seeds with its stratified-bootstrap 95%
    CI (the table's mean row; tasks x seeds at the right edge), and each task's mean over seeds as a marker, so a
    method that fails whole tasks shows. Returns what it drew: (dataset, method) -> (mean, low, high, tasks, seeds)."""
    drawn = {}
    pairings = [d for d in ("dense", "sparse") if any(r["dataset"] == d for r in rows)]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairings), figsize=(5.5 * len(pairings), 0.45 * len(methods) + 1.6),
                                  sharey=True, squeeze=False)
    for ax, pairing in zip(axes[0], pairings):
        for i, m in enumerate(methods):
            got = per_task(rows, m, pairing)
            if not got:
                continue
            mean, lo, hi, n = ci_over_tasks(got)
            n_tasks = len(complete_tasks(got))
            drawn[pairing, m] = (mean, lo, hi, n_tasks, n)
            if n >= 2:
                ax.errorbar(mean, i, xerr=[[mean - lo], [hi - mean]], fmt="o", color="k", capsize=3, zorder=3)
            else:
                ax.plot(mean, i, "o", mfc="none", color="k", zorder=3)  # no CI from one seed
            ax.text(102, i, f"{n_tasks}x{n}", fontsize=6, va="center", color="grey")
            for k, t in enumerate(tasks):
                if t in got:
                    ax.scatter(np.mean(list(got[t].values())), i + 0.2, marker=MARKERS[k % len(MARKERS)], s=18,
                               alpha=0.6, color=f"C{k}")
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_xlim(-5, 110)
        ax.grid(axis="x", alpha=0.3)
        ax.set(xlabel="success (%)", title=pairing)
    axes[0][0].invert_yaxis()  # shared: the table's column order from the top
    proxies = [plt.Line2D([], [], ls="", marker=MARKERS[k % len(MARKERS)], color=f"C{k}") for k in range(len(tasks))]
    fig.legend(proxies, tasks, loc="lower center", ncol=min(6, len(tasks)), fontsize=7)
    fig.suptitle("mean over tasks and seeds with 95% CI (black), task means (markers); tasks x seeds at right",
                 fontsize=9)
    save_figure(fig, path, rect=(0, 0.07, 1, 1))
    return drawn
