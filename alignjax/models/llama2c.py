"""Convert a llama2.c checkpoint and tokenizer into a Hugging Face Llama directory.

Why this exists: karpathy/llama2.c publishes real pretrained tiny Llamas (e.g. stories260K, about 260K
parameters) that are small enough for CPU tests yet trained on real text, so greedy decoding gives a
recognisable story. Our models load Hugging Face directories, so we convert once and then every peer
(transformers, alignjax) reads the same files.

Two things need care:

* Rotary layout. llama2.c rotates adjacent pairs (x0, x1), (x2, x3), ... of each head; HF Llama rotates
    halves (x_i, x_{i + head_dim/2}). Permuting the output rows of wq and wk (as llama2.c's `export.py` does
    for `hf_export`) makes the two compute the same attention scores.
* Tokenizer. llama2.c's `encode` (run.c) is SentencePiece BPE without normalisation: a dummy-prefix
    space, one piece per UTF-8 codepoint (bytes + 3 when unknown), then repeatedly merge the adjacent pair
    whose concatenation has the highest score. A `tokenizers` BPE model with byte fallback and merges ranked
    by the merged piece's score reproduces that exactly.

Usage: `convert_llama2c("stories260K.bin", "tok512.bin", "/tmp/stories260K")`, or the CLI in
`scripts/convert_llama2c.py`.
"""

import dataclasses
import json
import os
import struct

import numpy as np
import tokenizers
from tokenizers import decoders, normalizers, processors

from alignjax.models.safetensors_io import write_safetensors

_HEADER_FORMAT = "<7i"
_HEADER_BYTES = struct.calcsize(_HEADER_FORMAT)
_FLOAT_BYTES = 4

_NUM_BYTE_PIECES = 256
_FIRST_BYTE_ID = 3  # ids 0, 1, 2 are unk, BOS, EOS; ids 3..258 are "<0x00>".."<0xFF>".
_SPECIAL_PIECES = ("<unk>", "<s>", "</s>")
_SPACE = "▁"  # SentencePiece's visible space (U+2581); llama2.c stores a plain ' ' instead.

ROPE_THETA = 10000.0
RMS_NORM_EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class Llama2cHeader:
    """The 7-int32 header of a llama2.c (legacy, version 0) checkpoint.

    Attributes:
        dim: model width D.
        hidden_dim: MLP width F.
        n_layers: number of transformer blocks Z.
        n_heads: query heads H.
        n_kv_heads: key/value heads J (grouped-query attention when J < H).
        vocab_size: vocabulary size V (always positive here).
        seq_len: maximum context length S.
        shared_classifier: whether the output projection reuses the token embedding (the file stores a
            positive vocab_size); otherwise a separate classifier follows the weights.
    """

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.head_dim * self.n_kv_heads


def _parse_header(raw: bytes, path: str) -> Llama2cHeader:
    """Parses and sanity-checks the checkpoint header."""
    if len(raw) < _HEADER_BYTES:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a llama2.c header "
                         f"({_HEADER_BYTES} bytes expected)")
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = struct.unpack(
        _HEADER_FORMAT, raw[:_HEADER_BYTES])
    header = Llama2cHeader(dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len,
                           shared_classifier=vocab_size > 0)
    sizes = (dim, hidden_dim, n_layers, n_heads, n_kv_heads, header.vocab_size, seq_len)
    if min(sizes) <= 0 or dim % n_heads or n_heads % n_kv_heads or header.head_dim % 2:
        raise ValueError(f"{path}: implausible llama2.c header {sizes} (dim, hidden_dim, n_layers, n_heads, "
                         "n_kv_heads, vocab_size, seq_len); is this a legacy llama2.c checkpoint?")
    return header


