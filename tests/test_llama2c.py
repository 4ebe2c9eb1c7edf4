"""Tests for the llama2.c -> Hugging Face converter on the real stories260K model and tok512 tokenizer.

The references here are re-implementations of llama2.c's own C code (`encode` and `forward` in run.c),
written from that code rather than from the converter, so that a mistake in the converter's tokenizer
merges or rotary permutation shows up as a mismatch. Needs ../shared/data (see its README.md).
"""

import os
import pathlib
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from alignjax.models.llama2c import convert_llama2c

DATA_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHECKPOINT = DATA_DIR / "stories260K.bin"
TOKENIZER = DATA_DIR / "tok512.bin"
BOS, EOS = 1, 2
NUM_NEW_TOKENS = 40
STORY_PREFIX = "Once upon a time, there was a little girl named Lily"  # Documented in shared/data/README.md.

pytestmark = pytest.mark.skipif(
    not (CHECKPOINT.exists() and TOKENIZER.exists()),
    reason=f"real llama2.c data not found at {DATA_DIR} (only present in the project workspace)")

SENTENCES = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    'Tom said, "Wow!" -- and ran away... (Really?) Yes; it\'s true: "I\'m home."',
    "In 2023, 42 cats ate 1,000 fish and 7.5 cakes at 10:30.",
    "The end.\nOne day, a bird sang.\n\n  New paragraph\n",
    "She drank a café au lait and ate crème brûlée in Zürich.",
    "The dog was happy 😀 and jumped 🐶🎉! 你好",
    "multiple   spaces  and\ttabs   ",
    " leading space",
    "",
]


@pytest.fixture(scope="module")
def hf_dir(stories260k_dir):
    return stories260k_dir


@pytest.fixture(scope="module")
def hf_greedy_tokens(hf_dir):
    """transformers' greedy continuation of [BOS]: the token ids after BOS."""
    import torch
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir)
    with torch.no_grad():
        out = model.generate(torch.tensor([[BOS]]), max_new_tokens=NUM_NEW_TOKENS, do_sample=False,
                             pad_token_id=EOS)
    return out[0, 1:].tolist()


# ---------------------------------------------------------------------------------------------------------
# Reference llama2.c tokenizer (run.c: build_tokenizer + encode).


def _read_llama2c_vocab(path):
    """Returns (vocab, scores) exactly as run.c stores them: raw byte strings, no renaming."""
    raw = path.read_bytes()
    vocab, scores, offset = [], [], 4
    while offset < len(raw):
        score, length = struct.unpack_from("<fi", raw, offset)
        vocab.append(raw[offset + 8:offset + 8 + length])
        scores.append(score)
        offset += 8 + length
    return vocab, scores


def llama2c_encode(text, vocab, scores):
    """run.c's `encode(t, text, bos=1, eos=0)`, transcribed to Python."""
    lookup = {piece: i for i, piece in enumerate(vocab)}  # run.c: bsearch over the sorted vocab.
    tokens = [BOS]
    if text:
        tokens.append(lookup[b" "])  # add_dummy_prefix
    for char in text:  # run.c walks UTF-8 bytes, grouping each codepoint's (at most 4) bytes.
        char_bytes = char.encode("utf-8")
        if char_bytes in lookup:
            tokens.append(lookup[char_bytes])
        else:
            tokens.extend(b + 3 for b in char_bytes)  # byte fallback: ids 3..258 are <0x00>..<0xFF>
    while True:  # Merge the best-scoring adjacent pair (leftmost on ties) until none merges.
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            merged_id = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if merged_id != -1 and scores[merged_id] > best_score:
                best_score, best_id, best_idx = scores[merged_id], merged_id, i
        if best_idx == -1:
            return tokens
        tokens[best_idx:best_idx + 2] = [best_id]


@pytest.fixture(scope="module")
def hf_tokenizer(hf_dir):
    import transformers
    return transformers.AutoTokenizer.from_pretrained(hf_dir)


@pytest.mark.parametrize("text", SENTENCES)
def test_tokenizer_matches_llama2c_encode(hf_tokenizer, text):
    vocab, scores = _read_llama2c_vocab(TOKENIZER)
    assert hf_tokenizer(text).input_ids == llama2c_encode(text, vocab, scores)


@pytest.mark.parametrize("text", SENTENCES)
def test_tokenizer_decode_roundtrip(hf_tokenizer, text):
    ids = hf_tokenizer(text).input_ids
    assert hf_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_special_tokens(hf_tokenizer):
    assert (hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id, hf_tokenizer.unk_token_id) == (1, 2, 0)
    assert hf_tokenizer.convert_ids_to_tokens([3, 258, 259]) == ["<0x00>", "<0xFF>", "▁t"]


