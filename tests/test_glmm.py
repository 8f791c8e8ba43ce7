"""The GLMM engine against an independent exact reference, and against itself.

tests/make_exact_glmm.R fits every subgroup, overall, leave-one-out set and modality meta-regression of the
fixture datasets with its own quadrature likelihood (modes by uniroot in their bracket, Newton polishing with
numDeriv's Richardson-extrapolated derivatives), so its estimates are good to about 1e-9 and its standard
errors to about 1e-8: we hold ours to 1e-6 of it. lme4's fit (written beside it) stops its optimiser near 1e-5
and differentiates by finite differences: estimates to 1e-4, standard errors to 1e-3, and our maximised
log-likelihood must be at least lme4's.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, SCRIPTS
from hypothesis import example, given, settings
from hypothesis import strategies as st
from metaprop.analysis.meta_analysis import pool
from metaprop.stats.glmm import (
    TAU_MAX,
    _Problems,
    _study_log_marginal,
    conditional_modes,
    glmm_regression,
    log_likelihood,
    pool_glmm,
)
from scipy import integrate, special, stats
from scipy.special import expit

EXACT = pd.read_csv(FIXTURES / "exact_glmm.tsv", sep="\t", comment="#", keep_default_na=False, na_values=[""],
                    dtype={"omitted": str})


def dataset(name):
    return pd.read_csv(FIXTURES / "datasets" / f"{name}.tsv", sep="\t")


def reference_data(row):
    """The studies a reference row was fitted to, and its design: an intercept, then one column per modality
    after the first (meta-regression rows)."""
    data = dataset(row.dataset)
    if row.fit not in ("overall", "metareg"):
        data = data[data["modality"] == row.fit]
    if not pd.isna(row.omitted) and row.omitted != "":
        data = data[data["study"] != row.omitted]
    groups = list(dict.fromkeys(data["modality"]))
    X = np.column_stack([np.ones(len(data))] + [(data["modality"] == g).to_numpy(float) for g in groups[1:]])
    return data, X


def ours_for(row):
    """Our fit of the reference row's data: (estimate, se, tau2, marginal log-likelihood, metafor's logLik)."""
    data, X = reference_data(row)
    if row.fit == "metareg":
        fit = glmm_regression(data["events"], data["n"], X)
        return fit["beta"][row.coef], fit["se"][row.coef], fit["tau2"], fit["loglik_marginal"], fit["loglik"]
    fit = pool(data["events"], data["n"], "glmm")
    tau2 = 0.0 if np.isnan(fit["tau2"]) else fit["tau2"]
    return fit["estimate_model"], fit["se_model"], tau2, fit["loglik_marginal"], fit["loglik"]


def row_id(row):
    return f"{row.dataset}-{row.fit}-{row.omitted or 'all'}-b{row.coef}"


@pytest.mark.parametrize("row", list(EXACT.itertuples()), ids=row_id)
def test_matches_exact_reference(row):
    estimate, se, tau2, loglik, loglik_metafor = ours_for(row)
    assert estimate == pytest.approx(row.estimate, rel=1e-6, abs=1e-8)
    assert se == pytest.approx(row.se, rel=1e-6)
    assert tau2 == pytest.approx(row.tau2, rel=1e-6, abs=1e-8)
    assert loglik == pytest.approx(row.loglik, rel=1e-10, abs=1e-8)
    assert loglik_metafor == pytest.approx(row.loglik_conditional, rel=1e-6, abs=1e-6)


def likelihood_at_lme4(row):
    """The exact quadrature log-likelihood at lme4's parameters (every coefficient of the fit)."""
    data, X = reference_data(row)
    fit = EXACT[(EXACT["dataset"] == row.dataset) & (EXACT["fit"] == row.fit)
                & (EXACT["omitted"].fillna("") == ("" if pd.isna(row.omitted) else row.omitted))]
    beta = fit.sort_values("coef")["lme4_estimate"].to_numpy()
    return log_likelihood(X[:, :len(beta)] @ beta, np.sqrt(row.lme4_tau2), data["events"], data["n"])


