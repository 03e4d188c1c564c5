"""Domain randomisation for training: dynamics, action delay and observation noise as gymnasium wrappers.

Ranges come from the task's ``randomisation:`` block (tasks/*.yaml), overridable from the train config
(``randomisation.mass=[0.8,1.2]``). Dynamics factors are multiplicative and sampled independently per
element at every reset (Tobin et al. 2017; Peng et al. 2018, "Sim-to-Real Transfer of Robotic Control with
Dynamics Randomization"): body mass (and inertia, keeping density), geom sliding friction, joint damping and
actuator gain. After changing masses ``mujoco.mj_setConst`` recomputes the derived constants (subtree masses,
``*_invweight0``, ...), as the MuJoCo docs require.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping, Optional

import gymnasium as gym
import numpy as np

from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

SCALES = ("mass", "friction", "damping", "actuator_gain")
KEYS = (*SCALES, "action_delay", "obs_noise")


@dataclasses.dataclass(frozen=True)
class RandomisationSpec:
    """What to randomise; None switches a term off.

    Attributes:
        mass, friction, damping, actuator_gain: ``(lo, hi)`` multiplicative factor ranges, ``0 < lo <= hi``.
        action_delay: ``(lo, hi)`` whole steps of delay, sampled per episode.
        obs_noise: standard deviation of additive Gaussian observation noise (observation units).
    """

    mass: Optional[tuple[float, float]] = None
    friction: Optional[tuple[float, float]] = None
    damping: Optional[tuple[float, float]] = None
    actuator_gain: Optional[tuple[float, float]] = None
    action_delay: Optional[tuple[int, int]] = None
    obs_noise: Optional[float] = None

    @property
    def dynamics(self) -> bool:
        return any(getattr(self, k) is not None for k in SCALES)


def _range(value: Any, key: str, *, integer: bool = False) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise PbrlError(f"randomisation.{key}: expected [low, high], got {value!r}")
    try:
        lo, hi = (int(v) if integer else float(v) for v in value)
    except (TypeError, ValueError):
        raise PbrlError(f"randomisation.{key}: expected two numbers, got {value!r}") from None
    if not ((0 <= lo <= hi) if integer else (0 < lo <= hi)):
        raise PbrlError(f"randomisation.{key}: expected {'0 <=' if integer else '0 <'} low <= high, got {value!r}")
    return lo, hi


def parse_randomisation(raw: Mapping[str, Any]) -> RandomisationSpec:
    """A :class:`RandomisationSpec` from a plain mapping, with one-line errors naming the key."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise PbrlError(f"randomisation: unknown key(s) {unknown}; expected some of {list(KEYS)}")
    kw: dict[str, Any] = {k: _range(raw[k], k) for k in SCALES if raw.get(k) is not None}
    if raw.get("action_delay") is not None:
        kw["action_delay"] = _range(raw["action_delay"], "action_delay", integer=True)
    if raw.get("obs_noise") is not None:
        noise = raw["obs_noise"]
        if not isinstance(noise, (int, float)) or noise < 0:
            raise PbrlError(f"randomisation.obs_noise: expected a standard deviation >= 0, got {noise!r}")
        kw["obs_noise"] = float(noise)
    return RandomisationSpec(**kw)


def resolve_randomisation(task: TaskSpec, block: Optional[Mapping[str, Any]]) -> Optional[RandomisationSpec]:
    """The train config's ``randomisation`` block applied to the task's ranges; None when switched off.

    Off unless ``enabled: true`` or some range is given; given ranges override the task's, null ones take it.
    """
    block = dict(block or {})
    enabled = bool(block.pop("enabled", False))
    given = {k: v for k, v in block.items() if v is not None}
    if not enabled and not given:
        return None
    merged = {**(task.extra.get("randomisation") or {}), **given}
    if not merged:
        raise PbrlError(f"randomisation.enabled: task {task.name} has no randomisation: block; give ranges, "
                        f"e.g. randomisation.mass=[0.8,1.2]")
    return parse_randomisation(merged)


