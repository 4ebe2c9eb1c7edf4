"""Tiny random Hugging Face checkpoints of each supported architecture, built with `transformers` + PyTorch.

Weights are redrawn with a larger spread than the default init so that every parameter (biases, norms) moves
the logits visibly: a mapping mistake cannot hide behind near-zero values.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is needed to build reference checkpoints")
transformers = pytest.importorskip("transformers")

_BASE = dict(
    vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64,
)
ARCHITECTURES = {
    "llama": (transformers.LlamaConfig, dict(rope_theta=500000.0)),
    "llama3_rope": (
        transformers.LlamaConfig,
        dict(
            attention_bias=True,
            mlp_bias=True,
            rope_theta=500000.0,
            rope_scaling=dict(
                rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=8,
            ),
        ),
    ),
    "mistral": (transformers.MistralConfig, dict(head_dim=24, sliding_window=32)),
    "qwen2": (transformers.Qwen2Config, dict(tie_word_embeddings=True)),
    "qwen3": (transformers.Qwen3Config, dict(head_dim=24, tie_word_embeddings=True, num_key_value_heads=1)),
}


def make_hf_model(kind: str, seed: int = 0, **overrides):
    """A random `transformers` causal LM of architecture `kind` (a key of ARCHITECTURES), in eval mode."""
    return _random_model(transformers.AutoModelForCausalLM, kind, seed, overrides)


def make_hf_reward_model(kind: str, seed: int = 0, pad_token_id: int = 0, **overrides):
    """A random `*ForSequenceClassification` of architecture `kind`, one label (a reward model) unless overridden."""
    overrides = {"num_labels": 1, "pad_token_id": pad_token_id, **overrides}
    return _random_model(transformers.AutoModelForSequenceClassification, kind, seed, overrides)


def _random_model(auto_class, kind: str, seed: int, overrides: dict):
    config_cls, extra = ARCHITECTURES[kind]
    config = config_cls(**{**_BASE, **extra, **overrides})
    torch.manual_seed(seed)
    model = auto_class.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    model.config.architectures = [type(model).__name__]
    return model


def save_hf_model(kind: str, directory, **kwargs):
    model = make_hf_model(kind, **kwargs)
    model.save_pretrained(directory)
    return model


def hf_logits(model, ids_BL: np.ndarray, mask_BL: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids_BL, dtype=torch.long),
            attention_mask=None if mask_BL is None else torch.tensor(mask_BL, dtype=torch.long),
        )
    return out.logits.float().numpy()


def hf_rewards(model, ids_BL: np.ndarray, mask_BL: np.ndarray) -> np.ndarray:
    """A `*ForSequenceClassification`'s one output per row, [B]: its score at the rightmost non-pad token."""
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids_BL, dtype=torch.long), attention_mask=torch.tensor(mask_BL, dtype=torch.long)
        )
    return out.logits[:, 0].float().numpy()


def random_batch(vocab_size: int, batch: int = 3, length: int = 16, seed: int = 0):
    """Token ids and a right-padded 0/1 mask: row i keeps length - 4*i real tokens."""
    rng = np.random.RandomState(seed)
    ids_BL = rng.randint(0, vocab_size, (batch, length)).astype(np.int32)
    mask_BL = np.ones((batch, length), np.int32)
    for i in range(batch):
        mask_BL[i, length - 4 * i:] = 0
    return ids_BL, mask_BL
