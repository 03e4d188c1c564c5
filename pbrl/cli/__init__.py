"""The ``pbrl`` command line: one module per subcommand, each with ``main(args)``.

``pbrl train`` (:mod:`pbrl.cli.train`), ``tasks``, ``data collect`` (:mod:`pbrl.cli.data`), ``label``,
``eval-reward`` (:mod:`pbrl.cli.eval_reward`), ``export`` and ``report``. A subcommand's module is imported only
when it runs, so ``pbrl --help`` and a bad command answer at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Sequence

from pbrl.cli.common import fail
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

#: Subcommands: name -> its module under ``pbrl.cli`` (with ``main(args)``). New commands register here and in USAGE.
COMMANDS: dict[str, str] = {
    "train": "train", "tasks": "tasks", "eval-reward": "eval_reward", "export": "export", "data": "data",
    "label": "label", "report": "report",
}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``pbrl`` console entry point (``pbrl ... | head`` ends quietly, as other command-line tools do)."""
    try:
        _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away: no traceback, and none again when Python flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a command killed by it


def _dispatch(args: list[str]) -> None:
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    cmd, rest = args[0], args[1:]
    try:
        if cmd not in COMMANDS:
            raise PbrlError(f"unknown command {cmd!r}; expected one of: {', '.join(COMMANDS)} (see `pbrl --help`)")
        importlib.import_module(f"pbrl.cli.{COMMANDS[cmd]}").main(rest)
    except PbrlError as exc:
        fail(exc)
