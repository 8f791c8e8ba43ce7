"""Every pooled number against R's metafor (fixtures from tests/make_fixtures.R, committed with their output).

Tolerances: logit and Freeman-Tukey methods 1e-6 relative; the GLMM 1e-4 relative (with 1e-5 absolute on
the logit scale for estimates near 0), since lme4 stops its optimiser earlier than we do (our likelihood at
our estimates is never below metafor's, see test_glmm_likelihood_at_least_metafors).
"""

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES
from metaprop.analysis.meta_analysis import pool, pool_outcome
from metaprop.stats.glmm import log_likelihood
from scipy import stats

POOLED = pd.read_csv(FIXTURES / "metafor_pooled.tsv", sep="\t", comment="#", keep_default_na=False, na_values=[""])
TESTS = pd.read_csv(FIXTURES / "metafor_subgroup_tests.tsv", sep="\t", comment="#", keep_default_na=False,
                    na_values=[""])
# fixture column -> our key
COLUMNS = {
    "est_model": "estimate_model", "se_model": "se_model", "estimate": "estimate", "ci_low": "ci_low",
    "ci_high": "ci_high", "pi_low": "pi_low", "pi_high": "pi_high", "tau2": "tau2", "tau2_ci_low": "tau2_ci_low",
    "tau2_ci_high": "tau2_ci_high", "i2": "i2", "i2_ci_low": "i2_ci_low", "i2_ci_high": "i2_ci_high", "h2": "h2",
    "q": "q", "q_df": "q_df", "q_p": "q_p",
}
# metafor fits one study with tau^2 = 0 and reports I^2 = 0, H^2 = 1, Q = 0 with p = 1; we say "not defined"
UNDEFINED_FOR_ONE_STUDY = ("tau2", "i2", "h2", "q_p")
METAFOR_TAU2_MAX = 100.0


def dataset(name):
    return pd.read_csv(FIXTURES / "datasets" / f"{name}.tsv", sep="\t")


def subset(name, subgroup):
    data = dataset(name)
    return data if subgroup == "overall" else data[data["modality"] == subgroup]


# lme4's standard errors come from a finite-difference Hessian, good to about 1e-4 (see tests/test_glmm.py for
# the exact reference these are checked against to 1e-6)
GLMM_SE_DEPENDENT = ("se_model", "ci_low", "ci_high", "pi_low", "pi_high")


def tolerance(method, column=None):
    if method == "glmm":
        return {"rtol": 1e-3 if column in GLMM_SE_DEPENDENT else 1e-4, "atol": 1e-5}
    return {"rtol": 1e-6, "atol": 1e-10}


def fitted_rows():
    return [r for r in POOLED.itertuples() if pd.isna(r.error)]


@pytest.mark.parametrize("row", fitted_rows(), ids=lambda r: f"{r.dataset}-{r.subgroup}-{r.method}")
def test_pooled_matches_metafor(row):
    data = subset(row.dataset, row.subgroup)
    ours = pool(data["events"], data["n"], row.method)
    assert ours["k"] == row.k
    if row.method == "glmm" and lme4_stopped_short(data, ours, row):
        return  # ours is the higher maximum; tests/test_glmm.py holds it to the exact reference
    for column, key in COLUMNS.items():
        expected, actual = getattr(row, column), ours[key]
        if column in ("tau2_ci_high", "i2_ci_high") and row.tau2_ci_high >= METAFOR_TAU2_MAX:
            # metafor's Q-profile search stops at tau2.max = 100; the root lies beyond it
            assert actual >= expected
        elif row.k == 1 and column in UNDEFINED_FOR_ONE_STUDY:
            assert np.isnan(actual), f"{column}: one study has no {column}"
        elif np.isnan(expected):
            assert np.isnan(actual), f"{column}: metafor gives none, we give {actual}"
        else:
            assert actual == pytest.approx(expected, **tolerance_for(row.method, column)), column


def lme4_stopped_short(data, ours, row):
    """True when our GLMM maximum is clearly above the one lme4 stopped at (27/37 and 75/75: tau^2 10.3624 against
    lme4's 10.3638, 1.4e-4 apart, with a log-likelihood 4e-9 higher)."""
    ll_ours = log_likelihood(ours["estimate_model"], np.sqrt(np.nan_to_num(ours["tau2"])), data["events"], data["n"])
    ll_metafor = log_likelihood(row.est_model, np.sqrt(row.tau2), data["events"], data["n"])
    assert ll_ours >= ll_metafor - 1e-9
    return ll_ours > ll_metafor + 1e-9


def tolerance_for(method, column=None):
    tol = tolerance(method, column)
    return {"rel": tol["rtol"], "abs": tol["atol"]}


@pytest.mark.parametrize("row", [r for r in fitted_rows() if r.method == "glmm" and r.k > 1],
                         ids=lambda r: f"{r.dataset}-{r.subgroup}")
