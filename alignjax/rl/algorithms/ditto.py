"""DITTO (Shaikh et al. 2024, "Show, Don't Tell: Aligning Language Models with Demonstrated Feedback"): a policy
aligned to a user from a handful of demonstrations, each preferred over the policy's own samples.

A run starts from the SFT warm-up's policy pi_0 (an `sft` stage on the same demonstrations file, stopped early by
`train.stop_below_loss`), which is also the frozen DPO reference. Each iteration (`train.steps` counts them)
samples `rl.samples_per_prompt` answers to every demonstration's prompt with the current policy at
`rl.temperature`, keeps them, and takes `rl.minibatches` DPO steps (the reference implementation's
`resample_rate`), each on `pairs_per_step` comparisons drawn from its memory (`alignjax.rl.ditto_pairs`): online,
replay and inter-model pairs in the configured shares. `config.loss` is the pairwise loss (the paper: DPO's
sigmoid loss with beta 0.05).

The reference implementation's settings (Mistral-7B-Instruct with LoRA): SFT at lr 3e-5 for at most 30 steps,
stopping once the loss is below 1.0; then DITTO at lr 1e-6, constant after a 25% warm-up, 40 steps with a new
sample every 10 (4 iterations), 10 samples per demonstration, 24 pairs per step (8 demonstrations x 3), beta 0.05.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax.config_errors import require
from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.ditto_pairs import SOURCES, DittoMemory
from alignjax.rl.steps import offline_step

DEFAULTS = {
    "pairs_per_step": 24,  # comparisons in each DPO step
    "online_fraction": 0.7,  # demonstration over a sample of the current policy (fills what the others leave)
    "replay_fraction": 0.2,  # demonstration over a sample of an earlier policy
    "inter_model_fraction": 0.1,  # a later policy's sample over an earlier one's
    # ablations (all on: the published algorithm)
    "online": True,  # False: sample once, from pi_0, and train on those samples throughout
    "replay": True,
    "inter_model": True,
    "update_reference": False,  # True: the reference of iteration t is pi_t rather than pi_0
}


def _check(config: ConfigDict) -> None:
    hyperparameters, rl = config.rl.algorithm, config.rl
    require(
        hyperparameters.pairs_per_step >= 1,
        f"rl.algorithm.pairs_per_step must be >= 1, got {hyperparameters.pairs_per_step}",
    )
    fractions = [hyperparameters[f"{source}_fraction"] for source in SOURCES]
    require(
        all(0 <= f <= 1 for f in fractions) and abs(sum(fractions) - 1) < 1e-6,
        f"rl.algorithm's online, replay and inter_model fractions must be in [0, 1] and sum to 1, got {fractions}",
    )
    require(rl.epochs == 1, f"ditto draws new pairs for each step: rl.epochs must be 1, got {rl.epochs}")


ALGORITHM = Algorithm(
    name="ditto",
    defaults=DEFAULTS,
    make_batch=None,
    make_step=offline_step,
    loss_format="pairs",
    check=_check,
    make_memory=DittoMemory.from_config,
    rows_per_update=lambda rl: rl.algorithm.pairs_per_step,
)
