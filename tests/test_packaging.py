"""configs/ and tasks/ ship inside the wheel, so a plain (non-editable) `pip install .` works."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from pbrl.resources import resource_dir

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_configs_and_tasks(tmp_path: Path) -> None:
    # from a copy without build outputs: setuptools reuses a checkout's build/lib, stale modules included
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__",
                                                              "runs", "outputs", "multirun"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("pbrl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("configs", "tasks"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / kind).rglob("*.yaml")}
        assert shipped and {f"pbrl/_resources/{s}" for s in shipped} <= names
    # helpers only the tests and benchmarks use stay out of the package (tests/cli_runs.py, bench/sb3_runs.py)
    assert "pbrl/__init__.py" in names and not names & {"pbrl/testing.py", "pbrl/export/demo.py"}


def test_resource_dir_finds_checkout() -> None:
    assert (resource_dir("configs") / "train.yaml").is_file()
    assert (resource_dir("tasks") / "drawer-open.yaml").is_file()
