"""The real ``pbrl`` CLI on tiny budgets: the one copy of the tiny run settings the CLI tests share.

A test adds only what it changes (later overrides win), e.g. ``[*TINY_TRAIN, "budget.labels=10"]``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

#: Settings of every tiny run, without the learner: 100-step HalfCheetah episodes, two rounds of 10 labels,
#: tiny reward networks, one thread, no video.
TINY_RUN: tuple[str, ...] = (
    "task=halfcheetah", "episode_length=100", "segment_length=20", "budget.labels=20", "budget.per_round=10",
    "budget.every=200", "eval.every=300", "eval.episodes=1", "eval.final_episodes=1", "eval.video=false",
    "eval.reward_pairs=50", "checkpoint_every=300", "reward.epochs=3", "reward.model.hidden=[32,32]", "threads=1",
)
#: PEBBLE (SAC) for 600 steps with tiny networks.
TINY_SAC: tuple[str, ...] = ("algo=sac", "budget.env_steps=600", "algo.seed_steps=200", "algo.sac.batch_size=32",
                             "algo.sac.policy_kwargs.net_arch=[32,32]")
#: PrefPPO for 512 steps (four 128-step rollouts).
TINY_PPO: tuple[str, ...] = ("algo=ppo", "budget.env_steps=512", "algo.seed_steps=200", "algo.ppo.n_steps=128",
                             "algo.ppo.batch_size=32", "algo.ppo.n_epochs=2")
#: A PEBBLE run that finishes in seconds.
TINY_TRAIN: tuple[str, ...] = (*TINY_RUN, *TINY_SAC)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``pbrl ARGS`` in this process (``pbrl.cli.main``), as the console script would, and capture its output.

    In-process saves each test a fresh interpreter (torch, JAX and gymnasium imports, JAX compiles: seconds each);
    the exit status, stdout and stderr are what the command line gives. Tests of process behaviour (kills, pipes,
    launchers that start processes) use :func:`run_cli_process`. ``timeout`` is accepted for the same signature
    and not enforced in-process (``pytest --timeout`` bounds a hung test).
    """
    from pbrl.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _own_logging(err), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
    return subprocess.CompletedProcess(["pbrl", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _own_logging(err: io.StringIO) -> Iterator[None]:
    """Logging as a fresh process would have it, and the test process's put back afterwards.

    Hydra's job logging (``logging.config.dictConfig``) closes every live handler and replaces the root logger's.
    A handler that writes to the stderr being replaced (absl's, installed when JAX is imported, holds pytest's
    capture stream) closes that stream on ``close()`` unless it is the current ``sys.stderr``: it follows the
    redirect for the run, as it would write to the process's stderr, and gets its stream back afterwards.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    live = [ref() for ref in list(logging._handlerList)]  # type: ignore[attr-defined]
    # lastResort's stream is a property (always the current sys.stderr): only handlers that hold a stream follow
    followers = [h for h in live if h is not None and vars(h).get("stream") is sys.stderr]
    for handler in followers:
        handler.stream = err
    previous = sys.stderr
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for handler in followers:
            handler.stream = previous


def run_cli_process(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``pbrl ARGS`` in a fresh interpreter and capture its output."""
    return subprocess.run([sys.executable, "-m", "pbrl.cli", *args], capture_output=True, text=True, timeout=timeout)


def kill_after_first_checkpoint(out: Path, *args: str, timeout: float = 300) -> None:
    """Start ``pbrl train out=OUT ARGS...``, SIGKILL it as soon as its first checkpoint is complete."""
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", "train", f"out={out}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not (out / "checkpoint" / "state.json").exists():
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
