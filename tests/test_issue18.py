"""Issue 18 against R's metafor (fixtures from tests/make_fixtures_18.R): common-effect fits, influence diagnostics
and Baujat coordinates, the benchmark test.

Tolerances: the inverse-variance common-effect fits are closed forms, held to 1e-9 relative (1e-12 absolute); the
common-effect logistic model to 1e-7 (metafor's glm, at epsilon 1e-14, stops within 2e-8 of our exact Newton fit); influence() and baujat() of the random-effects
fits, whose tau^2 metafor iterates to 1e-12, to 1e-6 relative (1e-9 absolute); the benchmark test to 1e-6 relative
(the GLMM's to 1e-3, lme4's finite-difference standard errors, as in test_parity_metafor).
"""

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import FIXTURES, ROOT
from metaprop import spec
from metaprop.analysis.influence import INFLUENCE_COLUMNS, influence_table
from metaprop.analysis.meta_analysis import leave_one_out, pool, pool_outcome


def read(name):
    return pd.read_csv(FIXTURES / name, sep="\t", comment="#", keep_default_na=False, na_values=[""])


COMMON = read("metafor_common_effect.tsv")
COMMON_TESTS = read("metafor_common_effect_tests.tsv")
COMMON_LOO = read("metafor_common_effect_loo.tsv")
INFLUENCE = read("metafor_influence.tsv")
EXTRA = {"small_study": FIXTURES / "reviewer" / "small_study.tsv", "pritz1997": FIXTURES / "issue18" / "pritz1997.tsv"}


def dataset(name):
    return pd.read_csv(EXTRA.get(name, FIXTURES / "datasets" / f"{name}.tsv"), sep="\t")[["study", "modality",
                                                                                          "events", "n"]]


def subset(name, subgroup):
    data = dataset(name)
    return data if subgroup == "overall" else data[data["modality"] == subgroup]


def studies_frame(name):
    return dataset(name).assign(outcome="cr", included=True)


def tol(token):
    return {"rel": 1e-7, "abs": 1e-10} if token == "glmm-ee" else {"rel": 1e-9, "abs": 1e-12}


def test_schema_enum_is_the_registry():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    assert props["methods"]["items"]["enum"] == list(spec.METHODS)
    assert props["primary_method"]["enum"] == list(spec.METHODS)


def test_common_effect_methods_in_registry():
    for token in ("logit-ee", "ft-ee", "glmm-ee"):
        assert spec.method(token).common and not spec.method(token).logit_random_effects
    assert spec.method("logit-ee").family == "inverse-variance" and spec.method("glmm-ee").family == "glmm"
    with pytest.raises(spec.UnknownKey):
        spec.method("logit-fe")


COLUMNS = {"est_model": "estimate_model", "se_model": "se_model", "estimate": "estimate", "ci_low": "ci_low",
           "ci_high": "ci_high", "tau2": "tau2", "i2": "i2", "h2": "h2", "q": "q", "q_df": "q_df", "q_p": "q_p"}


@pytest.mark.parametrize("row", [r for r in COMMON.itertuples() if pd.isna(r.error)],
                         ids=lambda r: f"{r.dataset}-{r.subgroup}-{r.method}")
def test_common_effect_matches_metafor(row):
    data = subset(row.dataset, row.subgroup)
    ours = pool(data["events"], data["n"], row.method)
    assert ours["k"] == row.k
    if ours["note"].startswith("no finite"):  # every trial at 0 or all events: glm stops far out, we say so
        assert row.method == "glmm-ee" and abs(row.est_model) > 15
        return
    for column, key in COLUMNS.items():
        expected = getattr(row, column)
        if row.k == 1 and column in ("tau2", "i2", "h2", "q_p"):
            assert np.isnan(ours[key])  # one trial: not defined (metafor prints 0, 0, 1, 1)
        elif row.k == 1 and column == "q" and np.isnan(expected):
            assert ours[key] == 0  # rma.glmm gives no QE.LRT for one trial; the deviance is 0, as our glmm rows say
        else:
            assert ours[key] == pytest.approx(expected, **tol(row.method)), column
    # metafor's predict() gives no prediction interval beyond the CI for a common-effect fit; we leave it empty
    assert row.pi_low_predict == pytest.approx(row.ci_low) and np.isnan(ours["pi_low"]) and np.isnan(ours["pi_high"])
    assert np.isnan(ours["tau2_ci_low"]) and np.isnan(ours["i2_ci_low"])
    if row.method == "glmm-ee":
        assert ours["loglik"] == pytest.approx(row.loglik, rel=1e-10)


