"""pbrl: preference-based reinforcement learning for robotics.

Importing pbrl (or any of its modules below ``envs``) has no side effects: the headless OpenGL backend MuJoCo
needs is chosen when the first environment is made (:func:`pbrl.envs.make.make_env`).
"""

__version__ = "0.1.0"
