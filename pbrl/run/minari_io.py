"""Offline datasets as Minari episodes (https://minari.farama.org), the Farama standard for offline RL data.

Minari stores whole episodes (``observations`` of length T+1, ``actions``/``rewards``/``terminations``/
``truncations`` of length T); pbrl's named reward terms and success flags travel in ``infos`` (length T+1, the
first entry belongs to ``reset`` and is 0). Importing gives :class:`~pbrl.data.trajectory.Trajectory` objects,
which ``pbrl data collect minari_in=ID`` cuts into segments and labels like fresh rollouts. Datasets live under
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``). Needs the ``data`` extra (``pip install pbrl[data]``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pbrl.data.trajectory import Trajectory
from pbrl.envs.make import make_env
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError


def _minari():
    try:
        import minari
    except ImportError:
        raise ImportError("Minari import/export needs the 'data' extra: pip install 'pbrl[data]'") from None
    return minari


def export_minari(trajs: Sequence[Trajectory], dataset_id: str, task: TaskSpec, *, algorithm: str = "pbrl collect"):
    """Write ``trajs`` as a new Minari dataset ``dataset_id``; returns the ``MinariDataset``."""
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    if not trajs:
        raise PbrlError(f"minari export {dataset_id}: no episodes to export")
    env = make_env(task, seed=0)
    try:
        buffers = []
        for i, t in enumerate(trajs):
            T = len(t)
            zero = lambda arr, dtype: np.concatenate([np.zeros(1, dtype), np.asarray(arr, dtype)])
            infos = {f"term_{k}": zero(v, np.float32) for k, v in t.terms.items()}
            if t.success is not None:
                infos["success"] = zero(t.success, bool)
            buffers.append(EpisodeBuffer(
                id=i, observations=np.asarray(t.obs, np.float32), actions=np.asarray(t.acts, np.float32),
                rewards=list(np.asarray(t.rewards, np.float64)), terminations=[False] * T,
                truncations=[False] * (T - 1) + [True], infos=infos))
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, action_space=env.action_space, observation_space=env.observation_space,
            algorithm_name=algorithm, description=f"pbrl task {task.name}")
    except ValueError as exc:  # an existing id or a malformed name
        raise PbrlError(f"minari export {dataset_id}: {exc}") from None
    finally:
        env.close()


def import_minari(dataset_id: str, task: TaskSpec) -> list[Trajectory]:
    """The episodes of a local Minari dataset as Trajectories (named terms/success restored when present)."""
    minari = _minari()
    try:
        dataset = minari.load_dataset(dataset_id)
    except (FileNotFoundError, ValueError) as exc:
        raise PbrlError(f"minari_in: cannot load dataset {dataset_id!r} ({exc})") from None
    _check_spaces(dataset_id, dataset, task)
    out = []
    for ep in dataset.iterate_episodes():
        if not isinstance(ep.observations, np.ndarray) or not isinstance(ep.actions, np.ndarray):
            raise PbrlError(f"minari_in {dataset_id}: expected flat Box observations/actions, got dict/tuple spaces")
        infos = ep.infos or {}
        terms = {k[len("term_"):]: np.asarray(v[1:], np.float32) for k, v in infos.items() if k.startswith("term_")}
        success = np.asarray(infos["success"][1:], bool) if "success" in infos else None
        out.append(Trajectory(obs=np.asarray(ep.observations, np.float32), acts=np.asarray(ep.actions, np.float32),
                              rewards=np.asarray(ep.rewards, np.float32), terms=terms, success=success,
                              episode_id=int(ep.id), task=task.name))
    return out


def _check_spaces(dataset_id: str, dataset, task: TaskSpec) -> None:
    """The dataset's observation/action sizes and action bounds must be the task's (a dataset of another env)."""
    env = make_env(task, seed=0)
    try:
        want = (env.observation_space.shape, env.action_space.shape)
        low, high = env.action_space.low, env.action_space.high
    finally:
        env.close()
    got = (getattr(dataset.observation_space, "shape", None), getattr(dataset.action_space, "shape", None))
    if got != want:
        raise PbrlError(f"minari_in {dataset_id}: observation/action shapes {got}; task {task.name} has {want}")
    space = dataset.action_space
    if not (np.allclose(space.low, low) and np.allclose(space.high, high)):
        raise PbrlError(f"minari_in {dataset_id}: action bounds [{space.low.min()}, {space.high.max()}] differ from "
                        f"task {task.name}'s [{low.min()}, {high.max()}]; rescale the actions first")
