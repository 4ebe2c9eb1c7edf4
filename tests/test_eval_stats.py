"""The evaluation statistics against independent implementations: a plain bootstrap loop and scipy's bootstrap,
hand counts, scipy.stats.spearmanr, statsmodels' binomial GLM (the length-controlled fit and Bradley-Terry), and
simulated judges whose length bias and system strengths are known."""

import math

import numpy as np
import pytest
import scipy.stats

from alignjax.eval.stats import (
    LOGIT_CAP,
    bootstrap_ci,
    bradley_terry,
    length_controlled_win_rate,
    mean_ci,
    spearman,
    win_rate,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _judge(rng, p_win_N, tie_fraction=0.1):
    """Outcomes 1 / 0 drawn with p_win_N, a `tie_fraction` of them replaced by ties."""
    outcomes_N = (rng.random(len(p_win_N)) < p_win_N).astype(float)
    outcomes_N[rng.random(len(p_win_N)) < tie_fraction] = 0.5
    return outcomes_N


def test_bootstrap_ci_equals_a_plain_loop_over_joint_resamples():
    rng = np.random.default_rng(1)
    numerators_N, denominators_N = rng.normal(size=37), rng.uniform(1, 2, size=37)

    def ratio_of_sums(numerators, denominators):  # not separable: the rows must be resampled jointly
        return numerators.sum() / denominators.sum()

    loop_rng = np.random.default_rng(7)
    resampled = []
    for _ in range(300):
        rows = loop_rng.integers(0, 37, size=37)
        resampled.append(numerators_N[rows].sum() / denominators_N[rows].sum())
    expected = np.percentile(resampled, [5.0, 95.0])

    low, high = bootstrap_ci(ratio_of_sums, numerators_N, denominators_N, resamples=300, confidence=0.9, seed=7)
    np.testing.assert_allclose([low, high], expected, rtol=1e-12)
    assert bootstrap_ci(ratio_of_sums, numerators_N, denominators_N, resamples=300, seed=8) != (low, high)


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    values_N = np.random.default_rng(2).exponential(size=200)
    standard_error = values_N.std() / math.sqrt(len(values_N))
    low, high = bootstrap_ci(np.mean, values_N, resamples=4000, seed=3)
    reference = scipy.stats.bootstrap(
        (values_N,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95, rng=4
    ).confidence_interval
    # Monte-Carlo noise between the two is about 0.06 standard errors; 90% or 99% would be 0.3 away
    assert abs(low - reference.low) < 0.15 * standard_error
    assert abs(high - reference.high) < 0.15 * standard_error


def test_bootstrap_ci_leaves_out_nan_statistics():
    values_N = np.arange(20.0)

    def mean_unless_first_is_small(values):
        return np.nan if values[0] < 5 else values.mean()

    loop_rng = np.random.default_rng(0)
    kept = []
    for _ in range(200):
        resample = values_N[loop_rng.integers(0, 20, size=20)]
        if resample[0] >= 5:
            kept.append(resample.mean())
    assert 0 < len(kept) < 200
    low, high = bootstrap_ci(mean_unless_first_is_small, values_N, resamples=200, seed=0)
    np.testing.assert_allclose([low, high], np.percentile(kept, [2.5, 97.5]), rtol=1e-12)
    assert all(math.isnan(bound) for bound in bootstrap_ci(lambda v: np.nan, values_N, resamples=10))


def test_mean_ci():
    correct_N = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    estimate = mean_ci(correct_N, resamples=500, seed=5)
    assert estimate.value == 0.7 and estimate.n == 10
    assert (estimate.low, estimate.high) == bootstrap_ci(np.mean, correct_N, resamples=500, seed=5)
    assert estimate.low < 0.7 < estimate.high
    assert estimate.as_dict() == {"value": 0.7, "low": estimate.low, "high": estimate.high, "n": 10}


def test_win_rate_counts_ties_as_half():
    outcomes = [1, 1, 0.5, 0, 1, 0.5, 0, 1, 1, 0]
    result = win_rate(outcomes, resamples=500, seed=0)
    assert (result.wins, result.ties, result.losses, result.n) == (5, 2, 3, 10)
    assert result.rate == pytest.approx((5 + 0.5 * 2) / 10)
    assert (result.low, result.high) == bootstrap_ci(np.mean, np.array(outcomes, float), resamples=500, seed=0)
    assert result.as_dict()["n"] == 10 and result.as_dict()["ties"] == 2


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [([1, 2, 0.3, 0], r"0\.3.*2"), ([], "non-empty"), ([1, float("nan")], "non-finite.*rows \\[1\\]")],
)
def test_win_rate_rejects_bad_outcomes(outcomes, message):
    with pytest.raises(ValueError, match=message):
        win_rate(outcomes)


def test_spearman_equals_scipy_with_ties():
    x_N = np.array([1, 2, 2, 3, 4, 5, 5, 5, 6, 7, 8, 8])
    y_N = np.array([2, 1, 3, 3, 5, 4, 6, 6, 5, 9, 7, 8])
    for y in (y_N, -y_N):
        expected = scipy.stats.spearmanr(x_N, y)
        result = spearman(x_N, y, resamples=300, seed=1)
        assert result.rho == pytest.approx(expected.statistic, abs=1e-12)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert result.low <= result.rho <= result.high and result.n == 12
    assert spearman([1, 2, 3, 4], [2, 4, 6, 9], resamples=10).p_value == 0.0


def test_spearman_rejects_bad_input():
    with pytest.raises(ValueError, match="same, non-zero number of rows"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="y is constant"):
        spearman([1, 2, 3], [4, 4, 4])
    with pytest.raises(ValueError, match="at least 3 pairs"):
        spearman([1, 2], [2, 1])


def test_length_controlled_fit_equals_statsmodels_glm():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(3)
    baseline_lengths_N = rng.integers(50, 800, size=300).astype(float)
    system_lengths_N = baseline_lengths_N + rng.normal(100, 250, size=300)
    delta_N = system_lengths_N - baseline_lengths_N
    feature_N = np.tanh(delta_N / np.std(delta_N, ddof=1))
    outcomes_N = _judge(rng, _sigmoid(0.3 + 1.2 * feature_N), tie_fraction=0.2)

    design = np.column_stack([np.ones(300), feature_N])
    glm = sm.GLM(outcomes_N, design, family=sm.families.Binomial()).fit(tol=1e-12)
    result = length_controlled_win_rate(outcomes_N, system_lengths_N, baseline_lengths_N, resamples=100, seed=0)
    np.testing.assert_allclose([result.intercept, result.length_coef], glm.params, atol=1e-6)
    assert result.rate == pytest.approx(_sigmoid(glm.params[0]))
    assert result.raw_rate == pytest.approx(outcomes_N.mean()) and result.n == 300


def test_length_controlled_win_rate_removes_a_length_bias():
    """Equal systems, a judge that prefers the longer answer and a system that answers longer."""
    rng = np.random.default_rng(4)
    baseline_lengths_N = rng.integers(100, 1000, size=600).astype(float)
    system_lengths_N = baseline_lengths_N + rng.normal(300, 300, size=600)
    delta_N = system_lengths_N - baseline_lengths_N
    outcomes_N = _judge(rng, _sigmoid(1.5 * np.tanh(delta_N / delta_N.std(ddof=1))))

    result = length_controlled_win_rate(outcomes_N, system_lengths_N, baseline_lengths_N, resamples=300, seed=0)
    assert result.raw_rate > 0.6
    assert result.low < 0.5 < result.high
    assert result.high - result.low < 0.2
    assert result.length_coef == pytest.approx(1.5, abs=0.5)
    raw = win_rate(outcomes_N, resamples=300, seed=0)
    assert raw.low > 0.5  # the raw rate's own interval excludes a tie


def test_length_controlled_win_rate_without_length_differences_is_the_raw_rate():
    outcomes_N = np.array([1, 0, 0.5, 1, 1, 0, 1, 0.5])
    lengths_N = np.full(8, 120.0)
    result = length_controlled_win_rate(outcomes_N, lengths_N, lengths_N, resamples=50)
    assert result.length_coef == 0.0
    assert result.rate == pytest.approx(outcomes_N.mean(), abs=1e-9)


def test_length_controlled_win_rate_survives_perfect_separation():
    lengths_N = np.arange(10.0)
    always_wins = length_controlled_win_rate(np.ones(10), lengths_N + 5, lengths_N, resamples=20)
    assert always_wins.rate == pytest.approx(1.0, abs=1e-8) and always_wins.intercept == LOGIT_CAP
    wins_when_longer_N = np.tile([5.0, -5.0], 5)
    outcomes_N = (wins_when_longer_N > 0).astype(float)
    separated = length_controlled_win_rate(outcomes_N, lengths_N + wins_when_longer_N, lengths_N, resamples=20)
    assert separated.length_coef == LOGIT_CAP and separated.rate == pytest.approx(0.5, abs=1e-6)


def test_length_controlled_win_rate_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="number of rows"):
        length_controlled_win_rate([1, 0, 1], [10, 20, 30], [10, 20])


