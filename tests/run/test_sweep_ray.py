"""A 2-seed sweep through hydra-ray-launcher on a real Ray head started on loopback (``ray start --head``).

hydra-ray-launcher pins cloudpickle<3, older than the main environment's, so it lives in ``.venv-ray``: ``make
test`` runs this file there (``make test-ray``); the main environment skips it with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from cli_runs import run_cli_process
from sweep_checks import SWEEP, check_sweep

pytest.importorskip("hydra_plugins.hydra_ray_launcher",
                    reason="hydra-ray-launcher lives in .venv-ray (make test-ray), not in this environment")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head() -> Iterator[str]:
    """``ray start --head --block`` on 127.0.0.1 in its own process group, stopped by its pid afterwards."""
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={tmp}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(1)
        else:
            pytest.fail(f"ray head did not listen on {address} within 120 s")
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_ray_sweep_on_a_local_head(tmp_path: Path, ray_head: str) -> None:
    res = run_cli_process("train", "-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={ray_head}",
                  f"hydra.sweep.dir={tmp_path}", *SWEEP, timeout=400)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert f"address={ray_head}" in res.stdout + res.stderr or ray_head in res.stdout + res.stderr
    check_sweep(tmp_path)
