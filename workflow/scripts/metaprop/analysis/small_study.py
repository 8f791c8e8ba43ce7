"""Small-study effects: funnel-plot data, Egger's and Peters' regression tests, per outcome and modality.

Below MIN_TRIALS trials the tests are not run and the table says so (Sterne et al. 2011, BMJ 343:d4002):
with fewer trials they have too little power to tell chance from asymmetry.
"""

import numpy as np
import pandas as pd

from metaprop.spec import MIN_TRIALS, NOT_ASSESSED, subgroups_of
from metaprop.stats.pooling import meta_regression, pool_inverse_variance
from metaprop.stats.proportions import logit_effects

TESTS = ("egger", "peters")
SMALL_STUDY_COLUMNS = [
    "outcome", "subgroup", "test", "k", "assessed", "statistic", "df", "p", "intercept", "slope", "slope_se", "note",
]


def egger_test(events, n):
    """Egger's test as metafor's regtest(rma(yi, vi), model = "rma", predictor = "sei"): a REML meta-regression
    of the logit proportion on its standard error; z test of the slope. Returns a dict."""
    y, v = logit_effects(np.asarray(events, float), np.asarray(n, float))
    X = np.column_stack([np.ones(len(y)), np.sqrt(v)])
    fit = meta_regression(y, v, X, "reml")
    z = fit["beta"][1] / fit["se"][1]
    return {"statistic": float(z), "df": np.nan, "p": float(fit["p"]), "intercept": float(fit["beta"][0]),
            "slope": float(fit["beta"][1]), "slope_se": float(fit["se"][1])}


def peters_test(events, n):
    """Peters' test (Peters et al. 2006, JAMA 295:676) for a proportion: weighted least squares of the logit
    proportion on 1/n with weights e (n - e) / n, i.e. 1 / v of the logit (0.5 added to both cells of a trial
    with 0 or n events, as the effect sizes), t test of the slope with k - 2 df."""
    from statsmodels.regression.linear_model import WLS  # 1.8 s to import: only the test's job pays it

    n = np.asarray(n, float)
    y, v = logit_effects(np.asarray(events, float), n)
    fit = WLS(y, np.column_stack([np.ones(len(y)), 1 / n]), weights=1 / v).fit()
    return {"statistic": float(fit.tvalues[1]), "df": float(fit.df_resid), "p": float(fit.pvalues[1]),
            "intercept": float(fit.params[0]), "slope": float(fit.params[1]), "slope_se": float(fit.bse[1])}


def _predictor_varies(test, events, n):
    if test == "peters":
        return np.ptp(1 / np.asarray(n, float)) > 0
    return np.ptp(logit_effects(np.asarray(events, float), np.asarray(n, float))[1]) > 0


def small_study_table(studies, outcome, min_trials=MIN_TRIALS):
    """Egger and Peters per modality of one outcome; subgroups with fewer than `min_trials` trials are listed
    as not assessed, with no statistic (a p from so few trials would mean nothing)."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    rows = []
    for group in subgroups_of(kept):
        part = kept[kept["modality"] == group]
        events, n = part["events"].to_numpy(float), part["n"].to_numpy(float)
        for test in TESTS:
            row = {"outcome": outcome, "subgroup": group, "test": test, "k": len(part), "assessed": False, "note": ""}
            if len(part) < min_trials:
                row["note"] = NOT_ASSESSED if min_trials == MIN_TRIALS else f"not assessed: fewer than {min_trials} trials"
            elif not _predictor_varies(test, events, n):
                row["note"] = ("not assessed: every trial has the same size" if test == "peters"
                               else "not assessed: every trial has the same standard error")
            else:
                row.update(assessed=True, **(egger_test if test == "egger" else peters_test)(events, n))
            rows.append(row)
    return pd.DataFrame.from_records(rows, columns=SMALL_STUDY_COLUMNS)


FUNNEL_COLUMNS = ["outcome", "subgroup", "study", "logit", "se", "centre"]


def funnel_table(studies, outcomes):
    """funnel_data of every outcome as rows of results/tables/funnel.tsv (what the funnel plots draw)."""
    rows = [{"outcome": o, "subgroup": g, "study": s, "logit": y, "se": e, "centre": c}
            for o in outcomes for g, (names, ys, ses, c) in funnel_data(studies, o).items()
            for s, y, e in zip(names, ys, ses)]
    return pd.DataFrame.from_records(rows, columns=FUNNEL_COLUMNS)


def funnel_data(studies, outcome):
    """Per modality: the trials' logit proportions and standard errors, and the logit-REML pooled logit
    (the funnel's centre, as metafor's funnel() of an rma fit). {group: (study, y, se, centre)}."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    out = {}
    for group in subgroups_of(kept):
        part = kept[kept["modality"] == group]
        y, v = logit_effects(part["events"].to_numpy(float), part["n"].to_numpy(float))
        centre = pool_inverse_variance(y, v, "reml", tau2_ci=False)["estimate"]
        out[group] = (list(part["study"]), np.asarray(y, float), np.sqrt(np.asarray(v, float)), float(centre))
    return out