# ---------------------------------------------------------------------------------------------------------
# Reference llama2.c forward pass (run.c: forward), in numpy, reading the original checkpoint.


def _rmsnorm(x_LD, w_D):
    return x_LD / np.sqrt(np.mean(x_LD**2, axis=-1, keepdims=True) + 1e-5) * w_D


def _rope_interleaved(x_LHK, positions_L):
    """run.c's RoPE: rotates adjacent pairs (x[2j], x[2j+1]) by pos * 10000^(-2j/head_size)."""
    head_size = x_LHK.shape[-1]
    freq_J = 1.0 / 10000.0**(np.arange(0, head_size, 2) / head_size)
    angle_LJ = positions_L[:, None] * freq_J[None, :]
    cos_L1J, sin_L1J = np.cos(angle_LJ)[:, None], np.sin(angle_LJ)[:, None]
    x0, x1 = x_LHK[..., 0::2], x_LHK[..., 1::2]
    out = np.empty_like(x_LHK)
    out[..., 0::2] = x0 * cos_L1J - x1 * sin_L1J
    out[..., 1::2] = x0 * sin_L1J + x1 * cos_L1J
    return out


def llama2c_forward(checkpoint, tokens_L):
    """Logits [L, V] of run.c's forward for every position of one sequence (float64 numpy)."""
    raw = checkpoint.read_bytes()
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = struct.unpack_from("<7i", raw)
    head_size, V = dim // n_heads, abs(vocab_size)
    kv_dim = n_kv_heads * head_size
    flat = np.frombuffer(raw, "<f4", offset=28).astype(np.float64)
    take = iter([(V, dim), (n_layers, dim), (n_layers, dim, dim), (n_layers, kv_dim, dim),
                 (n_layers, kv_dim, dim), (n_layers, dim, dim), (n_layers, dim), (n_layers, hidden_dim, dim),
                 (n_layers, dim, hidden_dim), (n_layers, hidden_dim, dim), (dim,)])
    w, start = [], 0
    for shape in take:
        w.append(flat[start:start + np.prod(shape)].reshape(shape))
        start += np.prod(shape)
    emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final = w
    start += seq_len * head_size  # freq_cis_real + freq_cis_imag
    wcls = emb if vocab_size > 0 else flat[start:start + V * dim].reshape(V, dim)

    L = len(tokens_L)
    positions_L = np.arange(L)
    causal_LL = np.tril(np.ones((L, L), bool))
    x_LD = emb[np.asarray(tokens_L)]
    for l in range(n_layers):
        xb_LD = _rmsnorm(x_LD, rms_att[l])
        q_LHK = _rope_interleaved((xb_LD @ wq[l].T).reshape(L, n_heads, head_size), positions_L)
        k_LGK = _rope_interleaved((xb_LD @ wk[l].T).reshape(L, n_kv_heads, head_size), positions_L)
        v_LGK = (xb_LD @ wv[l].T).reshape(L, n_kv_heads, head_size)
        k_LHK = np.repeat(k_LGK, n_heads // n_kv_heads, axis=1)  # run.c: kv head h / kv_mul
        v_LHK = np.repeat(v_LGK, n_heads // n_kv_heads, axis=1)
        scores_HLL = np.einsum("qhk,shk->hqs", q_LHK, k_LHK) / np.sqrt(head_size)
        scores_HLL = np.where(causal_LL, scores_HLL, -np.inf)
        probs_HLL = np.exp(scores_HLL - scores_HLL.max(-1, keepdims=True))
        probs_HLL /= probs_HLL.sum(-1, keepdims=True)
        attn_LD = np.einsum("hqs,shk->qhk", probs_HLL, v_LHK).reshape(L, dim)
        x_LD = x_LD + attn_LD @ wo[l].T
        xb_LD = _rmsnorm(x_LD, rms_ffn[l])
        gate_LF = xb_LD @ w1[l].T
        x_LD = x_LD + (gate_LF / (1 + np.exp(-gate_LF)) * (xb_LD @ w3[l].T)) @ w2[l].T
    return _rmsnorm(x_LD, rms_final) @ wcls.T


def test_transformers_logits_match_llama2c_forward(hf_dir, hf_tokenizer):
    import torch
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir)
    tokens_L = hf_tokenizer(SENTENCES[0]).input_ids
    with torch.no_grad():
        logits_LV = model(torch.tensor([tokens_L])).logits[0].numpy()
    np.testing.assert_allclose(logits_LV, llama2c_forward(CHECKPOINT, tokens_L), atol=1e-4, rtol=1e-4)


def test_untied_classifier_and_full_attention(tmp_path, hf_tokenizer):
    """A random llama2.c checkpoint with negative vocab_size (own wcls) and n_kv_heads == n_heads."""
    import torch
    import transformers
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = 32, 48, 2, 4, 4, 512, 64
    head_size = dim // n_heads
    num_floats = (2 * vocab_size * dim + 2 * n_layers * dim + 4 * n_layers * dim * dim
                  + 3 * n_layers * hidden_dim * dim + dim + seq_len * head_size)
    checkpoint = tmp_path / "untied.bin"
    header = struct.pack("<7i", dim, hidden_dim, n_layers, n_heads, n_kv_heads, -vocab_size, seq_len)
    weights = np.random.default_rng(0).normal(0.0, 0.3, num_floats).astype("<f4")
    checkpoint.write_bytes(header + weights.tobytes())
    out_dir = tmp_path / "untied"
    convert_llama2c(str(checkpoint), str(TOKENIZER), str(out_dir))
    modes = {path.name: path.stat().st_mode & 0o777 for path in out_dir.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes  # readable by whoever reads the config
    model = transformers.AutoModelForCausalLM.from_pretrained(out_dir)
    assert not model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    tokens_L = hf_tokenizer(SENTENCES[1]).input_ids
    with torch.no_grad():
        logits_LV = model(torch.tensor([tokens_L])).logits[0].numpy()
    np.testing.assert_allclose(logits_LV, llama2c_forward(checkpoint, tokens_L), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------
# Greedy decoding: transformers and alignjax.


def test_transformers_greedy_story(hf_tokenizer, hf_greedy_tokens):
    text = hf_tokenizer.decode(hf_greedy_tokens, skip_special_tokens=True)
    print(f"greedy {len(hf_greedy_tokens)} tokens: {text!r}")
    assert len(hf_greedy_tokens) == NUM_NEW_TOKENS
    assert text.startswith(STORY_PREFIX)


def test_alignjax_greedy_matches_transformers(hf_dir, hf_greedy_tokens):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from alignjax.models import from_pretrained

    model = from_pretrained(str(hf_dir))
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, tokens_BL, positions_BL, segment_ids_BL):
        return nnx.merge(graphdef, state)(tokens_BL, positions_BL, segment_ids_BL)

    # One fixed-size buffer: the causal mask keeps the not-yet-filled slots from affecting earlier
    # positions, so a single compile serves every step.
    B, L = 1, NUM_NEW_TOKENS + 8
    tokens_BL = np.zeros((B, L), np.int32)
    tokens_BL[:, 0] = BOS
    positions_BL = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
    segment_ids_BL = jnp.ones((B, L), jnp.int32)
    generated = []
    for n in range(1, NUM_NEW_TOKENS + 1):
        logits_BLV = forward(state, jnp.asarray(tokens_BL), positions_BL, segment_ids_BL)
        assert logits_BLV.shape[:2] == (B, L) and logits_BLV.dtype == jnp.float32
        next_token = int(jnp.argmax(logits_BLV[0, n - 1]))
        tokens_BL[0, n] = next_token
        generated.append(next_token)
        if next_token == EOS:
            break
    assert generated == hf_greedy_tokens


# ---------------------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("num_bytes", [10, 100_000])
def test_truncated_checkpoint_raises(tmp_path, num_bytes):
    truncated = tmp_path / "truncated.bin"
    with open(CHECKPOINT, "rb") as f:
        truncated.write_bytes(f.read(num_bytes))
    out_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(str(truncated))) as excinfo:
        convert_llama2c(str(truncated), str(TOKENIZER), str(out_dir))
    if num_bytes > 28:
        assert f"file has {num_bytes} bytes" in str(excinfo.value)
    assert not out_dir.exists()


def test_script_converts(tmp_path):
    """The CLI in scripts/ runs end to end (as documented in its docstring)."""
    repo_root = pathlib.Path(__file__).resolve().parents[1]
    out_dir = tmp_path / "cli"
    # The script imports the installed package; make this checkout importable without `pip install -e .`.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root),
                                                                     os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, str(repo_root / "scripts" / "convert_llama2c.py"), "--checkpoint",
                    str(CHECKPOINT), "--tokenizer", str(TOKENIZER), "--out", str(out_dir)],
                   check=True, cwd=repo_root, env=env)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out_dir.iterdir()}
