"""alignjax logits equal transformers logits on the same weights, for every supported architecture."""

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax.models import from_pretrained

from hf_tiny import ARCHITECTURES, hf_logits, random_batch, save_hf_model

TOL = 1e-4


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def pair(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    hf_model = save_hf_model(request.param, directory)
    return hf_model, from_pretrained(str(directory))


def test_logits_match_full_batch(pair):
    hf_model, model = pair
    ids_BL, _ = random_batch(model.config.vocab_size)
    ours = np.asarray(model(jnp.asarray(ids_BL)))
    np.testing.assert_allclose(ours, hf_logits(hf_model, ids_BL), atol=TOL, rtol=0)


def test_logits_match_right_padded(pair):
    hf_model, model = pair
    ids_BL, mask_BL = random_batch(model.config.vocab_size, seed=1)
    ours = np.asarray(model(jnp.asarray(ids_BL), segment_ids_BL=jnp.asarray(mask_BL)))
    theirs = hf_logits(hf_model, ids_BL, mask_BL)
    real = mask_BL.astype(bool)
    assert np.abs(ours - theirs)[real].max() < TOL
    assert np.isfinite(ours).all()


def test_logits_match_left_padded_with_positions(pair):
    """Left padding (as in generation): positions count real tokens only, as transformers derives them."""
    hf_model, model = pair
    ids_BL, right_mask_BL = random_batch(model.config.vocab_size, seed=2)
    mask_BL = right_mask_BL[:, ::-1].copy()
    positions_BL = np.maximum(np.cumsum(mask_BL, axis=1) - 1, 0).astype(np.int32)
    ours = np.asarray(model(jnp.asarray(ids_BL), jnp.asarray(positions_BL), jnp.asarray(mask_BL)))
    theirs = hf_logits(hf_model, ids_BL, mask_BL)
    real = mask_BL.astype(bool)
    assert np.abs(ours - theirs)[real].max() < TOL


def test_padding_does_not_change_real_positions(pair):
    """A row's logits do not depend on what fills its padding."""
    _, model = pair
    ids_BL, mask_BL = random_batch(model.config.vocab_size, seed=3)
    noisy_BL = np.where(mask_BL == 1, ids_BL, (ids_BL + 7) % model.config.vocab_size)
    a = np.asarray(model(jnp.asarray(ids_BL), segment_ids_BL=jnp.asarray(mask_BL)))
    b = np.asarray(model(jnp.asarray(noisy_BL), segment_ids_BL=jnp.asarray(mask_BL)))
    real = mask_BL.astype(bool)
    np.testing.assert_array_equal(a[real], b[real])


def test_bfloat16_compute_is_close(pair):
    hf_model, model = pair
    ids_BL, _ = random_batch(model.config.vocab_size, seed=4)
    bf16 = from_pretrained(model.config.source, dtype="bfloat16")
    ours = np.asarray(bf16(jnp.asarray(ids_BL)))
    theirs = hf_logits(hf_model, ids_BL)
    # bfloat16 keeps ~3 significant digits: the logits move by a few percent of their scale, no more.
    assert np.abs(ours - theirs).max() < 0.05 * np.abs(theirs).max()


@pytest.mark.parametrize("padding", ["none", "left"])
def test_sliding_window_matches_transformers(tmp_path, padding):
    """A window (6) shorter than the sequence (16): each query sees only its 6 most recent tokens."""
    hf_model = save_hf_model("mistral", tmp_path, sliding_window=6)
    model = from_pretrained(str(tmp_path))
    ids_BL, right_mask_BL = random_batch(model.config.vocab_size, seed=4)
    mask_BL = np.ones_like(right_mask_BL) if padding == "none" else right_mask_BL[:, ::-1].copy()
    positions_BL = np.maximum(np.cumsum(mask_BL, axis=1) - 1, 0).astype(np.int32)
    ours = np.asarray(model(jnp.asarray(ids_BL), jnp.asarray(positions_BL), jnp.asarray(mask_BL)))
    theirs = hf_logits(hf_model, ids_BL, mask_BL)
    real = mask_BL.astype(bool)
    assert np.abs(ours - theirs)[real].max() < TOL
    model.config = model.config.replace(sliding_window=None)  # the window must matter for this check to mean much
    unwindowed = np.asarray(model(jnp.asarray(ids_BL), jnp.asarray(positions_BL), jnp.asarray(mask_BL)))
    assert np.abs(unwindowed - theirs)[real].max() > 100 * TOL
