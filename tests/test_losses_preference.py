"""The sequence-level losses against their papers' formulas, written out again here in NumPy (float64, loops).

Each loss is called under jax.jit on random float32 log-probs, with padding rows (garbage values, no tokens) that
must contribute nothing, ranked lists with padded responses and tied scores, and non-default hyperparameters.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignjax import losses
from alignjax.losses import Responses

B = 7  # the last row is padding

# name -> ((inputs, format, reference), default hyperparameters)
EXPECTED = {
    "dpo": (("responses", "pairs", True), {"beta": 0.1, "label_smoothing": 0.0, "sft_weight": 0.0}),
    "robust_dpo": (("responses", "pairs", True), {"beta": 0.1, "label_smoothing": 0.1}),
    "ipo": (("responses", "pairs", True), {"beta": 0.1}),
    "hinge": (("responses", "pairs", True), {"beta": 0.1}),
    "slic": (("responses", "pairs", False), {"delta": 1.0, "reg_weight": 0.1}),
    "simpo": (("responses", "pairs", False), {"beta": 2.0, "gamma_beta_ratio": 0.5}),
    "orpo": (("responses", "pairs", False), {"beta": 0.1}),
    "rrhf": (("responses", "ranked", False), {"reg_weight": 1.0}),
    "pro": (("responses", "ranked", False), {"sft_weight": 0.05, "min_score_gap": 1e-3}),
    "kto": (("responses", "unpaired", True), {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0}),
    "bradley_terry": (("rewards", "pairs", False), {"center_weight": 0.0}),
}


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _sigmoid(x):
    return math.exp(_log_sigmoid(x))


# ----------------------------------------------------------------------------------------------------------------
# Batches.


def _pairs(seed):
    rng = np.random.RandomState(seed)
    valid = np.ones((B, 2))
    valid[-1] = 0
    lengths = rng.randint(1, 9, (B, 2)).astype(np.float64)
    lengths[-1] = 0  # a padding row has no tokens: per-token values would divide by zero if it were not masked
    return dict(
        logps=-rng.uniform(0.1, 5.0, (B, 2)),
        ref=-rng.uniform(0.1, 5.0, (B, 2)),
        lengths=lengths,
        valid=valid,
        scores=np.tile([1.0, 0.0], (B, 1)),
        labels=np.zeros(B),
    )


def _ranked(seed, K=4):
    rng = np.random.RandomState(seed)
    d = _pairs(seed)
    valid = np.ones((B, K))
    valid[1, 2] = 0  # a padded response in the middle of the list
    valid[2, 1:] = 0  # a single response: nothing to rank
    valid[-1] = 0
    lengths = rng.randint(1, 9, (B, K)).astype(np.float64)
    lengths[valid == 0] = 0
    scores = rng.randint(0, 4, (B, K)).astype(np.float64) * 0.5
    scores[3] = [1.0, 2.0, 1.0, 2.0]  # ties at the top and the bottom
    scores[4] = 0.75  # all tied
    return dict(d, logps=-rng.uniform(0.1, 5.0, (B, K)), ref=-rng.uniform(0.1, 5.0, (B, K)), lengths=lengths,
                valid=valid, scores=scores)


def _unpaired(seed):
    d = _pairs(seed)
    d["labels"] = np.random.RandomState(seed + 100).randint(0, 2, B).astype(np.float64)
    d["valid"][0, 1] = 0  # no mismatched completion: left out of the KL estimate
    return d


def _responses(d):
    return Responses(
        logps_BK=jnp.asarray(d["logps"], jnp.float32),
        ref_logps_BK=jnp.asarray(d["ref"], jnp.float32),
        lengths_BK=jnp.asarray(d["lengths"], jnp.float32),
        valid_BK=jnp.asarray(d["valid"], jnp.float32),
        scores_BK=jnp.asarray(d["scores"], jnp.float32),
        labels_B=jnp.asarray(d["labels"], jnp.float32),
    )


def _as_float32(d):
    """The batch's values as the loss sees them (float32), in float64 for the reference formulas."""
    return {k: np.asarray(v, np.float32).astype(np.float64) for k, v in d.items()}


def _rows(d):
    """(row, indices of its valid responses) for each valid row: the formulas see nothing else."""
    for b in range(B):
        if d["valid"][b, 0] > 0:
            keep = [k for k in range(d["valid"].shape[1]) if d["valid"][b, k] > 0]
            yield b, keep


# ----------------------------------------------------------------------------------------------------------------
# The formulas, per valid row. Each returns (loss, implicit reward of each response).


