"""Meta-World's goal list, built once per (task, seed) in a process instead of at every ``gym.make``.

``gym.make("Meta-World/MT1", env_name=..., seed=s)`` builds ``metaworld.MT1(env_name, seed=s)``: 50 goals, each
from a full reset of a fresh simulation (about 2,500 MuJoCo steps, ~0.5 s, 95% of making the env). The list depends
only on (task, seed, the goal count) -- ``_make_tasks`` seeds NumPy's global generator with ``seed`` and restores it
afterwards -- and pbrl makes the same (task, seed) env again and again: every evaluation of a run (seed 10000+seed),
both sides of ``pbrl export``'s closed-loop parity check, the viewer's render envs. :func:`memoised_mt1` swaps in a
factory that returns a copy of the first build while pbrl makes an env; a ``seed=None`` env (whose goals come from
the global generator) is built as before. The env Meta-World returns is the same object graph either way (tested:
identical observations and goals with and without the memo).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any, Iterator, Optional

#: (env_name, seed, goals per task) -> the MT1 benchmark first built for it
_BUILT: dict[tuple[str, int, int], Any] = {}
_LOCK = threading.Lock()  # the swap of metaworld.MT1 is process-wide: one pbrl make at a time
_MAX_ENTRIES = 64          # ~50 pickled goals each (a few hundred KB): bounded, oldest dropped first


def _factory(original: type, metaworld: Any) -> Any:
    def mt1(env_name: str, seed: Optional[int] = None) -> Any:
        if seed is None:
            return original(env_name, seed=seed)
        key = (str(env_name), int(seed), int(getattr(metaworld, "_N_GOALS", 50)))
        if key not in _BUILT:
            if len(_BUILT) >= _MAX_ENTRIES:
                _BUILT.pop(next(iter(_BUILT)))
            _BUILT[key] = original(env_name, seed=seed)
        return _copy(_BUILT[key])
    return mt1


def _copy(benchmark: Any) -> Any:
    """A benchmark whose containers are its own (goals are immutable pickled bytes and can be shared)."""
    fresh = copy.copy(benchmark)
    for name, value in vars(benchmark).items():
        if isinstance(value, (list, dict)):
            setattr(fresh, name, copy.copy(value))
    return fresh


@contextlib.contextmanager
def memoised_mt1() -> Iterator[None]:
    """While inside, ``metaworld.MT1`` returns the memoised goal list of a seeded (task, seed)."""
    import metaworld

    with _LOCK:
        original = metaworld.MT1
        metaworld.MT1 = _factory(original, metaworld)
        try:
            yield
        finally:
            metaworld.MT1 = original


def clear() -> None:
    """Forget every memoised goal list (tests; a process that changes Meta-World's goal count)."""
    _BUILT.clear()
