"""bench/reward_fit_length.py: held-out groups that share no segment with training, and per-epoch curves that are
the same fit as one multi-epoch call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_modules import ROOT, load_bench
from omegaconf import OmegaConf

from pbrl.resources import resource_dir
from pbrl.run import builder
from pbrl.types import PairBatch


@pytest.fixture(scope="module")
def rfl():
    return load_bench("reward_fit_length")


def test_held_out_pairs_are_whole_segment_groups(rfl) -> None:
    # groups {1, 2, 3} (3 pairs), {4, 5} (1), {6, 7, 8, 9} (3: a chain), {10, 11} (1): 8 pairs
    first = np.array([1, 1, 2, 4, 6, 7, 8, 10])
    second = np.array([2, 3, 3, 5, 7, 8, 9, 11])
    for seed in range(20):
        held = rfl.group_split(first, second, 0.25, np.random.default_rng(seed))
        assert held.sum() >= 2 and held.sum() < len(held)  # at least a quarter, never everything
        train_segs = set(first[~held]) | set(second[~held])
        assert not train_segs & (set(first[held]) | set(second[held]))  # no segment on both sides
    draws = {tuple(rfl.group_split(first, second, 0.25, np.random.default_rng(s))) for s in range(20)}
    assert len(draws) > 1  # the groups are drawn at random, not always the first ones


def _pairs(n: int, rng: np.random.Generator) -> PairBatch:
    """Segments of 6 steps; the first is preferred when its first observation feature sums higher."""
    obs1, obs2 = (rng.standard_normal((n, 6, 3)).astype(np.float32) for _ in range(2))
    act1, act2 = (rng.uniform(-1, 1, (n, 6, 2)).astype(np.float32) for _ in range(2))
    p = (obs1[..., 0].sum(1) > obs2[..., 0].sum(1)).astype(np.float32)
    return PairBatch(obs1, act1, obs2, act2, p, np.ones(n, np.float32))


@pytest.mark.parametrize("name", ["ensemble", "transformer"])
def test_a_curve_is_one_fit_across_its_epochs(rfl, name: str) -> None:
    """Evaluating after every epoch leaves the fit as one ``fit(epochs=3)`` call (the transformer's dropout state
    and learning-rate schedule included): the curve's last held-out loss is that of the plain fit."""
    rng = np.random.default_rng(0)
    train, test = _pairs(96, rng), _pairs(32, rng)
    rows = rfl.fit_curve(name, train, test, 3, seed=5)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(0 <= r["heldout_acc"] <= 1 for r in rows)
    reward = OmegaConf.load(resource_dir("configs") / "reward" / f"{name}.yaml")
    model = builder.build_reward_model(OmegaConf.create({"reward": reward, "device": "cpu"}), 3, 2, 5)
    torch.manual_seed(5)
    model.fit(train, epochs=3)
    assert model.evaluate(test)["loss"] == pytest.approx(rows[-1]["heldout_loss"], rel=1e-6)
    assert rows[-1]["heldout_loss"] != rows[0]["heldout_loss"]  # the epochs did train
    assert rows[0].get("pt_version") == (2 if name == "transformer" else None)  # which transformer


def test_table_gives_every_epoch_of_every_model(rfl) -> None:
    rows = [{"reward": n, "epoch": e, "train_acc": 0.5 + 0.1 * e, "heldout_acc": 0.6, "heldout_loss": 0.5}
            for n in ("ensemble", "transformer") for e in (1, 2)]
    text = rfl.table(rows[:-1], ["ensemble", "transformer"])
    assert "| 2 | 70.0 / 60.0 / 0.500 | - |" in text and "| 1 | 60.0 / 60.0 / 0.500 | 60.0 / 60.0 / 0.500 |" in text


def test_bad_arguments_name_the_flag(rfl, capsys: pytest.CaptureFixture) -> None:
    for argv, flag in ((["--heldout", "0.7"], "--heldout"), (["--rewards", "nope"], "--rewards"),
                       (["--epochs", "0"], "--epochs")):
        with pytest.raises(SystemExit):
            rfl.parse(argv)
        assert flag in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_writes_rows_and_plot(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa")}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "reward_fit_length.py"), "--quick", "--epochs", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    saved = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["reward"], r["epoch"]) for r in saved["rows"]] == [("ensemble", 1), ("transformer", 1)]
    assert (tmp_path / "reward_fit_length.png").stat().st_size > 1000
    assert "| 1 |" in res.stdout and not list(tmp_path.glob("*.sqlite"))  # the store is not kept
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "reward_fit_length.py"), "--from-rows",
                            str(tmp_path / "rows.json")], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split("wall")[1] == res.stdout.split("wall")[1]  # the same table from the saved rows


class _Scaled:
    """A stand-in reward model whose per-step reward is a fixed function of the true one."""

    def __init__(self, f) -> None:
        self.f = f

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return self.f(obs[..., 0])


def test_reward_agreement_is_pearson_per_step_and_per_return(rfl) -> None:
    true = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])  # the segments' true per-step rewards
    obs = np.stack([true, np.zeros_like(true)], axis=-1)  # the stand-in reads them back from obs[..., 0]
    segs = (obs, np.zeros((2, 3, 1)), true)
    assert rfl.reward_agreement(_Scaled(lambda r: 3 * r - 1), segs) == pytest.approx(
        {"step_corr": 1.0, "return_corr": 1.0})
    # predicted [[0, 1, 0], [1, 1, 0]]: steps x = (0,1,0,1,1,0) against y = (1,0,2,0,0,1): sum dx dy = -2,
    # sum dx^2 = 3/2, sum dy^2 = 10/3, so r = -2 / sqrt(5); returns (1, 2) against (3, 1): -1 exactly
    got = rfl.reward_agreement(_Scaled(lambda r: (r == 0).astype(float)), segs)
    x, y = np.array([0, 1, 0, 1, 1, 0.0]), np.array([1, 0, 2, 0, 0, 1.0])
    hand = ((x - x.mean()) * (y - y.mean())).sum() / np.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert got["step_corr"] == pytest.approx(hand) and hand == pytest.approx(-2 / np.sqrt(5))
    assert got["return_corr"] == pytest.approx(-1.0)


def test_curves_report_how_the_relabelling_reward_tracks_the_true_one(rfl) -> None:
    """On pairs labelled by a Markovian reward (the first observation feature), the fitted ensemble's per-step
    reward correlates with it; the agreement table shows it per epoch."""
    rng = np.random.default_rng(1)
    train, test = _pairs(256, rng), _pairs(32, rng)
    segs = (test.obs1, test.act1, test.obs1[..., 0])
    rows = rfl.fit_curve("ensemble", train, test, 2, seed=0, segs=segs)
    assert rows[-1]["step_corr"] > 0.5 and rows[-1]["return_corr"] > 0.5
    text = rfl.agreement_table(rows, ["ensemble"])
    assert f"| 2 | {rows[-1]['step_corr']:.2f} / {rows[-1]['return_corr']:.2f} |" in text
    assert rfl.agreement_table([{k: v for k, v in r.items() if "corr" not in k} for r in rows], ["ensemble"]) == ""
