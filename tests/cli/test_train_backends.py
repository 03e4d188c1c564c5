"""`pbrl train` end to end with the sbx (JAX) SAC backend, its export, resume after a kill, and `device=`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runs import TINY_TRAIN, kill_after_first_checkpoint, run_cli
from pbrl.data.store import PreferenceStore

SBX = [*TINY_TRAIN, "algo.backend=sbx"]


def test_sbx_backend_trains_with_entropy_phase_and_exports(tmp_path: Path) -> None:
    run = tmp_path / "sbx"
    res = run_cli("train", f"out={run}", *SBX, "algo.unsup_steps=100")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 600 and summary["labels_used"] == 20 and summary["backend"] == "sbx"
    assert "backend: sbx" in (run / "config.yaml").read_text()
    from sbx import SAC

    model = SAC.load(run / "policy.zip")  # the saved policy is sbx's, not SB3's
    assert model.num_timesteps == 600 and type(model.policy).__module__.startswith("sbx.")
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["scripted"]) == 20
    # the exporter's graph acts like the trained sbx policy on the states the run visited (the bundle's own
    # closed-loop return check is issue 17's; tests/export/test_export_sbx.py runs the whole bundle)
    from pbrl.export import load_run
    from pbrl.export.sbx import export_sac
    from pbrl.run.checkpoint import read_components

    policy = export_sac(load_run(run))
    obs = np.concatenate([ep.obs for ep in read_components(run / "checkpoint")["venv"]["episodes"]]).astype(np.float32)
    with torch.no_grad():
        exported = policy.module(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, model.predict(obs, deterministic=True)[0], atol=1e-5)
    assert policy.details["backend"] == "sbx"


@pytest.mark.slow
def test_sbx_run_killed_after_a_checkpoint_resumes_to_the_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*SBX, "budget.env_steps=900", "budget.labels=40"]
    kill_after_first_checkpoint(out, *args)
    assert (out / "checkpoint" / "state.json").exists(), "no checkpoint was written before the kill"
    assert not (out / "summary.json").exists(), "the run finished before it was killed"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    res = run_cli("train", f"out={out}", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 900 and summary["labels_used"] == 40 and state["env_steps"] >= 300


@pytest.mark.parametrize("override, message", [
    ("algo.backend=torchrl", "algo.backend: 'torchrl' is not a learner backend; expected one of: sb3, sbx"),
    ("device=tpu", "device: expected one of auto | cpu | cuda (or cuda:N), got 'tpu'"),
])
def test_bad_backend_or_device_is_one_line(tmp_path: Path, override: str, message: str) -> None:
    res = run_cli("train", f"out={tmp_path}/bad", *TINY_TRAIN, override)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("pbrl: error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr[-1500:]
    assert "Traceback" not in res.stderr