@pytest.mark.parametrize("row", list(COMMON_TESTS.itertuples()), ids=lambda r: f"{r.dataset}-{r.method}-{r.test}")
def test_common_effect_tests_match_metafor(row):
    studies = studies_frame(row.dataset)
    second_first = list(dict.fromkeys(studies["modality"]))[::-1]
    _, tests = pool_outcome(studies, "cr", methods=[row.method], comparison=second_first)
    ours = tests[tests["test"] == row.test].iloc[0]
    if pd.isna(row.statistic) or (row.method == "glmm-ee" and not np.isfinite(ours["statistic"])):
        # a subgroup with 0 events everywhere: no finite logistic estimate; metafor's glm stops far out
        assert np.isnan(ours["statistic"]) and ours["note"]
        return
    assert ours["statistic"] == pytest.approx(row.statistic, **tol(row.method))
    assert ours["df"] == row.df
    # p in the far tail (to 1e-88) magnifies the statistic's last digits: held to 1e-5 relative
    assert ours["p"] == pytest.approx(row.p, rel=1e-5, abs=1e-300)
    for column in ("lor", "lor_se", "lor_ci_low", "lor_ci_high"):
        expected = getattr(row, column)
        assert (pd.isna(ours[column]) if pd.isna(expected) else ours[column] == pytest.approx(expected, **tol(row.method)))


def test_common_effect_leave_one_out_matches_metafor():
    checked = 0
    for name, rows in COMMON_LOO.groupby("dataset", sort=False):
        ours = leave_one_out(studies_frame(name), "cr", ["logit-ee", "ft-ee", "glmm-ee"]).set_index(
            ["subgroup", "method", "omitted"])
        for row in rows.itertuples():
            mine = ours.loc[(row.subgroup, row.method, row.omitted)]
            if not pd.isna(row.error) or mine["note"].startswith("no finite"):
                continue
            for column, key in (("est_model", "estimate_model"), ("se_model", "se_model"), ("q", "q"), ("i2", "i2")):
                expected = getattr(row, column)
                if pd.isna(expected) or (row.k == 1 and column == "i2"):
                    continue
                assert mine[key] == pytest.approx(expected, **tol(row.method)), (row, column)
                checked += 1
    assert checked > 2500


METAFOR_INFLUENCE = {"rstudent": "rstudent", "dffits": "dffits", "cook_d": "cook_d", "cov_r": "cov_r",
                     "tau2_del": "tau2_del", "qe_del": "qe_del", "hat": "hat", "weight": "weight",
                     "baujat_x": "baujat_x", "baujat_y": "baujat_y"}


@pytest.fixture(scope="module")
def our_influence():
    out = {}
    methods = list(dict.fromkeys(INFLUENCE["method"]))
    for name in INFLUENCE["dataset"].unique():
        studies = studies_frame(name)
        pooled, _ = pool_outcome(studies, "cr", methods)
        loo = leave_one_out(studies, "cr", methods)
        out[name] = influence_table(studies, pooled, loo, "cr", methods).set_index(["subgroup", "method", "study"])
    return out


def test_influence_matches_metafor(our_influence):
    checked = 0
    for row in INFLUENCE.itertuples():
        ours = our_influence[row.dataset].loc[(row.subgroup, row.method, row.study)]
        for column, key in METAFOR_INFLUENCE.items():
            expected = getattr(row, column)
            if pd.isna(expected):
                assert pd.isna(ours[key]) or not np.isfinite(ours[key]), (row, column)
                continue
            assert ours[key] == pytest.approx(expected, rel=1e-6, abs=1e-9), (row, column)
            checked += 1
        assert bool(ours["inf"]) == bool(row.inf), row
    assert checked > 7000


def test_influence_has_every_column_and_glmm_rows():
    studies = studies_frame("four_subgroups")
    methods = ["glmm", "logit-reml", "logit-ee"]
    pooled, _ = pool_outcome(studies, "cr", methods)
    loo = leave_one_out(studies, "cr", methods)
    table = influence_table(studies, pooled, loo, "cr", methods)
    assert list(table.columns) == INFLUENCE_COLUMNS
    assert set(table["method"]) == {"glmm", "logit-reml"}
    glmm = table[table["method"] == "glmm"]
    ref = loo[loo["method"] == "glmm"].set_index(["subgroup", "omitted"])
    for r in glmm.itertuples():
        assert r.estimate_del == ref.loc[(r.subgroup, r.study), "estimate_model"]
        assert r.moves_beyond_se == (abs(r.delta_estimate) > r.se_model)
    assert glmm["rstudent"].isna().all()


BENCHMARK = read("metafor_benchmark.tsv")


