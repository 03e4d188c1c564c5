"""JAX's persistent compilation cache (pbrl.devices.jax_compile_cache), in real processes: a second process loads
what the first compiled; PBRL_JAX_CACHE moves or disables it; a user's own JAX cache setting is kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
jax.jit(lambda x: x * 2)(jnp.ones(3)).block_until_ready()   # a compile before pbrl turns the cache on
from pbrl.devices import jax_compile_cache
path = jax_compile_cache()
jax.jit(lambda x: jnp.sin(x) @ x.T + float(sys.argv[1]))(jnp.ones((4, 4))).block_until_ready()
print(json.dumps({"path": None if path is None else str(path), "jax_dir": jax.config.jax_compilation_cache_dir,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses")}))
"""


def _run(env: dict[str, str], constant: str = "1.0") -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("PBRL_JAX_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, constant], capture_output=True, text=True, check=True,
                         env={**base, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_what_the_first_compiled(tmp_path: Path) -> None:
    cache = tmp_path / "jax"
    first = _run({"PBRL_JAX_CACHE": str(cache)})
    assert first["path"] == first["jax_dir"] == str(cache) and first["hits"] == 0 and first["misses"] >= 1
    assert any(cache.iterdir())  # the program was written
    second = _run({"PBRL_JAX_CACHE": str(cache)})
    assert second["hits"] >= 1 and second["misses"] == 0  # taken from disk, not compiled again
    other = _run({"PBRL_JAX_CACHE": str(cache)}, constant="2.0")  # another program: compiled, not confused
    assert other["misses"] >= 1


def test_default_directory_is_the_user_cache(tmp_path: Path) -> None:
    got = _run({"XDG_CACHE_HOME": str(tmp_path)})
    assert got["path"] == got["jax_dir"] == str(tmp_path / "pbrl" / "jax") and got["misses"] >= 1


def test_off_leaves_jax_without_a_cache_and_a_users_jax_setting_is_kept(tmp_path: Path) -> None:
    off = _run({"PBRL_JAX_CACHE": "off", "XDG_CACHE_HOME": str(tmp_path)})
    assert off["path"] is None and off["jax_dir"] is None and not (tmp_path / "pbrl").exists()
    mine = tmp_path / "mine"
    kept = _run({"JAX_COMPILATION_CACHE_DIR": str(mine), "XDG_CACHE_HOME": str(tmp_path)})
    assert kept["path"] == kept["jax_dir"] == str(mine) and not (tmp_path / "pbrl").exists()
