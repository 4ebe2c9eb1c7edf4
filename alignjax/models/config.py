"""The decoder's configuration, read from a Hugging Face `config.json`.

One dataclass describes every architecture we load (Llama, Mistral, Qwen2, Qwen3): they differ only in a few
switches (attention biases, q/k norms, tied embeddings, RoPE scaling). Reading is strict on purpose: a field we
cannot honour is an error that names it, never a silently different model. A reward model's
`*ForSequenceClassification` config describes the same decoder, so it reads into the same dataclass; only the
architecture name, the label count and the padding id differ, and they are checked and written here too.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import jax.numpy as jnp

# Per architecture: which projections carry biases and whether q/k are RMS-normalised per head.
# `attention_bias` from the checkpoint overrides the Llama/Qwen3 default (both read it; Mistral has no biases,
# Qwen2 always has q/k/v biases and no output bias).
_ARCHITECTURES = {
    "LlamaForCausalLM": {"qkv_bias_field": "attention_bias", "o_bias_field": "attention_bias", "qk_norm": False},
    "MistralForCausalLM": {"qkv_bias_field": None, "o_bias_field": None, "qk_norm": False},
    "Qwen2ForCausalLM": {"qkv_bias_field": True, "o_bias_field": None, "qk_norm": False},
    "Qwen3ForCausalLM": {"qkv_bias_field": "attention_bias", "o_bias_field": "attention_bias", "qk_norm": True},
}
SUPPORTED_ARCHITECTURES = tuple(_ARCHITECTURES)
# A reward model is the same decoder under a one-output `score` head: transformers' `*ForSequenceClassification`.
_CAUSAL, _CLASSIFIER = "ForCausalLM", "ForSequenceClassification"
# pad_token_id written into an exported reward model's config.json when neither the tokenizer nor the source
# config names one; it is also the id alignjax.data pads with when the tokenizer has no pad token.
DEFAULT_PAD_TOKEN_ID = 0
_ROPE_TYPES = ("default", "linear", "llama3")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class ModelConfigError(ValueError):
    """A checkpoint's config.json asks for something this model cannot honour."""


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters; `rope_type` is one of 'default', 'linear', 'llama3'."""

    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything the decoder needs to know about its shape and numerics.

    `hf_config` keeps the checkpoint's original `config.json` so that export writes back the fields we do not
    model (token ids, generation defaults) unchanged; `source` is the directory it was loaded from, whose
    tokenizer files export copies along.
    """

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope: RopeConfig = RopeConfig()
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    param_dtype: Any = jnp.float32
    dtype: Any = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass: memory for FLOPs
    hf_config: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    source: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ModelConfigError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_kv_heads})"
            )

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def dtype_from_name(name: Any, field: str = "dtype") -> Any:
    """Maps 'float32' / 'bfloat16' / 'float16' (or a jnp dtype) to a jnp dtype, naming `field` on error."""
    if not isinstance(name, str):
        return jnp.dtype(name).type
    if name not in _DTYPES:
        raise ModelConfigError(f"{field}={name!r} is not supported; expected one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def _require(d: dict, field: str, source: str):
    if field not in d or d[field] is None:
        raise ModelConfigError(f"{source}: required field {field!r} is missing")
    return d[field]


def _rope_from_hf(d: dict, source: str) -> RopeConfig:
    """Reads RoPE from either layout: transformers 5's `rope_parameters`, or `rope_theta` + `rope_scaling`."""
    if d.get("rope_parameters"):
        params, field = dict(d["rope_parameters"]), "rope_parameters"
    else:
        params, field = dict(d.get("rope_scaling") or {}), "rope_scaling"
        params.setdefault("rope_theta", d.get("rope_theta", 10000.0))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in _ROPE_TYPES:
        raise ModelConfigError(
            f"{source}: {field}.rope_type={rope_type!r} is not supported; expected one of {list(_ROPE_TYPES)}"
        )
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        factor = params["partial_rotary_factor"]
        raise ModelConfigError(f"{source}: {field}.partial_rotary_factor={factor} is not supported")
    rope = RopeConfig(theta=float(params["rope_theta"]), rope_type=rope_type)
    if rope_type == "linear":
        rope = dataclasses.replace(rope, factor=float(_require(params, "factor", f"{source}: {field}")))
    elif rope_type == "llama3":
        where = f"{source}: {field}"
        rope = dataclasses.replace(
            rope,
            factor=float(_require(params, "factor", where)),
            low_freq_factor=float(_require(params, "low_freq_factor", where)),
            high_freq_factor=float(_require(params, "high_freq_factor", where)),
            original_max_position_embeddings=int(_require(params, "original_max_position_embeddings", where)),
        )
    return rope


def _sliding_window_from_hf(d: dict, arch: str) -> int | None:
    """The attention window every layer uses, or None when every layer attends to the full context.

    transformers 5 lists `layer_types`; older Qwen configs gate the window with `use_sliding_window` (off by
    default); Mistral applies `sliding_window` whenever it is set. Models that mix windowed and full layers are
    refused rather than run with the wrong attention.
    """
    window = d.get("sliding_window")
    if window is None:
        return None
    if d.get("layer_types") is not None:
        kinds = set(d["layer_types"])
        if kinds == {"sliding_attention", "full_attention"}:
            raise ModelConfigError(
                "layer_types mixes 'sliding_attention' and 'full_attention' layers; alignjax applies one attention "
                "kind to every layer (set use_sliding_window=false, or make all layers one kind)"
            )
        return window if "sliding_attention" in kinds else None
    if arch.startswith("Qwen"):
        return window if d.get("use_sliding_window", False) else None
    return window


def _flag(d: dict, field, default: bool = False) -> bool:
    if field is None:
        return False
    if field is True:
        return True
    return bool(d.get(field, default))


def config_from_hf(d: dict, source: str = "config.json", dtype: Any = None, param_dtype: Any = None) -> ModelConfig:
    """Builds a ModelConfig from a parsed Hugging Face `config.json`.

    Args:
      d: the parsed JSON.
      source: where it came from, quoted in error messages.
      dtype: compute dtype; defaults to float32.
      param_dtype: parameter dtype; defaults to float32.

    Raises:
      ModelConfigError: naming the field, for an unknown architecture or a value the model cannot honour.
    """
    architectures = d.get("architectures") or []
    known = [a for a in architectures if a in _ARCHITECTURES]
    if not known:
        hint = " (a reward model: load it with reward_model_from_pretrained)" if _classifiers(d) else ""
        raise ModelConfigError(
            f"{source}: architectures={architectures!r} is not supported; expected one of "
            f"{list(_ARCHITECTURES)}{hint}"
        )
    arch = known[0]
    spec = _ARCHITECTURES[arch]
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise ModelConfigError(f"{source}: hidden_act={act!r} is not supported; expected 'silu'")
    if d.get("mlp_bias") and arch != "LlamaForCausalLM":
        raise ModelConfigError(f"{source}: mlp_bias=True is only defined for LlamaForCausalLM")
    num_heads = int(_require(d, "num_attention_heads", source))
    hidden = int(_require(d, "hidden_size", source))
    return ModelConfig(
        architecture=arch,
        vocab_size=int(_require(d, "vocab_size", source)),
        hidden_size=hidden,
        intermediate_size=int(_require(d, "intermediate_size", source)),
        num_layers=int(_require(d, "num_hidden_layers", source)),
        num_heads=num_heads,
        num_kv_heads=int(d.get("num_key_value_heads") or num_heads),
        head_dim=int(d.get("head_dim") or hidden // num_heads),
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
        rope=_rope_from_hf(d, source),
        max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        qkv_bias=_flag(d, spec["qkv_bias_field"]),
        o_bias=_flag(d, spec["o_bias_field"]),
        mlp_bias=bool(d.get("mlp_bias", False)),
        qk_norm=spec["qk_norm"],
        sliding_window=_sliding_window_from_hf(d, arch),
        dtype=dtype_from_name(dtype or "float32"),
        param_dtype=dtype_from_name(param_dtype or "float32", "param_dtype"),
        hf_config=dict(d),
    )


def config_to_hf(cfg: ModelConfig, saved_dtype: str) -> dict:
    """The `config.json` for `cfg`: the checkpoint's original fields, with every field we model written back.

    Args:
      cfg: the model's configuration.
      saved_dtype: the dtype name the weights are written in ('float32', 'bfloat16').
    """
    rope: dict[str, Any] = {"rope_type": cfg.rope.rope_type, "rope_theta": cfg.rope.theta}
    if cfg.rope.rope_type != "default":
        rope["factor"] = cfg.rope.factor
    if cfg.rope.rope_type == "llama3":
        rope.update(
            low_freq_factor=cfg.rope.low_freq_factor,
            high_freq_factor=cfg.rope.high_freq_factor,
            original_max_position_embeddings=cfg.rope.original_max_position_embeddings,
        )
    d = {k: v for k, v in cfg.hf_config.items() if k not in ("rope_scaling", "rope_theta", "torch_dtype")}
    d.update(
        architectures=[cfg.architecture],
        model_type=d.get("model_type") or cfg.architecture.removesuffix("ForCausalLM").lower(),
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=rope,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        hidden_act="silu",
        dtype=saved_dtype,
    )
    if cfg.architecture in ("LlamaForCausalLM", "Qwen3ForCausalLM"):
        d["attention_bias"] = cfg.qkv_bias
    if cfg.architecture == "LlamaForCausalLM":
        d["mlp_bias"] = cfg.mlp_bias
    if cfg.sliding_window is None and cfg.architecture == "MistralForCausalLM":
        d["sliding_window"] = None
    return d


def sequence_classifier_name(architecture: str) -> str:
    """'LlamaForCausalLM' -> 'LlamaForSequenceClassification': the same decoder under a score head."""
    return architecture.removesuffix(_CAUSAL) + _CLASSIFIER


def _classifiers(d: dict) -> list[str]:
    return [a for a in d.get("architectures") or [] if a.endswith(_CLASSIFIER)]


def is_reward_config(d: dict) -> bool:
    """Whether a parsed `config.json` describes a `*ForSequenceClassification` model rather than a causal LM."""
    return bool(_classifiers(d)) and not any(a in _ARCHITECTURES for a in d.get("architectures") or [])


def reward_config_from_hf(
    d: dict, source: str = "config.json", dtype: Any = None, param_dtype: Any = None
) -> ModelConfig:
    """The decoder's ModelConfig of a `*ForSequenceClassification` reward model's `config.json`.

    The returned config names the causal architecture (the decoder is the same); the score head is the
    RewardModel's. transformers serialises the number of outputs as `id2label` (and defaults to 2 without it).

    Raises:
      ModelConfigError: for an unsupported architecture, or a `num_labels` other than 1, naming the field.
    """
    classifiers = _classifiers(d)
    supported = [sequence_classifier_name(a) for a in _ARCHITECTURES]
    known = [a for a in classifiers if a in supported]
    if not known:
        raise ModelConfigError(
            f"{source}: architectures={d.get('architectures')!r} is not a supported reward model; expected one of "
            f"{supported}"
        )
    if d.get("id2label"):
        num_labels, field = len(d["id2label"]), "num_labels (the size of id2label)"
    else:
        num_labels, field = int(d.get("num_labels", 2)), "num_labels"
    if num_labels != 1:
        raise ModelConfigError(
            f"{source}: {field}={num_labels}; a reward model has one scalar output, expected num_labels=1"
        )
    causal = known[0].removesuffix(_CLASSIFIER) + _CAUSAL
    return config_from_hf({**d, "architectures": [causal]}, source, dtype=dtype, param_dtype=param_dtype)


def reward_config_to_hf(cfg: ModelConfig, saved_dtype: str, pad_token_id: int | None = None) -> dict:
    """The `config.json` of a reward model on decoder `cfg`: `*ForSequenceClassification` with one label.

    transformers' sequence classifier scores the rightmost token that is not `pad_token_id` (and refuses
    batches without one), so the id must be set: `pad_token_id` when given (the tokenizer's), else the source
    config's, else DEFAULT_PAD_TOKEN_ID with a warning. On right-padded rows filled with that id whose last real
    token is a different id, this is the token `last_token_values` reads.

    Args:
      cfg: the decoder's configuration.
      saved_dtype: the dtype name the weights are written in.
      pad_token_id: the tokenizer's padding id, if known.
    """
    d = config_to_hf(cfg, saved_dtype)
    if pad_token_id is None:
        pad_token_id = d.get("pad_token_id")
    if pad_token_id is None:
        pad_token_id = DEFAULT_PAD_TOKEN_ID
        warnings.warn(
            f"no pad_token_id in the tokenizer or the source config; writing pad_token_id={DEFAULT_PAD_TOKEN_ID}: "
            "transformers will treat that token as padding when it picks each row's last token",
            stacklevel=3,
        )
    d.update(
        architectures=[sequence_classifier_name(cfg.architecture)],
        num_labels=1,
        id2label={"0": "LABEL_0"},
        label2id={"LABEL_0": 0},
        pad_token_id=int(pad_token_id),
    )
    return d