@pytest.mark.parametrize("row", list(EXACT.itertuples()), ids=row_id)
def test_at_least_lme4(row):
    """Our maximum is never below the likelihood at lme4's fit; where lme4 found the same maximum, its numbers
    agree to its precision. lme4's own logLik() is off by up to about 3e-6 (its inner PIRLS stops at a relative
    tolerance of 1e-7), so the exact likelihood is evaluated at lme4's parameters; its printed value is held to 1e-5."""
    estimate, se, tau2, loglik, _ = ours_for(row)
    at_lme4 = likelihood_at_lme4(row)
    assert loglik >= at_lme4 - 1e-8
    assert loglik >= row.lme4_loglik - 1e-5
    if loglik - at_lme4 < 1e-6:  # the same maximum
        assert estimate == pytest.approx(row.lme4_estimate, rel=1e-4, abs=1e-5)
        assert tau2 == pytest.approx(row.lme4_tau2, rel=1e-3, abs=1e-5)
        assert se == pytest.approx(row.lme4_se, rel=1e-3)


def test_exact_reference_covers_the_hard_cases():
    fits = set(zip(EXACT["dataset"], EXACT["fit"]))
    assert {("extreme_pair", "A"), ("far_study", "A"), ("far_study", "metareg"), ("six_groups", "metareg")} <= fits
    assert (EXACT["fit"] == "metareg").sum() >= 6  # six_groups: six coefficients
    assert EXACT["boundary"].any() and (~EXACT["boundary"]).any()
    # lme4 stops short somewhere: the reference shows a higher maximum than lme4's
    assert (EXACT["loglik"] - EXACT["lme4_loglik"]).max() > 1e-6


def test_extreme_pair_reaches_metafors_maximum():
    """27/37 and 75/75: metafor gives 98.15%, tau^2 = 10.364, logLik() -2.120; the old engine stopped at 96.12%.
    With 7 nodes that maximum is the quadrature's: 15, 31 and 61 nodes give tau^2 = 11.09, 10.99, 10.97, and the
    note says so."""
    fit = pool_glmm([27, 75], [37, 75])
    assert expit(fit["estimate"]) == pytest.approx(0.98149, abs=5e-5)
    assert fit["tau2"] == pytest.approx(10.36, abs=0.01)
    assert fit["loglik"] == pytest.approx(-2.120, abs=1e-3)
    assert not fit["boundary"]
    assert fit["note"].startswith("the 7-node quadrature is not accurate at this fit (its log-likelihood is 0.006")
    finer = pool_glmm([27, 75], [37, 75], nagq=61)
    assert finer["tau2"] == pytest.approx(10.974, abs=1e-3) and finer["note"] == ""


def test_large_study_far_from_the_others_likelihood_is_the_integral():
    """418/1561 at mu = -3.52, tau = 2.13: undamped Newton oscillated there and gave -5.1e6. The quadrature
    value agrees with adaptive numerical integration of the same integrand."""
    events, n, mu, tau = 418.0, 1561.0, -3.52, 2.13
    mode = conditional_modes(mu, tau, events, n)
    assert tau * (events * expit(-(mu + tau * mode)) - (n - events) * expit(mu + tau * mode)) == pytest.approx(
        mode, abs=1e-12)
    log_choose = stats.binom.logpmf(events, n, 0.5) - n * np.log(0.5)

    def integrand(b):
        return np.exp(stats.binom.logpmf(events, n, expit(mu + tau * b)) - log_choose + 400) * stats.norm.pdf(b)

    exact = np.log(integrate.quad(integrand, mode - 1, mode + 1, epsabs=0, epsrel=1e-13, limit=200)[0]) - 400
    assert log_likelihood(mu, tau, [events], [n]) == pytest.approx(exact + log_choose, rel=1e-8)


