"""The posterior curves the posterior figures draw (method bayes), computed in the pool job from the posteriors it
integrated: each modality's density of its pooled rate, and the difference of the first two of the comparison."""

import numpy as np
import pandas as pd
from scipy.special import expit

from metaprop.spec import comparison_order, settings_of, subgroups_of
from metaprop.stats.bayes import difference_cdf_pdf, difference_summary, fit

# one point per 0.1 percentage point: finer than a figure's pixel at 300 dpi across a 4-inch panel
RATES = np.linspace(0.001, 0.999, 999)


def posterior_curves(posteriors, deltas, level=0.95):
    """What the posterior figure draws, from {group: Posterior}: for each group the density of its pooled rate on
    RATES with its median and central credible interval; with two groups or more, the density of the first's rate
    minus the second's on 161 points around its interval, and its difference_summary."""

    rates = {g: post.rate_posterior() for g, post in posteriors.items()}
    a_ = (1 - level) / 2
    curves = {"level": level, "rate": RATES, "groups": {}, "difference": None}
    for g, post in posteriors.items():
        low, mid, high = (float(v) for v in expit(post.mu_quantiles([a_, 0.5, 1 - a_])))
        curves["groups"][g] = {"density": rates[g].rate_pdf(RATES), "low": low, "median": mid, "high": high}
    groups = list(posteriors)
    if len(groups) >= 2:
        a, b = rates[groups[0]], rates[groups[1]]
        summ = difference_summary(a, b, deltas, level)
        lo = max(-1.0, summ["ci_low"] - 2.5 * (summ["median"] - summ["ci_low"]))
        hi = min(1.0, summ["ci_high"] + 2.5 * (summ["ci_high"] - summ["median"]))
        d = np.linspace(lo, hi, 161)
        curves["difference"] = {"pair": (groups[0], groups[1]), "d": d, "density": difference_cdf_pdf(a, b, d)[1],
                                "summary": summ}
    return curves


def outcome_curves(studies, outcome, bayes=None, level=0.95, comparison=None):
    """posterior_curves of each modality's pooled rate for one outcome of the studies table (included rows),
    under the config's bayes block, the modalities in the order of `comparison` (the difference is the first minus
    the second): one call per figure, the posteriors shared with the pooled rows in a process."""
    settings = settings_of(bayes)
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    posts = {g: fit(part["events"].to_numpy(float), part["n"].to_numpy(float), settings)
             for g in comparison_order(subgroups_of(kept), comparison) for part in [kept[kept["modality"] == g]]}
    return posterior_curves(posts, settings["deltas"], level)


CURVE_COLUMNS = ["outcome", "curve", "group", "group_1", "group_2", "x", "density", "median", "ci_low", "ci_high"]


def curves_table(curves, outcome):
    """posterior_curves as rows of results/tables/posterior_curves.tsv: each group's density of its pooled rate on
    RATES ('rate'), the difference of the first two ('difference'), with medians, intervals and P(diff > delta)."""
    pieces = []
    for g, c in curves["groups"].items():
        pieces.append(pd.DataFrame({"outcome": outcome, "curve": "rate", "group": g, "group_1": "", "group_2": "",
                                    "x": curves["rate"], "density": c["density"], "median": c["median"],
                                    "ci_low": c["low"], "ci_high": c["high"]}))
    diff = curves["difference"]
    if diff:
        summ = diff["summary"]
        pieces.append(pd.DataFrame({"outcome": outcome, "curve": "difference", "group": "", "group_1": diff["pair"][0],
                                    "group_2": diff["pair"][1], "x": diff["d"], "density": diff["density"],
                                    "median": summ["median"], "ci_low": summ["ci_low"], "ci_high": summ["ci_high"],
                                    **{f"prob_gt_{d:g}": p for d, p in summ["prob"].items()}}))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=CURVE_COLUMNS)
