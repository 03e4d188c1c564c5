"""bench/ is one package: scripts run as files and as modules, and BENCHMARKS.md has one writer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench_modules import ROOT, load_bench

SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user's shell starts it
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("how", ["file", "module"])
def test_a_script_that_imports_another_runs_both_ways(how: str, tmp_path: Path) -> None:
    """``python bench/x.py`` from anywhere and ``python -m bench.x`` from the root import ``bench.*`` of this
    checkout (online_reward_variants imports bench.online_pbrl and bench.common)."""
    probe = ["-m", "bench.online_reward_variants", "--help"] if how == "module" else \
        [str(ROOT / "bench" / "online_reward_variants.py"), "--help"]
    res = _run(probe, cwd=ROOT if how == "module" else tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("usage: online_reward_variants.py") and "--task" in res.stdout


def test_run_as_a_file_the_repository_root_replaces_bench_on_the_path(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"  # what a bench script's first lines do, then where imports resolve
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'bench')!r})\nimport _bootstrap\n"
                      "import bench.common, pbrl\nprint(bench.common.__file__); print(pbrl.__file__)\n"
                      f"print({str(ROOT / 'bench')!r} in sys.path)\n")
    res = _run([str(script)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    common, pbrl_init, bench_on_path = res.stdout.split()
    assert Path(common) == ROOT / "bench" / "common.py" and Path(pbrl_init) == ROOT / "pbrl" / "__init__.py"
    assert bench_on_path == "False"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_neither_patch_the_path_for_bench_nor_write_benchmarks_md_themselves(script: Path) -> None:
    src = script.read_text()
    names = "|".join(p.stem for p in SCRIPTS)
    assert not re.search(rf"^\s*(from ({names}) import|import ({names})\b)", src, re.M), \
        "import bench modules as bench.<name>"
    assert 'sys.path.insert(0, str(Path(__file__).resolve().parent))' not in src
    if script.name != "common.py":
        assert '"BENCHMARKS.md"' not in src, "write sections through bench.common (publish / update_section)"


def test_sections_are_replaced_in_place_appended_and_read_back(tmp_path: Path, capsys) -> None:
    common = load_bench("common")
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n\nintro\n\n<!-- a -->\nold a\n<!-- /a -->\n\nhand text\n")
    common.publish("new a\n", "a", True, md)
    common.publish("b table", "b", True, md)
    common.publish("not written", "c", False, md)
    assert md.read_text() == ("# Benchmarks\n\nintro\n\n<!-- a -->\nnew a\n<!-- /a -->\n\nhand text\n\n"
                              "<!-- b -->\nb table\n<!-- /b -->\n")
    assert common.read_section(md, "a") == "new a\n" and common.read_section(md, "c") is None
    assert "not written" in capsys.readouterr().out
    common.update_section(tmp_path / "new.md", "x", "y")
    assert (tmp_path / "new.md").read_text() == "# Benchmarks\n\n<!-- x -->\ny\n<!-- /x -->\n"
