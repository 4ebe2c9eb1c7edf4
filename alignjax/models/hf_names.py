"""Where each of our parameters lives in a Hugging Face checkpoint, and how its layout differs.

Our kernels are stored input-first with heads as their own axis (`q`: [embed, heads, head_dim]) so that
einsums and sharding rules read naturally; `nn.Linear` stores [out_features, in_features]. The conversion is a
transpose and a reshape, both views, so that loading can still read one device's slice at a time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alignjax.models.config import ModelConfig

Path = tuple  # a parameter's path in the model's nnx.State, e.g. ('layers', 0, 'attn', 'q')


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """One checkpoint tensor: its name, its shape there, and whether it is an `nn.Linear` weight."""

    name: str
    shape: tuple[int, ...]
    linear: bool = False

    def to_ours(self, w: np.ndarray, our_shape: tuple[int, ...]) -> np.ndarray:
        return (w.T if self.linear else w).reshape(our_shape)

    def to_hf(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.shape[::-1]).T if self.linear else x.reshape(self.shape)


def hf_tensors(cfg: ModelConfig) -> dict[Path, HFTensor]:
    """Our parameter path -> the checkpoint tensor it is read from and written to, for this config."""
    D, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    HE, JE, E = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.head_dim
    table = {("embed",): HFTensor("model.embed_tokens.weight", (V, D))}
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", ("layers", i)
        layer = {
            ("attn_norm", "scale"): HFTensor(f"{hf}.input_layernorm.weight", (D,)),
            ("mlp_norm", "scale"): HFTensor(f"{hf}.post_attention_layernorm.weight", (D,)),
            ("attn", "q"): HFTensor(f"{hf}.self_attn.q_proj.weight", (HE, D), linear=True),
            ("attn", "k"): HFTensor(f"{hf}.self_attn.k_proj.weight", (JE, D), linear=True),
            ("attn", "v"): HFTensor(f"{hf}.self_attn.v_proj.weight", (JE, D), linear=True),
            ("attn", "o"): HFTensor(f"{hf}.self_attn.o_proj.weight", (D, HE), linear=True),
            ("mlp", "gate"): HFTensor(f"{hf}.mlp.gate_proj.weight", (F, D), linear=True),
            ("mlp", "up"): HFTensor(f"{hf}.mlp.up_proj.weight", (F, D), linear=True),
            ("mlp", "down"): HFTensor(f"{hf}.mlp.down_proj.weight", (D, F), linear=True),
        }
        if cfg.qkv_bias:
            layer[("attn", "q_bias")] = HFTensor(f"{hf}.self_attn.q_proj.bias", (HE,))
            layer[("attn", "k_bias")] = HFTensor(f"{hf}.self_attn.k_proj.bias", (JE,))
            layer[("attn", "v_bias")] = HFTensor(f"{hf}.self_attn.v_proj.bias", (JE,))
        if cfg.o_bias:
            layer[("attn", "o_bias")] = HFTensor(f"{hf}.self_attn.o_proj.bias", (D,))
        if cfg.qk_norm:
            layer[("attn", "q_norm", "scale")] = HFTensor(f"{hf}.self_attn.q_norm.weight", (E,))
            layer[("attn", "k_norm", "scale")] = HFTensor(f"{hf}.self_attn.k_norm.weight", (E,))
        if cfg.mlp_bias:
            layer[("mlp", "gate_bias")] = HFTensor(f"{hf}.mlp.gate_proj.bias", (F,))
            layer[("mlp", "up_bias")] = HFTensor(f"{hf}.mlp.up_proj.bias", (F,))
            layer[("mlp", "down_bias")] = HFTensor(f"{hf}.mlp.down_proj.bias", (D,))
        table.update({ours + path: tensor for path, tensor in layer.items()})
    table[("final_norm", "scale")] = HFTensor("model.norm.weight", (D,))
    if not cfg.tie_word_embeddings:
        table[("lm_head",)] = HFTensor("lm_head.weight", (V, D), linear=True)
    return table


def hf_reward_tensors(cfg: ModelConfig) -> dict[Path, HFTensor]:
    """The same for a RewardModel, whose decoder sits under `backbone`.

    A `*ForSequenceClassification` checkpoint has the decoder's `model.*` tensors, no LM head, and `score.weight`
    [1, hidden] (an `nn.Linear` without bias).
    """
    table = {("backbone",) + path: tensor for path, tensor in hf_tensors(cfg).items() if path != ("lm_head",)}
    table[("score",)] = HFTensor("score.weight", (1, cfg.hidden_size), linear=True)
    return table


def ignorable(name: str, cfg: ModelConfig) -> bool:
    """Tensors some checkpoints carry that the model derives: rotary tables, a head duplicating a tied embedding."""
    return name.endswith("rotary_emb.inv_freq") or (cfg.tie_word_embeddings and name == "lm_head.weight")
