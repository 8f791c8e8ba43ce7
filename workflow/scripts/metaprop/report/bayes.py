"""The report's Bayesian comparison section (method bayes): blocks for reporting.report_blocks."""

import pandas as pd

from metaprop.spec import Outcomes, describe_prior, prob_column, settings_of


def _pct(x):
    return "" if pd.isna(x) else f"{100 * x:.1f}%"


def _ci(low, high, points=False):
    if pd.isna(low) or pd.isna(high):
        return ""
    return f"{100 * low:+.1f} to {100 * high:+.1f} points" if points else f"{100 * low:.1f}% to {100 * high:.1f}%"


def _pairs(tests, outcome):
    """bayes-difference rows of one outcome: one per pair of modalities, in the configured direction."""
    rows = tests[(tests["outcome"] == outcome) & (tests["test"] == "bayes-difference") & tests["diff_median"].notna()]
    return rows.to_dict("records")


def probability_sentences(tests, outcome, deltas, label):
    """'Probability that the pooled complete response rate of A exceeds B's by more than 10 points: 0.985.', A and B
    the first and second modality of the configured comparison."""
    out = []
    for r in _pairs(tests, outcome):
        a, b = r["group_1"], r["group_2"]
        parts = [(f"{r[prob_column(d)]:.3f}" if d == 0 else
                  f"by more than {100 * d:g} percentage points: {r[prob_column(d)]:.3f}") for d in deltas]
        out.append(f"Probability that the pooled {label} rate of {a} exceeds {b}'s: " + "; ".join(parts) + ".")
    return out