def dpo_np(d, b, keep, *, beta, label_smoothing, sft_weight=0.0):
    (pw, pl), (rw, rl), (nw, _) = d["logps"][b], d["ref"][b], d["lengths"][b]
    x = beta * ((pw - rw) - (pl - rl))
    loss = -(1 - label_smoothing) * _log_sigmoid(x) - label_smoothing * _log_sigmoid(-x) - sft_weight * pw / nw
    return loss, [beta * (pw - rw), beta * (pl - rl)]


def robust_dpo_np(d, b, keep, *, beta, label_smoothing):
    (pw, pl), (rw, rl) = d["logps"][b], d["ref"][b]
    x = beta * ((pw - rw) - (pl - rl))
    eps = label_smoothing
    loss = (-(1 - eps) * _log_sigmoid(x) + eps * _log_sigmoid(-x)) / (1 - 2 * eps)
    return loss, [beta * (pw - rw), beta * (pl - rl)]


def ipo_np(d, b, keep, *, beta):
    (pw, pl), (rw, rl), (nw, nl) = d["logps"][b], d["ref"][b], d["lengths"][b]
    h = (pw - rw) / nw - (pl - rl) / nl
    return (h - 1 / (2 * beta)) ** 2, [beta * (pw - rw) / nw, beta * (pl - rl) / nl]


def hinge_np(d, b, keep, *, beta):
    (pw, pl), (rw, rl) = d["logps"][b], d["ref"][b]
    return max(0.0, 1 - beta * ((pw - rw) - (pl - rl))), [beta * (pw - rw), beta * (pl - rl)]


def slic_np(d, b, keep, *, delta, reg_weight):
    pw, pl = d["logps"][b]
    return max(0.0, delta - pw + pl) - reg_weight * pw, [pw, pl]


def simpo_np(d, b, keep, *, beta, gamma_beta_ratio):
    (pw, pl), (nw, nl) = d["logps"][b], d["lengths"][b]
    gamma = gamma_beta_ratio * beta
    return -_log_sigmoid(beta * pw / nw - beta * pl / nl - gamma), [beta * pw / nw, beta * pl / nl]


def orpo_np(d, b, keep, *, beta):
    aw, al = d["logps"][b] / d["lengths"][b]
    log_odds_w = aw - math.log(1 - math.exp(aw))
    log_odds_l = al - math.log(1 - math.exp(al))
    return -aw + beta * -_log_sigmoid(log_odds_w - log_odds_l), [aw, al]


def _best(d, b, keep):
    """The first valid response with the highest score."""
    return max(keep, key=lambda k: (d["scores"][b, k], -k))


def rrhf_np(d, b, keep, *, reg_weight):
    p = d["logps"][b] / np.maximum(d["lengths"][b], 1)
    s = d["scores"][b]
    rank = sum(max(0.0, p[i] - p[j]) for i in keep for j in keep if s[i] < s[j])
    return rank + reg_weight * -d["logps"][b, _best(d, b, keep)], list(p)


def pro_np(d, b, keep, *, sft_weight, min_score_gap):
    r = d["logps"][b] / np.maximum(d["lengths"][b], 1)
    s = d["scores"][b]
    y = sorted(keep, key=lambda k: (-s[k], k))  # y[0] > y[1] > ... by score, ties by index
    n = len(y)
    loss = 0.0
    for k in range(n - 1):
        T = {i: 1.0 / max(s[y[k]] - s[y[i]], min_score_gap) for i in range(k + 1, n)}
        T[k] = min(T.values())
        numerator = math.exp(r[y[k]] / T[k])
        denominator = sum(math.exp(r[y[i]] / T[i]) for i in range(k, n))
        loss += -math.log(numerator / denominator)
    return loss + sft_weight * -r[y[0]], list(r)


def bradley_terry_np(d, b, keep, *, center_weight):
    rew, s = d["logps"][b], d["scores"][b]
    pairs = [(i, j) for i in keep for j in keep if s[i] > s[j]]
    nll = sum(-_log_sigmoid(rew[i] - rew[j]) for i, j in pairs) / max(len(pairs), 1)
    return nll + center_weight * sum(rew[k] for k in keep) ** 2, list(rew)


