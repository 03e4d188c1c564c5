"""What the subcommands share: the one-line error exit and running a Hydra-configured job."""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Optional, Sequence


def fail(exc: BaseException) -> NoReturn:
    """``pbrl: error: ...`` on stderr and exit status 2 (a refused command, never a stack trace)."""
    print(f"pbrl: error: {exc}", file=sys.stderr)
    sys.exit(2)


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
