"""Jitted sampling from the policy with a KV cache: the source of every on-policy method's data."""

from alignjax.sampling.generate import GREEDY, SampleOutput, decode_texts, generate
from alignjax.sampling.strategies import SamplingConfig

__all__ = ["GREEDY", "SampleOutput", "SamplingConfig", "decode_texts", "generate"]