def _reference(formula, d, **hp):
    """The summed loss, the number of valid rows and the summed preference metrics, from per-row formulas."""
    total, rows, metrics = 0.0, 0, dict.fromkeys(
        ["rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy", "logps/chosen", "logps/rejected"],
        0.0,
    )
    for b, keep in _rows(d):
        loss, rewards = formula(d, b, keep, **hp)
        total += loss
        rows += 1
        s = d["scores"][b]
        best = _best(d, b, keep)
        worst = min(keep, key=lambda k: (s[k], k))
        pairs = [(i, j) for i in keep for j in keep if s[i] > s[j]]
        metrics["rewards/chosen"] += rewards[best]
        metrics["rewards/rejected"] += rewards[worst]
        metrics["rewards/margin"] += rewards[best] - rewards[worst]
        metrics["rewards/accuracy"] += sum(rewards[i] > rewards[j] for i, j in pairs) / max(len(pairs), 1)
        metrics["logps/chosen"] += d["logps"][b, best]
        metrics["logps/rejected"] += d["logps"][b, worst]
    return total, rows, metrics


# (registered name, batch maker, formula, hyperparameters)
CASES = [
    ("dpo", _pairs, dpo_np, {}),
    ("dpo", _pairs, dpo_np, {"beta": 0.5, "label_smoothing": 0.2}),
    ("dpo", _pairs, dpo_np, {"beta": 0.3, "label_smoothing": 0.0, "sft_weight": 1.5}),
    ("robust_dpo", _pairs, robust_dpo_np, {}),
    ("robust_dpo", _pairs, robust_dpo_np, {"beta": 0.3, "label_smoothing": 0.25}),
    ("ipo", _pairs, ipo_np, {}),
    ("ipo", _pairs, ipo_np, {"beta": 0.7}),
    ("hinge", _pairs, hinge_np, {}),
    ("hinge", _pairs, hinge_np, {"beta": 0.4}),
    ("slic", _pairs, slic_np, {}),
    ("slic", _pairs, slic_np, {"delta": 2.5, "reg_weight": 0.5}),
    ("simpo", _pairs, simpo_np, {}),
    ("simpo", _pairs, simpo_np, {"beta": 1.5, "gamma_beta_ratio": 0.3}),
    ("orpo", _pairs, orpo_np, {}),
    ("orpo", _pairs, orpo_np, {"beta": 0.5}),
    ("rrhf", _ranked, rrhf_np, {}),
    ("rrhf", _ranked, rrhf_np, {"reg_weight": 0.3}),
    ("pro", _ranked, pro_np, {}),
    ("pro", _ranked, pro_np, {"sft_weight": 0.5, "min_score_gap": 0.1}),
    ("bradley_terry", _pairs, bradley_terry_np, {}),
    ("bradley_terry", _ranked, bradley_terry_np, {"center_weight": 0.1}),
]


@functools.cache
def _loss_and_grad(name):
    """The loss, with its gradient w.r.t. the policy's log-probs, jitted once per loss and batch shape.

    The hyperparameters are traced arguments (one compile serves every setting), so they must be values, never
    branched on in Python.
    """

    def total(logps_BK, r, hp):
        out = losses.get(name)(r._replace(logps_BK=logps_BK), **hp)
        return out.total, out

    jitted = jax.jit(jax.value_and_grad(total, has_aux=True))

    def run(r, **overrides):
        (_, out), grad_BK = jitted(r.logps_BK, r, {**losses.objective(name).hyperparameters(), **overrides})
        return out, grad_BK

    return run


