"""Statistics for LLM evaluation that report how sure a number is: rates, win rates, length control, rank
correlation and Bradley-Terry ratings, each with a percentile-bootstrap interval.

A score over a few hundred prompts is an estimate, and two checkpoints a point apart are often indistinguishable;
so every function returns its point estimate with an interval. The prompt is the resampling unit (for Bradley-Terry,
the comparison): the rows of all inputs are resampled jointly, so paired data stay paired, and a resample's
statistic that is nan (say, a correlation of a constant resample) is left out of the percentiles. Everything is
deterministic given `seed`: resample r takes the rows `rng.integers(0, n, size=n)` of the r-th such call on
`np.random.default_rng(seed)`.

An outcome is a judge's verdict for the system against the baseline (or for system_a against system_b): 1 a win,
0.5 a tie, 0 a loss. Ties count half a win in rates and enter every likelihood as soft labels (a binomial GLM with a
fractional response). Logistic fits use Newton's method (IRLS) with coefficients clipped to +-LOGIT_CAP: where the
maximum-likelihood estimate does not exist (perfect separation, e.g. a system that wins every prompt) the fit stops
at the cap instead of diverging, so the rate it implies is within 2e-9 of 0 or 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

LOGIT_CAP = 20.0  # |coefficient| bound of every logistic fit, in log-odds
_NEWTON_STEPS = 100
_OUTCOMES = (0.0, 0.5, 1.0)


class _Result:
    """`as_dict()` for the result dataclasses: their fields and the properties named in `_derived` (for reports)."""

    _derived: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**asdict(self), **{name: getattr(self, name) for name in self._derived}}


@dataclass(frozen=True)
class Estimate(_Result):
    """A single proportion or mean (accuracy, pass rate) over `n` prompts with its interval [low, high]."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class WinRate(_Result):
    """A system's head-to-head record against a baseline; `rate` counts ties as half a win."""

    wins: int
    ties: int
    losses: int
    rate: float
    low: float
    high: float
    _derived = ("n",)

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True)
class LengthControlled(_Result):
    """Length-controlled win rate (`rate`, [low, high]) beside the raw one, and the GLM's fitted coefficients."""

    rate: float
    low: float
    high: float
    raw_rate: float
    intercept: float
    length_coef: float
    n: int


@dataclass(frozen=True)
class Correlation(_Result):
    """Spearman's rho over `n` pairs with its bootstrap interval and two-sided p-value (no correlation)."""

    rho: float
    low: float
    high: float
    n: int
    p_value: float


@dataclass(frozen=True)
class Rating(_Result):
    """A Bradley-Terry strength: log-odds of beating the reference system (the first one, at 0); rank 1 is best."""

    system: Hashable
    strength: float
    low: float
    high: float
    rank: int
    _derived = ("elo",)

    @property
    def elo(self) -> float:
        """The strength on the Elo scale, the reference at 1000: 400 points are 10:1 odds."""
        return 1000.0 + 400.0 * self.strength / math.log(10.0)


