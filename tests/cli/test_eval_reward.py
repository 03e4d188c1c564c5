"""``pbrl eval-reward`` and pbrl.rewards.evaluation: metrics by hand, artefacts, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pbrl.cli import main as cli_main
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards import evaluation as ev
from pbrl.cli.eval_reward import evaluate_path
from pbrl.rewards.gaussian import GaussianReward
from pbrl.types import Labels, PairBatch, PbrlError

OBS, ACT, L = 3, 1, 10
PNG = b"\x89PNG\r\n\x1a\n"


def segments(n: int, rng: np.random.Generator, length: int = L, obs_dim: int = OBS) -> list[Segment]:
    out = []
    for _ in range(n):
        obs = rng.normal(size=(length, obs_dim)).astype(np.float32)
        acts = rng.uniform(-1, 1, size=(length, ACT)).astype(np.float32)
        out.append(Segment(obs=obs, acts=acts, rewards=(0.3 * obs[:, 0]).astype(np.float32)))
    return out


def make_store(path: Path, n: int = 80, eps_mistake: float = 0.2) -> Path:
    """A store whose labels come from a B-Pref mistake teacher (so some contradict the true order)."""
    rng = np.random.default_rng(0)
    first, second = segments(n, rng), segments(n, rng)
    labels = teacher_from_preset("mistake", rng=rng, eps_mistake=eps_mistake).label(first, second)
    with PreferenceStore(path) as store:
        store.add_pairs(first, second, labels, source="scripted")
    return path


def test_calibration_and_accuracy_by_hand() -> None:
    cal = ev.calibration(np.array([0.1, 0.9, 0.95]), np.array([0.0, 1.0, 0.0], np.float32), n_bins=10)
    # bin [0.1, 0.2): |0.1 - 0| * 1/3 ; bin [0.9, 1.0]: |0.925 - 0.5| * 2/3
    assert cal["ece"] == pytest.approx(0.1 / 3 + 0.425 * 2 / 3)
    assert [b["n"] for b in cal["bins"]] == [1, 2]
    # strict labels only (the 0.5 is left out); right, wrong, and a predicted exact tie counts as wrong
    assert ev.strict_accuracy(np.array([1.0, -1.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.5, 0.0], np.float32)) == 1 / 3


def test_heldout_split_on_a_store_writes_json_and_pngs(tmp_path: Path) -> None:
    store = make_store(tmp_path / "labels.sqlite")
    rep = evaluate_path(store, reward="single", epochs=10, split=0.25, out=tmp_path / "ev")
    assert rep["mode"] == "heldout_split" and rep["n_pairs"] == 20 and rep["n_train"] == 60
    assert 0.0 <= rep["accuracy"] <= 1.0 and 0.0 <= rep["calibration"]["ece"] <= 1.0
    assert rep["corr_segment_pearson"] > 0.5  # a learnable reward: the model ranks segments correctly
    groups = rep["groups"]
    assert groups["source=scripted"]["n"] == 20
    assert groups["teacher=wrong"]["n"] + groups["teacher=right"]["n"] == 20
    saved = json.loads((tmp_path / "ev" / "reward_eval.json").read_text())
    assert saved["accuracy"] == rep["accuracy"] and "_plot" not in saved
    for name in ("reliability.png", "returns_scatter.png"):
        assert (tmp_path / "ev" / name).read_bytes()[:8] == PNG


def test_given_model_is_scored_on_all_labels_through_the_cli(tmp_path: Path, capsys) -> None:
    store = make_store(tmp_path / "labels.sqlite")
    with PreferenceStore(store, create=False) as s:
        batch = s.pair_batch()
    model = GaussianReward(OBS, ACT, hidden=(16,), seed=0)
    model.fit(batch, epochs=5)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    cli_main(["eval-reward", str(store), "--model", str(tmp_path / "m.pt")])
    out = capsys.readouterr().out
    assert "accuracy (vs labels)" in out and "teacher=wrong" in out
    saved = json.loads((tmp_path / "reward_eval" / "reward_eval.json").read_text())
    assert saved["mode"] == "given_model" and saved["n_pairs"] == 80
    r1, r2 = ev.predicted_returns(model, batch)
    assert saved["accuracy"] == pytest.approx(ev.strict_accuracy(r1 - r2, batch.p))


def test_clear_errors(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.sqlite"
    PreferenceStore(empty).close()
    with pytest.raises(PbrlError, match="no labels at all"):
        evaluate_path(empty)
    with pytest.raises(SystemExit) as exc:  # the CLI prints one line and exits 2
        cli_main(["eval-reward", str(empty)])
    assert exc.value.code == 2 and "pbrl: error: store" in capsys.readouterr().err

    skipped = tmp_path / "skipped.sqlite"
    rng = np.random.default_rng(1)
    with PreferenceStore(skipped) as s:
        s.add_pairs(segments(3, rng), segments(3, rng), Labels(np.zeros(3, np.float32), np.ones(3, bool)),
                    source="human")
    with pytest.raises(PbrlError, match="all 3 labels are skipped"):
        evaluate_path(skipped)

    mixed = tmp_path / "mixed.sqlite"
    with PreferenceStore(mixed) as s:
        for length in (L, L + 2):
            s.add_pairs(segments(2, rng, length), segments(2, rng, length),
                        Labels(np.ones(2, np.float32), np.zeros(2, bool)), source="human")
    with pytest.raises(PbrlError, match="segments of mismatched shapes"):
        evaluate_path(mixed)

    store = make_store(tmp_path / "ok.sqlite", n=6)
    wrong_dims = GaussianReward(OBS + 1, ACT, hidden=(8,))
    torch.save(wrong_dims.state_dict(), tmp_path / "wrong.pt")
    with pytest.raises(PbrlError, match="obs_dim=4, act_dim=1; the store's segments have obs_dim=3"):
        evaluate_path(store, model_path=tmp_path / "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PbrlError, match="not a pbrl reward-model checkpoint"):
        evaluate_path(store, model_path=tmp_path / "junk.pt")
    with pytest.raises(PbrlError, match="not a run directory"):
        evaluate_path(tmp_path)

    with PreferenceStore(store, create=False) as s:
        data = ev.load_labelled_pairs(s)
    outside = data._replace(batch=PairBatch(**data.batch._asdict() | {"p": data.batch.p * 3 - 1}))
    with pytest.raises(PbrlError, match=r"expected P\(first preferred\) in \[0, 1\]"):
        ev.reward_report(wrong_dims, outside)
