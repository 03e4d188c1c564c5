"""Tasks and environments (gymnasium MuJoCo v5, Meta-World v3)."""

from pbrl.envs.make import TaskInfoWrapper, configure_headless_gl, make_env
from pbrl.envs.rollout import EvalResult, PolicyFn, eval_seed, evaluate, expert_policy, film, rollout, write_video
from pbrl.envs.tasks import CameraSpec, TaskSpec, list_tasks, load_task, task_from_dict

__all__ = [
    "CameraSpec", "EvalResult", "PolicyFn", "TaskInfoWrapper", "TaskSpec", "configure_headless_gl", "eval_seed",
    "evaluate", "expert_policy", "film", "list_tasks", "load_task", "make_env", "rollout", "task_from_dict",
    "write_video",
]