def _tensor_shapes(header: Llama2cHeader) -> dict[str, tuple[int, ...]]:
    """Shapes of the float32 tensors in file order, PyTorch layout [out, in]."""
    h = header
    D, F, Z, V = h.dim, h.hidden_dim, h.n_layers, h.vocab_size
    shapes = {
        "token_embedding_table": (V, D),
        "rms_att_weight": (Z, D),
        "wq": (Z, D, D),
        "wk": (Z, h.kv_dim, D),
        "wv": (Z, h.kv_dim, D),
        "wo": (Z, D, D),
        "rms_ffn_weight": (Z, D),
        "w1": (Z, F, D),
        "w2": (Z, D, F),
        "w3": (Z, F, D),
        "rms_final_weight": (D,),
        # Precomputed RoPE tables, seq_len * head_dim / 2 floats each; recomputed by every peer, skipped.
        "freq_cis_real": (h.seq_len * h.head_dim // 2,),
        "freq_cis_imag": (h.seq_len * h.head_dim // 2,),
    }
    if not h.shared_classifier:
        shapes["wcls"] = (V, D)
    return shapes


def read_llama2c_checkpoint(path: str) -> tuple[Llama2cHeader, dict[str, np.ndarray]]:
    """Reads a legacy llama2.c checkpoint.

    Args:
        path: the `.bin` file written by llama2.c's `export.py --version 0` (or the original `model.bin`).

    Returns:
        The header and a dict of float32 arrays named as in llama2.c's `TransformerWeights` (see
        `_tensor_shapes`), without the RoPE tables.

    Raises:
        ValueError: if the header is implausible or the file size disagrees with it.
    """
    with open(path, "rb") as f:
        raw = f.read()
    header = _parse_header(raw, path)
    shapes = _tensor_shapes(header)
    expected_bytes = _HEADER_BYTES + _FLOAT_BYTES * sum(int(np.prod(s)) for s in shapes.values())
    if len(raw) != expected_bytes:
        raise ValueError(f"{path}: llama2.c checkpoint size mismatch: header {dataclasses.astuple(header)} "
                         f"implies {expected_bytes} bytes, file has {len(raw)} bytes")
    flat = np.frombuffer(raw, dtype="<f4", offset=_HEADER_BYTES)
    weights, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        weights[name] = flat[start:start + size].reshape(shape)
        start += size
    del weights["freq_cis_real"], weights["freq_cis_imag"]
    return header, weights


def interleaved_to_rotate_half(w_OI: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorders q/k projection rows from llama2.c's pairwise RoPE layout to HF's rotate-half layout.

    Within each head, llama2.c's output row 2j and 2j+1 form rotary pair j; HF Llama pairs rows j and
    j + head_dim/2. Row 2j + p moves to p * head_dim/2 + j. This is `permute_original` in llama2.c's
    `export.py` (and `permute` in transformers' `convert_llama_weights_to_hf.py`).

    Args:
        w_OI: a projection in PyTorch layout [n_heads * head_dim, in].
        n_heads: the number of heads in the output (n_heads for wq, n_kv_heads for wk).

    Returns:
        The permuted [n_heads * head_dim, in] array.
    """
    out_dim, in_dim = w_OI.shape
    w_XC2I = w_OI.reshape(n_heads, out_dim // n_heads // 2, 2, in_dim)
    return w_XC2I.transpose(0, 2, 1, 3).reshape(out_dim, in_dim)


def to_hf_state_dict(header: Llama2cHeader, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Maps llama2.c weights to HF `LlamaForCausalLM` tensor names (contiguous float32)."""
    hf = {"model.embed_tokens.weight": weights["token_embedding_table"],
          "model.norm.weight": weights["rms_final_weight"]}
    for i in range(header.n_layers):
        p = f"model.layers.{i}."
        hf[p + "input_layernorm.weight"] = weights["rms_att_weight"][i]
        hf[p + "self_attn.q_proj.weight"] = interleaved_to_rotate_half(weights["wq"][i], header.n_heads)
        hf[p + "self_attn.k_proj.weight"] = interleaved_to_rotate_half(weights["wk"][i], header.n_kv_heads)
        hf[p + "self_attn.v_proj.weight"] = weights["wv"][i]
        hf[p + "self_attn.o_proj.weight"] = weights["wo"][i]
        hf[p + "post_attention_layernorm.weight"] = weights["rms_ffn_weight"][i]
        hf[p + "mlp.gate_proj.weight"] = weights["w1"][i]
        hf[p + "mlp.down_proj.weight"] = weights["w2"][i]
        hf[p + "mlp.up_proj.weight"] = weights["w3"][i]
    if not header.shared_classifier:
        hf["lm_head.weight"] = weights["wcls"]
    return {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in hf.items()}


def hf_config(header: Llama2cHeader) -> dict:
    """The HF `config.json` for a llama2.c model (transformers-5 `rope_parameters` layout)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": header.dim,
        "intermediate_size": header.hidden_dim,
        "num_hidden_layers": header.n_layers,
        "num_attention_heads": header.n_heads,
        "num_key_value_heads": header.n_kv_heads,
        "head_dim": header.head_dim,
        "vocab_size": header.vocab_size,
        "max_position_embeddings": header.seq_len,
        "rms_norm_eps": RMS_NORM_EPS,
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": header.shared_classifier,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "dtype": "float32",
    }


def read_llama2c_tokenizer(path: str) -> tuple[list[str], list[float]]:
    """Reads llama2.c's `tokenizer.bin` and renames pieces to SentencePiece conventions.

    Args:
        path: a llama2.c tokenizer (int32 max_token_length, then per piece float32 score, int32 byte length,
            UTF-8 bytes).

    Returns:
        (pieces, scores) indexed by token id. Spaces become '▁'; ids 0, 1, 2 become "<unk>", "<s>", "</s>"
        (llama2.c stores BOS/EOS as "\\n<s>\\n" and "\\n</s>\\n" so that decoding prints newlines).

    Raises:
        ValueError: if the file is truncated or has fewer pieces than specials and byte pieces.
    """
    with open(path, "rb") as f:
        raw = f.read()
    pieces, scores, offset = [], [], 4
    while offset < len(raw):
        if offset + 8 > len(raw):
            raise ValueError(f"{path}: truncated llama2.c tokenizer at byte {offset} of {len(raw)}")
        score, length = struct.unpack_from("<fi", raw, offset)
        offset += 8
        if length < 0 or offset + length > len(raw):
            raise ValueError(f"{path}: truncated llama2.c tokenizer at byte {offset} of {len(raw)}")
        pieces.append(raw[offset:offset + length].decode("utf-8").replace(" ", _SPACE))
        scores.append(score)
        offset += length
    if len(pieces) < _FIRST_BYTE_ID + _NUM_BYTE_PIECES:
        raise ValueError(f"{path}: {len(pieces)} pieces; a llama2.c tokenizer has at least "
                         f"{_FIRST_BYTE_ID + _NUM_BYTE_PIECES} (3 specials + 256 bytes)")
    pieces[:len(_SPECIAL_PIECES)] = _SPECIAL_PIECES
    return pieces, scores


def bpe_merges(pieces: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """Derives BPE merges from piece scores, as SentencePiece's BPE model implies them.

    Every way of splitting a normal piece into two pieces of the vocabulary is a merge; merges that make a
    higher-scoring piece come first. This is what llama2.c's `encode` does: merge the adjacent pair whose
    concatenation is the highest-scoring piece.

    Args:
        pieces: SentencePiece-style pieces indexed by id.
        scores: their scores.

    Returns:
        Merges (left, right), highest priority first.
    """
    first_normal_id = _FIRST_BYTE_ID + _NUM_BYTE_PIECES
    vocab = {piece: i for i, piece in enumerate(pieces) if i >= first_normal_id}
    ranked = []  # (-score of merged piece, merged id, split point, left, right)
    for merged, merged_id in vocab.items():
        for split in range(1, len(merged)):
            left, right = merged[:split], merged[split:]
            if left in vocab and right in vocab:
                ranked.append((-scores[merged_id], merged_id, split, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build_tokenizer(pieces: list[str], scores: list[float]) -> tokenizers.Tokenizer:
    """Builds a `tokenizers` BPE pipeline that encodes exactly like llama2.c's `encode` with BOS.

    Args:
        pieces: SentencePiece-style pieces from `read_llama2c_tokenizer`.
        scores: their scores.

    Returns:
        A tokenizer that prepends BOS and the dummy-prefix '▁', falls back to "<0xXX>" byte pieces, and
        decodes back to the original text.
    """
    vocab = {piece: i for i, piece in enumerate(pieces)}
    if len(vocab) != len(pieces):
        raise ValueError("llama2.c tokenizer has duplicate pieces; cannot build a BPE vocabulary")
    unk, bos, _ = _SPECIAL_PIECES
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(
        vocab=vocab, merges=bpe_merges(pieces, scores), unk_token=unk, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(_SPACE), normalizers.Replace(" ", _SPACE)])
    tok.decoder = decoders.Sequence([decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, vocab[bos])])
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False)
                            for s in _SPECIAL_PIECES])
    return tok


def save_tokenizer(tok: tokenizers.Tokenizer, out_dir: str, model_max_length: int) -> None:
    """Writes tokenizer.json, tokenizer_config.json and special tokens via transformers."""
    import transformers  # Deferred: heavy, and only needed to write the transformers-side configs.
    unk, bos, eos = _SPECIAL_PIECES
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=unk, bos_token=bos, eos_token=eos, model_max_length=model_max_length,
        padding_side="right", clean_up_tokenization_spaces=False)
    fast.save_pretrained(out_dir)


def convert_llama2c(checkpoint_path: str, tokenizer_path: str, out_dir: str) -> None:
    """Converts a llama2.c checkpoint and tokenizer into a Hugging Face Llama directory.

    Writes `config.json`, `model.safetensors` (float32) and the tokenizer files, loadable offline by
    `transformers.AutoModelForCausalLM` / `AutoTokenizer` and by `alignjax.models.from_pretrained`.

    Args:
        checkpoint_path: legacy llama2.c checkpoint (e.g. stories260K.bin).
        tokenizer_path: llama2.c tokenizer (e.g. tok512.bin).
        out_dir: output directory; created if missing, existing files overwritten.

    Raises:
        ValueError: if either file is malformed or they disagree on the vocabulary size.
    """
    header, weights = read_llama2c_checkpoint(checkpoint_path)
    pieces, scores = read_llama2c_tokenizer(tokenizer_path)
    if len(pieces) != header.vocab_size:
        raise ValueError(f"{tokenizer_path} has {len(pieces)} pieces but {checkpoint_path} has vocab_size "
                         f"{header.vocab_size}")
    tok = build_tokenizer(pieces, scores)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(header), f, indent=2)
        f.write("\n")
    write_safetensors(to_hf_state_dict(header, weights), os.path.join(out_dir, "model.safetensors"))
    save_tokenizer(tok, out_dir, model_max_length=header.seq_len)