def bayes_blocks(pooled, tests, sensitivity, config, figures):
    """Blocks of the Bayesian comparison: the probability statements first, then the per-modality rates with
    credible intervals, the prior, the posterior figures, the differences of every outcome, and the prior
    sensitivity. `figures`: {outcome: path of posterior_<outcome>.png}."""
    s = settings_of(config.get("bayes"))
    level = config["level"]
    outcomes = Outcomes(config["outcomes"])
    primary = outcomes.ids[0]
    deltas = s["deltas"]
    prior = describe_prior(s["mu_sd"], s["tau_prior"], s["tau_scale"])
    blocks = [("h2", "The comparison, as probabilities (Bayesian random-effects model)")]
    sentences = probability_sentences(tests, primary, deltas, outcomes.label(primary))
    blocks += [("p", t) for t in sentences] or [("p", "Only one modality has usable trials: nothing to compare.")]
    rows = pooled[(pooled["outcome"] == primary) & (pooled["method"] == "bayes")]
    order = {g: i for i, g in enumerate(config.get("comparison") or [])}  # modalities in the configured order
    rows = rows.sort_values("subgroup", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    if not config.get("overall"):  # no pooled rate across the modalities compared unless config asks
        rows = rows[rows["subgroup"] != "overall"]
        sensitivity = None if sensitivity is None else sensitivity[sensitivity["subgroup"] != "overall"]
    blocks += [
        ("p", (f"Binomial-normal hierarchical model per modality (each trial's rate varies around a pooled rate on the "
               f"logit scale), prior {prior}; computed by numerical integration, not sampling. Rates are posterior "
               f"medians with central {100 * level:g}% credible intervals (CrI); the predictive interval is where a "
               "new trial's rate would fall. A modality with one trial gets an honest, wide interval: the prior on "
               "the between-trial SD carries what one trial cannot tell.")),
        ("table", ["Modality", "k", "Events/n", "Pooled rate", "CrI", "Predictive interval", "τ² (CrI)", "Note"],
         [[r.subgroup, str(r.k), f"{r.events}/{r.n}", _pct(r.estimate), _ci(r.ci_low, r.ci_high),
           _ci(r.pi_low, r.pi_high), f"{r.tau2:.3f} ({r.tau2_ci_low:.3f} to {r.tau2_ci_high:.3f})",
           r.note if isinstance(r.note, str) else ""] for r in rows.itertuples()]),
    ]
    conflicts = pooled[(pooled["method"] == "bayes") & pooled["note"].fillna("").str.contains("prior-data conflict")]
    for r in conflicts.to_dict("records"):
        reason = next(part for part in r["note"].split("; ") if part.startswith("prior-data conflict"))
        blocks.append(("p", (f"Prior-data conflict ({outcomes.label(r['outcome'])}, {r['subgroup']}): "
                            f"{reason.removeprefix('prior-data conflict: ')}.")))
    if primary in figures:
        caption = f"Posterior of each modality's pooled {outcomes.label(primary)} rate and of their difference."
        blocks.append(("figure", figures[primary], caption))
    diff = tests[(tests["method"] == "bayes") & (tests["test"] == "bayes-difference") & tests["diff_median"].notna()]
    if not diff.empty:
        blocks += [("h3", "Differences of pooled rates, every outcome"),
                   ("table", ["Outcome", "Difference", "Median", "CrI", *(f"P(> {100 * d:g} points)" for d in deltas)],
                    [[outcomes.label(r["outcome"]) + ("" if outcomes[r["outcome"]].higher_is_better else
                                                       " (lower is better)"), r["contrast"], f"{100 * r['diff_median']:+.1f} points",
                      _ci(r["diff_ci_low"], r["diff_ci_high"], points=True),
                      *(f"{r[prob_column(d)]:.3f}" for d in deltas)] for r in diff.to_dict("records")])]
    for outcome in outcomes.ids[1:]:
        if outcome in figures:
            caption = f"Posterior of the pooled {outcomes.label(outcome)} rates (method bayes)."
            blocks.append(("figure", figures[outcome], caption))
    if sensitivity is not None and not sensitivity.empty:
        body = []
        for r in sensitivity.to_dict("records"):
            is_contrast = isinstance(r["contrast"], str) and r["contrast"] != ""
            what = r["contrast"] if is_contrast else r["subgroup"]
            if not is_contrast:
                value = f"{_pct(r['estimate'])} ({_ci(r['ci_low'], r['ci_high'])})"
                probs = [""] * len(deltas)
            else:
                value = f"{100 * r['diff_median']:+.1f} points ({_ci(r['diff_ci_low'], r['diff_ci_high'], True)})"
                probs = [f"{r[prob_column(d)]:.3f}" for d in deltas]
            body.append([f"{r['tau_prior']}({r['tau_scale']:g})", what, value, *probs])
        blocks += [("h3", "Sensitivity to the prior of the between-trial SD"),
                   ("p", ("The same posteriors under other priors of tau (results/tables/prior_sensitivity.tsv); "
                          "half-Cauchy(1) is the vague one.")),
                   ("table", ["Prior of tau", "Modality or difference", "Median (CrI)",
                              *(f"P(> {100 * d:g} points)" for d in deltas)], body)]
    return blocks


def adjusted_blocks(adjusted, config):
    """The adjusted comparisons of the primary outcome: modality and moderators in one meta-regression."""
    primary = config["outcomes"][0]["id"]
    rows = adjusted[adjusted["outcome"] == primary]
    if rows.empty:
        return []
    body = []
    for r in rows.to_dict("records"):
        if pd.isna(r["statistic"]):
            result, odds = "not estimable", ""
        else:
            p = "p < 0.0001" if r["p"] < 0.0001 else f"p = {r['p']:.4f}"
            result = f"QM = {r['statistic']:.2f} (df {int(r['df'])}), {p}"
            odds = ("" if pd.isna(r["lor"]) else
                    f"{r['group_1']} vs {r['group_2']}: OR {r['or']:.2f} ({r['or_ci_low']:.2f} to "
                    f"{r['or_ci_high']:.2f})")
        body.append([r["moderators"], r["method"], "" if pd.isna(r["k"]) else str(int(r["k"])), result, odds,
                     r["note"] if isinstance(r["note"], str) else ""])
    return [("h3", "Adjusted comparisons"),
            ("p", ("Modality fitted together with each set of moderators in one meta-regression (logit scale: "
                   "inverse-variance REML, and the GLMM); the test is of modality given the moderators. Where the "
                   "design cannot separate modality from a moderator, the row says why instead of giving a number "
                   "(results/tables/adjusted_comparisons.tsv).")),
            ("table", ["Moderators", "Method", "k", "Modality given moderators", "Odds ratio (CI)", "Note"], body)]
