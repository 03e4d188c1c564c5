"""bench/headline.py: each cell's sweeps compare like with like, goals are judged on CIs, summary rows merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_modules import load_bench
from pbrl.analysis.stats import Estimate


@pytest.fixture(scope="module")
def hl():
    return load_bench("headline")


def _value(cmd: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in cmd if a.startswith(f"{key}="))


def test_groups_of_a_cell_share_steps_seeds_and_launcher_but_not_directories(hl, tmp_path: Path) -> None:
    for name in ("halfcheetah", "prefppo", "drawer-open"):
        cell = hl.make_cell(name, 100_000, 500)
        cmds = [hl.sweep_command(g, 5, tmp_path, ["hydra/launcher=local", "hydra.launcher.n_jobs=2"], Path("py"))
                for g in cell.groups]
        assert len({_value(c, "hydra.sweep.dir") for c in cmds}) == len(cmds)  # one sweep dir per group
        for cmd, group in zip(cmds, cell.groups):
            assert "-m" in cmd and "hydra/launcher=local" in cmd and _value(cmd, "seed") == "0,1,2,3,4"
            steps = _value(cmd, "budget.env_steps" if group.kind == "pbrl" else "steps")
            assert steps == "100000", (name, group.name)
            if group.kind != "baseline":
                assert _value(cmd, "budget.labels" if group.kind == "pbrl" else "labels") == "500"
    for learner, settings in (("sac", "settings=pbrl"), ("crossq", "settings=crossq")):
        groups = hl.make_cell("halfcheetah", 100_000, 500, learner=learner).groups
        assert [g.name for g in groups] == ["pebble", f"{learner}-true-reward", "sb3-sac-defaults"]
        assert f"algo={learner}" in groups[0].overrides  # PEBBLE and its true-reward baseline: one learner
        assert settings in groups[1].overrides and "settings=sb3" in groups[2].overrides
    assert hl.make_cell("drawer-open", 1000, 10).goal[:2] == ("pebble", "crossq-true-reward")


def test_goal_verdict_follows_the_confidence_interval(hl) -> None:
    assert "**met**" in hl.verdict(Estimate(1.1, 0.95, 1.3), 0.9)
    assert "**not met**" in hl.verdict(Estimate(0.5, 0.3, 0.85), 0.9)
    assert "not supported by the CI" in hl.verdict(Estimate(1.0, 0.7, 1.3), 0.9)
    assert "not measured" in hl.verdict(None, 0.0)
    assert "not judged" in hl.verdict(Estimate(1.1, 0.95, 1.3), 0.9, "fewer than 3 seeds in a group: no claim")


def test_summary_section_keeps_one_row_per_cell(hl, tmp_path: Path) -> None:
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n\nintro\n")
    cells = {n: hl.make_cell(n, 1000, 10) for n in ("halfcheetah", "drawer-open")}
    hl.update_summary(md, cells["halfcheetah"], "| halfcheetah (return, 1000 steps) | old | x |")
    hl.update_summary(md, cells["drawer-open"], "| drawer-open (success, 1000 steps) | d | y |")
    hl.update_summary(md, cells["halfcheetah"], "| halfcheetah (return, 1000 steps) | new | x |")
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and text.count("<!-- headline-summary -->") == 1
    assert "| new |" in text and "| old |" not in text and "| d |" in text


def test_imitation_baseline_evaluates_on_pbrl_evaluation_seeds() -> None:
    """imitation_pc.py runs without pbrl (its own environment) and keeps its own copy of the offset."""
    from pbrl.envs.rollout import EVAL_SEED_OFFSET

    assert load_bench("imitation_pc").EVAL_SEED_OFFSET == EVAL_SEED_OFFSET == 10_000