def test_glmm_likelihood_at_least_metafors(row):
    data = subset(row.dataset, row.subgroup)
    ours = pool(data["events"], data["n"], "glmm")
    ll_ours = log_likelihood(ours["estimate_model"], np.sqrt(ours["tau2"]), data["events"], data["n"])
    ll_metafor = log_likelihood(row.est_model, np.sqrt(row.tau2), data["events"], data["n"])
    assert ll_ours >= ll_metafor - 1e-9


def test_glmm_where_metafor_fails_identical_studies():
    """metafor's rma.glmm cannot fit three identical 20/40 studies; the ML answer is tau^2 = 0 at logit 0.5."""
    data = subset("homogeneous", "A")
    ours = pool(data["events"], data["n"], "glmm")
    assert ours["tau2"] == 0.0
    assert ours["estimate"] == pytest.approx(0.5, abs=1e-7)
    assert ours["se_model"] == pytest.approx(np.sqrt(1 / 60 + 1 / 60), rel=1e-5)  # fixed-effect logistic SE
    assert "boundary" in ours["note"]


def test_glmm_single_study_is_its_own_logit():
    ours = pool([123], [261], "glmm")
    assert ours["estimate"] == pytest.approx(123 / 261)
    assert ours["se_model"] == pytest.approx(np.sqrt(1 / 123 + 1 / 138))
    assert np.isnan(ours["tau2"]) and "one study" in ours["note"]


def studies_frame(name):
    data = dataset(name)
    return data.assign(outcome="cr", included=True)


@pytest.mark.parametrize("row", [r for r in TESTS.itertuples() if r.test == "between"],
                         ids=lambda r: f"{r.dataset}-{r.method}")
def test_between_subgroups_matches_metafor(row):
    _, tests = pool_outcome(studies_frame(row.dataset), "cr", methods=[row.method])
    ours = tests.iloc[0]
    expected = (row.statistic, row.df, row.p)
    if pd.isna(row.statistic) and row.method == "glmm" and row.dataset == "homogeneous":
        # metafor cannot fit subgroup A (see test_glmm_where_metafor_fails_identical_studies); we can
        assert np.isfinite(ours["statistic"]) and ours["df"] == 1
        return
    if pd.isna(row.statistic) and row.method == "glmm" and row.dataset == "all_zero":
        # no finite GLMM estimate for a subgroup with 0 events everywhere: metafor fails, we say why
        assert np.isnan(ours["statistic"]) and "no estimate" in ours["note"]
        return
    if pd.isna(row.statistic) and row.method == "glmm":
        expected = between_from_fixture(row.dataset)
    if pd.isna(expected[0]):
        # metafor's error: a subgroup whose Knapp-Hartung SE is exactly 0 (identical studies)
        assert np.isnan(ours["statistic"]) and ours["note"]
        return
    assert ours["statistic"] == pytest.approx(expected[0], **tolerance_for(row.method, "se_model"))
    assert ours["df"] == expected[1]
    assert ours["p"] == pytest.approx(expected[2], **tolerance_for(row.method, "se_model"))


def between_from_fixture(name):
    """metafor's rma.glmm cannot fit a one-study subgroup; there the GLMM is the study's own log odds, which
    is metafor's rma() for k = 1. Q across subgroups is then recomputed from metafor's subgroup rows."""
    rows = POOLED[(POOLED["dataset"] == name) & (POOLED["subgroup"] != "overall")]
    est, se = [], []
    for subgroup, part in rows.groupby("subgroup", sort=False):
        glmm = part[part["method"] == "glmm"].iloc[0]
        source = glmm if pd.isna(glmm["error"]) else part[part["method"] == "logit-dl"].iloc[0]
        assert pd.isna(glmm["error"]) or source["k"] == 1
        est.append(source["est_model"])
        se.append(source["se_model"])
    est, w = np.array(est), 1 / np.array(se) ** 2
    q = float(np.sum(w * (est - np.sum(w * est) / np.sum(w)) ** 2))
    return q, len(est) - 1, float(stats.chi2.sf(q, len(est) - 1))


@pytest.mark.parametrize("row", [r for r in TESTS.itertuples() if r.test == "metareg"],
                         ids=lambda r: f"{r.dataset}-{r.method}")