def bootstrap_ci(
    statistic: Callable[..., float], *arrays, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of `statistic(*arrays)`, resampling the rows (first axis) of all arrays jointly.

    Args:
        statistic: maps the resampled arrays, in order, to a float; nan results are left out.
        *arrays: one or more arrays with the same number of rows (prompts).
        resamples: number of bootstrap resamples.
        confidence: coverage of the interval, in (0, 1).
        seed: seed of `np.random.default_rng`.

    Returns:
        (low, high), the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of the resampled statistic;
        (nan, nan) if every resample gave nan.
    """
    low, high = _bootstrap_interval(statistic, _paired_rows(arrays), resamples, confidence, seed)
    return float(low), float(high)


def mean_ci(values_N, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of per-prompt scores (e.g. 0/1 correctness) with its bootstrap interval.

    Args:
        values_N: one finite score per prompt.
        resamples, confidence, seed: as in `bootstrap_ci`.

    Returns:
        The Estimate: mean, interval and number of prompts.
    """
    values_N = _vector(values_N, "values")
    low, high = bootstrap_ci(np.mean, values_N, resamples=resamples, confidence=confidence, seed=seed)
    return Estimate(float(values_N.mean()), low, high, len(values_N))


def win_rate(outcomes_N, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> WinRate:
    """Win rate of a system against a baseline, ties counting half, with its bootstrap interval.

    Args:
        outcomes_N: per prompt, 1 (the system wins), 0.5 (tie) or 0 (the baseline wins).
        resamples, confidence, seed: as in `bootstrap_ci`.

    Returns:
        The WinRate: counts, rate and interval.
    """
    outcomes_N = _outcomes(outcomes_N, "outcomes")
    estimate = mean_ci(outcomes_N, resamples=resamples, confidence=confidence, seed=seed)
    wins, ties, losses = (int(np.sum(outcomes_N == value)) for value in (1.0, 0.5, 0.0))
    return WinRate(wins, ties, losses, estimate.value, estimate.low, estimate.high)


def length_controlled_win_rate(
    outcomes_N, system_lengths_N, baseline_lengths_N, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> LengthControlled:
    """Win rate with the judge's preference for longer answers regressed out (AlpacaEval 2's LC win rate).

    The judge's preference is modelled as p = sigmoid(intercept + length_coef * tanh(delta / std(delta))), with
    delta = system length - baseline length per prompt and std over the prompts (ddof=1, as AlpacaEval's pandas
    code; a zero std makes the feature 0). It is fitted by unpenalised maximum likelihood with the outcomes as soft
    labels, i.e. the binomial GLM statsmodels fits. The LC win rate is the prediction at delta = 0:
    sigmoid(intercept). The interval bootstraps the whole fit (feature scaling included) over prompts.

    Where this differs from AlpacaEval 2 (`alpaca_eval/metrics/glm_winrate.py`): theirs also has a per-system
    coefficient on an instruction-difficulty feature that was learned across many systems, and averages the
    prediction over instructions; with one system against one baseline that term is not identified, so it is dropped
    and the average reduces to sigmoid(intercept). They also fit with an L1 penalty chosen by cross-validation and a
    regularisation towards "gamed" baselines, none of which applies here. Their delta is baseline minus system
    (their length_coef has the opposite sign), and their lengths are characters; any unit gives the same fit here,
    since delta is divided by its std.

    Args:
        outcomes_N: per prompt, 1 (the system wins), 0.5 (tie) or 0 (the baseline wins).
        system_lengths_N: length of the system's answer per prompt (characters or tokens).
        baseline_lengths_N: length of the baseline's answer per prompt, in the same unit.
        resamples, confidence, seed: as in `bootstrap_ci`.

    Returns:
        The LengthControlled result: LC rate and interval, raw win rate, fitted intercept and length coefficient.
    """
    outcomes_N = _outcomes(outcomes_N, "outcomes")
    arrays = _paired_rows(
        (outcomes_N, _vector(system_lengths_N, "system_lengths"), _vector(baseline_lengths_N, "baseline_lengths"))
    )
    intercept, length_coef = _length_controlled_fit(*arrays)
    low, high = _bootstrap_interval(
        lambda *rows: special.expit(_length_controlled_fit(*rows)[0]), arrays, resamples, confidence, seed
    )
    rate, raw_rate, n = float(special.expit(intercept)), float(outcomes_N.mean()), len(outcomes_N)
    return LengthControlled(rate, float(low), float(high), raw_rate, float(intercept), float(length_coef), n)


def spearman(x_N, y_N, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Correlation:
    """Spearman rank correlation (average ranks for ties, as scipy.stats.spearmanr) with its bootstrap interval.

    Args:
        x_N, y_N: paired finite values, at least 3 pairs, neither constant.
        resamples, confidence, seed: as in `bootstrap_ci`.

    Returns:
        The Correlation: rho, interval, number of pairs and the two-sided p-value of no correlation, from the
        t-distribution as scipy.stats.spearmanr computes it.
    """
    x_N, y_N = _paired_rows((_vector(x_N, "x"), _vector(y_N, "y")))
    if len(x_N) < 3:
        raise ValueError(f"spearman needs at least 3 pairs, got {len(x_N)}")
    for name, values_N in (("x", x_N), ("y", y_N)):
        if np.all(values_N == values_N[0]):
            raise ValueError(f"{name} is constant: its rank correlation is undefined")
    rho = _rank_correlation(x_N, y_N)
    dof = len(x_N) - 2
    if abs(rho) == 1.0:  # t is infinite
        p_value = 0.0
    else:
        p_value = float(2.0 * stats.t.sf(abs(rho) * math.sqrt(dof / ((1.0 + rho) * (1.0 - rho))), dof))
    low, high = bootstrap_ci(_rank_correlation, x_N, y_N, resamples=resamples, confidence=confidence, seed=seed)
    return Correlation(rho, low, high, len(x_N), p_value)


def bradley_terry(
    comparisons: Iterable[tuple[Hashable, Hashable, float]],
    systems: Sequence[Hashable] | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Rating]:
    """Bradley-Terry strengths from pairwise verdicts: P(a beats b) = sigmoid(strength_a - strength_b).

    Fitted by maximum likelihood, a tie counting half a win each way (soft labels), with the first system (the
    baseline) fixed at strength 0: a strength is the log-odds of beating it, and its interval is that of the
    difference. Intervals bootstrap the comparisons themselves (not prompts: several comparisons of one prompt are
    resampled independently). In a resample that leaves a system unconnected to the reference, that system's
    strength is nan and left out. Strengths are clipped to +-LOGIT_CAP where the MLE is infinite (a system that
    never loses).

    Args:
        comparisons: (system_a, system_b, outcome) with outcome 1 (a wins), 0.5 (tie) or 0 (b wins).
        systems: every system, the reference first; default: in order of first appearance in `comparisons`.
        resamples, confidence, seed: as in `bootstrap_ci`.

    Returns:
        One Rating per system, best first.
    """
    names, index_a_M, index_b_M, outcomes_M = _index_comparisons(comparisons, systems)
    strengths_K = _bradley_terry_fit(index_a_M, index_b_M, outcomes_M, len(names))
    unconnected = [names[k] for k in np.flatnonzero(np.isnan(strengths_K))]
    if unconnected:
        raise ValueError(
            f"systems {unconnected} are linked to the reference {names[0]!r} by no chain of comparisons, "
            "so their strengths are not identified"
        )
    low_K, high_K = _bootstrap_interval(
        lambda a_M, b_M, o_M: _bradley_terry_fit(a_M, b_M, o_M, len(names)),
        (index_a_M, index_b_M, outcomes_M),
        resamples,
        confidence,
        seed,
    )
    order_K = np.argsort(-strengths_K, kind="stable")
    return [
        Rating(names[k], float(strengths_K[k]), float(low_K[k]), float(high_K[k]), rank)
        for rank, k in enumerate(order_K, start=1)
    ]


def _vector(values, name: str) -> np.ndarray:
    values_N = np.asarray(values, dtype=float)
    if values_N.ndim != 1 or values_N.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {values_N.shape}")
    bad_rows = np.flatnonzero(~np.isfinite(values_N))
    if bad_rows.size:
        raise ValueError(f"{name} has non-finite values at rows {bad_rows[:5].tolist()}")
    return values_N


def _outcomes(values, name: str) -> np.ndarray:
    outcomes_N = _vector(values, name)
    bad_values = np.unique(outcomes_N[~np.isin(outcomes_N, _OUTCOMES)])
    if bad_values.size:
        raise ValueError(f"{name} must be 1 (win), 0.5 (tie) or 0 (loss); got {bad_values[:5].tolist()}")
    return outcomes_N


def _paired_rows(arrays) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    rows = [a.shape[0] if a.ndim else None for a in arrays]
    if len(set(rows)) != 1 or not rows[0]:
        raise ValueError(f"the arrays must have the same, non-zero number of rows (prompts); got {rows}")
    return arrays


def _bootstrap_interval(
    statistic: Callable, arrays: Sequence[np.ndarray], resamples: int, confidence: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of a statistic with one value (shape ()) or K values (shape (K,)) per resample."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = []
    for _ in range(resamples):
        rows_N = rng.integers(0, n, size=n)
        values.append(statistic(*(a[rows_N] for a in arrays)))
    tail = 50.0 * (1.0 - confidence)
    with warnings.catch_warnings():  # a statistic that was nan in every resample has a nan interval
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(np.asarray(values, dtype=float), [tail, 100.0 - tail], axis=0)
    return low, high


def _fit_logistic(design_NP: np.ndarray, targets_N: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression on soft targets in [0, 1] by Newton's method (IRLS).

    Coefficients are clipped to +-LOGIT_CAP after each step, so under perfect separation the fit stops at the cap
    (the change falls to 0) instead of diverging; least squares solves the Newton system, so a column of zeros (a
    constant-zero feature) keeps its coefficient at 0 instead of failing on a singular Hessian.
    """
    coef_P = np.zeros(design_NP.shape[1])
    for _ in range(_NEWTON_STEPS):
        prob_N = special.expit(design_NP @ coef_P)
        gradient_P = design_NP.T @ (targets_N - prob_N)
        hessian_PP = design_NP.T @ (design_NP * (prob_N * (1.0 - prob_N))[:, None])
        step_P = np.linalg.lstsq(hessian_PP, gradient_P, rcond=None)[0]
        updated_P = np.clip(coef_P + step_P, -LOGIT_CAP, LOGIT_CAP)
        converged = np.max(np.abs(updated_P - coef_P), initial=0.0) < 1e-10
        coef_P = updated_P
        if converged:
            break
    return coef_P


def _length_controlled_fit(outcomes_N, system_lengths_N, baseline_lengths_N) -> np.ndarray:
    """(intercept, length_coef) of the LC GLM; see `length_controlled_win_rate`."""
    delta_N = system_lengths_N - baseline_lengths_N
    scale = delta_N.std(ddof=1) if len(delta_N) > 1 else 0.0
    feature_N = np.tanh(delta_N / scale) if scale > 0 else np.zeros_like(delta_N)
    return _fit_logistic(np.column_stack([np.ones_like(feature_N), feature_N]), outcomes_N)


def _rank_correlation(x_N, y_N) -> float:
    """Pearson correlation of average ranks; nan if either side is constant."""
    x_ranks_N = stats.rankdata(x_N) - (len(x_N) + 1) / 2
    y_ranks_N = stats.rankdata(y_N) - (len(y_N) + 1) / 2
    norm = math.sqrt(float(x_ranks_N @ x_ranks_N) * float(y_ranks_N @ y_ranks_N))
    return float(x_ranks_N @ y_ranks_N) / norm if norm > 0 else math.nan


def _index_comparisons(comparisons, systems):
    """(names, index_a_M, index_b_M, outcomes_M) from the comparisons, checked."""
    rows = [tuple(row) for row in comparisons]
    if not rows:
        raise ValueError("comparisons is empty")
    malformed = [row for row in rows if len(row) != 3]
    if malformed:
        raise ValueError(f"a comparison is (system_a, system_b, outcome); got {malformed[:3]}")
    names = list(dict.fromkeys(name for a, b, _ in rows for name in (a, b))) if systems is None else list(systems)
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"systems must be at least two distinct names, got {names}")
    index = {name: k for k, name in enumerate(names)}
    unknown = sorted({name for a, b, _ in rows for name in (a, b) if name not in index}, key=repr)
    if unknown:
        raise ValueError(f"comparisons name systems missing from `systems`: {unknown}")
    self_compared = sorted({a for a, b, _ in rows if a == b}, key=repr)
    if self_compared:
        raise ValueError(f"systems compared with themselves: {self_compared}")
    index_a_M = np.array([index[a] for a, _, _ in rows])
    index_b_M = np.array([index[b] for _, b, _ in rows])
    return names, index_a_M, index_b_M, _outcomes([outcome for *_, outcome in rows], "comparison outcomes")


def _bradley_terry_fit(index_a_M, index_b_M, outcomes_M, n_systems: int) -> np.ndarray:
    """Strengths with system 0 at 0; a system not linked to system 0 by the comparisons gets nan."""
    links = coo_matrix((np.ones(len(index_a_M)), (index_a_M, index_b_M)), shape=(n_systems, n_systems))
    _, component_K = connected_components(links, directed=False)
    free_K = component_K == component_K[0]
    free_K[0] = False
    design_MK = np.zeros((len(index_a_M), n_systems))
    design_MK[np.arange(len(index_a_M)), index_a_M] = 1.0
    design_MK[np.arange(len(index_b_M)), index_b_M] = -1.0
    strengths_K = np.full(n_systems, np.nan)
    strengths_K[0] = 0.0
    strengths_K[free_K] = _fit_logistic(design_MK[:, free_K], outcomes_M)
    return strengths_K
