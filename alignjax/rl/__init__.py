"""On-policy alignment: rollouts from the sampler, rewards, advantages, the algorithms (PPO, RLOO, GRPO, expert
iteration, online DPO, RSO; one record each in `rl.algorithms`, found by name) and their updates, and best-of-n
sampling."""

from alignjax.rl.config import check_rl_config, rl_section
from alignjax.rl.loop import train_rl
from alignjax.rl.rewards import register_reward

__all__ = ["check_rl_config", "register_reward", "rl_section", "train_rl"]
