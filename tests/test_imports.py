"""`import pbrl` has no side effects; the headless OpenGL backend is chosen where the first environment is made.

Each check runs in a fresh interpreter without MUJOCO_GL / PYOPENGL_PLATFORM, as a user's shell would start it.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from checks import require_system_package

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter that imports this checkout's pbrl, without a GL choice in its environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**base, "PYTHONPATH": str(ROOT), **env})
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def _fresh(code: str, **env: str) -> dict:
    """The JSON line ``code`` prints last, run by :func:`_run`."""
    return json.loads(_run(code, **env).stdout.strip().splitlines()[-1])


def test_importing_pbrl_loads_no_simulator_and_sets_nothing() -> None:
    got = _fresh("import json, os, sys; import pbrl, pbrl.types, pbrl.data.trajectory\n"
                 "print(json.dumps({m: m in sys.modules for m in ('gymnasium', 'mujoco', 'torch')} | "
                 "{'MUJOCO_GL': os.environ.get('MUJOCO_GL')}))")
    assert got == {"gymnasium": False, "mujoco": False, "torch": False, "MUJOCO_GL": None}


def _expected_backend() -> str:
    return "egl" if ctypes.util.find_library("EGL") else "osmesa"


def test_making_an_env_chooses_the_headless_backend_before_mujoco_loads() -> None:
    """The env module is imported without choosing anything; make_env sets MUJOCO_GL before MuJoCo reads it,
    and a rendered frame is a real scene."""
    got = _fresh(
        "import json, os, sys\n"
        "from pbrl.envs import load_task, make_env\n"
        "before = (os.environ.get('MUJOCO_GL'), 'mujoco' in sys.modules)\n"
        "env = make_env(load_task('halfcheetah'), seed=0, render=True)\n"
        "env.reset(seed=0)\n"
        "import mujoco\n"
        "print(json.dumps({'before': before, 'after': os.environ.get('MUJOCO_GL'), "
        "'platform': os.environ.get('PYOPENGL_PLATFORM'), 'context': mujoco.GLContext.__module__, "
        "'std': float(env.render().std())}))")
    backend = _expected_backend()
    assert got["before"] == [None, False]
    assert (got["after"], got["platform"], got["context"]) == (backend, backend, f"mujoco.{backend}")
    assert got["std"] > 1.0


def test_a_backend_the_user_chose_is_kept() -> None:
    require_system_package(bool(ctypes.util.find_library("OSMesa")), "OSMesa (libosmesa6)")
    got = _fresh("import json, os\nfrom pbrl.envs import load_task, make_env\n"
                 "make_env(load_task('halfcheetah'), seed=0).close()\n"
                 "import mujoco\n"
                 "print(json.dumps([os.environ['MUJOCO_GL'], mujoco.GLContext.__module__]))", MUJOCO_GL="osmesa")
    assert got == ["osmesa", "mujoco.osmesa"]


def test_a_scripted_expert_chooses_it_too() -> None:
    """Importing Meta-World's policies imports MuJoCo: the backend is chosen before, as for make_env."""
    got = _fresh("import json, os\nfrom pbrl.envs import expert_policy, load_task\n"
                 "expert_policy(load_task('drawer-open'))\n"
                 "import mujoco\n"
                 "print(json.dumps([os.environ.get('MUJOCO_GL'), mujoco.GLContext.__module__]))")
    assert got == [_expected_backend(), f"mujoco.{_expected_backend()}"]


def test_mujoco_imported_first_is_named_in_a_warning() -> None:
    code = ("import json, logging, mujoco\nlogging.basicConfig()\nfrom pbrl.envs import load_task, make_env\n"
            "make_env(load_task('halfcheetah'), seed=0).close()\nprint(json.dumps(mujoco.GLContext.__module__))")
    res = _run(code)
    assert "MuJoCo was imported before pbrl chose a headless OpenGL backend" in res.stderr
    assert json.loads(res.stdout) == "mujoco.glfw"  # what the warning is about: too late to choose