class DynamicsRandomiser(gym.Wrapper):
    """Resamples mass/friction/damping/gain factors around the nominal model at every reset."""

    def __init__(self, env: gym.Env, spec: RandomisationSpec, rng: np.random.Generator) -> None:
        super().__init__(env)
        self.ranges, self.rng = spec, rng
        model = env.unwrapped.model
        self.nominal = {name: getattr(model, name).copy() for name in
                        ("body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gainprm",
                         "actuator_biasprm")}
        self.factors: dict[str, np.ndarray] = {}

    def reset(self, **kwargs: Any):
        if kwargs.get("seed") is not None:
            self.rng = np.random.default_rng([int(kwargs["seed"]), 7])
        self.apply(self.sample())
        return self.env.reset(**kwargs)

    def sample(self) -> dict[str, np.ndarray]:
        """One draw of per-element factors for the enabled terms."""
        sizes = {"mass": len(self.nominal["body_mass"]), "friction": len(self.nominal["geom_friction"]),
                 "damping": len(self.nominal["dof_damping"]), "actuator_gain": len(self.nominal["actuator_gainprm"])}
        return {k: self.rng.uniform(*getattr(self.ranges, k), size=sizes[k]) for k in SCALES
                if getattr(self.ranges, k) is not None}

    def apply(self, factors: dict[str, np.ndarray]) -> None:
        """Write nominal x factor into the model and recompute derived constants."""
        import mujoco

        model, n = self.env.unwrapped.model, self.nominal
        self.factors = factors
        if "mass" in factors:
            model.body_mass[:] = n["body_mass"] * factors["mass"]
            model.body_inertia[:] = n["body_inertia"] * factors["mass"][:, None]
        if "friction" in factors:
            model.geom_friction[:, 0] = n["geom_friction"][:, 0] * factors["friction"]
        if "damping" in factors:
            model.dof_damping[:] = n["dof_damping"] * factors["damping"]
        if "actuator_gain" in factors:
            gain = factors["actuator_gain"]
            model.actuator_gainprm[:, 0] = n["actuator_gainprm"][:, 0] * gain
            # position servos (bias = -kp*q - kv*qdot) keep tracking the same target with the scaled gain
            model.actuator_biasprm[:, 1:3] = n["actuator_biasprm"][:, 1:3] * gain[:, None]
        mujoco.mj_setConst(model, self.env.unwrapped.data)


class ActionDelay(gym.Wrapper):
    """Applies the action from ``k`` steps ago (``k`` sampled per episode); zeros fill the first ``k`` steps."""

    def __init__(self, env: gym.Env, delay: tuple[int, int], rng: np.random.Generator) -> None:
        super().__init__(env)
        self.delay, self.rng, self.k = delay, rng, 0
        space = env.action_space
        self.idle = np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)
        self.queue: collections.deque = collections.deque()

    def reset(self, **kwargs: Any):
        if kwargs.get("seed") is not None:
            self.rng = np.random.default_rng([int(kwargs["seed"]), 11])
        self.k = int(self.rng.integers(self.delay[0], self.delay[1] + 1))
        self.queue = collections.deque([self.idle.copy() for _ in range(self.k)])
        return self.env.reset(**kwargs)

    def step(self, action):
        self.queue.append(np.asarray(action, dtype=self.idle.dtype))
        return self.env.step(self.queue.popleft())


class ObservationNoise(gym.Wrapper):
    """Adds ``N(0, std^2)`` noise to every observation the agent sees."""

    def __init__(self, env: gym.Env, std: float, rng: np.random.Generator) -> None:
        super().__init__(env)
        self.std, self.rng = std, rng

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        return (obs + self.rng.normal(0.0, self.std, size=obs.shape)).astype(obs.dtype)

    def reset(self, **kwargs: Any):
        if kwargs.get("seed") is not None:
            self.rng = np.random.default_rng([int(kwargs["seed"]), 13])
        obs, info = self.env.reset(**kwargs)
        return self._noisy(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info


def apply_randomisation(env: gym.Env, spec: RandomisationSpec, *, seed: Optional[int]) -> gym.Env:
    """Wrap ``env`` with the enabled randomisers (dynamics innermost, observation noise outermost)."""
    if spec.dynamics:
        env = DynamicsRandomiser(env, spec, np.random.default_rng([seed or 0, 7]))
    if spec.action_delay is not None:
        env = ActionDelay(env, spec.action_delay, np.random.default_rng([seed or 0, 11]))
    if spec.obs_noise:
        env = ObservationNoise(env, spec.obs_noise, np.random.default_rng([seed or 0, 13]))
    return env