@pytest.mark.parametrize("n", [1.0, 37.0, 1561.0, 362_073.0, 1e7])
def test_likelihood_finite_for_any_parameters(n):
    """Any (mu, tau) an optimiser may try, any n to 1e7, 0 and n events: finite, at most 0, modes that solve
    their equation."""
    mu, tau = np.meshgrid(np.linspace(-30, 30, 13), [0.0, 0.01, 0.5, 3.0, 20.0, TAU_MAX])
    for events in (0.0, np.floor(n / 3), n):
        jet, mode = _study_log_marginal(mu, tau, events, n, 7)
        for part in jet.parts():
            assert np.all(np.isfinite(part))
        assert np.all(jet.v <= 1e-12)
        t = mu + tau * mode
        score = tau * (events * expit(-t) - (n - events) * expit(t))
        # the score's two terms are of size tau * n and cancel: rounding leaves about 1e-16 of that
        assert np.all(np.abs(score - mode) <= 1e-9 + 1e-13 * tau * n)


def test_derivatives_are_exact():
    """Gradient and Hessian of the quadrature log-likelihood against Richardson-extrapolated central differences
    (error O(h^4), about 1e-9 here)."""
    eta, tau = np.array([0.3, -3.52, 2.0]), np.array([0.7, 2.13, 0.05])
    events, n = np.array([27.0, 418.0, 10.0]), np.array([37.0, 1561.0, 10.0])
    jet, _ = _study_log_marginal(eta, tau, events, n, 7)

    def value(d_eta, d_tau):
        return _study_log_marginal(eta + d_eta, tau + d_tau, events, n, 7)[0]

    def richardson(f, h):
        return (4 * f(h / 2) - f(h)) / 3

    h = 1e-3
    for index, (unit_eta, unit_tau) in enumerate([(1, 0), (0, 1)]):
        def first(step, unit_eta=unit_eta, unit_tau=unit_tau):
            up, down = value(unit_eta * step, unit_tau * step), value(-unit_eta * step, -unit_tau * step)
            return np.array([(up.v - down.v) / (2 * step), (up.e - down.e) / (2 * step), (up.t - down.t) / (2 * step)])
        numeric = richardson(first, h)
        assert np.allclose(numeric[0], [jet.e, jet.t][index], rtol=1e-8, atol=1e-9)
        assert np.allclose(numeric[1], [jet.ee, jet.et][index], rtol=1e-7, atol=1e-8)
        assert np.allclose(numeric[2], [jet.et, jet.tt][index], rtol=1e-7, atol=1e-8)


def profile_on_grid(events, n, taus):
    """max over mu of the log-likelihood at each tau, by the engine's own Newton in mu."""
    prob = _Problems(np.array([events], float), np.array([n], float), np.ones((1, len(events), 1)),
                     np.ones((1, len(events)), dtype=bool), 7)
    beta, values = prob.start(), []
    for tau in taus:
        beta, value, _, _ = prob.maximise_beta(beta, np.array([tau]))
        values.append(value[0])
    return np.array(values)


@st.composite
def datasets(draw):
    k = draw(st.integers(2, 7))
    n = draw(st.lists(st.integers(1, 2000), min_size=k, max_size=k))
    events = [draw(st.integers(0, size)) for size in n]
    return events, n


@settings(max_examples=40, deadline=None)
@given(datasets())
@example(([0, 1, 0, 0], [3, 66, 1, 1]))  # beta far out at large tau once made the Hessian singular
@example(([0, 1, 0], [1, 63, 1]))
@example(([1, 0], [1, 5]))  # once reported a saddle at tau^2 = 4910 with a NaN standard error
def test_reported_maximum_not_beaten_by_a_grid(data):
    events, n = data
    fit = pool_glmm(events, n)
    if np.isnan(fit["estimate"]):
        # no finite maximum: every study at 0 or all events, or the profile still rising at the edge
        assert "no finite maximum" in fit["note"]
        return
    if np.all(np.asarray(n) == 1):  # tau not identified: the exact likelihood's maximum (tests/test_glmm_binary.py)
        assert fit["tau2"] == 0 and fit["note"].startswith("every trial has n = 1")
        return
    grid = np.concatenate([np.linspace(0, 3, 61), np.linspace(3.2, 20, 85)])
    profile = profile_on_grid(events, n, grid)
    assert fit["loglik_marginal"] >= profile.max() - 1e-9 * (1 + abs(profile.max()))
    assert fit["loglik_marginal"] == pytest.approx(
        log_likelihood(fit["estimate"], np.sqrt(fit["tau2"]), events, n), rel=1e-12)


