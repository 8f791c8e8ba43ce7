"""The Bayesian binomial-normal model (method `bayes`) against an independent R integration, and against itself.

tests/make_bayes_fixtures.R integrates the same posterior with nested adaptive integrate() calls (over each
study's theta_i, over mu, over tau) and evaluates its CDFs at our quantiles (tests/fixtures/bayes_points.tsv);
the gap, divided by the density there, is the error of our quantile, held to 1e-5. Our quadrature is held
to itself: doubling panels and nodes (and the per-study Gauss-Hermite nodes, 61 -> 121)
moves nothing by more than 1e-7.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES
from metaprop.bayes import (
    Posterior,
    RatePosterior,
    bayes_note,
    difference_summary,
    prob_difference_greater,
)
from scipy import stats
from scipy.special import expit

CASES = {
    "cart_k4_hn0.5": ([27, 14, 27, 29], [30, 20, 29, 32], "half-normal", 0.5),
    "blin_k1_hn0.5": ([123], [261], "half-normal", 0.5),
    "zero_k3_hn0.5": ([0, 0, 0], [15, 22, 30], "half-normal", 0.5),
    "cart_k4_hc1": ([27, 14, 27, 29], [30, 20, 29, 32], "half-cauchy", 1.0),
    "all_k2_hn1": ([12, 20], [12, 20], "half-normal", 1.0),
}
QUANTITIES = {"mu": (0.025, 0.5, 0.975), "tau": (0.025, 0.5, 0.975), "theta_new": (0.025, 0.975)}
_POSTERIORS = {}


def posterior(case, **kwargs):
    key = (case, tuple(sorted(kwargs.items())))
    if key not in _POSTERIORS:
        events, n, family, scale = CASES[case]
        _POSTERIORS[key] = Posterior(events, n, 2.0, family, scale, **kwargs)
    return _POSTERIORS[key]


def quantile(post, quantity, p):
    return {"mu": post.mu_quantile, "tau": post.tau_quantile, "theta_new": post.predictive_quantile}[quantity](p)


def density(post, quantity, x):
    if quantity == "mu":
        return post.mu_pdf([x])[0]
    if quantity == "tau":
        h = 1e-5 * max(x, 1e-3)
        return (post.tau_cdf(x + h)[0] - post.tau_cdf(x - h)[0]) / (2 * h)
    h = 1e-4
    return (post.predictive_cdf([x + h])[0] - post.predictive_cdf([x - h])[0]) / (2 * h)


def write_points():
    """Our quantiles, for tests/make_bayes_fixtures.R (run `python tests/test_bayes.py` to refresh)."""
    rows = [{"case": case, "quantity": q, "p": p, "x": f"{quantile(posterior(case), q, p):.12f}"}
            for case in CASES for q, ps in QUANTITIES.items() for p in ps]
    pd.DataFrame(rows).to_csv(FIXTURES / "bayes_points.tsv", sep="\t", index=False)


REFERENCE = FIXTURES / "bayes_reference.tsv"


@pytest.mark.parametrize("row", pd.read_csv(REFERENCE, sep="\t").to_dict("records") if REFERENCE.exists() else [],
                         ids=lambda r: f"{r['case']}-{r['quantity']}-{r['p']}")
def test_quantiles_match_r_integration(row):
    post = posterior(row["case"])
    ours = quantile(post, row["quantity"], row["p"])
    # R evaluated its CDF at x, our quantile when the points were written (with fewer Gauss-Hermite nodes, 21, so
    # up to 2e-5 away); one Newton step from x gives R's quantile (error ~ (x - quantile)^2, far below 1e-9)
    assert ours == pytest.approx(row["x"], abs=1e-4)
    r_quantile = row["x"] - (row["cdf_r"] - row["p"]) / density(post, row["quantity"], row["x"])
    assert ours == pytest.approx(r_quantile, abs=1e-5)


def test_reference_covers_every_case():
    ref = pd.read_csv(REFERENCE, sep="\t")
    assert set(ref["case"]) == set(CASES)
    assert len(ref) == len(CASES) * 8


@pytest.mark.parametrize("case", list(CASES))
def test_stable_when_quadrature_doubles(case):
    base, fine = posterior(case), posterior(case, q=24, mu_panels=16, tau_width=0.5, nagq=121)
    for quantity, ps in QUANTITIES.items():
        for p in ps:
            assert quantile(fine, quantity, p) == pytest.approx(quantile(base, quantity, p), abs=1e-7)
    assert fine.log_marginal_likelihood == pytest.approx(base.log_marginal_likelihood, abs=1e-8)


def test_one_study_flat_likelihood_returns_the_prior_of_tau():
    # one study says nothing about tau: its posterior is close to the half-normal(0.5) prior (not equal: mu and tau
    # are not separately identified, so the likelihood of theta_1 tilts it a little)
    post = posterior("blin_k1_hn0.5")
    assert post.tau_quantile(0.5) == pytest.approx(0.5 * stats.norm.ppf(0.75), rel=0.05)
    assert "one study" in bayes_note(np.array([123.0]), np.array([261.0]), 2.0, "half-normal", 0.5)


def test_normal_limit_is_conjugate():
    # a tiny tau prior and huge homogeneous trials: the posterior of mu tends to the normal-normal conjugate one
    events, n = np.array([40_000.0, 40_000.0]), np.array([100_000.0, 100_000.0])
    post = Posterior(events, n, 2.0, "half-normal", 1e-4)
    y = np.log(events.sum() / (n.sum() - events.sum()))
    v = 1 / (n.sum() * 0.4 * 0.6)
    prec = 1 / v + 1 / 4.0
    assert post.mu_quantile(0.5) == pytest.approx(y / v / prec, abs=1e-4)
    assert post.mu_sd_posterior() == pytest.approx(prec**-0.5, rel=1e-3)


def test_all_zero_and_all_events_are_proper():
    zero = posterior("zero_k3_hn0.5")
    assert 0 < expit(zero.mu_quantile(0.025)) < expit(zero.mu_quantile(0.975)) < 0.1
    full = posterior("all_k2_hn1")
    assert 0.7 < expit(full.mu_quantile(0.025)) < expit(full.mu_quantile(0.975)) < 1
    assert "0 events" in bayes_note(np.zeros(3), np.array([15.0, 22, 30]), 2.0, "half-normal", 0.5)


def test_difference_against_monte_carlo_of_the_grid():
    # P(rate_a - rate_b > delta) by quadrature against the same sum done the other way round, and against sampling
    a, b = RatePosterior(posterior("cart_k4_hn0.5")), RatePosterior(posterior("blin_k1_hn0.5"))
    for delta in (0.0, 0.1, 0.2, 0.4):
        forward = float(a.w @ b.rate_cdf(a.rate - delta))
        backward = float(b.w @ (1.0 - a.rate_cdf(b.rate + delta)))
        assert forward == pytest.approx(backward, abs=1e-7)
        assert prob_difference_greater(a, b, delta) == pytest.approx(forward, abs=1e-7)
    rng = np.random.default_rng(1)
    ra = rng.choice(a.rate, size=400_000, p=a.w)
    rb = rng.choice(b.rate, size=400_000, p=b.w)
    assert np.mean(ra - rb > 0.2) == pytest.approx(prob_difference_greater(a, b, 0.2), abs=5e-3)
    summary = difference_summary(a, b, [0, 0.1, 0.2])
    assert summary["ci_low"] < summary["median"] < summary["ci_high"]
    assert prob_difference_greater(a, b, summary["median"]) == pytest.approx(0.5, abs=1e-9)
    assert summary["prob"][0.1] == pytest.approx(prob_difference_greater(a, b, 0.1))


def test_difference_stable_when_grid_doubles():
    a, b = posterior("cart_k4_hn0.5"), posterior("blin_k1_hn0.5")
    coarse = difference_summary(RatePosterior(a), RatePosterior(b), [0.1, 0.2])
    fine = difference_summary(RatePosterior(a, panels=64, q=24), RatePosterior(b, panels=64, q=24), [0.1, 0.2])
    for key in ("median", "ci_low", "ci_high"):
        assert fine[key] == pytest.approx(coarse[key], abs=1e-7)
    for delta in (0.1, 0.2):
        assert fine["prob"][delta] == pytest.approx(coarse["prob"][delta], abs=1e-7)


def test_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="unknown prior of tau"):
        Posterior([1], [10], 2.0, "uniform", 1.0)


if __name__ == "__main__":
    write_points()


def test_posterior_figure_marks_intervals_and_probabilities():
    from metaprop.posterior_plot import posterior_figure

    posts = {"CAR-T": posterior("cart_k4_hn0.5"), "Blinatumomab": posterior("blin_k1_hn0.5")}
    fig = posterior_figure(posts, [0.0, 0.1, 0.2], "complete response")
    assert len(fig.axes) == 2
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    a, b = RatePosterior(posts["CAR-T"]), RatePosterior(posts["Blinatumomab"])
    for delta in (0.0, 0.1, 0.2):
        assert f"P(difference > {delta:+.2f}) = {prob_difference_greater(a, b, delta):.3f}" in text
    assert fig.axes[1].get_xlabel() == "Difference in pooled rate: CAR-T minus Blinatumomab"
    single = posterior_figure({"CAR-T": posts["CAR-T"]}, [0.1], "complete response")
    assert len(single.axes) == 1
