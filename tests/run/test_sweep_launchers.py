"""Sweeps through real Hydra launcher plugins (joblib, submitit) and the SLURM launcher config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from cli_runs import run_cli_process
from pbrl.run.config import register_tasks
from pbrl.resources import resource_dir
from pbrl.run.sweep import bind_job
from sweep_checks import SWEEP, check_sweep


@pytest.mark.slow
def test_joblib_sweep_runs_in_parallel_processes(tmp_path: Path) -> None:
    res = run_cli_process("train", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}",
                  *SWEEP, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in res.stdout + res.stderr
    check_sweep(tmp_path)


@pytest.mark.slow
def test_submitit_local_sweep(tmp_path: Path) -> None:
    res = run_cli_process("train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                  f"hydra.sweep.dir={tmp_path}", *SWEEP, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = check_sweep(tmp_path)
    # submitit ran each job as its own process and kept its logs beside the sweep
    logs = list((tmp_path / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and all("done: return" in p.read_text() for p in logs)
    assert len(runs) == 2


def _compose(*overrides: str, hydra: bool = False):
    register_tasks()
    with initialize_config_dir(config_dir=str(resource_dir("configs")), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def test_sweep_jobs_get_their_own_store_and_viewer_port(tmp_path: Path) -> None:
    cfg = _compose("feedback=human")
    ports, stores = [], []
    for num in (0, 1, 2):
        job = cfg.copy()
        bind_job(job, tmp_path / f"{num}-job", num)
        ports.append(job.feedback.port)
        stores.append(job.feedback.store)
    assert ports == [8765, 8766, 8767]
    assert stores == [f"{tmp_path}/{n}-job/store.sqlite" for n in (0, 1, 2)]
    single = cfg.copy()
    bind_job(single, tmp_path / "one", None)  # a single run keeps the configured port
    assert single.feedback.port == 8765 and single.out == str(tmp_path / "one")


def test_slurm_launcher_config_makes_a_valid_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented SLURM settings reach sbatch: the plugin's own executor writes the script.

    There is no cluster here: submitit only looks for an ``srun`` executable before it writes a script, so a
    stand-in that fails if it is ever run is put on PATH; nothing is submitted.
    """
    from hydra.utils import instantiate

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    cfg = _compose("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                   "hydra.launcher.timeout_min=90", f"hydra.sweep.dir={tmp_path}", hydra=True)
    launcher = instantiate(cfg.hydra.launcher)  # the real SlurmLauncher of hydra-submitit-launcher
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["max_num_timeout"] == 3
    executor = _slurm_executor(launcher.params, tmp_path)
    script = executor._executor._make_submission_file_text("python -m pbrl.cli train", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --mem=8GB"):
        assert line in script, script


def _slurm_executor(params: dict, folder: Path):
    """The executor hydra-submitit-launcher builds in ``BaseSubmititLauncher.launch`` (same parameter mapping)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    executor = submitit.AutoExecutor(cluster="slurm", folder=folder, slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    return executor
