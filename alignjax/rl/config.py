"""The `rl` section of an on-policy experiment: its fields, the algorithm's hyperparameters, and their checks.

An on-policy experiment is the base config (`configs.base_config`) plus an `rl` section; `train.steps` counts
iterations (sample, score, update), and `train.eval_every` / `train.checkpoint_every` count them too. The `data`
section names the prompts (rows with a `prompt` field). `rl.algorithm` holds the algorithm's name and its
hyperparameters, whose defaults its record in `rl.algorithms` gives. `config.loss` is the loss of the algorithms
that train with an offline loss (expert iteration: "sft"; online DPO and RSO: a pairwise loss such as "dpo" or
"slic"); the policy-gradient family has none. The checks are the same for every algorithm, read from its record,
and each record adds its own (`Algorithm.check`).
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax import losses
from alignjax.config_errors import require
from alignjax.losses.kl import KL_ESTIMATORS
from alignjax.rl import algorithms
from alignjax.rl.rewards import reward_function_names
from alignjax.sharding import mesh_shape


def rl_section(algorithm: str | None, **overrides) -> ConfigDict:
    """The `rl` section of an experiment with `algorithm`.

    Args:
      algorithm: a registered algorithm (`rl.algorithms.names()`; another name is a ConfigError), whose
        hyperparameters and their defaults become `rl.algorithm`; None: the sampling and reward fields only
        (best-of-n trains nothing).
      **overrides: `rl` fields or `rl.algorithm` hyperparameters that differ from the defaults (an unknown name
        is an error).

    Returns:
      The section.
    """
    defaults = None if algorithm is None else algorithms.get(algorithm).defaults  # an unknown name: ConfigError
    section = ConfigDict(
        {
            "prompts_per_iteration": 32,
            "samples_per_prompt": 4,  # k answers per prompt (RLOO / GRPO groups, online DPO / RSO candidates)
            "max_prompt_len": 32,  # prompts are left-padded to this many tokens (longer ones are bad rows)
            "max_new_tokens": 16,
            "temperature": 1.0,  # rollout sampling; the PPO ratios are taken under the model's own distribution
            "top_k": 0,
            "top_p": 1.0,
            "epochs": 1,  # passes over each rollout
            "minibatches": 1,  # updates per pass
            "missing_eos_penalty": 1.0,  # subtracted from the reward of answers that never emit the stop token
            "reward": {"function": "toy_exact", "model_path": ""},  # a registered function, or a reward model directory
            "eval_prompts": 200,  # held-out prompts answered greedily for the eval reward
        }
    )
    if algorithm is not None:
        section.algorithm = dict(name=algorithm, **defaults)
    for name, value in overrides.items():
        target = section if name in section and name != "algorithm" else section.get("algorithm", section)
        if name not in target:
            raise AttributeError(f"rl has no field {name!r} for {algorithm!r}")
        target[name] = value
    return section


def check_rl_config(config: ConfigDict, num_devices: int) -> None:
    """Raises ConfigError naming the first invalid value of an on-policy experiment.

    Args:
      config: the experiment config (`rl`, `train`, `optim`, `mesh` and, for an algorithm that trains with an
        offline loss, `loss`).
      num_devices: the devices the run's mesh spans.
    """
    rl, hyperparameters = config.rl, config.rl.algorithm
    name = hyperparameters.name
    algorithm = algorithms.get(name)  # a ConfigError naming the registered ones
    for field in (
        "prompts_per_iteration",
        "samples_per_prompt",
        "max_prompt_len",
        "max_new_tokens",
        "epochs",
        "minibatches",
    ):
        require(rl[field] >= 1, f"rl.{field} must be >= 1, got {rl[field]}")
    require(config.train.steps >= 0, f"train.steps (iterations) must be >= 0 (0 evaluates), got {config.train.steps}")
    require(rl.temperature > 0, f"rl.temperature must be > 0 (rollouts sample), got {rl.temperature}")
    fewest = algorithm.min_samples_per_prompt
    require(
        rl.samples_per_prompt >= fewest,
        f"{name} compares several answers per prompt: rl.samples_per_prompt must be >= {fewest}, got "
        f"{rl.samples_per_prompt}",
    )
    if "kl_estimator" in hyperparameters:
        require(
            hyperparameters.kl_estimator in KL_ESTIMATORS, f"rl.algorithm.kl_estimator must be one of {KL_ESTIMATORS}"
        )
    if "clip_eps" in hyperparameters:
        require(hyperparameters.clip_eps > 0, f"rl.algorithm.clip_eps must be > 0, got {hyperparameters.clip_eps}")
    algorithm.check(config)
    reward = rl.reward
    require(
        bool(reward.model_path) or reward.function in reward_function_names(),
        f"rl.reward.function={reward.function!r} is not registered ({reward_function_names()}); or set "
        "rl.reward.model_path to a reward model",
    )
    policy_gradient = algorithm.loss_format is None  # its objective is in rl.algorithm; mini-batches of answers
    if policy_gradient:
        require("loss" not in config, f"{name} has no config.loss: its objective is set in rl.algorithm")
        require(config.optim.grad_accum == 1, f"{name}: use rl.minibatches, not optim.grad_accum, to cut memory")
    else:
        wanted = algorithm.loss_format
        require("loss" in config, f"{name} trains with config.loss, a loss on {wanted!r} examples; the config has none")
        objective = losses.objective(config.loss.name)
        require(
            objective.format == wanted and objective.inputs != "rewards",
            f"{name} trains with a loss on {wanted!r} examples of the policy; config.loss.name="
            f"{config.loss.name!r} is not one",
        )
    data_shape = mesh_shape(config.mesh, num_devices)
    data_parallel = data_shape[0] * data_shape[1]
    # mini-batches of whole groups (all answers to a prompt, or one SFT row or pair per prompt), micro-batched by
    # grad_accum (1 for the policy-gradient family)
    split = config.optim.grad_accum * data_parallel
    if algorithm.rows_per_update is not None:  # an algorithm with a memory sizes its updates itself
        rows = algorithm.rows_per_update(rl)
        require(
            rows % split == 0,
            f"{name} updates on {rows} rows at a time, which must split into optim.grad_accum="
            f"{config.optim.grad_accum} x {data_parallel} data-parallel devices",
        )
        return
    rows = rl.prompts_per_iteration * algorithm.group_size(rl)
    require(
        not policy_gradient or rl.prompts_per_iteration % rl.minibatches == 0,
        f"{name}'s mini-batches hold whole groups of answers to a prompt: rl.prompts_per_iteration="
        f"{rl.prompts_per_iteration} must split into rl.minibatches={rl.minibatches}",
    )
    require(
        rows % (rl.minibatches * split) == 0,
        f"{name} updates on {rows} rows per iteration, which must split into rl.minibatches={rl.minibatches} x "
        f"optim.grad_accum={config.optim.grad_accum} x {data_parallel} data-parallel devices; change "
        "rl.prompts_per_iteration or rl.minibatches",
    )