def test_a_fit_where_the_quadrature_is_not_accurate_says_so():
    """Found by the property test above: mostly single-patient trials beside one larger one. The 7-node profile
    likelihood is jagged at large tau (at tau = 7, 7.4 and 8: -5.122, -4.838, -5.214) and its highest point is the
    quadrature's, not the likelihood's: the exact profile (scipy.integrate.quad, tight tolerances) peaks near tau = 5
    (-4.754) and is -4.777 at tau = 7. The fit stops at tau^2 = 51.8; its note says the quadrature is not accurate
    there instead of passing the point off as the maximum."""
    events, n = [0, 0, 0, 0, 0, 11], [1, 1, 3, 2, 1, 12]
    fit = pool_glmm(events, n)
    assert fit["note"].startswith("the 7-node quadrature is not accurate at this fit (its log-likelihood is 0.05")
    assert fit["note"].endswith("tau^2 and the pooled estimate are approximate")
    # ordinary data: the 7-node and 31-node log-likelihoods agree to 2e-5 at the fit, and nothing is said
    for events, n in (([27, 14, 27, 29], [30, 20, 29, 32]), ([10, 25, 5, 30, 12], [40, 50, 60, 45, 80])):
        assert "quadrature" not in pool_glmm(events, n)["note"]


def test_boundary_and_divergence_are_said():
    homogeneous = pool_glmm([20, 21, 19, 20], [100, 100, 100, 100])
    assert homogeneous["boundary"] and homogeneous["tau2"] == 0.0
    assert homogeneous["note"] == "tau^2 estimated at the boundary 0"
    diverging = pool_glmm([0, 10, 0, 10], [10, 10, 10, 10])
    assert np.isnan(diverging["estimate"]) and np.isnan(diverging["loglik"])
    assert diverging["note"].startswith("no finite maximum-likelihood estimate: tau^2 diverges")


@pytest.mark.parametrize("events, n", [([1, 0], [1, 5]), ([0, 2], [1, 2]), ([3, 0], [3, 10])])
def test_a_point_where_the_likelihood_is_not_concave_is_no_estimate(events, n):
    """One study with all events, one with none: the exact profile likelihood rises towards log(1/4) as tau grows
    (checked with scipy.integrate.quad), but 7-node quadrature turns down near tau^2 = 5,000 and the search once
    stopped at a saddle there and reported it with a NaN standard error."""
    fit = pool_glmm(events, n)
    assert np.isnan(fit["estimate"]) and np.isnan(fit["se"]) and np.isnan(fit["loglik"])
    assert fit["note"].startswith("no finite maximum-likelihood estimate found: the likelihood is not concave at the "
                                  "best point reached (tau^2 = ")


def test_metareg_on_a_boundary_says_so():
    X = np.column_stack([np.ones(6), [0, 0, 0, 1, 1, 1]])
    fit = glmm_regression([20, 21, 19, 50, 49, 51], [100] * 6, X)
    assert fit["boundary"] and fit["tau2"] == 0.0 and not fit["diverged"]


SAME_ANSWER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import pandas as pd
from metaprop.analysis.meta_analysis import leave_one_out, pool_outcome
rows = []
for name in ("far_study", "six_groups", "extreme_pair"):
    data = pd.read_csv(f"{sys.argv[2]}/{name}.tsv", sep="\\t").assign(outcome="cr", included=True)
    pooled, tests = pool_outcome(data, "cr", ["glmm"])
    rows += pooled[["estimate_model", "se_model", "tau2", "loglik"]].to_numpy().ravel().tolist()
    rows += tests["statistic"].tolist()
    rows += leave_one_out(data, "cr", ["glmm"])[["estimate_model", "se_model", "tau2"]].to_numpy().ravel().tolist()