def test_metareg_matches_metafor(row):
    studies = studies_frame(row.dataset)
    # metafor's coefficient is the second subgroup against the first (the reference): our comparison in that order
    second_first = list(dict.fromkeys(studies["modality"]))[::-1]
    _, tests = pool_outcome(studies, "cr", methods=[row.method], comparison=second_first)
    ours = tests[tests["test"] == "metareg"].iloc[0]
    if pd.isna(row.statistic):
        # metafor fails only where a subgroup has 0 events everywhere; so do we, with the reason
        assert row.dataset == "all_zero" and row.method == "glmm", row.error
        assert np.isnan(ours["statistic"]) and "no finite maximum-likelihood estimate" in ours["note"]
        return
    if row.dataset == "all_zero" and row.method == "glmm":
        # the MLE of subgroup Z's log odds is -inf; lme4 stops somewhere (log OR 34, SE 796) and metafor reports it
        assert row.lor_se > 100
        assert np.isnan(ours["statistic"]) and "no finite maximum-likelihood estimate" in ours["note"]
        return
    tol = tolerance_for(row.method, "se_model")
    assert ours["statistic"] == pytest.approx(row.statistic, **tol)
    assert ours["df"] == row.df
    assert ours["p"] == pytest.approx(row.p, **tol)
    if not pd.isna(row.df2):
        assert ours["df2"] == row.df2
    for column in ("lor", "lor_se", "lor_ci_low", "lor_ci_high"):
        if pd.isna(getattr(row, column)):
            assert pd.isna(ours[column])
        else:
            assert ours[column] == pytest.approx(getattr(row, column), **tol), column
            assert ours["or"] == pytest.approx(np.exp(ours["lor"]))


LOO = pd.read_csv(FIXTURES / "metafor_leave_one_out.tsv", sep="\t", comment="#", keep_default_na=False,
                  na_values=[""])
LOO_COLUMNS = {
    "est_model": "estimate_model", "se_model": "se_model", "estimate": "estimate", "ci_low": "ci_low",
    "ci_high": "ci_high", "tau2": "tau2", "i2": "i2", "q": "q", "q_p": "q_p",
}


@pytest.fixture(scope="module")
def our_leave_one_out():
    from metaprop.analysis.meta_analysis import leave_one_out

    return {name: leave_one_out(studies_frame(name), "cr").set_index(["subgroup", "method", "omitted"])
            for name in LOO["dataset"].unique()}


def better_glmm_maximum(row, ours):
    """lme4 can stop at tau^2 = 0 when the likelihood has a higher mode inside (large_n without A1): ours counts
    as agreeing only if its log-likelihood is clearly the higher one."""
    data = subset(row.dataset, row.subgroup)
    data = data[data["study"] != row.omitted]
    ll_ours = log_likelihood(ours["estimate_model"], np.sqrt(np.nan_to_num(ours["tau2"])), data["events"], data["n"])
    ll_metafor = log_likelihood(row.est_model, np.sqrt(row.tau2), data["events"], data["n"])
    assert ll_ours >= ll_metafor - 1e-9
    return ll_ours > ll_metafor + 1e-3


def test_leave_one_out_matches_metafor(our_leave_one_out):
    checked = 0
    for row in LOO.itertuples():
        ours = our_leave_one_out[row.dataset].loc[(row.subgroup, row.method, row.omitted)]
        assert ours["k"] == row.k
        if not pd.isna(row.error):
            # metafor's GLMM cannot fit one study, identical studies, or three near-identical ones (large_n A
            # without A3); there we give the fixed-effect fit on the boundary, or no estimate for all-zero data
            assert row.method == "glmm"
            assert np.isfinite(ours["estimate"]) or "no finite" in ours["note"]
            continue
        if row.method == "glmm" and better_glmm_maximum(row, ours):
            continue
        for column, key in LOO_COLUMNS.items():
            expected, actual = getattr(row, column), ours[key]
            if row.k == 1 and column in UNDEFINED_FOR_ONE_STUDY:
                assert np.isnan(actual)
            else:
                assert actual == pytest.approx(expected, **tolerance_for(row.method, column)), (row, column)
            checked += 1
    assert checked > 8000


def test_glmm_without_a_finite_maximum_says_so():
    """One study at 0 events and one at all events: the likelihood rises without end as tau grows."""
    ours = pool([0, 10], [10, 10], "glmm")
    assert np.isnan(ours["estimate"]) and np.isnan(ours["tau2"])
    assert ours["note"].startswith("no finite maximum-likelihood estimate: tau^2 diverges")


@pytest.mark.parametrize("method", ["dl", "reml", "pm"])
def test_public_tau2_functions_match_metafor(method):
    """The engine's named estimators, called directly, give metafor's tau^2 and Q-profile interval."""
    from metaprop.stats.pooling import generalised_q, tau2_dl, tau2_pm, tau2_qprofile_ci, tau2_reml
    from metaprop.stats.proportions import logit_effects

    estimator = {"dl": tau2_dl, "reml": tau2_reml, "pm": tau2_pm}[method]
    for row in POOLED[(POOLED["method"] == f"logit-{method}") & (POOLED["k"] > 2)].itertuples():
        data = subset(row.dataset, row.subgroup)
        y, v = logit_effects(data["events"], data["n"])
        assert estimator(y, v) == pytest.approx(row.tau2, rel=1e-6, abs=1e-10)
        low, high = tau2_qprofile_ci(y, v)
        assert low == pytest.approx(row.tau2_ci_low, rel=1e-6, abs=1e-10)
        if row.tau2_ci_high < METAFOR_TAU2_MAX:
            assert high == pytest.approx(row.tau2_ci_high, rel=1e-6, abs=1e-10)
        assert generalised_q(y, v, 0.0) == pytest.approx(row.q, rel=1e-9)
