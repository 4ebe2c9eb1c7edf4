"""The `rl` section of an on-policy experiment: its fields, each algorithm's hyperparameters, and their checks.

An on-policy experiment is the base config (`train.defaults.base_config`) plus an `rl` section; `train.steps`
counts iterations (sample, score, update), and `train.eval_every` / `train.checkpoint_every` count them too. The
`data` section names the prompts (rows with a `prompt` field). `config.loss` is the loss of the algorithms that
train with an offline loss (expert iteration: "sft"; online DPO and RSO: a pairwise loss such as "dpo" or
"slic"); the PPO family has none.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax import losses
from alignjax.rl.kl import KL_ESTIMATORS
from alignjax.rl.rewards import reward_function_names
from alignjax.rl.updates import ALGORITHMS, PAIRWISE, POLICY_GRADIENT
from alignjax.train.config_checks import ConfigValueError, resolve_mesh_shape

# Each algorithm's hyperparameters and their defaults (those of TRL's trainers where it has one).
ALGORITHM_DEFAULTS = {
    "ppo": dict(
        clip_eps=0.2,  # policy ratio clipping
        value_clip_eps=0.2,  # how far a value prediction may move per rollout before clipping
        gamma=1.0,  # discount
        lam=0.95,  # GAE lambda
        kl_coef=0.05,  # per-token KL penalty in the reward (initial value when adaptive)
        kl_estimator="k1",  # one of KL_ESTIMATORS
        kl_target=0.0,  # > 0: adapt kl_coef towards this KL per answer (Ziegler et al.); 0: fixed
        kl_horizon=10000.0,  # answers over which the adaptive coefficient moves by up to 20%
        whiten_advantages=True,
        critic_path="",  # the value model's start: a reward model or LM directory; empty: the policy's start
        critic_lr=1e-4,
    ),
    "rloo": dict(clip_eps=0.2, kl_coef=0.05, kl_estimator="k1", kl_target=0.0, kl_horizon=10000.0, whiten_advantages=False),
    "grpo": dict(
        clip_eps=0.2,
        kl_coef=0.04,  # beta of the KL term in the loss; 0: no reference term
        kl_estimator="k3",
        scale_rewards=True,  # divide by the group's std (False: Dr. GRPO)
    ),
    "expert_iteration": dict(min_reward=0.0),  # a prompt's best answer is trained on if its reward reaches this
    "online_dpo": dict(),
    "rso": dict(beta=0.5),  # rejection sampling temperature: acceptance exp((r - r_max) / beta)
}


def rl_section(algorithm: str | None, **overrides) -> ConfigDict:
    """The `rl` section for `algorithm`, with its hyperparameters in `rl.algorithm`; `overrides` replace
    defaults of either level (an unknown name is an error). `algorithm=None` gives the sampling and reward fields
    only (best-of-n trains nothing)."""
    if algorithm is not None and algorithm not in ALGORITHM_DEFAULTS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    section = ConfigDict(
        dict(
            prompts_per_iteration=32,
            samples_per_prompt=4,  # k answers per prompt (RLOO / GRPO groups, online DPO / RSO candidates)
            max_prompt_len=32,  # prompts are left-padded to this many tokens (longer ones are bad rows)
            max_new_tokens=16,
            temperature=1.0,  # rollout sampling; the PPO ratios are taken under the model's own distribution
            top_k=0,
            top_p=1.0,
            epochs=1,  # passes over each rollout
            minibatches=1,  # updates per pass
            missing_eos_penalty=1.0,  # subtracted from the reward of answers that never emit the stop token
            reward=dict(function="toy_exact", model_path=""),  # a registered function, or a reward model directory
            eval_prompts=200,  # held-out prompts answered greedily for the eval reward
        )
    )
    if algorithm is not None:
        section.algorithm = dict(name=algorithm, **ALGORITHM_DEFAULTS[algorithm])
    for name, value in overrides.items():
        target = section if name in section and name != "algorithm" else section.get("algorithm", section)
        if name not in target:
            raise AttributeError(f"rl has no field {name!r} for {algorithm!r}")
        target[name] = value
    return section


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigValueError(message)


def check_rl_config(config: ConfigDict, num_devices: int) -> None:
    """Raises ConfigValueError naming the first invalid value of an on-policy experiment."""
    rl, algorithm = config.rl, config.rl.algorithm
    name = algorithm.name
    _check(name in ALGORITHMS, f"rl.algorithm.name must be one of {ALGORITHMS}, got {name!r}")
    for field in ("prompts_per_iteration", "samples_per_prompt", "max_prompt_len", "max_new_tokens", "epochs", "minibatches"):
        _check(rl[field] >= 1, f"rl.{field} must be >= 1, got {rl[field]}")
    _check(config.train.steps >= 1, f"train.steps (iterations) must be >= 1, got {config.train.steps}")
    _check(rl.temperature > 0, f"rl.temperature must be > 0 (rollouts sample), got {rl.temperature}")
    needs_group = name in ("rloo", "grpo") + PAIRWISE
    _check(
        not needs_group or rl.samples_per_prompt >= 2,
        f"{name} compares several answers per prompt: rl.samples_per_prompt must be >= 2, got {rl.samples_per_prompt}",
    )
    if "kl_estimator" in algorithm:
        _check(algorithm.kl_estimator in KL_ESTIMATORS, f"rl.algorithm.kl_estimator must be one of {KL_ESTIMATORS}")
    if "clip_eps" in algorithm:
        _check(algorithm.clip_eps > 0, f"rl.algorithm.clip_eps must be > 0, got {algorithm.clip_eps}")
    if name == "rso":
        _check(algorithm.beta > 0, f"rl.algorithm.beta must be > 0, got {algorithm.beta}")
    reward = rl.reward
    _check(
        bool(reward.model_path) or reward.function in reward_function_names(),
        f"rl.reward.function={reward.function!r} is not registered ({reward_function_names()}); or set "
        "rl.reward.model_path to a reward model",
    )
    if name in POLICY_GRADIENT:
        _check("loss" not in config, f"{name} has no config.loss: its objective is set in rl.algorithm")
        _check(config.optim.grad_accum == 1, f"{name}: use rl.minibatches, not optim.grad_accum, to cut memory")
    else:
        objective = losses.objective(config.loss.name)
        wanted = ("sft",) if name == "expert_iteration" else ("pairs",)
        _check(
            objective.format in wanted and objective.inputs != "rewards",
            f"{name} trains with a loss on {wanted[0]!r} examples of the policy; config.loss.name="
            f"{config.loss.name!r} is not one",
        )
    data_shape = resolve_mesh_shape(config.mesh, num_devices)
    data_parallel = data_shape[0] * data_shape[1]
    if name in POLICY_GRADIENT:  # mini-batches of answers
        rows, split = rl.prompts_per_iteration * rl.samples_per_prompt, rl.minibatches * data_parallel
    else:  # mini-batches of prompts (one SFT row or one pair each), micro-batched by grad_accum
        rows, split = rl.prompts_per_iteration, rl.minibatches * config.optim.grad_accum * data_parallel
    _check(
        name not in POLICY_GRADIENT or rl.prompts_per_iteration % rl.minibatches == 0,
        f"{name}'s mini-batches hold whole groups of answers to a prompt: rl.prompts_per_iteration="
        f"{rl.prompts_per_iteration} must split into rl.minibatches={rl.minibatches}",
    )
    _check(
        rows % split == 0,
        f"{name} updates on {rows} rows per iteration, which must split into rl.minibatches={rl.minibatches} x "
        f"optim.grad_accum={config.optim.grad_accum} x {data_parallel} data-parallel devices; change "
        "rl.prompts_per_iteration or rl.minibatches",
    )
