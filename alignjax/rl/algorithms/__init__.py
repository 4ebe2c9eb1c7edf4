"""The on-policy algorithms, found by name through a registry (`registry`): one file per algorithm holds its
hyperparameters' defaults and what sets it apart, as an `Algorithm` record.

Adding an algorithm is one file here plus one `register` line below; the loop, the updater and the config checks
read its record.
"""

from alignjax.rl.algorithms import ditto, expert_iteration, grpo, online_dpo, ppo, rloo, rso
from alignjax.rl.algorithms.registry import Algorithm, MakeBatch, Memory, get, names, register

register(ppo.ALGORITHM)
register(rloo.ALGORITHM)
register(grpo.ALGORITHM)
register(expert_iteration.ALGORITHM)
register(online_dpo.ALGORITHM)
register(rso.ALGORITHM)
register(ditto.ALGORITHM)

__all__ = ["Algorithm", "MakeBatch", "Memory", "get", "names", "register"]
