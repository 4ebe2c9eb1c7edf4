"""Decoder-only language models (Llama, Mistral, Qwen2, Qwen3) in Flax NNX, with Hugging Face import/export."""

from alignjax.models.config import ConfigError, ModelConfig, RopeConfig, SUPPORTED_ARCHITECTURES, config_from_hf
from alignjax.models.pretrained import from_pretrained, init_model, load_config, save_pretrained, state_shardings
from alignjax.models.safetensors_io import CheckpointError
from alignjax.models.transformer import Transformer

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ModelConfig",
    "RopeConfig",
    "SUPPORTED_ARCHITECTURES",
    "Transformer",
    "config_from_hf",
    "from_pretrained",
    "init_model",
    "load_config",
    "save_pretrained",
    "state_shardings",
]
