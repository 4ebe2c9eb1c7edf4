"""Offline preference learning on the built-in toy task, after an SFT stage: the README's main job (DPO).

    python -m alignjax.run --config experiments/preference_toy.py              # SFT, then DPO
    python -m alignjax.run --config experiments/preference_toy.py:ipo          # any method of METHODS below
    python -m alignjax.run --config experiments/preference_toy.py:ipo,smoke    # 2 steps of each stage, for tests
    python -m alignjax.run --config experiments/preference_toy.py --config.loss.beta=0.5   # any hyperparameter

Stage 1 trains a model from scratch on sloppy demonstrations (`toy_demonstrations`: 70% of the answers stop one
character early), so its greedy answers mostly break the rule "answer exactly". Stage 2 trains from that model on
pairs that prefer the complete answer (`toy_preferences`), with the SFT model as the frozen reference for the
losses that need one. Both stages print how often greedy answers to 200 held-out prompts follow the rule; stage 2
also reports held-out preference accuracy. Offline, a few minutes on 2 CPU cores. The SFT stage is shared by
every toy experiment and trained once (runs/toy_sft); each method writes to runs/<method>_toy.
"""

from alignjax.configs import parse_variant, toy

# method -> (loss, the hyperparameters that differ from the loss's defaults), each with its paper:
METHODS = {
    "dpo": ("dpo", dict(beta=0.1, sft_weight=1.0)),  # Rafailov et al. 2023, with an NLL term on the chosen answer
    "cdpo": ("dpo", dict(label_smoothing=0.1)),  # conservative DPO (Mitchell 2023): labels flipped w.p. 0.1
    "robust_dpo": ("robust_dpo", dict(label_smoothing=0.1)),  # Chowdhury et al. 2024: unbiased under label noise
    "ipo": ("ipo", dict(beta=0.1)),  # Azar et al. 2023: the log-ratio margin regressed to 1 / (2 tau)
    "hinge": ("hinge", dict(beta=0.1)),  # SLiC's hinge on DPO's implicit reward margin, as in RSO (Liu et al. 2023)
    "slic": ("slic", dict(delta=1.0, reg_weight=0.1)),  # SLiC-HF (Zhao et al. 2023): calibration hinge + NLL on chosen
    "simpo": ("simpo", dict(beta=2.0, gamma_beta_ratio=0.5)),  # Meng et al. 2024: margin on length-averaged log-probs
    "orpo": ("orpo", dict(beta=0.1)),  # Hong et al. 2024: NLL on chosen plus an odds-ratio term, no reference
    "rrhf": ("rrhf", dict(reg_weight=1.0)),  # Yuan et al. 2023: ranking hinge on length-normalised log-probs + SFT
    "pro": ("pro", dict(sft_weight=0.05)),  # Song et al. 2023: listwise softmax ranking plus SFT
    "kto": ("kto", dict(beta=0.1)),  # Ethayarajh et al. 2024: desirable / undesirable answers vs a batch KL estimate
    "conditional_sft": ("conditional_sft", dict()),  # SFT on both answers behind a good / bad control tag
}


def get_config(arg=None):
    variant = parse_variant(arg, METHODS, default="dpo")
    loss, hyperparameters = METHODS[variant.method]
    return toy.preference(loss, variant.smoke, name=variant.method, **hyperparameters)
