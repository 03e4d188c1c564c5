"""stable-baselines3 SAC (PyTorch): pbrl's original learner."""

from __future__ import annotations

from typing import Any

from pbrl.agents.buffer import PreferenceReplayBuffer
from pbrl.devices import torch_device


class SB3Backend:
    """SB3 SAC with a relabellable replay buffer; ``device`` (``auto`` | ``cpu`` | ``cuda``) is resolved for torch."""

    name = "sb3"
    algos = ("sac",)

    def build(self, venv: Any, *, algo: str = "sac", seed: int, seed_steps: int, buffer_size: int,
              kwargs: dict[str, Any], device: str = "cpu") -> Any:
        from stable_baselines3 import SAC

        return SAC("MlpPolicy", venv, replay_buffer_class=PreferenceReplayBuffer, learning_starts=seed_steps,
                   buffer_size=buffer_size, seed=seed, device=torch_device(device), verbose=0, **kwargs)

    def load(self, path: Any, venv: Any, *, algo: str = "sac", device: str = "cpu") -> Any:
        from stable_baselines3 import SAC

        return SAC.load(path, env=venv, device=torch_device(device))

    def reset_critic(self, model: Any) -> None:
        """Re-initialise Q-networks, their targets and optimiser (PEBBLE after unsupervised pre-training)."""
        for module in model.critic.modules():
            if hasattr(module, "reset_parameters") and module is not model.critic:
                module.reset_parameters()
        model.critic_target.load_state_dict(model.critic.state_dict())
        opt = model.critic.optimizer
        model.critic.optimizer = type(opt)(model.critic.parameters(), **opt.defaults)

    def device_of(self, model: Any) -> str:
        return str(model.device)
