"""The on-policy math against independent NumPy implementations on random inputs: GAE, whitening, the KL
estimators and the adaptive coefficient, PPO's clipped policy and value losses, RLOO and GRPO advantages, RSO's
rejection sampling and best-of-n selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignjax.losses.kl import kl_per_token
from alignjax.losses.policy_gradient import clipped_policy_loss, clipped_value_loss
from alignjax.rl.advantages import gae, grpo_advantages, rloo_advantages, whiten
from alignjax.rl.algorithms.rso import rejection_sample, rso_pairs
from alignjax.rl.best_of_n import best_of_n_table
from alignjax.rl.kl import AdaptiveKLController

N, T = 6, 9


def _random_mask(rng):
    """Answers of lengths 1..T, contiguous from t = 0, as PPO rollouts are."""
    lengths = rng.integers(1, T + 1, size=N)
    return (np.arange(T) < lengths[:, None]).astype(np.float64)


def _gae_numpy(rewards, values, mask, gamma, lam):
    advantages = np.zeros_like(rewards)
    for n in range(N):
        length = int(mask[n].sum())
        next_advantage = 0.0
        for t in reversed(range(length)):
            next_value = values[n, t + 1] if t + 1 < length else 0.0
            delta = rewards[n, t] + gamma * next_value - values[n, t]
            next_advantage = delta + gamma * lam * next_advantage
            advantages[n, t] = next_advantage
    return advantages, (advantages + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_equals_the_recursion(gamma, lam):
    rng = np.random.default_rng(0)
    mask = _random_mask(rng)
    rewards, values = rng.normal(size=(N, T)) * mask, rng.normal(size=(N, T))  # values past the end are ignored
    advantages, returns = gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), gamma=gamma, lam=lam)
    want_advantages, want_returns = _gae_numpy(rewards, values * mask, mask, gamma, lam)
    np.testing.assert_allclose(advantages, want_advantages, atol=1e-5)
    np.testing.assert_allclose(returns, want_returns, atol=1e-5)


def test_whiten_standardises_the_masked_entries_only():
    rng = np.random.default_rng(1)
    mask = _random_mask(rng)
    x = rng.normal(3.0, 2.0, size=(N, T))
    kept = x[mask > 0]
    want = (x - kept.mean()) / np.sqrt(kept.var(ddof=1) + 1e-8) * mask
    np.testing.assert_allclose(whiten(jnp.asarray(x), jnp.asarray(mask)), want, atol=1e-5)
    np.testing.assert_allclose(
        whiten(jnp.asarray(x), jnp.asarray(mask), shift_mean=False), (want + kept.mean()) * mask, atol=1e-5
    )


def test_kl_estimators():
    rng = np.random.default_rng(2)
    logp, ref = rng.normal(-2, 1, size=(N, T)), rng.normal(-2, 1, size=(N, T))
    np.testing.assert_allclose(kl_per_token(logp, ref, "k1"), logp - ref, atol=1e-6)
    ratio = np.exp(ref - logp)
    np.testing.assert_allclose(kl_per_token(logp, ref, "k3"), ratio - 1 - np.log(ratio), atol=1e-5)
    assert np.all(np.asarray(kl_per_token(logp, ref, "k3")) >= 0)
    with pytest.raises(ValueError, match="k2"):
        kl_per_token(logp, ref, "k2")


def test_kl_estimates_are_unbiased_for_the_true_kl():
    """Sampled from p, both estimators average to KL(p || q) over a categorical distribution."""
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    samples = rng.choice(5, size=400_000, p=p)
    true_kl = float(np.sum(p * np.log(p / q)))
    for estimator in ("k1", "k3"):
        estimate = float(np.mean(kl_per_token(np.log(p[samples]), np.log(q[samples]), estimator)))
        assert abs(estimate - true_kl) < 0.01, (estimator, estimate, true_kl)


def test_adaptive_kl_coefficient_follows_ziegler():
    fixed = AdaptiveKLController(0.1)
    fixed.update(kl=50.0, num_answers=64)
    assert fixed.coef == 0.1
    adaptive = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    coef = 0.1
    for kl in (12.0, 6.6, 1.0, 6.0):
        adaptive.update(kl, num_answers=256)
        coef *= 1 + np.clip(kl / 6.0 - 1, -0.2, 0.2) * 256 / 10000
        assert adaptive.coef == pytest.approx(coef, rel=1e-12)


def _policy_loss_numpy(logp, old, adv, mask, eps):
    total = clipped = approx_kl = 0.0
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                ratio = np.exp(logp[n, t] - old[n, t])
                a = ratio * adv[n, t]
                b = min(max(ratio, 1 - eps), 1 + eps) * adv[n, t]
                total += -min(a, b)
                clipped += float(b < a)
                approx_kl += (ratio - 1) - np.log(ratio)
    return total, mask.sum(), clipped, approx_kl


@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_clipped_policy_loss(eps):
    rng = np.random.default_rng(4)
    mask = _random_mask(rng)
    old = rng.normal(-2, 1, size=(N, T))
    logp = old + rng.normal(0, 0.3, size=(N, T))  # ratios inside and outside [1 - eps, 1 + eps]
    adv = rng.normal(size=(N, T))
    out = clipped_policy_loss(*map(jnp.asarray, (logp, old, adv, mask)), clip_eps=eps)
    total, weight, clipped, approx_kl = _policy_loss_numpy(logp, old, adv, mask, eps)
    assert 0 < clipped < weight  # both cases occur
    np.testing.assert_allclose(out.total, total, rtol=1e-5)
    assert float(out.weight) == weight
    np.testing.assert_allclose(out.metrics["clip_fraction"], clipped, rtol=1e-6)
    np.testing.assert_allclose(out.metrics["approx_kl"], approx_kl, rtol=1e-4)


def test_clipped_policy_gradient_vanishes_where_clipped():
    """A positive advantage with the ratio above 1 + eps (or a negative one below 1 - eps) passes no gradient."""
    old = jnp.zeros((1, 4))
    logp = jnp.log(jnp.array([[1.5, 1.1, 0.5, 0.9]]))
    adv = jnp.array([[1.0, 1.0, -1.0, -1.0]])
    grad = jax.grad(lambda lp: clipped_policy_loss(lp, old, adv, jnp.ones((1, 4)), clip_eps=0.2).total)(logp)
    assert grad[0, 0] == 0 and grad[0, 2] == 0
    np.testing.assert_allclose(grad[0, 1], -1.1, rtol=1e-5)  # d(-ratio * A)/dlogp = -ratio * A
    np.testing.assert_allclose(grad[0, 3], 0.9, rtol=1e-5)


def test_clipped_value_loss():
    rng = np.random.default_rng(5)
    mask = _random_mask(rng)
    old, returns = rng.normal(size=(N, T)), rng.normal(size=(N, T))
    values = old + rng.normal(0, 0.4, size=(N, T))
    eps = 0.2
    out = clipped_value_loss(*map(jnp.asarray, (values, old, returns, mask)), clip_eps=eps)
    total = clipped = 0.0
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                v_clip = old[n, t] + min(max(values[n, t] - old[n, t], -eps), eps)
                a, b = (values[n, t] - returns[n, t]) ** 2, (v_clip - returns[n, t]) ** 2
                total += 0.5 * max(a, b)
                clipped += float(b > a)
    assert 0 < clipped < mask.sum()
    np.testing.assert_allclose(out.total, total, rtol=1e-5)
    np.testing.assert_allclose(out.metrics["value_clip_fraction"], clipped, rtol=1e-6)
    assert float(out.weight) == mask.sum()


def test_rloo_advantages_leave_one_out():
    rng = np.random.default_rng(6)
    rewards = rng.normal(size=(5, 4))
    want = np.array([[r[i] - np.mean(np.delete(r, i)) for i in range(4)] for r in rewards])
    np.testing.assert_allclose(rloo_advantages(jnp.asarray(rewards)), want, atol=1e-6)


def test_grpo_advantages_normalise_each_group():
    rng = np.random.default_rng(7)
    rewards = rng.normal(size=(5, 6))
    rewards[0] = 1.0  # a group that all agree: advantage 0, not NaN
    mean = rewards.mean(axis=1, keepdims=True)
    std = np.array([[np.sqrt(np.sum((r - r.mean()) ** 2) / (len(r) - 1))] for r in rewards])
    np.testing.assert_allclose(grpo_advantages(jnp.asarray(rewards)), (rewards - mean) / (std + 1e-4), atol=1e-5)
    np.testing.assert_allclose(grpo_advantages(jnp.asarray(rewards), scale=False), rewards - mean, atol=1e-6)
    assert np.all(np.asarray(grpo_advantages(jnp.asarray(rewards)))[0] == 0)


def test_rejection_sampling_follows_the_optimal_policy():
    """Accepting one of K uniform candidates with probability exp((r - r_max) / beta) draws candidate i with
    probability proportional to exp(r_i / beta): the tilted policy pi_sft * exp(r / beta) restricted to them."""
    rng = np.random.default_rng(8)
    rewards, beta = np.array([0.0, 0.5, 1.0, 1.2]), 0.5
    counts = np.bincount([rejection_sample(rewards, beta, 1, rng)[0] for _ in range(20000)], minlength=4)
    want = np.exp(rewards / beta) / np.exp(rewards / beta).sum()
    np.testing.assert_allclose(counts / counts.sum(), want, atol=0.015)


def test_rejection_sampling_accepts_distinct_candidates_and_pairs_them_by_reward():
    rng = np.random.default_rng(9)
    rewards_BK = rng.normal(size=(50, 6))
    for rewards in rewards_BK[:10]:
        picked = rejection_sample(rewards, 0.3, 4, rng)
        assert len(set(picked)) == 4
    chosen, rejected = rso_pairs(rewards_BK, 0.3, rng)
    assert np.all(chosen != rejected)
    assert np.all(rewards_BK[np.arange(50), chosen] >= rewards_BK[np.arange(50), rejected])
    with pytest.raises(ValueError, match="cannot accept"):
        rejection_sample(rewards_BK[0], 0.3, 7, rng)


def test_best_of_n_keeps_the_highest_reward_among_the_first_n():
    rng = np.random.default_rng(10)
    rewards, gold = rng.normal(size=(30, 16)), rng.integers(0, 2, size=(30, 16)).astype(float)
    rewards[0, :4] = 2.0  # a tie: the first maximum is kept
    table = best_of_n_table(rewards, [1, 4, 16], gold)
    for row in table:
        n = row["n"]
        picked = [int(np.flatnonzero(r[:n] == r[:n].max())[0]) for r in rewards]
        assert row["reward"] == pytest.approx(np.mean([r[i] for r, i in zip(rewards, picked)]))
        assert row["gold"] == pytest.approx(np.mean([g[i] for g, i in zip(gold, picked)]))
    assert table[0]["reward"] < table[1]["reward"] < table[2]["reward"]
