"""The config schema and checks: every key known, typed and named by its real path before a run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pbrl.cli import main
from pbrl.resources import resource_dir
from pbrl.run.config import check_train, feedback_steps, label_budget_warning, load_config
from pbrl.run.schema import NULLABLE
from pbrl.types import PbrlError

TINY = ["task=halfcheetah", "episode_length=100", "segment_length=20", "algo.seed_steps=200", "budget.every=200",
        "budget.per_round=10"]


def _null_defaults(node, prefix: str = ""):
    for key, value in (node or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _null_defaults(value, path + ".")
        elif value is None:
            yield path


def _mount(path: Path) -> str:
    """Where a config file's keys land: configs/feedback/x.yaml -> feedback., vlm -> reward.vlm., top -> ''."""
    group = path.parent.name
    return "" if group == "configs" else {"vlm": "reward.vlm."}.get(group, f"{group}.")


def test_every_null_default_declares_its_type() -> None:
    """A new option with a null default must say what it takes (pbrl/run/schema.py NULLABLE), or values go unchecked."""
    configs = resource_dir("configs")
    missing = []
    for path in sorted(configs.glob("**/*.yaml")):
        if "hydra" in path.parts:
            continue
        raw = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k not in ("defaults", "hydra")}
        for key in _null_defaults(raw, _mount(path)):
            if key not in NULLABLE and key != "data":  # data: checked by its own rule (store path or collect)
                missing.append(f"{path.relative_to(configs)}: {key}")
    assert missing == []


def test_types_of_nullable_and_open_keys() -> None:
    load_config("train", ["algo=sac", "episode_length=50", "+algo.sac.ent_coef=auto", "feedback.overrides={beta: 2.0}"])
    with pytest.raises(PbrlError, match=r"^episode_length=fifty: expected an integer$"):
        load_config("train", ["episode_length=fifty"])
    with pytest.raises(PbrlError,
                       match=r"^feedback.overrides.betta: unknown key \(did you mean feedback.overrides.beta"):
        load_config("train", ["feedback.overrides={betta: 2.0}"])
    with pytest.raises(PbrlError, match=r"^reward.stop_at_acc=high: expected a number$"):
        load_config("train", ["reward.stop_at_acc=high"])
    with pytest.raises(PbrlError, match=r"^budget.labels: missing"):
        load_config("train", ["~budget.labels"])


def test_label_budget_warning_says_what_would_spend_it() -> None:
    cfg = load_config("train", [*TINY, "budget.labels=20", "budget.env_steps=600", "budget.every=2000"])
    assert feedback_steps(cfg) == [200]
    assert check_train(cfg) == [
        "budget.labels=20 cannot be spent: the schedule holds 1 feedback round(s) (every budget.every=2000 steps from "
        "step 200 until budget.env_steps=600) of budget.per_round=10 queries, 10 labels; give budget.env_steps >= 2201 "
        "or a larger budget.per_round"]
    enough = load_config("train", [*TINY, "budget.labels=20", "budget.env_steps=2201", "budget.every=2000"])
    assert feedback_steps(enough) == [200, 2200] and label_budget_warning(enough) is None


def test_ppo_rounds_fall_on_rollout_boundaries() -> None:
    """PrefPPO asks after its warm-up (step 0), then at the first rollout end >= budget.every steps later."""
    cfg = load_config("train", [*TINY, "algo=ppo", "algo.ppo.n_steps=128", "budget.env_steps=512"])
    assert feedback_steps(cfg) == [0, 256]
    assert "cannot be spent" in label_budget_warning(load_config("train", [
        *TINY, "algo=ppo", "algo.ppo.n_steps=128", "budget.env_steps=512", "budget.labels=30"]))


def test_collect_names_its_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for override, message in [("episodes=0", "episodes=0: expected >= 1"),
                              ("random_frac=1.5", "random_frac=1.5: expected a fraction in [0, 1]"),
                              ("+episdoes=3", "episdoes: unknown key (did you mean episodes?)")]:
        with pytest.raises(SystemExit) as exc:
            main(["data", "collect", override, f"out={tmp_path}/d.sqlite"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"pbrl: error: {message}" in err, err
    assert not (tmp_path / "d.sqlite").exists()


def test_tasks_lists_the_good_tasks_and_reports_a_broken_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    import pbrl.envs.tasks as tasks

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ("halfcheetah", "hopper"):
        (folder / f"{name}.yaml").write_text((resource_dir("tasks") / f"{name}.yaml").read_text())
    broken = yaml.safe_load((folder / "hopper.yaml").read_text())
    broken.update(name="broken", sucess_key="x")
    (folder / "broken.yaml").write_text(yaml.safe_dump(broken))
    monkeypatch.setattr(tasks, "resource_dir", lambda kind: folder)
    main(["tasks"])
    out, err = capsys.readouterr()
    assert "halfcheetah" in out and "hopper" in out and "2 tasks" in out and "broken" not in out
    assert f"broken task file, not usable: task file {folder / 'broken.yaml'}: key 'sucess_key': unknown key" in err


def test_offline_algos_need_data(tmp_path: Path) -> None:
    with pytest.raises(PbrlError, match=r"^data=.*nope.sqlite: expected a preference store file"):
        check_train(load_config("train", ["algo=cpl", f"data={tmp_path}/nope.sqlite"]))
    with pytest.raises(PbrlError, match=r"^algo.steps=0: expected >= 1"):
        check_train(load_config("train", ["algo=cpl", "+data.collect=true", "algo.steps=0"]))
    with pytest.raises(PbrlError, match=r"^data.episdoes: unknown key \(did you mean data.episodes\?\)"):
        load_config("train", ["algo=cpl", "+data.collect=true", "+data.episdoes=3"])