print(json.dumps(rows))
"""


def test_same_answer_whatever_the_cpu_kernels():
    """OpenBLAS kernels for another CPU and numpy without AVX-512 give the same numbers to 1e-9."""
    runs = []
    for env in ({}, {"OPENBLAS_CORETYPE": "Prescott"}, {"OPENBLAS_CORETYPE": "Haswell"},
                {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"}):
        full = {**os.environ, **env}
        out = subprocess.run([sys.executable, "-c", SAME_ANSWER, str(SCRIPTS), str(FIXTURES / "datasets")],
                             env=full, capture_output=True, text=True, check=True)
        runs.append(np.array(json.loads(out.stdout), dtype=float))
    for run in runs[1:]:
        assert np.allclose(run, runs[0], rtol=1e-9, atol=1e-12, equal_nan=True)


def many_trials(k, seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 400, k).astype(float)
    events = rng.binomial(n.astype(int), expit(rng.normal(-1.5, 0.9, k))).astype(float)
    events[::10] = 0
    return events, n


def test_leave_one_out_of_many_trials_equals_exact_refits():
    """Above SURROGATE_MIN_K trials the sum over the other trials is interpolated: every refit equals the exact
    refit (pool_glmm on the k - 1 trials) to 1e-9."""
    from metaprop.stats.glmm import SURROGATE_MIN_K, leave_one_out_glmm

    events, n = many_trials(SURROGATE_MIN_K, 11)
    rows = leave_one_out_glmm(events, n)
    assert len(rows) == len(events)
    for i in (0, 1, 57, int(np.argmax(n)), int(np.argmax(events / n))):
        exact = pool_glmm(np.delete(events, i), np.delete(n, i))
        for key in ("estimate", "se", "tau2", "loglik_marginal", "i2", "pi_low", "q"):
            assert rows[i][key] == pytest.approx(exact[key], rel=1e-9, abs=1e-12), (i, key)


def test_leave_one_out_falls_back_to_exact_refits(monkeypatch):
    """An interpolant that fails its check is not used: the refits are then exact."""
    import metaprop.stats.glmm as engine

    events, n = many_trials(engine.SURROGATE_MIN_K, 12)
    monkeypatch.setattr(engine, "_SURROGATE_TOL", 0.0)
    rows = engine.leave_one_out_glmm(events, n)
    exact = pool_glmm(events[1:], n[1:])
    assert rows[0]["estimate"] == pytest.approx(exact["estimate"], rel=1e-9)
    assert rows[0]["loglik"] == pytest.approx(exact["loglik"], rel=1e-9)  # computed only by exact refits


class ReferenceJet:
    """The general second-order forward-mode jets the engine's written-out arithmetic replaced (commit 8ca1f27):
    every operation applies the chain rule to all six parts, zero terms included."""

    def __init__(self, *parts):
        self.p = [np.asarray(part, dtype=float) for part in parts]

    @classmethod
    def variable(cls, value, index):
        value = np.asarray(value, dtype=float)
        zero, one = np.zeros_like(value), np.ones_like(value)
        return cls(value, one if index == 0 else zero, one if index == 1 else zero, zero, zero, zero)

    def apply(self, f0, f1, f2):
        _, e, t, ee, et, tt = self.p
        return ReferenceJet(f0, f1 * e, f1 * t, f1 * ee + f2 * e * e, f1 * et + f2 * e * t, f1 * tt + f2 * t * t)

    def __add__(self, other):
        if not isinstance(other, ReferenceJet):
            return ReferenceJet(self.p[0] + other, *self.p[1:])
        return ReferenceJet(*(a + b for a, b in zip(self.p, other.p)))

    def __neg__(self):
        return ReferenceJet(*(-a for a in self.p))

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, ReferenceJet):
            return ReferenceJet(*(a * other for a in self.p))
        (av, ae, at, aee, aet, att), (bv, be, bt, bee, bet, btt) = self.p, other.p
        return ReferenceJet(av * bv, av * be + bv * ae, av * bt + bv * at, av * bee + bv * aee + 2 * ae * be,
                            av * bet + bv * aet + ae * bt + at * be, av * btt + bv * att + 2 * at * bt)

    __rmul__ = __mul__

    def reciprocal(self):
        v = self.p[0]
        return self.apply(1 / v, -1 / v**2, 2 / v**3)

    def __truediv__(self, other):
        return self * other.reciprocal()

    def __rtruediv__(self, other):
        return self.reciprocal() * other

    @staticmethod
    def linear(jets, coefficients):
        return ReferenceJet(*(sum(part[..., None] * np.asarray(c) for part, c in zip(parts, coefficients))
                              for parts in zip(*(j.p for j in jets))))


def reference_log_marginal(eta, tau, events, n, nagq, mode):
    """_study_log_marginal as written with ReferenceJet, from the same conditional modes."""
    from metaprop.stats.glmm import _binomial_derivatives

    eta_j, tau_j, b = ReferenceJet.variable(eta, 0), ReferenceJet.variable(tau, 1), ReferenceJet(
        mode, *[np.zeros_like(mode)] * 5)
    for _ in range(2):
        t = eta_j + tau_j * b
        d = _binomial_derivatives(t.p[0], events, n)
        b = b - (tau_j * t.apply(d[1], d[2], d[3]) - b) / (tau_j * tau_j * t.apply(d[2], d[3], d[4]) - 1.0)
    t = eta_j + tau_j * b
    d = _binomial_derivatives(t.p[0], events, n)
    half = 2.0 / (1.0 - tau_j * tau_j * t.apply(d[2], d[3], d[4]))
    scale = half.apply(np.sqrt(half.p[0]), 0.5 / np.sqrt(half.p[0]), -0.25 / half.p[0]**1.5)
    nodes, weights = np.polynomial.hermite.hermgauss(nagq)
    t_at = ReferenceJet.linear([t, tau_j * scale], [1.0, nodes])
    d_at = _binomial_derivatives(t_at.p[0], events[..., None], n[..., None])
    log_joint = t_at.apply(d_at[0], d_at[1], d_at[2]) - 0.5 * ReferenceJet.linear(
        [b * b, b * scale, scale * scale], [1.0, 2 * nodes, nodes**2])
    v, e, t_, ee, et, tt = log_joint.p
    top = (v + nodes**2).max(axis=-1, keepdims=True)
    share = weights * np.exp(v + nodes**2 - top)
    total = share.sum(axis=-1)
    share /= total[..., None]

    def mean(x):
        return np.einsum("...j,...j->...", share, x)

    me, mt = mean(e), mean(t_)
    log_sum = ReferenceJet(top[..., 0] + np.log(total), me, mt, mean(ee + e**2) - me * me, mean(et + e * t_) - me * mt,
                           mean(tt + t_**2) - mt * mt)
    log_choose = special.gammaln(n + 1) - special.gammaln(events + 1) - special.gammaln(n - events + 1)
    log_scale = scale.apply(np.log(scale.p[0]), 1 / scale.p[0], -1 / scale.p[0]**2)
    return log_sum + log_scale + (log_choose - 0.5 * np.log(2 * np.pi))


def random_studies(rng, shape):
    """Counts (some 0, some all events, n to 10^9), linear predictors and tau (some 0) of one shape."""
    n = np.array(rng.integers(1, 400, size=shape), dtype=float)
    n[rng.random(shape) < 0.1] = 1e9
    events = np.array(np.floor(rng.random(shape) * (n + 1)))
    events[rng.random(shape) < 0.2] = 0
    full = rng.random(shape) < 0.1
    events[full] = n[full]
    tau = np.array(np.abs(rng.normal(0, 1, size=shape)) * 10 ** rng.uniform(-2, 2))
    tau[rng.random(shape) < 0.2] = 0.0
    return np.array(rng.normal(0, 2, size=shape)), tau, events, n


@pytest.mark.parametrize("nagq", [1, 3, 7, 15])
def test_written_out_jets_are_the_general_chain_rule_bit_for_bit(nagq):
    """The engine's jets (tuples and stacks of arrays, zero terms left out) give exactly the numbers of the general
    jets, and its modes exactly those of _bracketed_newton: same operations, same order."""
    from metaprop.stats.glmm import _bracketed_newton

    rng = np.random.default_rng(nagq)
    for shape in [(), (1,), (5,), (1, 1), (3, 8), (12, 11)]:
        for start in (None, 0.3):
            eta, tau, events, n = random_studies(rng, shape)
            jet, mode = _study_log_marginal(eta, tau, events, n, nagq, None if start is None else eta * start)
            reference = reference_log_marginal(eta, tau, events, n, nagq, mode)
            for ours, theirs in zip(jet.parts(), reference.p):
                assert np.array_equal(ours, theirs)

            tau2 = np.where(tau > 0, tau**2, 1.0)
            with np.errstate(divide="ignore"):
                own = special.logit(events / n)
            own = np.where(events == 0, eta - tau2 * n * expit(eta),
                           np.where(events == n, eta + tau2 * n * expit(-eta), own))
            flat = [np.ravel(a) for a in (eta, tau2, events, n)]

            def f_and_slope(t, where, flat=flat):
                e, s2, y, size = (a[where] for a in flat)
                p, q = expit(t), expit(-t)
                return y * q - (size - y) * p - (t - e) / s2, -size * p * q - 1 / s2

            if start is None:
                first = eta + tau2 * (events * expit(-eta) - (n - events) * expit(eta)) / (
                    1 - tau2 * (-n * (expit(eta) * expit(-eta))))
            else:
                first = eta + tau * (eta * start)
            t = _bracketed_newton(f_and_slope, np.minimum(eta, own), np.maximum(eta, own), first)
            expected = np.where(tau > 0, (t - eta) / np.where(tau > 0, tau, 1.0), 0.0)
            assert np.array_equal(conditional_modes(eta, tau, events, n, None if start is None else eta * start),
                                  expected)


def test_beta_only_jets_are_the_full_jets_rows():
    """The profile grid's jets without tau's derivatives: exactly the value, d/deta and d2/deta2 of the full ones."""
    from metaprop.stats.glmm import _log_marginal, _Studies

    rng = np.random.default_rng(5)
    for shape in [(1, 6), (4, 9)]:
        eta, tau, events, n = random_studies(rng, shape)
        studies = _Studies(events, n)
        full, modes = _log_marginal(eta, tau, studies, 7)
        part, same_modes = _log_marginal(eta, tau, studies, 7, tau_too=False)
        assert np.array_equal(part, full[[0, 1, 3]]) and np.array_equal(same_modes, modes)


def test_fit_many_hands_out_copies_of_a_kept_fit():
    """A fit kept for the same inputs is the fit itself, and changing what was handed out changes nothing kept."""
    import metaprop.stats.glmm as engine

    events, n = np.array([[3.0, 10, 0, 7]]), np.array([[20.0, 40, 15, 9]])
    X, mask = np.ones((1, 4, 1)), np.ones((1, 4), dtype=bool)
    first = engine.fit_many(events, n, X, mask)
    first["beta"][:] = np.nan
    first["cov"][:] = np.nan
    again = engine.fit_many(events, n, X, mask)
    fresh = engine._fit_many(events, n, X, mask, 7, engine.TAU_GRID)
    assert fresh.keys() == again.keys()
    for key in fresh:
        assert np.array_equal(again[key], fresh[key], equal_nan=True), key
