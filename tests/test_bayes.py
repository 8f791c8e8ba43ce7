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
from metaprop.stats.bayes import (
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
    from metaprop.figures.posterior import posterior_figure

    posts = {"CAR-T": posterior("cart_k4_hn0.5"), "Blinatumomab": posterior("blin_k1_hn0.5")}
    fig = posterior_figure(posts, [0.0, 0.1, 0.2], "complete response")
    assert len(fig.axes) == 2
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    a, b = RatePosterior(posts["CAR-T"]), RatePosterior(posts["Blinatumomab"])
    for delta in (0.0, 0.1, 0.2):
        assert f"P(difference > {100 * delta:+g} points) = {prob_difference_greater(a, b, delta):.3f}" in text
    # percent and percentage points, as the tables and the text say them
    assert fig.axes[1].get_xlabel() == "Difference in pooled rate (percentage points):\nCAR-T minus Blinatumomab"
    assert fig.axes[0].get_xlabel() == "Pooled complete response rate (%)" and fig.axes[0].get_xlim() == (0, 100)
    single = posterior_figure({"CAR-T": posts["CAR-T"]}, [0.1], "complete response")
    assert len(single.axes) == 1


MIXED = ([4, 0, 8, 6], [189, 36, 30, 21])  # one study with no events beside three with some: both likelihood paths


def test_likelihood_values_and_mu_derivatives_are_the_glmm_quadrature():
    # the value-only likelihood is glmm._study_log_marginal's value, its mu derivatives those of the jets
    from metaprop.stats.bayes import _Likelihood
    from metaprop.stats.glmm import _study_log_marginal

    events, n = np.array([27.0, 14, 0, 12, 123]), np.array([30.0, 20, 15, 12, 261])
    mu, tau = np.array([[1.3], [0.2], [-2.0], [5.0]]), np.array([[0.3], [1.5], [4.0], [1e-6]])
    value, d1, d2 = _Likelihood(events, n, 61)(mu, tau, derivatives=True)
    jet, _ = _study_log_marginal(mu, tau, events, n, 61)
    assert value[:, 0] == pytest.approx(jet.v.sum(axis=1), rel=1e-14, abs=1e-12)
    assert d1[:, 0] == pytest.approx(jet.e.sum(axis=1), rel=1e-12, abs=1e-12)
    assert d2[:, 0] == pytest.approx(jet.ee.sum(axis=1), rel=1e-11, abs=1e-10)


@pytest.mark.parametrize("case", [*CASES, "mixed"])
def test_interpolated_likelihood_equals_every_node_evaluated(case):
    # the two-sided studies' log-likelihood along mu comes from a Chebyshev interpolant; evaluating it at every
    # quadrature node instead changes nothing beyond rounding
    events, n, family, scale = CASES[case] if case != "mixed" else (*MIXED, "half-cauchy", 1.0)
    fast, exact = Posterior(events, n, 2.0, family, scale), Posterior(events, n, 2.0, family, scale, exact=True)
    assert fast.log_marginal_likelihood == pytest.approx(exact.log_marginal_likelihood, abs=1e-12)
    assert np.abs(fast.mu.dens - exact.mu.dens).max() <= 1e-11 * np.abs(exact.mu.dens).max()
    p = [0.025, 0.5, 0.975]
    assert fast.mu_quantiles(p) == pytest.approx(exact.mu_quantiles(p), abs=1e-12)
    assert fast.predictive_quantiles([0.025, 0.975]) == pytest.approx(exact.predictive_quantiles([0.025, 0.975]),
                                                                       abs=1e-12)


def test_fast_path_equals_dense_brute_force_quadrature():
    # every node evaluated directly, twice the panels and Gauss-Legendre nodes, 121 Gauss-Hermite nodes: 1e-9
    events, n = MIXED
    fast = Posterior(events, n, 2.0, "half-normal", 0.5)
    dense = Posterior(events, n, 2.0, "half-normal", 0.5, q=24, mu_panels=16, tau_width=0.5, nagq=121, exact=True)
    p = [0.025, 0.5, 0.975]
    for f, d in ((fast.mu_quantiles, dense.mu_quantiles), (fast.tau_quantiles, dense.tau_quantiles),
                 (fast.predictive_quantiles, dense.predictive_quantiles)):
        assert f(p) == pytest.approx(d(p), abs=1e-9)
    assert fast.log_marginal_likelihood == pytest.approx(dense.log_marginal_likelihood, abs=1e-9)
    x = np.linspace(-6, -2, 9)
    assert fast.mu_cdf(x) == pytest.approx(dense.mu_cdf(x), abs=1e-9)


def test_quantiles_invert_the_cdfs():
    post = posterior("cart_k4_hc1")
    p = np.array([1e-13, 0.025, 0.5, 0.975])
    assert post.mu_cdf(post.mu_quantiles(p)) == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert post.tau_cdf(post.tau_quantiles(p[1:])) == pytest.approx(p[1:], abs=1e-13)
    assert post.predictive_cdf(post.predictive_quantiles(p[1:])) == pytest.approx(p[1:], abs=1e-13)
    assert post.mu_quantile(0.5) == post.mu_quantiles([0.5])[0]


def test_rate_cdf_interpolant_is_the_exact_cdf():
    post = posterior("cart_k4_hc1")
    rate = RatePosterior(post)
    x = np.linspace(post.mu.lo.min() - 1, post.mu.hi.max() + 1, 4001)
    assert rate.rate_cdf(expit(x)) == pytest.approx(post.mu_cdf(x), abs=1e-12)
    inside = x[(x > -5) & (x < 5)]
    r = expit(inside)
    assert rate.rate_pdf(r) == pytest.approx(post.mu_pdf(inside) / (r * (1 - r)), rel=1e-8, abs=1e-10)
    assert (rate.rate_pdf(expit(x)) >= 0).all()  # never negative, even where the posterior has no mass


def test_fit_is_integrated_once_per_data_and_prior():
    from metaprop.stats.bayes import fit

    events, n = [27, 14, 27, 29], [30, 20, 29, 32]
    first = fit(events, n, {"tau_scale": 0.5})
    assert fit(np.array(events, float), np.array(n, float)) is first  # 0.5 is the default
    assert fit(events, n, None, "half-cauchy", 1.0) is not first
    assert first.rate_posterior() is first.rate_posterior()


def test_posterior_curves_are_what_the_figure_draws():
    from metaprop.analysis.posterior_curves import RATES, outcome_curves, posterior_curves
    from metaprop.stats.bayes import difference_cdf_pdf, fit

    studies = pd.DataFrame({"outcome": "cr", "included": True, "modality": ["CAR-T"] * 4 + ["Blinatumomab"],
                            "events": [27, 14, 27, 29, 123], "n": [30, 20, 29, 32, 261]})
    curves = outcome_curves(studies, "cr", None, 0.95)
    a, b = fit([27, 14, 27, 29], [30, 20, 29, 32]), fit([123], [261])
    assert list(curves["groups"]) == ["CAR-T", "Blinatumomab"]
    same = posterior_curves({"CAR-T": a, "Blinatumomab": b}, [0.0, 0.1, 0.2])
    assert curves["difference"]["summary"] == same["difference"]["summary"]
    cart = curves["groups"]["CAR-T"]
    assert cart["median"] == pytest.approx(expit(a.mu_quantile(0.5)), abs=1e-15)
    assert cart["density"] == pytest.approx(a.mu_pdf(np.log(RATES / (1 - RATES))) / (RATES * (1 - RATES)), rel=1e-8,
                                            abs=1e-10)
    # the difference's density is the derivative of P(difference > d)
    ra, rb = a.rate_posterior(), b.rate_posterior()
    d, h = curves["difference"]["d"][::20], 1e-5
    slope = (difference_cdf_pdf(ra, rb, d + h)[0] - difference_cdf_pdf(ra, rb, d - h)[0]) / (2 * h)
    assert curves["difference"]["density"][::20] == pytest.approx(slope, abs=1e-5)
    assert min(cart["density"].min(), curves["difference"]["density"].min()) >= 0  # never a negative density
    assert 1 - difference_cdf_pdf(ra, rb, [0.1])[0][0] == pytest.approx(prob_difference_greater(ra, rb, 0.1), abs=1e-15)


def synthetic(k, mu=0.5, tau=0.5, zero_share=0.1, seed=1):
    """As benchmarks/scale.py: n uniform on 10..300, logit rate ~ N(mu, tau^2), a share of the studies with 0 events."""
    rng = np.random.default_rng([seed, k])
    n = rng.integers(10, 301, size=k)
    events = rng.binomial(n, expit(mu + tau * rng.standard_normal(k)))
    events[rng.random(k) < zero_share] = 0
    return events.astype(float), n.astype(float)


@pytest.fixture
def fresh_interpolants():
    from metaprop.stats import bayes

    bayes._SURROGATES.clear()
    yield bayes
    bayes._SURROGATES.clear()


P = [0.025, 0.5, 0.975]


@pytest.mark.parametrize("data", [synthetic(300), synthetic(250, -1.0, 0.0, 0.0)], ids=["tau-1.6-zeros", "tau-near-0"])
def test_large_k_path_agrees_with_exact_path(fresh_interpolants, data):
    # the sum of the studies' log-likelihoods interpolated over (mu, tau) against every node evaluated exactly
    events, n = data
    fast = Posterior(events, n, 2.0, "half-normal", 0.5, interpolate=True)
    exact = Posterior(events, n, 2.0, "half-normal", 0.5, interpolate=False)
    assert fast.likelihood_path == "interpolated" and exact.likelihood_path == "direct"
    for f, e in ((fast.mu_quantiles, exact.mu_quantiles), (fast.tau_quantiles, exact.tau_quantiles),
                 (fast.predictive_quantiles, exact.predictive_quantiles)):
        assert f(P) == pytest.approx(e(P), abs=1e-8)
    assert fast.mu_cdf_moments() == pytest.approx(exact.mu_cdf_moments(), abs=1e-12)
    assert fast.mu_sd_posterior() == pytest.approx(exact.mu_sd_posterior(), abs=1e-12)
    assert fast.log_marginal_likelihood == pytest.approx(exact.log_marginal_likelihood, abs=1e-9)
    other = RatePosterior(Posterior(*synthetic(20, 0.0, 0.5, 0.0, seed=2), 2.0, "half-normal", 0.5))
    for delta in (-0.1, 0.0, 0.1):
        assert prob_difference_greater(fast.rate_posterior(), other, delta) == pytest.approx(
            prob_difference_greater(exact.rate_posterior(), other, delta), abs=1e-10)
    # the interpolant itself against the exact sum at quadrature nodes of the posterior it built
    from metaprop.stats.bayes import _Likelihood

    sur = next(iter(fresh_interpolants._SURROGATES.values()))[0]
    rng = np.random.default_rng(0)
    rows, cells = rng.integers(0, len(fast.tau), 60), rng.integers(0, fast.mu.nodes[0].size, 60)
    mu, tau = fast.mu.nodes.reshape(len(fast.tau), -1)[rows, cells], fast.tau[rows]
    assert sur(mu, tau) == pytest.approx(_Likelihood(events, n, 61)(mu, tau), rel=0, abs=1e-9)


def test_large_k_falls_back_to_the_exact_path(fresh_interpolants, monkeypatch):
    bayes = fresh_interpolants
    events, n = synthetic(200)
    exact = Posterior(events, n, 2.0, "half-normal", 0.5, interpolate=False)
    # an interpolant too coarse for the off-node check (degree 4 accepted): the exact path runs, to the byte
    monkeypatch.setattr(bayes, "_SURROGATE_DEGREES", (4,))
    monkeypatch.setattr(bayes, "_SURROGATE_TAIL", np.inf)
    coarse = Posterior(events, n, 2.0, "half-normal", 0.5)
    assert coarse.likelihood_path == "direct (interpolation not accurate enough)"
    assert coarse.summary() == exact.summary()
    assert not bayes._SURROGATES
    # a box too small for the posterior: the integration leaves it, the exact path runs
    monkeypatch.undo()
    monkeypatch.setattr(bayes, "WIDEN", (0.2,))
    small = Posterior(events, n, 2.0, "half-normal", 0.5)
    assert small.likelihood_path == "direct (the posterior reached beyond the interpolated box)"
    assert small.summary() == exact.summary()


def test_small_k_and_one_sided_data_stay_exact(monkeypatch):
    from metaprop.stats import bayes

    assert posterior("cart_k4_hn0.5").likelihood_path == "direct"
    monkeypatch.setattr(bayes, "LARGE_K", 3)
    assert Posterior(*CASES["zero_k3_hn0.5"][:2]).likelihood_path == "direct"  # only 0-event studies: never
    assert Posterior(*CASES["cart_k4_hn0.5"][:2], interpolate=False).likelihood_path == "direct"


def test_large_k_5000_completes_and_other_priors_reuse_the_interpolant(fresh_interpolants):
    bayes = fresh_interpolants
    events, n = synthetic(5000)
    post = Posterior(events, n, 2.0, "half-normal", 0.5)
    assert post.likelihood_path == "interpolated"
    mu = post.mu_quantiles(P)
    assert mu[0] < mu[1] < mu[2] and mu[2] - mu[0] < 0.2
    assert 1.2 < post.tau_quantile(0.5) < 2.0  # the zero-event tenth widens tau beyond the generating 0.5
    wider = Posterior(events, n, 2.0, "half-normal", 1.0)
    assert wider.likelihood_path == "interpolated"
    assert sum(len(v) for v in bayes._SURROGATES.values()) == 1  # one interpolant served both priors
    assert wider.mu_quantile(0.5) == pytest.approx(mu[1], abs=1e-3)


def test_prior_data_conflict_fires_only_where_the_data_fight_the_prior():
    from metaprop.stats.bayes import bayes_note, prior_conflict

    # the bundled CAR-T trials: silent
    events, n = np.array([27.0, 14, 27, 29]), np.array([30.0, 20, 29, 32])
    assert prior_conflict(events, n, 2.0)[1] > 0.05 and "conflict" not in bayes_note(events, n, 2.0, "half-normal", 0.5)
    # trials of 10^9 patients with a rate of 1 in 10,000: the pooled logit is -9.2, 4.6 prior SDs from N(0, 2^2)
    huge, rare = np.array([1e9, 1e9]), np.array([1e5, 1e5])
    z, p = prior_conflict(rare, huge, 2.0)
    assert z == pytest.approx(np.log(1e-4 / (1 - 1e-4)) / 2.0, rel=1e-6) and p < 1e-5
    note = bayes_note(rare, huge, 2.0, "half-normal", 0.5)
    assert note.startswith("prior-data conflict: the data's pooled logit lies 4.6 prior-predictive SDs") and "mu_sd" in note
    # a wider prior makes peace
    assert "conflict" not in bayes_note(rare, huge, 10.0, "half-normal", 0.5)
