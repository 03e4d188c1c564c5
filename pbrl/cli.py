"""The ``pbrl`` command line: ``pbrl train [overrides]``, ``pbrl tasks``, ``pbrl --help``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from pbrl.types import PbrlError

USAGE = """\
usage: pbrl COMMAND [ARGS]

Preference-based reinforcement learning for robotics.

commands:
  train [OVERRIDES]   train a policy from preferences (Hydra config; `pbrl train --help` lists the
                      config groups and every option). Examples:
                        pbrl train                                   # default: short PEBBLE run on HalfCheetah
                        pbrl train task=drawer-open budget.env_steps=50000 budget.labels=500
                        pbrl train algo=ppo query=uniform feedback.preset=mistake
                        pbrl train -m seed=0,1,2                     # multirun, one run dir per seed
                        pbrl train out=runs/myrun                    # resume a killed run in runs/myrun
  tasks               list the tasks with their reward terms and success signals
  eval-reward PATH    evaluate a learned reward on a run dir or store: held-out accuracy, calibration,
                      correlation with the true reward (`pbrl eval-reward --help`)
  export RUN_DIR      export a trained policy for a robot: policy.onnx (--format torchscript: policy.pt) +
                      policy.json in RUN_DIR/export, checked against the training-time policy
  data collect [OVERRIDES]  build an offline preference dataset (expert rollouts + noise, segments,
                      scripted labels) for `pbrl train algo=cpl|oppo|bc data=STORE` (configs/collect.yaml)
  label STORE         label clip pairs of a preference store in the browser (http://127.0.0.1:8765/);
                      `pbrl label --help`; `pbrl train feedback=human` queues pairs for it while training
  report PATH...      aggregate run/sweep directories: IQM and mean with 95% bootstrap CIs per group of seeds,
                      learning curves, P(X > Y), unfinished runs flagged (`pbrl report --help`)
  help                show this message

Results land in the run directory (`out=`, default runs/<task>-<algo>-<feedback>-s<seed>-<time>/):
config.yaml, metrics.csv, summary.json, curves.png, eval.mp4, policy.zip, reward_model.pt, store.sqlite.
"""

GROUPS = ("task", "feedback", "reward", "algo", "query")


def group_options(group: str) -> list[str]:
    """Valid choices of a config group (tasks come from tasks/*.yaml, others from configs/<group>/)."""
    from pbrl.envs.tasks import list_tasks
    from pbrl.resources import resource_dir

    if group == "task":
        return list_tasks()
    return sorted(p.stem for p in (resource_dir("configs") / group).glob("*.yaml"))


def check_group_overrides(overrides: Sequence[str]) -> None:
    """One-line error for ``group=unknown`` before Hydra prints its multi-line one."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if not sep or key not in GROUPS:
            continue
        options = group_options(key)
        for choice in value.split(","):  # multirun sweeps: task=a,b
            if choice and choice not in options:
                raise PbrlError(f"{key}={choice}: unknown {key}; expected one of: {', '.join(options)}")


def register_tasks() -> None:
    """Expose every tasks/*.yaml as an option of the ``task`` config group."""
    import yaml
    from hydra.core.config_store import ConfigStore

    from pbrl.resources import resource_dir

    store = ConfigStore.instance()
    for path in sorted(resource_dir("tasks").glob("*.yaml")):
        store.store(group="task", name=path.stem, node=yaml.safe_load(path.read_text()))


def _train_job(cfg) -> Optional[float]:
    from pbrl.run.runner import run_training
    from pbrl.run.sweep import bind_job, hydra_job

    run_dir, job_num = hydra_job()
    bind_job(cfg, run_dir, job_num)  # a sweep's jobs share no store, port or file
    try:
        summary = run_training(cfg, run_dir)
    except PbrlError as exc:
        _fail(exc)
    print(f"done: return {summary['return_mean']:.1f} (random policy {summary['random_return']:.1f}), "
          f"success {_fmt(summary['success_rate'])}, labels {summary['labels_used']}, "
          f"reward accuracy {_fmt(summary['reward_accuracy'])}; results in {run_dir}")
    return summary["return_mean"]


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_hydra(job: Callable, config_name: str, args: Sequence[str], prog: str) -> None:
    """Run a Hydra-decorated job with ``args`` as its command line (so -m, --help, --cfg all work)."""
    import hydra

    from pbrl.resources import resource_dir

    check_group_overrides([a for a in args if not a.startswith("-")])
    register_tasks()
    main = hydra.main(version_base="1.3", config_path=str(resource_dir("configs")), config_name=config_name)(job)
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        main()
    finally:
        sys.argv = saved


def print_tasks() -> None:
    from pbrl.envs.tasks import list_tasks, load_task

    rows = [load_task(n) for n in list_tasks()]
    print(f"{'task':22} {'suite':10} {'horizon':>7}  {'success':8} reward terms")
    for t in rows:
        print(f"{t.name:22} {t.suite:10} {t.episode_length:>7}  {t.success_key or '-':8} {', '.join(t.reward_terms)}")
    print(f"\n{len(rows)} tasks; use e.g. `pbrl train task={rows[0].name}`")


def _fail(exc: BaseException) -> None:
    print(f"pbrl: error: {exc}", file=sys.stderr)
    sys.exit(2)


def _train(args: Sequence[str]) -> None:
    run_hydra(_train_job, "train", args, "pbrl train")


def _tasks(args: Sequence[str]) -> None:
    print_tasks()


def _eval_reward(args: Sequence[str]) -> None:
    from pbrl.rewards.eval_cli import main as eval_reward_main

    eval_reward_main(args)



def _export(args: Sequence[str]) -> None:
    from pbrl.export.command import main as export_main

    export_main(args)



def _collect_job(cfg) -> None:
    from pbrl.run.offline import collect_job

    try:
        stats = collect_job(cfg)
    except PbrlError as exc:
        _fail(exc)
    print(f"collected {stats['segments']} segments, {stats['pairs']} pairs ({stats['answered']} answered) on "
          f"{stats['task']}, expert-mix episode success {stats['episode_success']:.2f}; store {stats['out']}")


def _data(args: Sequence[str]) -> None:
    if not args or args[0] != "collect":
        raise PbrlError("data: expected a subcommand: `pbrl data collect [task=NAME] [key=value ...]`")
    run_hydra(_collect_job, "collect", args[1:], "pbrl data collect")



def _label(args: Sequence[str]) -> None:
    from pbrl.viewer.cli import main as label_main

    label_main(args)



def _report(args: Sequence[str]) -> None:
    from pbrl.analysis.command import main as report_main

    report_main(args)


#: Subcommands: name -> function taking the remaining arguments. New commands register here and in USAGE.
COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "train": _train, "tasks": _tasks, "eval-reward": _eval_reward, "export": _export, "data": _data, "label": _label,
    "report": _report,
}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    cmd, rest = args[0], args[1:]
    try:
        if cmd not in COMMANDS:
            raise PbrlError(f"unknown command {cmd!r}; expected one of: {', '.join(COMMANDS)} (see `pbrl --help`)")
        COMMANDS[cmd](rest)
    except PbrlError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
