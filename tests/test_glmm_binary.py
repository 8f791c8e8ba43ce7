"""The GLMM on single-patient trials (n = 1 each, issue 17): tau is not identified there, so the fit is tau^2 = 0
with the common rate and a note; checked against metafor (tests/make_binary_glmm.R) and against the exact
likelihood, and on random tables with n in {1, 2, 3}."""

import time

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES
from hypothesis import example, given, settings
from hypothesis import strategies as st
from metaprop.stats.glmm import BINARY_NOTE, glmm_regression, leave_one_out_glmm, log_likelihood, pool_glmm
from scipy.special import expit

BINARY = pd.read_csv(FIXTURES / "binary_glmm.tsv", sep="\t", skipinitialspace=True)
NODES, WEIGHTS = np.polynomial.hermite.hermgauss(200)


def table(k, x):
    return np.r_[np.ones(x), np.zeros(k - x)], np.ones(k)


def exact_loglik(mu, tau2, k, x):
    """The exact marginal log-likelihood of k single-patient trials with x responders: P = E[expit(mu + tau z)] by
    200-node (non-adaptive) Gauss-Hermite, accurate for the small tau2 metafor reports."""
    p = np.sum(WEIGHTS * expit(mu + np.sqrt(2 * tau2) * NODES)) / np.sqrt(np.pi)
    return x * np.log(p) + (k - x) * np.log1p(-p)


@pytest.mark.parametrize("case", BINARY.to_dict("records"), ids=list(BINARY["name"]))
def test_single_patient_trials_agree_with_metafor(case):
    k, x = int(case["k"]), int(case["x"])
    res = pool_glmm(*table(k, x))
    assert res["tau2"] == 0 and res["boundary"] and res["note"] == BINARY_NOTE
    assert expit(res["estimate"]) == pytest.approx(x / k, abs=1e-12)  # the common rate
    assert res["estimate"] == pytest.approx(case["mu"], abs=1e-4)
    assert res["loglik"] == res["loglik_marginal"]
    if case["tau2"] < 1e-6:  # metafor's logLik() is at the conditional modes: the marginal's only where tau^2 ~ 0
        assert res["loglik"] == pytest.approx(case["loglik"], abs=1e-6)
    # ours is the supremum of the exact likelihood: never below it at metafor's point on the ridge
    assert res["loglik_marginal"] >= exact_loglik(case["mu"], case["tau2"], k, x) - 1e-12
    if case["tau2"] == 0:  # on the boundary metafor's standard error is beta's alone, as ours
        assert res["se"] == pytest.approx(case["se"], rel=1e-4)


def test_twenty_case_reports():
    res = pool_glmm(*table(20, 17))
    assert [round(100 * expit(res[c]), 1) for c in ("estimate", "ci_low", "ci_high")] == [85.0, 62.4, 95.1]
    assert res["loglik"] == pytest.approx(-8.454182, abs=1e-6)


def test_the_ridge_is_flat_in_the_exact_likelihood():
    # along P = 0.85 the exact likelihood is flat; 7-node quadrature tilts it (up, then down), so no AGQ-7 point
    # on the ridge is evidence against tau = 0
    best = pool_glmm(*table(20, 17))["loglik_marginal"]
    for tau in (0.5, 2.0, 8.0):
        mus = np.linspace(0, 20, 20001)
        p = (WEIGHTS * expit(mus[:, None] + tau * np.sqrt(2) * NODES)).sum(axis=1) / np.sqrt(np.pi)
        mu = mus[np.argmin(np.abs(p - 0.85))]
        assert exact_loglik(mu, tau**2, 20, 17) <= best + 1e-6
    assert log_likelihood(2.7516396, 2.0, *table(20, 17)) > best  # the quadrature artefact a grid search finds


