"""Decoder-only language models (Llama, Mistral, Qwen2, Qwen3) and reward models on them, in Flax NNX, with
Hugging Face import/export."""

from alignjax.models.checks import check_model_dir
from alignjax.models.config import SUPPORTED_ARCHITECTURES, ModelConfig, ModelConfigError, RopeConfig, config_from_hf
from alignjax.models.pretrained import (
    from_pretrained,
    init_model,
    init_reward_model,
    load_config,
    reward_model_from_causal,
    reward_model_from_pretrained,
    save_pretrained,
    state_shardings,
)
from alignjax.models.reward import RewardModel, last_token_values
from alignjax.models.safetensors_io import CheckpointError
from alignjax.models.transformer import Transformer

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "ModelConfigError",
    "ModelConfig",
    "RewardModel",
    "RopeConfig",
    "Transformer",
    "check_model_dir",
    "config_from_hf",
    "from_pretrained",
    "init_model",
    "init_reward_model",
    "last_token_values",
    "load_config",
    "reward_model_from_causal",
    "reward_model_from_pretrained",
    "save_pretrained",
    "state_shardings",
]
