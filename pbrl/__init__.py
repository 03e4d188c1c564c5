"""pbrl: preference-based reinforcement learning for robotics."""

from pbrl.envs.make import configure_headless_gl as _configure_headless_gl

_configure_headless_gl()  # before anything imports mujoco

__version__ = "0.1.0"
