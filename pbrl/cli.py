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
                      scripted labels, or npz_in=FILE) for `pbrl train algo=cpl|oppo|bc|iql data=STORE`
  label STORE         label clip pairs of a preference store in the browser (http://127.0.0.1:8765/);
                      `pbrl label --help`; `pbrl train feedback=human` queues pairs for it while training
  report PATH...      aggregate run/sweep directories: IQM and mean with 95% bootstrap CIs per group of seeds,
                      learning curves, P(X > Y), unfinished runs flagged (`pbrl report --help`)
  help                show this message

Results land in the run directory (`out=`, default runs/<task>-<algo>-<feedback>-s<seed>-<time>/):
config.yaml, .hydra/, train.log, metrics.csv, summary.json, curves.png, eval.mp4, policy.zip, reward_model.pt,
store.sqlite, checkpoint/.
"""


def _train_precheck(cfg, multirun: bool) -> bool:
    """Checks of a ``pbrl train`` job before Hydra starts it; False when there is nothing to run."""
    from pbrl.run.config import check_train
    from pbrl.run.rundir import read_summary, run_dir_state

    check_train(cfg)  # warnings are logged by the run itself
    if multirun:
        return True
    run_dir = Path(str(cfg.out))
    if run_dir_state(cfg, run_dir) == "finished":
        print(_done_line({**read_summary(run_dir), "already_finished": True}, run_dir))
        return False
    return True


def _done_line(summary: dict, run_dir: Path) -> str:
    head = "already finished (nothing run; summary.json unchanged)" if summary.get("already_finished") else "done"
    return (f"{head}: return {summary['return_mean']:.1f} (random policy {summary['random_return']:.1f}), "
            f"success {_fmt(summary.get('success_rate'))}, labels {summary['labels_used']}, "
            f"reward accuracy {_fmt(summary.get('reward_accuracy'))}; results in {run_dir}")


def _train_job(cfg) -> Optional[float]:
    from pbrl.run.rundir import remove_if_empty
    from pbrl.run.runner import run_training
    from pbrl.run.sweep import bind_job, hydra_job

    run_dir, job_num = hydra_job()
    bind_job(cfg, run_dir, job_num)  # a sweep's jobs share no store, port or file
    try:
        summary = run_training(cfg, run_dir)
    except PbrlError as exc:
        remove_if_empty(run_dir)  # Hydra made it before the run's own checks: leave nothing behind
        _fail(exc)
    print(_done_line(summary, run_dir))
    return summary["return_mean"]


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


#: Hydra flags that only print (config, help, info) or change how the config is found: passed to Hydra as they are.
_MULTIRUN = ("-m", "--multirun")


def run_hydra(job: Callable, config_name: str, args: Sequence[str], prog: str,
              precheck: Optional[Callable] = None) -> None:
    """Check the config(s) of ``args``, then run the Hydra-decorated ``job`` with ``args`` as its command line.

    ``-h``/``--help`` prints every option with its documentation (:mod:`pbrl.run.config_help`). Every job of
    the command (each one of a ``-m`` sweep) is composed and checked first (:func:`pbrl.run.config.load_config`
    and ``precheck(cfg, multirun)``), so a refused command starts nothing and writes nothing.
    """
    import hydra

    from pbrl.resources import resource_dir
    from pbrl.run.config import expand_sweep, load_config, register_tasks
    from pbrl.run.config_help import config_help

    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    if "-h" in flags or "--help" in flags:
        print(config_help(config_name, overrides))
        return
    if all(f in _MULTIRUN for f in flags):  # other flags (--cfg, --info, -cn ...) are Hydra's own business
        multirun = bool(flags)
        for job_overrides in (expand_sweep(overrides) if multirun else [overrides]):
            cfg = load_config(config_name, job_overrides)
            if precheck is not None and not precheck(cfg, multirun):
                return
    register_tasks()
    main = hydra.main(version_base="1.3", config_path=str(resource_dir("configs")), config_name=config_name)(job)
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        main()
    finally:
        sys.argv = saved


def print_tasks() -> None:
    """The good tasks as a table; a broken task file is reported (stderr) without hiding the others."""
    from pbrl.envs.tasks import list_tasks, load_task

    rows, broken = [], []
    for name in list_tasks():
        try:
            rows.append(load_task(name))
        except PbrlError as exc:
            broken.append(str(exc))
    print(f"{'task':22} {'suite':10} {'horizon':>7}  {'success':8} reward terms")
    for t in rows:
        print(f"{t.name:22} {t.suite:10} {t.episode_length:>7}  {t.success_key or '-':8} {', '.join(t.reward_terms)}")
    example = f"; use e.g. `pbrl train task={rows[0].name}`" if rows else ""
    print(f"\n{len(rows)} tasks{example}")
    for line in broken:
        print(f"pbrl: warning: broken task file, not usable: {line}", file=sys.stderr)


def _fail(exc: BaseException) -> None:
    print(f"pbrl: error: {exc}", file=sys.stderr)
    sys.exit(2)


def _train(args: Sequence[str]) -> None:
    run_hydra(_train_job, "train", args, "pbrl train", precheck=_train_precheck)


def _tasks(args: Sequence[str]) -> None:
    print_tasks()


def _eval_reward(args: Sequence[str]) -> None:
    from pbrl.rewards.eval_cli import main as eval_reward_main

    eval_reward_main(args)


def _export(args: Sequence[str]) -> None:
    from pbrl.export.command import main as export_main

    export_main(args)


def _collect_job(cfg) -> None:
    from pbrl.run.datasets import collect_job

    try:
        stats = collect_job(cfg)
    except PbrlError as exc:
        _fail(exc)
    print(f"collected {stats['segments']} segments, {stats['pairs']} pairs ({stats['answered']} answered) on "
          f"{stats['task']}, expert-mix episode success {stats['episode_success']:.2f}; store {stats['out']}")


def _collect_precheck(cfg, multirun: bool) -> bool:
    from pbrl.run.config import check_collect

    check_collect(cfg)
    return True


def _data(args: Sequence[str]) -> None:
    if not args or args[0] != "collect":
        raise PbrlError("data: expected a subcommand: `pbrl data collect [task=NAME] [key=value ...]`")
    run_hydra(_collect_job, "collect", args[1:], "pbrl data collect", precheck=_collect_precheck)


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