@pytest.mark.parametrize("name,make,formula,hp", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_and_metrics_equal_their_formulas(name, make, formula, hp):
    hp = {**EXPECTED[name][1], **hp}
    for seed in range(3):
        d = make(seed)
        out, _ = _loss_and_grad(name)(_responses(d), **hp)
        total, rows, metrics = _reference(formula, _as_float32(d), **hp)
        np.testing.assert_allclose(float(out.total), total, rtol=1e-6, atol=1e-6)
        assert float(out.weight) == rows == B - 1
        expected = {k: v for k, v in metrics.items() if name != "bradley_terry" or k.startswith("rewards/")}
        assert set(out.metrics) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(float(out.metrics[key]), value, rtol=1e-6, atol=1e-6, err_msg=key)


def test_pro_temperatures_weigh_comparisons_by_score_gap():
    """One row worked through by hand: r = [-1, -2, -3] with scores [3, 1, 0], and a padded fourth response."""
    d = dict(
        logps=np.array([[-1.0, -2.0, -3.0, 0.0]]), ref=np.zeros((1, 4)), lengths=np.array([[1.0, 1.0, 1.0, 0.0]]),
        valid=np.array([[1.0, 1.0, 1.0, 0.0]]), scores=np.array([[3.0, 1.0, 0.0, 9.0]]), labels=np.zeros(1),
    )
    # k=1: gaps to y2, y3 are 2 and 3, so 1/T = [3, 2, 3]; k=2: gap 1, so 1/T = [1, 1].
    step1 = -(-1 * 3) + math.log(math.exp(-1 * 3) + math.exp(-2 * 2) + math.exp(-3 * 3))
    step2 = -(-2 * 1) + math.log(math.exp(-2 * 1) + math.exp(-3 * 1))
    out, _ = _loss_and_grad("pro")(_responses(d), sft_weight=0.0)
    np.testing.assert_allclose(float(out.total), step1 + step2, rtol=1e-6)


@pytest.mark.parametrize("name,make,hp", [(c[0], c[1], c[3]) for c in CASES] + [("kto", _unpaired, {})])
def test_padding_rows_carry_no_loss_and_no_gradient(name, make, hp):
    """Garbage in a padding row (no tokens, huge log-probs) changes neither the loss nor the gradient."""
    d = make(0)
    garbage = {**d, "logps": d["logps"].copy(), "ref": d["ref"].copy()}
    garbage["logps"][-1] = 1e4  # positive: log(1 - exp(a)) would be NaN for ORPO if the row were computed
    garbage["ref"][-1] = -1e4
    (clean, clean_grad_BK), (noisy, noisy_grad_BK) = (_loss_and_grad(name)(_responses(x), **hp) for x in (d, garbage))
    np.testing.assert_allclose(float(noisy.total), float(clean.total), rtol=1e-6)
    np.testing.assert_allclose(noisy_grad_BK, clean_grad_BK, rtol=1e-6)
    assert np.all(np.isfinite(clean_grad_BK)) and np.all(clean_grad_BK[-1] == 0)


def kto_np(d, *, beta, desirable_weight, undesirable_weight):
    kl_rows = [b for b, keep in _rows(d) if 1 in keep]
    z0 = max(0.0, sum(d["logps"][b, 1] - d["ref"][b, 1] for b in kl_rows) / len(kl_rows))
    total, rows, metrics = 0.0, 0, {"rewards/desirable": 0.0, "rewards/undesirable": 0.0, "fraction/desirable": 0.0}
    for b, _ in _rows(d):
        r = d["logps"][b, 0] - d["ref"][b, 0]
        if d["labels"][b] == 1:
            total += desirable_weight * (1 - _sigmoid(beta * (r - z0)))
            metrics["rewards/desirable"] += beta * r
            metrics["fraction/desirable"] += 1
        else:
            total += undesirable_weight * (1 - _sigmoid(beta * (z0 - r)))
            metrics["rewards/undesirable"] += beta * r
        rows += 1
    metrics["kl"] = z0 * rows
    return total, rows, metrics


@pytest.mark.parametrize("hp", [{}, {"beta": 0.5, "desirable_weight": 1.3, "undesirable_weight": 0.7}])
def test_kto_equals_its_formula(hp):
    hp = {**EXPECTED["kto"][1], **hp}
    for seed in range(3):
        d = _unpaired(seed)
        if seed == 1:
            d["logps"][:, 1] = d["ref"][:, 1] + 0.5  # a positive KL estimate (random ones are often clamped to 0)
        out, _ = _loss_and_grad("kto")(_responses(d), **hp)
        total, rows, metrics = kto_np(_as_float32(d), **hp)
        np.testing.assert_allclose(float(out.total), total, rtol=1e-6, atol=1e-6)
        assert float(out.weight) == rows
        assert set(out.metrics) == set(metrics)
        for key, value in metrics.items():
            np.testing.assert_allclose(float(out.metrics[key]), value, rtol=1e-6, atol=1e-6, err_msg=key)


def test_kto_kl_estimate_carries_no_gradient():
    d = _unpaired(0)
    d["logps"][:, 1] = d["ref"][:, 1] + 0.5  # z0 > 0: the clamp does not already cut the gradient
    _, grad_BK = _loss_and_grad("kto")(_responses(d))
    assert np.all(grad_BK[:, 1] == 0)
    assert np.all(grad_BK[:-1, 0] != 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_and_config(name):
    (inputs, format_, reference), hyperparameters = EXPECTED[name]
    found = losses.objective(name)
    assert (found.inputs, found.format, found.reference) == (inputs, format_, reference)
    assert losses.loss_config(name).to_dict() == {"name": name, **hyperparameters}
    assert losses.bind(losses.loss_config(name)).keywords == hyperparameters


def test_bind_rejects_a_field_the_loss_does_not_take():
    cfg = losses.loss_config("dpo", label_smoothing=0.2)
    cfg.name = "simpo"  # an override of the name on a config written for DPO
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.bind(cfg)
    with pytest.raises(ValueError, match="gamma"):
        losses.loss_config("dpo", gamma=1.0)