@pytest.mark.parametrize("row", list(BENCHMARK.itertuples()), ids=lambda r: f"{r.dataset}-{r.subgroup}-{r.method}")
def test_benchmark_wald_test_matches_metafor(row):
    """metafor's rma() on y_i - logit(rate) (z, or t(k - 1) with knha), and rma.glmm's estimate and SE."""
    from metaprop.analysis.benchmark import wald_test

    data = subset(row.dataset, row.subgroup)
    fit = pool(data["events"], data["n"], row.method)
    statistic, _, p = wald_test(fit["estimate_model"], fit["se_model"], fit["k"], row.rate, row.method)
    tol = {"rel": 1e-3, "abs": 1e-5} if row.method == "glmm" else tol_for_benchmark(row.method)
    if fit["note"].startswith("no finite"):
        assert row.method in ("glmm", "glmm-ee") and np.isnan(statistic)
        return  # every trial at 0 or all events: lme4 or glm stops somewhere far out, we give no estimate
    if np.isinf(row.statistic):
        assert np.isnan(statistic)  # identical trials under HKSJ: SE 0, metafor's z is infinite; we give none
        return
    assert statistic == pytest.approx(row.statistic, **tol)
    assert p == pytest.approx(row.p, rel=1e-5 if row.method != "glmm" else 1e-2, abs=1e-300)


def tol_for_benchmark(token):
    return {"rel": 1e-7, "abs": 1e-10} if token == "glmm-ee" else {"rel": 1e-6, "abs": 1e-10}


BAYES_REFERENCE = pd.read_csv(FIXTURES / "bayes_reference.tsv", sep="\t")


@pytest.mark.parametrize("row", [r for r in BAYES_REFERENCE.to_dict("records") if r["quantity"] in ("mu", "theta_new")],
                         ids=lambda r: f"{r['case']}-{r['quantity']}-{r['p']}")
def test_bayes_benchmark_probabilities_match_r_integration(row):
    """P(pooled rate > b) and P(new trial's rate > b) at b = expit(x), against R's nested integrate() CDFs at x
    (tests/make_bayes_fixtures.R, 21 Gauss-Hermite nodes: 3e-5)."""
    from metaprop.analysis.benchmark import bayes_probabilities
    from test_bayes import CASES

    events, n, family, scale = CASES[row["case"]]
    above, new_above = bayes_probabilities(events, n, float(1 / (1 + np.exp(-row["x"]))),
                                           {"mu_sd": 2.0, "tau_prior": family, "tau_scale": scale})
    ours = above if row["quantity"] == "mu" else new_above
    assert ours == pytest.approx(1 - row["cdf_r"], abs=3e-5)


def test_benchmark_table_rows():
    from metaprop.analysis.benchmark import BENCHMARK_COLUMNS, benchmark_table

    studies = studies_frame("commentary_default")
    pooled, _ = pool_outcome(studies, "cr", ["logit-reml-hksj", "bayes", "glmm"])
    table = benchmark_table(studies, pooled, "cr", {"rate": 0.3, "source": "x"})
    assert list(table.columns) == BENCHMARK_COLUMNS
    assert "overall" not in set(table["subgroup"])
    bayes = table[table["method"] == "bayes"]
    assert bayes["p"].isna().all() and bayes["prob_above"].between(0, 1).all()
    hksj = table[(table["method"] == "logit-reml-hksj") & (table["k"] > 1)]
    assert (hksj["df"] == hksj["k"] - 1).all()
    assert benchmark_table(studies, pooled, "cr", None).empty


def test_common_effect_leave_one_out_series_equals_refits():
    """From LOO_SERIES_MIN_K trials leave-one-out takes the O(k) path; for a common effect it is exact."""
    from metaprop.stats.pooling import leave_one_out_inverse_variance, pool_inverse_variance
    from metaprop.stats.proportions import logit_effects

    rng = np.random.default_rng(18)
    n = rng.integers(10, 200, 250).astype(float)
    events = rng.binomial(n.astype(int), 0.3).astype(float)
    y, v = logit_effects(events, n)
    fast = leave_one_out_inverse_variance(y, v, "ee")
    for i in (0, 17, 249):
        rest = np.arange(len(y)) != i
        exact = pool_inverse_variance(y[rest], v[rest], "ee", tau2_ci=False)
        for key in ("estimate", "se", "q", "i2", "h2"):
            assert fast[key][i] == pytest.approx(exact[key], rel=1e-10), key
        assert fast["tau2"][i] == 0 and np.isnan(fast["pi_low"][i])


def test_forest_plot_of_a_common_effect_method_says_so():
    from metaprop.figures.forest import COMMON_LABEL, SUMMARY_LABEL, _build_rows, _footnote, _pooled_lookup

    studies = studies_frame("commentary_default")
    pooled, _ = pool_outcome(studies, "cr", ["logit-ee"])
    studies = studies.assign(proportion=studies["events"] / studies["n"], ci_low=0.0, ci_high=1.0)
    rows = _build_rows(studies, _pooled_lookup(pooled, "logit-ee"), "Modality", summary_label=COMMON_LABEL)
    labels = [r.label for r in rows if r.kind == "summary"]
    assert labels and set(labels) == {COMMON_LABEL} and SUMMARY_LABEL not in labels
    assert _footnote("logit-ee", studies).startswith("Common-effect model")
    assert not [r for r in rows if r.kind == "predict"]
