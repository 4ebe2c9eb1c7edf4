"""Training objectives: one pure function per loss, found by name through a registry.

Every loss takes the policy's logits [B, L, V] and a batch dict, and returns a `LossOutput`. Adding an objective
is one function plus one `register` line; the step builder does the rest.
"""

from alignjax.losses.registry import LossFn, LossOutput, get, names, register
from alignjax.losses.sft import sft_loss
from alignjax.losses.token_logprobs import token_logprobs

register("sft", sft_loss)

__all__ = ["LossFn", "LossOutput", "get", "names", "register", "sft_loss", "token_logprobs"]