def test_thousands_of_single_patient_trials_take_seconds():
    events, n = table(3000, 900)
    start = time.perf_counter()
    res = pool_glmm(events, n)
    loo = leave_one_out_glmm(events, n)
    assert time.perf_counter() - start < 20
    assert res["tau2"] == 0 and len(loo) == 3000 and all(r["note"] == BINARY_NOTE for r in loo)
    assert expit(loo[0]["estimate"]) == pytest.approx(899 / 2999, abs=1e-12)


def test_regression_on_single_patient_trials_is_the_logistic_regression():
    events = np.r_[np.ones(12), np.zeros(8), np.ones(5), np.zeros(15)]
    X = np.column_stack([np.ones(40), np.r_[np.zeros(20), np.ones(20)]])
    fit = glmm_regression(events, np.ones(40), X)
    assert fit["tau2"] == 0 and fit["boundary"] and not fit["diverged"]
    np.testing.assert_allclose(fit["beta"], [np.log(12 / 8), np.log(5 / 15) - np.log(12 / 8)], atol=1e-10)
    np.testing.assert_allclose(fit["se"][1], np.sqrt(1 / 12 + 1 / 8 + 1 / 5 + 1 / 15), rtol=1e-8)


@st.composite
def small_trials(draw):
    k = draw(st.integers(2, 50))
    n = draw(st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=k, max_size=k))  # mostly single patients
    events = [draw(st.integers(0, size)) for size in n]
    return np.array(events, dtype=float), np.array(n, dtype=float)


def _best_at(tau, events, n):
    """max over mu of the 7-node quadrature log-likelihood at this tau (a fine grid, then golden refinement)."""
    mus = np.linspace(-12, 12, 97)
    values = [log_likelihood(m, tau, events, n) for m in mus]
    lo, hi = mus[max(np.argmax(values) - 1, 0)], mus[min(np.argmax(values) + 1, 96)]
    for _ in range(45):
        a, b = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        if log_likelihood(a, tau, events, n) > log_likelihood(b, tau, events, n):
            hi = b
        else:
            lo = a
    return log_likelihood((lo + hi) / 2, tau, events, n)


@settings(max_examples=60, deadline=None)
@given(data=small_trials())
@example((np.r_[2, 1, np.ones(36), np.zeros(5)], np.r_[2, 2, np.ones(41)]))  # the misled search above
@example((np.r_[1, 0, 1, 1, 0], np.r_[1, 1, 1, 1, 1]))
def test_small_trials_reach_the_maximum_or_say_why(data):
    events, n = data
    res = pool_glmm(events, n)
    if np.all(events == 0) or np.all(events == n):
        assert res["note"].startswith("no finite maximum-likelihood estimate")
        return
    if np.all(n == 1):  # not identified in tau: the common rate, said in the note
        assert res["tau2"] == 0 and res["note"] == BINARY_NOTE
        assert expit(res["estimate"]) == pytest.approx(events.mean(), abs=1e-12)
        return
    if not np.isfinite(res["estimate"]):
        assert res["note"].startswith(("no finite maximum-likelihood estimate", "no maximum-likelihood estimate"))
        return
    # a true maximum: nothing better at tau = 0 or on moderate values of tau, and a large tau^2 is said
    for tau in (0.0, 0.5, 1.0, 2.0):
        assert res["loglik_marginal"] >= _best_at(tau, events, n) - 1e-7
    assert res["tau2"] <= 100 or "very large" in res["note"]


def test_a_search_misled_on_the_ridge_is_searched_again():
    # two trials of 2 patients among 41 single-patient ones: the profile's one-step values once led the search to
    # tau^2 = 75, below the likelihood at tau^2 = 0 (which is the maximum here)
    events = np.r_[2, 1, np.ones(36), np.zeros(5)]
    n = np.r_[2, 2, np.ones(41)]
    res = pool_glmm(events, n)
    assert res["tau2"] == 0 and res["note"] == "tau^2 estimated at the boundary 0"
    assert res["loglik_marginal"] == pytest.approx(_best_at(0.0, events, n), abs=1e-9)
    for tau in (0.5, 2.0, 8.7):
        assert res["loglik_marginal"] >= _best_at(tau, events, n) - 1e-9
