"""Training objectives: one pure function per loss, found by name through a registry.

Token-level losses (SFT) take the policy's logits [B, L, V] and the batch; sequence-level losses (the DPO family,
ranking losses, reward models) take a `Responses` of per-response log-probs or rewards. Adding an objective is one
function plus one `register` line; the step builder does the rest (see `registry`).
"""

from alignjax.losses.bradley_terry import bradley_terry_loss
from alignjax.losses.dpo import dpo_loss, hinge_loss, ipo_loss, robust_dpo_loss
from alignjax.losses.kto import kto_loss
from alignjax.losses.orpo import orpo_loss
from alignjax.losses.pro import pro_loss
from alignjax.losses.registry import (
    INPUTS,
    LossFn,
    LossOutput,
    Objective,
    bind,
    get,
    loss_config,
    names,
    objective,
    register,
)
from alignjax.losses.responses import Responses
from alignjax.losses.rrhf import rrhf_loss
from alignjax.losses.sft import sft_loss
from alignjax.losses.simpo import simpo_loss
from alignjax.losses.slic import slic_loss
from alignjax.losses.token_logprobs import token_logprobs

register("sft", sft_loss)
register("conditional_sft", sft_loss, format="conditional")  # SFT on control-tagged pairs (data.format)
register("dpo", dpo_loss, inputs="responses", format="pairs", reference=True)
register("robust_dpo", robust_dpo_loss, inputs="responses", format="pairs", reference=True)
register("ipo", ipo_loss, inputs="responses", format="pairs", reference=True)
register("hinge", hinge_loss, inputs="responses", format="pairs", reference=True)
register("slic", slic_loss, inputs="responses", format="pairs")
register("simpo", simpo_loss, inputs="responses", format="pairs")
register("orpo", orpo_loss, inputs="responses", format="pairs")
register("rrhf", rrhf_loss, inputs="responses", format="ranked")
register("pro", pro_loss, inputs="responses", format="ranked")
register("kto", kto_loss, inputs="responses", format="unpaired", reference=True)
register("bradley_terry", bradley_terry_loss, inputs="rewards", format="pairs")

__all__ = [
    "INPUTS",
    "LossFn",
    "LossOutput",
    "Objective",
    "Responses",
    "bind",
    "bradley_terry_loss",
    "dpo_loss",
    "get",
    "hinge_loss",
    "ipo_loss",
    "kto_loss",
    "loss_config",
    "names",
    "objective",
    "orpo_loss",
    "pro_loss",
    "register",
    "robust_dpo_loss",
    "rrhf_loss",
    "sft_loss",
    "simpo_loss",
    "slic_loss",
    "token_logprobs",
]