def _simulate_comparisons(rng, true_strengths, count, tie_fraction):
    """Random pairs judged by the Bradley-Terry model; a `tie_fraction` of verdicts, drawn at random, are ties."""
    names = list(true_strengths)
    comparisons = []
    for _ in range(count):
        a, b = rng.choice(len(names), size=2, replace=False)
        p_a = _sigmoid(true_strengths[names[a]] - true_strengths[names[b]])
        outcome = 0.5 if rng.random() < tie_fraction else float(rng.random() < p_a)
        comparisons.append((names[a], names[b], outcome))
    return comparisons


def test_bradley_terry_equals_statsmodels_glm():
    sm = pytest.importorskip("statsmodels.api")
    truth = {"baseline": 0.0, "sft": 0.4, "dpo": 0.9, "ppo": -0.3}
    comparisons = _simulate_comparisons(np.random.default_rng(5), truth, 400, tie_fraction=0.1)
    names = list(truth)
    design = np.zeros((len(comparisons), len(names)))
    for row, (a, b, _) in enumerate(comparisons):
        design[row, names.index(a)] += 1.0
        design[row, names.index(b)] -= 1.0
    outcomes = np.array([outcome for *_, outcome in comparisons])
    glm = sm.GLM(outcomes, design[:, 1:], family=sm.families.Binomial()).fit(tol=1e-12)

    ratings = bradley_terry(comparisons, systems=names, resamples=100, seed=0)
    strengths = {rating.system: rating.strength for rating in ratings}
    np.testing.assert_allclose([strengths[name] for name in names], [0.0, *glm.params], atol=1e-6)
    assert [rating.rank for rating in ratings] == [1, 2, 3, 4]
    assert [rating.system for rating in ratings] == sorted(names, key=lambda name: -strengths[name])
    reference = next(rating for rating in ratings if rating.system == "baseline")
    assert reference.low == reference.high == 0.0 and reference.elo == 1000.0
    best = ratings[0]
    assert best.elo == pytest.approx(1000 + 400 * math.log10(math.exp(best.strength)))
    assert best.as_dict()["elo"] == best.elo


