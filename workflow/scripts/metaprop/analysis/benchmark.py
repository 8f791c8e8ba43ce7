"""Each modality's pooled rate against a benchmark rate declared per outcome (`benchmarks:` in config).

Every method but bayes: the Wald test of the pooled estimate against the benchmark on the model's scale, as R meta's
metaprop(null.effect=) and metafor's rma() on y_i minus the transformed benchmark: z = (estimate - g(rate)) / SE with
g the logit, or for Freeman-Tukey asin(sqrt(rate)) (the limit of metafor's PFT), a normal p; with HKSJ the t test with
k - 1 df. Method bayes: the posterior probability that the pooled rate expit(mu) exceeds the benchmark, and the
posterior predictive probability that a new trial's rate does.
"""

import numpy as np
import pandas as pd
from scipy import special

from metaprop.spec import method, settings_of
from metaprop.stats import bayes as bayesian

BENCHMARK_COLUMNS = [
    "outcome", "subgroup", "method", "k", "benchmark", "estimate", "ci_low", "ci_high", "statistic", "df", "p",
    "prob_above", "prob_new_above", "source", "note",
]


def on_model_scale(rate, token):
    """The benchmark rate on the scale the method pools on."""
    scale = method(token).scale
    return float(np.arcsin(np.sqrt(rate))) if scale == "ft" else float(special.logit(rate))


def wald_test(estimate_model, se_model, k, rate, token):
    """(statistic, df, p) of the pooled estimate against `rate`: z, or with HKSJ (k > 1) t with k - 1 df."""
    if not (np.isfinite(estimate_model) and np.isfinite(se_model) and se_model > 0):
        return np.nan, np.nan, np.nan
    statistic = (estimate_model - on_model_scale(rate, token)) / se_model
    if method(token).hksj and k > 1:
        return statistic, k - 1, float(2 * special.stdtr(k - 1, -abs(statistic)))
    return statistic, np.nan, float(2 * special.ndtr(-abs(statistic)))


def bayes_probabilities(events, n, rate, bayes=None):
    """P(pooled rate > rate) and P(a new trial's rate > rate) under the bayes posterior (fitted once per data)."""
    post = bayesian.fit(np.asarray(events, float), np.asarray(n, float), settings_of(bayes))
    x = [float(special.logit(rate))]
    return 1 - float(post.mu_cdf(x)[0]), 1 - float(post.predictive_cdf(x)[0])


def benchmark_table(studies, pooled, outcome, benchmark, bayes=None):
    """One row per modality and method of `pooled` for `outcome` against `benchmark` ({rate, source}), or an empty
    table when the outcome has none."""
    if not benchmark:
        return pd.DataFrame(columns=BENCHMARK_COLUMNS)
    rate, source = float(benchmark["rate"]), benchmark.get("source", "")
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    rows = []
    part = pooled[(pooled["outcome"] == outcome) & (pooled["subgroup"] != "overall")]
    for r in part.to_dict("records"):
        row = {"outcome": outcome, "subgroup": r["subgroup"], "method": r["method"], "k": r["k"], "benchmark": rate,
               "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "source": source,
               "note": ""}
        if method(r["method"]).family == "bayes":
            group = kept[kept["modality"] == r["subgroup"]]
            row["prob_above"], row["prob_new_above"] = bayes_probabilities(group["events"], group["n"], rate, bayes)
            row["note"] = "posterior probabilities"
        else:
            row["statistic"], row["df"], row["p"] = wald_test(r["estimate_model"], r["se_model"], r["k"], rate,
                                                              r["method"])
            if np.isnan(row["statistic"]):
                row["note"] = "no estimate with a standard error"
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=BENCHMARK_COLUMNS).astype({"k": int, "df": "Int64"})