def test_bradley_terry_recovers_known_strengths():
    truth = {"a": 0.0, "b": 1.2, "c": -0.8, "d": 0.5, "e": 2.0}
    comparisons = _simulate_comparisons(np.random.default_rng(6), truth, 3000, tie_fraction=0.0)
    ratings = bradley_terry(comparisons, systems=list(truth), resamples=200, seed=1)
    assert [rating.system for rating in ratings] == ["e", "b", "d", "a", "c"]
    for rating in ratings:
        assert rating.low <= truth[rating.system] <= rating.high
        assert rating.high - rating.low < 0.5


def test_bradley_terry_caps_a_system_that_never_loses():
    comparisons = [("base", "ace", 0.0), ("base", "mid", 1.0), ("mid", "base", 1.0), ("ace", "mid", 1.0)] * 3
    ratings = bradley_terry(comparisons, resamples=30)
    assert ratings[0].system == "ace"
    assert ratings[0].strength <= LOGIT_CAP and ratings[0].strength > 10


@pytest.mark.parametrize(
    ("comparisons", "systems", "message"),
    [
        ([("a", "b", 0.7)], None, "comparison outcomes .*0.7"),
        ([("a", "a", 1.0), ("a", "b", 1.0)], None, "compared with themselves: \\['a'\\]"),
        ([("a", "b", 1.0), ("c", "b", 0.0)], ["a", "b"], "missing from `systems`: \\['c'\\]"),
        ([("a", "b", 1.0), ("c", "d", 0.0)], None, "systems \\['c', 'd'\\] are linked to the reference 'a' by no"),
        ([("a", "b", 1.0)], ["a", "b", "z"], "\\['z'\\]"),
        ([("a", "b")], None, "\\(system_a, system_b, outcome\\)"),
        ([], None, "empty"),
    ],
)
def test_bradley_terry_rejects_bad_comparisons(comparisons, systems, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry(comparisons, systems=systems, resamples=10)


def test_bad_resampling_arguments_are_named():
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="resamples"):
        win_rate([1, 0], resamples=0)
