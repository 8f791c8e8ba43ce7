"""The summary report: one list of blocks rendered twice, as Markdown and as self-contained HTML.

Every text that comes from a data file is escaped where it lands (HTML entities, Markdown pipes).
"""

import base64
import html
import importlib.metadata
import platform
import re

import numpy as np
import pandas as pd
import yaml

from metaprop.spec import (
    CI_METHODS,
    FUNNEL_MIN_TRIALS,
    MIN_TRIALS,
    OVERLAP_RULES,
    REFERENCES,
    Outcomes,
    column_title,
    comparison_order,
    comparison_pairs,
    describe_prior,
    in_sentence,
    level_label,
    milestone_steps,
    reason_category,
    settings_of,
    subgroups_of,
)
from metaprop.spec import method as method_spec

PACKAGES = ("snakemake", "numpy", "scipy", "pandas", "statsmodels", "matplotlib")


def ordered_groups(kept, config):
    """The modalities of the kept trials in the order of config 'comparison' (first appearance otherwise)."""
    return comparison_order(subgroups_of(kept), config.get("comparison"))


def pct(x, digits=1):
    return "" if pd.isna(x) else f"{100 * x:.{digits}f}%"


def interval(low, high, digits=1):
    return "" if pd.isna(low) or pd.isna(high) else f"{100 * low:.{digits}f}% to {100 * high:.{digits}f}%"


def p_value(p):
    return "" if pd.isna(p) else ("< 0.0001" if p < 0.0001 else f"{p:.4f}")


def p_text(p):
    """'p < 0.0001' or 'p = 0.0123'."""
    return f"p {p_value(p)}" if p < 0.0001 else f"p = {p_value(p)}"


def number(x, digits=4):
    return "" if pd.isna(x) else f"{x:.{digits}f}"


def _count(x):
    return "" if pd.isna(x) else str(int(x))


# Above REPORT_ROWS rows a per-trial table is summarised in the report (REPORT_SHOWN rows, a count and the TSV
# that has every row), and lists of trial names end after REPORT_NAMES with a count: 10,000 trials made a 17 MB
# report a browser could hardly open.
REPORT_ROWS = 60
REPORT_SHOWN = 20
REPORT_NAMES = 20


def name_list(names, limit=REPORT_NAMES, sep=", "):
    """'A, B, C', or the first `limit` names and 'and N more' when there are more."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return sep.join(names)
    return sep.join(names[:limit]) + f" and {len(names) - limit:,} more"


def summarised(block, shown, what, tsv):
    """A table block as it is up to REPORT_ROWS rows; above, a sentence and the rows at positions `shown`."""
    head, body = block[1], block[2]
    if len(body) <= REPORT_ROWS:
        return [block]
    return [("p", f"{len(body):,} rows; shown here: {len(shown)} of them, {what}. Every row is in {tsv}."),
            ("table", head, [body[i] for i in shown])]


def with_key_rows(block, column, keep, what):
    """A table block with the positions of the rows that matter (their `column` cell passes `keep`), which the HTML
    shows beside the table while its section is collapsed; `what` says which rows they are."""
    at = block[1].index(column)
    return (*block[:3], ([i for i, row in enumerate(block[2]) if keep(row[at])], what))


def reference_numbers(studies):
    """{study: n} for the trials any outcome pools that have a `citation`, numbered in order of first appearance."""
    if "citation" not in studies.columns:
        return {}
    cited = studies[studies["included"] & (studies["citation"].fillna("").astype(str).str.strip() != "")]
    return {study: i for i, study in enumerate(dict.fromkeys(cited["study"]), 1)}


def references_blocks(studies):
    """A numbered reference list of the included trials, from the tables' `citation` column."""
    numbers = reference_numbers(studies)
    if not numbers:
        return []
    first = studies.drop_duplicates("study").set_index("study")["citation"]
    return [("h2", "References of the included trials"),
            ("p", ("Each trial pooled for at least one outcome, as cited in the trial tables; the numbers are those "
                  "in the tables of trials.")),
            ("table", ["No.", "Trial", "Reference"], [[str(n), s, str(first[s])] for s, n in numbers.items()])]


def studies_block(studies, outcome):
    rows = studies[studies["outcome"] == outcome]
    numbers = reference_numbers(studies)
    body = [
        [r.study + (f" [{numbers[r.study]}]" if r.study in numbers else ""), r.modality, f"{_count(r.events) or '–'}/{_count(r.n) or '–'}",
         pct(r.proportion), interval(r.ci_low, r.ci_high), "yes" if r.included else "no",
         r.reason if r.reason else r.events_source]
        for r in rows.itertuples()
    ]
    head = ["Study", "Modality", "Events/n", "Proportion", "CI", "Included", "Reason excluded / how counted"]
    return ("table", head, body)


def studies_blocks(studies, outcome):
    """The table of trials, summarised above REPORT_ROWS rows: the excluded trials first, then the largest."""
    rows = studies[studies["outcome"] == outcome].reset_index(drop=True)
    excluded = list(rows.index[~rows["included"].astype(bool)])
    largest = list(rows.index[rows["included"].astype(bool)][np.argsort(-rows.loc[rows["included"].astype(bool), "n"]
                                                                        .to_numpy(float), kind="stable")])
    return summarised(studies_block(studies, outcome), (excluded + largest)[:REPORT_SHOWN],
                      "the excluded trials, then the largest", "results/tables/studies.tsv")


def _with_interval(value, low, high, text):
    """'0.1234 (0.0000 to 1.2345)': a heterogeneity statistic with its interval where it has one."""
    shown = text(value)
    return f"{shown} ({text(low)} to {text(high)})" if shown and text(low) and text(high) else shown


def pooled_block(pooled, outcome, methods):
    rows = pooled[(pooled["outcome"] == outcome) & pooled["method"].isin(methods)]
    body = [
        [r.method, r.subgroup, str(r.k), f"{r.events}/{r.n}", pct(r.estimate), interval(r.ci_low, r.ci_high),
         interval(r.pi_low, r.pi_high), _with_interval(r.tau2, r.tau2_ci_low, r.tau2_ci_high, number),
         _with_interval(r.i2, r.i2_ci_low, r.i2_ci_high, lambda x: pct(x, 0)), f"{number(r.q, 2)} ({r.q_df})",
         p_value(r.q_p), r.note if isinstance(r.note, str) else ""]
        for r in rows.itertuples()
    ]
    head = ["Method", "Subgroup", "k", "Events/n", "Estimate", "CI", "PI", "τ² (CI)", "I² (CI)", "Q (df)", "p",
            "Note"]
    return ("table", head, body)


def without_overall(table, config):
    """The rows a reader sees: no pooled rate across the modalities compared unless config says `overall: true`
    (the TSVs keep their overall rows for other tools)."""
    if config.get("overall") or table is None or "subgroup" not in table.columns:
        return table
    return table[table["subgroup"].astype(str) != "overall"]


def tests_block(tests, outcome):
    rows = tests[tests["outcome"] == outcome].rename(columns={"or": "or_"})  # `or` is a keyword
    body = []
    for r in rows.itertuples():
        df = "" if pd.isna(r.df) else f"{int(r.df)}" + ("" if pd.isna(r.df2) else f", {int(r.df2)}")
        if not pd.isna(r.lor):
            effect = f"{r.contrast}: OR {r.or_:.2f} ({r.or_ci_low:.2f} to {r.or_ci_high:.2f})"
        elif not pd.isna(r.diff_median):  # bayes-difference: the difference of pooled rates, in points
            effect = (f"{r.contrast}: {100 * r.diff_median:+.1f} points ({100 * r.diff_ci_low:+.1f} to "
                      f"{100 * r.diff_ci_high:+.1f})")
        else:
            effect = ""
        body.append([r.method, r.test, number(r.statistic, 3), df, p_value(r.p), effect, r.note])
    head = ["Method", "Test", "Statistic (Q, QM or F)", "df", "p", "Effect (CI or CrI)", "Note"]
    return ("table", head, body)


def comparison_block(methods, subgroups):
    body = []
    for r in methods.to_dict("records"):
        cells = [f"{pct(r[f'{g}_estimate'])} ({interval(r[f'{g}_ci_low'], r[f'{g}_ci_high'])})" for g in subgroups]
        odds = "" if pd.isna(r.get("or", np.nan)) else f"{r['or']:.2f} ({r['or_ci_low']:.2f} to {r['or_ci_high']:.2f})"
        body.append([r["method"], *cells, p_value(r["between_p"]), p_value(r["metareg_p"]), odds, r["warning"]])
    head = ["Method", *subgroups, "p (between)", "p (meta-regression)", "Odds ratio (CI)", "Warning"]
    return ("table", head, body)


def leave_one_out_block(loo, outcome, method, pooled=None):
    rows = loo[(loo["outcome"] == outcome) & (loo["method"] == method)]
    body = [[r.subgroup, r.omitted, str(r.k), pct(r.estimate), interval(r.ci_low, r.ci_high), number(r.tau2),
             pct(r.i2, 0)] for r in rows.itertuples()]
    block = ("table", ["Subgroup", "Omitted", "k", "Estimate", "CI", "τ²", "I²"], body)
    if pooled is None or len(body) <= REPORT_ROWS:
        return [block]
    # influence: how far leaving the trial out moves its subgroup's pooled estimate
    full = pooled[(pooled["outcome"] == outcome) & (pooled["method"] == method)].set_index("subgroup")["estimate"]
    shift = np.abs(rows["estimate"].to_numpy(float) - rows["subgroup"].map(full).to_numpy(float))
    order = np.argsort(-np.nan_to_num(shift, nan=-1.0), kind="stable")
    return summarised(block, list(order[:REPORT_SHOWN]),
                      "the trials whose omission moves the pooled estimate most, largest change first",
                      "results/tables/leave_one_out.tsv")


def summary_sentence(pooled, tests, studies, outcome, method, level, label, order=None):
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    rows = pooled[(pooled["outcome"] == outcome) & (pooled["method"] == method)].set_index("subgroup")
    order = order or subgroups_of(kept)
    parts = [
        f"{g} {pct(rows.loc[g, 'estimate'])} ({interval(rows.loc[g, 'ci_low'], rows.loc[g, 'ci_high'])}; "
        f"k = {rows.loc[g, 'k']})" if not pd.isna(rows.loc[g, "estimate"]) else
        f"{g}: no estimate ({rows.loc[g, 'note']}; k = {rows.loc[g, 'k']})"
        for g in order
    ]
    test = tests[(tests["outcome"] == outcome) & (tests["method"] == method) & (tests["test"] == "between")]
    if "overall" in rows.index:
        total = rows.loc["overall"]
        parts.append(f"all kept trials {pct(total['estimate'])} ({interval(total['ci_low'], total['ci_high'])}; "
                     f"k = {total['k']})" if not pd.isna(total["estimate"]) else
                     f"all kept trials: no estimate ({total['note']}; k = {total['k']})")
    text = f"Pooled {label} rate ({method}, {level_label(level)} CI): {'; '.join(parts)}."
    if len(test) and not pd.isna(test["p"].iloc[0]):
        t = test.iloc[0]
        text += f" Test for subgroup differences: Q = {t.statistic:.2f}, df = {int(t.df)}, {p_text(t.p)}."
    lone = [g for g in order if rows.loc[g, "k"] == 1 and not pd.isna(rows.loc[g, "estimate"])]
    if lone:
        text += (f" {', '.join(lone)} rest{'s' if len(lone) == 1 else ''} on a single cohort: no between-trial "
                 "variance can be estimated there, and its interval reflects that cohort's sampling error only.")
    return text


def exclusions_sentence(studies, outcome):
    rows = studies[studies["outcome"] == outcome]
    overlap = rows["reason_code"] == "overlap"
    unusable = ~rows["included"] & ~overlap
    return (
        f"{len(rows)} cohorts read; {int(rows['included'].sum())} pooled; {int(unusable.sum())} excluded because "
        f"their counts cannot be used ({name_list(rows.loc[unusable, 'study']) or 'none'}); {int(overlap.sum())} "
        f"excluded because they share patients with a pooled cohort ({name_list(rows.loc[overlap, 'study']) or 'none'})."
    )


def methods_text(config):
    rule = config["overlap_rule"]
    cite = f" [{REFERENCES['clopper-pearson']}]" if config["ci_method"] == "clopper-pearson" else ""
    name = CI_METHODS[config["ci_method"]]
    ci_name = ("an " if name[0] in "aeiouAEIOU" else "a ") + name
    return [
        (f"Each trial's proportion has {ci_name} {level_label(config['level'])} confidence "
        f"interval{cite}. Where a table gives "
        "only a rounded percentage, the count is reconstructed as the whole numbers e with round(100 e / n) equal "
        "to the printed value: one such e is used, several give the one nearest n p / 100 (the range is "
        "recorded), none mark the row inconsistent and exclude it. Cohorts that share patients are declared in "
        f"the trial table; the overlap rule '{rule}' applies: {OVERLAP_RULES[rule]}."),
        ("Primary model: a random-intercept logistic regression (binomial-normal GLMM) fitted by maximum "
        f"likelihood with {config['glmm_nagq']}-point adaptive Gauss-Hermite quadrature, as metafor's rma.glmm(measure = \"PLO\") "
        f"[{REFERENCES['glmm']}; {REFERENCES['metafor']}]; it needs no continuity correction. Its maximum is "
        "located on the profile likelihood over τ (a grid from 0 to 100, refined by Newton steps with exact "
        "derivatives), so a fit cannot stop on a lesser mode, and its standard errors come from the exact "
        "Hessian. Sensitivity "
        "models pool log odds by inverse variance (0.5 added to both cells of trials with 0 or all events) with "
        f"the DerSimonian-Laird [{REFERENCES['dl']}], REML [{REFERENCES['reml']}] or Paule-Mandel "
        f"[{REFERENCES['pm']}] between-trial variance, with Wald or Hartung-Knapp-Sidik-Jonkman "
        f"[{REFERENCES['hksj']}] intervals, and Freeman-Tukey double-arcsine proportions [{REFERENCES['ft']}] "
        "back-transformed with the harmonic mean of the trial sizes (Freeman-Tukey back-transformation can "
        f"mislead [{REFERENCES['ft-warning']}]; treat those rows as a sensitivity check only)."),
        (f"Heterogeneity: Cochran's Q, I² [{REFERENCES['i2']}] and τ² with Q-profile confidence intervals "
        f"[{REFERENCES['qprofile']}] (for the GLMM, Q is metafor's likelihood-ratio test against the saturated "
        "model, and τ² has no Q-profile interval). Prediction intervals: estimate ± t(k−2)·√(τ² + SE²) "
        f"[{REFERENCES['pi']}], not given for fewer than 3 trials. Modalities are compared by Cochran's Q across "
        "the subgroup estimates of each method (each subgroup with its own τ²), and by a meta-regression on "
        "modality with a common τ² (the same τ² estimator; for the GLMM, modality as a covariate), which also "
        "gives the odds ratio between two modalities (first vs second, in the order of the comparison). Sensitivity: every method side by side, and "
        "each subgroup pooled again without each trial in turn. All numbers are checked against R's metafor in "
        "the test suite."),
        *common_effect_methods_text(config),
        *bayes_methods_text(config),
    ]


def common_effect_methods_text(config):
    """The methods paragraph of the common-effect methods configured (empty without any)."""
    common = [m for m in config.get("methods", ()) if method_spec(m).common]
    if not common:
        return []
    return [(f"Common-effect models [{REFERENCES['ee']}] ({'; '.join(m + ': ' + method_spec(m).label for m in common)}"
             "): the same data pooled with τ² = 0 by definition, as metafor's rma(method = \"EE\") "
             "and rma.glmm(method = \"EE\") (a fixed-intercept logistic regression); they answer what the trials "
             "have in common on average, not what a new trial would show, and have no prediction interval. Their "
             "I² is metafor's max(0, (Q − df)/Q) for the inverse-variance fits. Modalities are compared as above "
             "with the common-effect fit.")]


def bayes_methods_text(config):
    """The methods paragraph of method bayes and the adjusted comparisons (empty without bayes)."""
    if "bayes" not in config.get("methods", ()):
        return []
    s = settings_of(config.get("bayes"))
    return [("Bayesian random-effects model (method bayes) [Friede et al. 2017, Biom J 59:658; Günhan, Röver & "
             "Friede 2020, Res Synth Methods 11:74]: each modality's trials are binomial with logit rates normal "
             f"around a pooled logit rate; prior {describe_prior(s['mu_sd'], s['tau_prior'], s['tau_scale'])} "
             "[Röver et al. 2021, Res Synth Methods 12:448]. The posterior is integrated numerically (each trial's "
             "likelihood by adaptive Gauss-Hermite quadrature, the pooled rate and the between-trial SD by "
             "Gauss-Legendre panels; the integration error is below 1e-6, checked against an independent "
             "integration in R), not sampled. Differences of pooled rates use the modalities' independent "
             "posteriors. Adjusted comparisons fit modality and the moderators together (inverse-variance REML on "
             "the logit scale with the QM test of modality given the moderators, and the GLMM); moderator "
             "analyses compare levels within each modality.")]


# what the report job adds to the config for the text, not configuration: left out of the configuration shown
REPORT_ONLY = ("input_warnings", "previous_unreadable")


def provenance_blocks(config, input_files):
    """`input_files`: (name, SHA-256) of each input, named as in the archive."""
    versions = [["Python", platform.python_version()]] + [[p, importlib.metadata.version(p)] for p in PACKAGES]
    hashes = [[name, digest] for name, digest in input_files]
    return [
        ("h2", "Reproducibility"),
        ("p", "Software versions:"),
        ("table", ["Software", "Version"], versions),
        ("p", "SHA-256 of every input:"),
        ("table", ["File", "SHA-256"], hashes),
        ("p", "Configuration used:"),
        ("pre", yaml.safe_dump({k: v for k, v in config.items() if k not in REPORT_ONLY}, sort_keys=True,
                               allow_unicode=True)),
    ]


def subgroup_analysis_blocks(by, where, tables, figure, config):
    """One moderator analysis of the primary outcome: summary, forest plot, unknowns, estimates and tests."""
    studies, pooled, tests = tables
    pooled = without_overall(pooled, config)
    outcome, method = config["outcomes"][0]["id"], config["primary_method"]
    label = config["outcomes"][0]["label"]
    restriction = f" ({', '.join(f'{k} = {v}' for k, v in where.items())} only)" if where else ""
    blocks = [("h3", f"By {in_sentence(column_title(by))}{restriction}")]
    unknown = studies[~studies["included"] & (studies["reason_code"] == "moderator_unknown")]["study"]
    if unknown.any():
        blocks.append(("p", f"{column_title(by)} unknown, so not in this analysis: {', '.join(unknown)}."))
    if pooled.empty:
        return blocks + [("p", "No kept trial has a known value: nothing to pool.")]
    return blocks + [
        ("p", summary_sentence(pooled, tests, studies, outcome, method, config["level"], label,
                               subgroups_of(studies[studies["included"]], "group"))),
        ("figure", figure, f"Forest plot of {label} by {in_sentence(column_title(by))}."),
        pooled_block(pooled, outcome, [method]),
        tests_block(tests[tests["method"] == method], outcome),
    ]


CHANGE_FIELDS = ("modality", "events", "n", "included", "reason", "printed")


def _canonical(value):
    """A cell as text that does not depend on the column's dtype (81, 81.0 and '81' agree; NaN is empty)."""
    if pd.isna(value):
        return ""
    try:
        return f"{float(value):.12g}"
    except (TypeError, ValueError):
        return str(value)


def changes_since(previous, studies):
    """Sentences naming the trials added, removed or edited since the studies table of the last run."""
    if previous is None:
        return ["No earlier run was found in results/archive/: this is the first run."]
    before = {s: g.set_index("outcome") for s, g in previous.groupby("study", sort=False)}
    after = {s: g.set_index("outcome") for s, g in studies.groupby("study", sort=False)}
    added = [s for s in after if s not in before]
    removed = [s for s in before if s not in after]
    edited = []
    for study in (s for s in after if s in before):
        old, new = before[study], after[study]
        fields = sorted({f"{field} ({outcome})" for outcome in new.index.intersection(old.index)
                         for field in CHANGE_FIELDS if _canonical(old.loc[outcome, field]) != _canonical(new.loc[outcome, field])})
        if fields:
            edited.append(f"{study}: {', '.join(fields)}")
    if not (added or removed or edited):
        return ["No trial was added, removed or edited since the last run."]
    return [f"{label}: {'; '.join(items[:REPORT_NAMES])}" + (f" and {len(items) - REPORT_NAMES:,} more" if
            len(items) > REPORT_NAMES else "") + "." for label, items in
            (("Added", added), ("Removed", removed), ("Edited", edited)) if items]


def headline_changes(previous_pooled, pooled, config):
    """'Complete response (glmm): CAR-T 87.6% (k = 4) before, 85.4% (k = 5) now; ...': the primary outcome's pooled
    rates by the primary method in the last run and in this one, per modality in the configured order."""
    if previous_pooled is None or previous_pooled.empty:
        return []
    outcome, method = config["outcomes"][0], config["primary_method"]

    def rows(table):
        part = table[(table["outcome"] == outcome["id"]) & (table["method"] == method)]
        return part.set_index("subgroup")

    before, now = rows(previous_pooled), rows(pooled)
    groups = [g for g in (config.get("comparison") or list(now.index)) if g in now.index or g in before.index]
    said = []
    for g in groups:
        old = f"{pct(before.loc[g, 'estimate'])} (k = {int(before.loc[g, 'k'])})" if g in before.index else "none"
        new = f"{pct(now.loc[g, 'estimate'])} (k = {int(now.loc[g, 'k'])})" if g in now.index else "none"
        said.append(f"{g} {old} before, {new} now")
    return [f"Pooled {outcome['label']} rate ({method}): " + "; ".join(said) + "."] if said else []


def overlap_block(overlap, configured):
    body = []
    for r in overlap.to_dict("records"):
        if pd.isna(r["subgroup"]) or r["subgroup"] == "":
            body.append([r["overlap_rule"], "", "", "", "", r["note"]])
            continue
        label = r["overlap_rule"] + (" (configured)" if r["overlap_rule"] == configured else "")
        body.append([label, r["subgroup"], str(int(r["k"])), (f"{pct(r['estimate'])} "
                     f"({interval(r['ci_low'], r['ci_high'])})"), p_value(r["between_p"]),
                     name_list(str(r["studies"]).split("; "), sep="; ") if isinstance(r["studies"], str) else ""])
    return ("table", ["Overlap rule", "Subgroup", "k", "Estimate (CI)", "p (between)", "Cohorts pooled"], body)


def _rate(row):
    """'87.7% (77.8% to 93.5%)', or why there is no estimate."""
    if row is None:
        return ""
    if pd.isna(row["estimate"]):
        return f"no estimate ({row['note']})" if isinstance(row["note"], str) and row["note"] else "no estimate"
    return f"{pct(row['estimate'])} ({interval(row['ci_low'], row['ci_high'])})"


def findings_table(studies, pooled, config):
    """Per modality: the primary outcome's pooled rate, k, patients and I², and each safety outcome's rate."""
    outcomes, method = Outcomes(config["outcomes"]), config["primary_method"]
    primary = outcomes.ids[0]
    rows = pooled[pooled["method"] == method].set_index(["outcome", "subgroup"])
    kept = studies[(studies["outcome"] == primary) & studies["included"]]
    safety = [o.id for o in outcomes if o.role == "safety"]
    head = ["Modality", f"{outcomes.title(primary)} ({level_label(config['level'])} CI)", "Trials (k)", "Patients",
            "I²", *(f"{outcomes.title(o)} (CI; k)" for o in safety)]
    body = []
    for group in ordered_groups(kept, config):
        r = rows.loc[(primary, group)]
        cells = [group, _rate(r), str(int(r["k"])), str(int(r["n"])), pct(r["i2"], 0) or "not defined (k = 1)"]
        pooled_here = set(kept.loc[kept["modality"] == group, "study"])
        for outcome in safety:
            s_row = rows.loc[(outcome, group)] if (outcome, group) in rows.index else None
            used = studies[(studies["outcome"] == outcome) & studies["included"] & (studies["modality"] == group)]
            # the trials named where this outcome pools other trials than the primary one
            named = f": {name_list(used['study'])}" if set(used["study"]) != pooled_here else ""
            cells.append("no kept trial" if s_row is None else f"{_rate(s_row)}; k = {int(s_row['k'])}{named}")
        body.append(cells)
    return ("table", head, body)


def _names(rows):
    return name_list(rows["study"])


def _points(low, high):
    return f"{100 * low:+.1f} to {100 * high:+.1f} points"


def headline(tests, outcome, method, config, groups):
    """The comparison of the first two modalities (in the configured order) as the difference of pooled rates in
    points and the odds ratio by the primary method, the same by HKSJ and by the Bayesian model beside it, the
    facts that bear on it (tau^2 at the boundary), and whether the methods agree: (text, what they disagree on or
    '')."""
    order = [g for g in (config.get("comparison") or groups) if g in groups]
    if len(order) < 2:
        return "", ""
    a, b = order[:2]
    rows = tests[(tests["outcome"] == outcome) & (tests["group_1"] == a) & (tests["group_2"] == b)]
    level = level_label(config["level"])

    def row(token, test):
        found = rows[(rows["method"] == token) & (rows["test"] == test)]
        return found.iloc[0] if len(found) else None

    verdicts, parts = {}, []
    for token in dict.fromkeys([method, "logit-reml-hksj", "bayes"]):
        if token not in config["methods"]:
            continue
        if token == "bayes":
            d = row(token, "bayes-difference")
            if d is None or pd.isna(d["diff_median"]):
                continue
            parts.append(f"by the Bayesian model {100 * d['diff_median']:+.1f} points ({level} CrI "
                         f"{_points(d['diff_ci_low'], d['diff_ci_high'])})")
            verdicts[token] = (np.sign(d["diff_median"]), d["diff_ci_low"] > 0 or d["diff_ci_high"] < 0)
            continue
        d, m = row(token, "rate-difference"), row(token, "metareg")
        if m is None:  # more than two modalities: the pair's own row
            m = row(token, "metareg-pair")
        words = []
        if d is not None and not pd.isna(d["diff_median"]):
            words.append(f"{100 * d['diff_median']:+.1f} points ({level} CI {_points(d['diff_ci_low'], d['diff_ci_high'])})")
        if m is not None and not pd.isna(m.get("or", np.nan)):
            words.append(f"odds ratio {m['or']:.2f} ({m['or_ci_low']:.2f} to {m['or_ci_high']:.2f}, {p_text(m['p'])})")
            verdicts[token] = (np.sign(m["lor"]), m["or_ci_low"] > 1 or m["or_ci_high"] < 1)
            if isinstance(m["note"], str) and "boundary 0" in m["note"]:
                words.append("with tau² estimated at 0 in the meta-regression, in effect a common-effect comparison "
                             "that ignores the variation between trials")
        if words:
            parts.append(f"by {token} " + ", ".join(words))
    if not parts:
        return "", ""
    text = (f" {a} minus {b}: " + "; ".join(parts) + ". (Differences of rates come from each modality's own pooled "
            "rate; odds ratios and p from the meta-regression on modality with one tau² for all.)")
    if len({sign for sign, _ in verdicts.values()}) > 1:
        text += " The methods disagree on the direction of the difference."
        return text, "the direction of the difference"
    if len({excludes for _, excludes in verdicts.values()}) > 1:
        yes = [t for t, (_, excludes) in verdicts.items() if excludes]
        no = [t for t, (_, excludes) in verdicts.items() if not excludes]
        text += (f" The methods disagree on whether the interval excludes no difference: it does by {', '.join(yes)}, "
                 f"not by {', '.join(no)}; read the comparison as uncertain.")
        return text, "whether the interval excludes no difference"
    return text, ""


def in_short(certainty, tests, config, groups):
    """The first lines of the summary, for a phone's first screen: the primary outcome's pooled rate per modality,
    the difference of the first two, each with its certainty (certainty.tsv), and whether the methods disagree."""
    primary = config["outcomes"][0]
    if certainty is None or certainty.empty:
        return ""
    rows = certainty[certainty["outcome"] == primary["id"]].set_index("subgroup")
    parts = [f"{g} {pct(rows.loc[g, 'estimate'])} ({interval(rows.loc[g, 'ci_low'], rows.loc[g, 'ci_high'])}; "
             f"{rows.loc[g, 'certainty']} certainty)" for g in groups if g in rows.index
             and not pd.isna(rows.loc[g, "estimate"])]
    if not parts:
        return ""
    text = f"In short: the pooled {primary['label']} rate is " + "; ".join(parts)
    order = [g for g in (config.get("comparison") or groups) if g in groups]
    pair = f"{order[0]} minus {order[1]}" if len(order) >= 2 else None
    if pair in rows.index and not pd.isna(rows.loc[pair, "estimate"]):
        d = rows.loc[pair]
        text += (f". {pair}: {100 * d['estimate']:+.1f} points ({_points(d['ci_low'], d['ci_high'])}; "
                 f"{d['certainty']} certainty), by the primary method ({config['primary_method']})")
        disagreement = headline(tests, primary["id"], config["primary_method"], config, groups)[1]
        if disagreement:
            text += f"; the methods disagree on {disagreement} (below)"
    return text + "."


METHOD_MARGIN = 0.10  # pooled rates of one modality that differ by more than this between methods: said in the summary


def method_dependence(pooled, config):
    """Sentences for each (outcome, modality) whose pooled rate by logit-REML (HKSJ) or the Bayesian model differs from
    the primary method's by more than METHOD_MARGIN: the rate depends on the method, and the summary says so."""
    method = config["primary_method"]
    others = [m for m in ("logit-reml-hksj", "logit-reml", "bayes") if m in config["methods"] and m != method]
    if "logit-reml-hksj" in others and "logit-reml" in others:  # the same estimate: name it once
        others.remove("logit-reml")
    rows = pooled.set_index(["outcome", "subgroup", "method"])["estimate"]
    said = []
    for entry in config["outcomes"]:
        present = set(pooled.loc[pooled["outcome"] == entry["id"], "subgroup"])
        for group in [g for g in (config.get("comparison") or []) if g in present]:
            lead = rows.get((entry["id"], group, method))
            found = {m: rows.get((entry["id"], group, m)) for m in others}
            found = {m: v for m, v in found.items() if v is not None and not pd.isna(v)}
            if lead is None or pd.isna(lead) or not found:
                continue
            if max(abs(v - lead) for v in found.values()) > METHOD_MARGIN:
                values = "; ".join(f"{m} {pct(v)}" for m, v in {method: lead, **found}.items())
                said.append(f"{group}'s pooled {entry['label']} rate depends on the method ({values})")
    if not said:
        return ""
    return (" " + "; ".join(s[0].upper() + s[1:] for s in said[:1]) + ("; " + "; ".join(said[1:]) if said[1:] else "")
            + f": methods differ by more than {100 * METHOD_MARGIN:g} points, so read these rates as uncertain.")


def findings_paragraph(studies, pooled, tests, config):
    """The comparison and its main caveats, in plain words."""
    primary, method = config["outcomes"][0]["id"], config["primary_method"]
    label = config["outcomes"][0]["label"]
    rows = pooled[(pooled["outcome"] == primary) & (pooled["method"] == method)].set_index("subgroup")
    outcome_rows = studies[studies["outcome"] == primary]
    kept = outcome_rows[outcome_rows["included"]]
    groups = ordered_groups(kept, config)
    parts = [f"{g} {_rate(rows.loc[g])} from {rows.loc[g, 'k']} trial{'s' if rows.loc[g, 'k'] != 1 else ''} "
             f"({rows.loc[g, 'n']} patients)" for g in groups]
    text = f"By the primary method ({method}), the pooled {label} rate is " + "; ".join(parts) + "."
    text += headline(tests, primary, method, config, groups)[0]
    caveats = [("every trial is single-arm, so the modalities are compared across trials with different patients, "
                "not within a randomised comparison")]
    lone = [g for g in groups if rows.loc[g, "k"] == 1]
    if lone:
        caveats.append(f"{', '.join(lone)} rest{'s' if len(lone) == 1 else ''} on a single cohort, so its interval "
                       "shows that cohort's sampling error only and nothing of the variation between trials")
    category = outcome_rows["reason_code"].map(lambda code: reason_category(code) if code else "")
    excluded = outcome_rows[~outcome_rows["included"]]
    overlap = excluded[category[excluded.index] == "overlapping cohort"]
    if len(overlap):
        caveats.append(f"{len(overlap)} cohort{'s' if len(overlap) != 1 else ''} sharing patients with a pooled "
                       f"cohort {'were' if len(overlap) != 1 else 'was'} left out so that no patient counts twice "
                       f"({_names(overlap)})")
    impossible = excluded[category[excluded.index] == "inconsistent count"]
    if len(impossible):
        caveats.append(f"{len(impossible)} row{'s' if len(impossible) != 1 else ''} of the tables print a rate no "
                       f"count out of their n can give, and {'were' if len(impossible) != 1 else 'was'} excluded "
                       f"({_names(impossible)})")
    other = excluded[~category[excluded.index].isin(["overlapping cohort", "inconsistent count"])]
    if len(other):
        caveats.append(f"{len(other)} more could not be used ({_names(other)}: see the table of trials)")
    order = config.get("comparison") or groups
    if len(order) > 1:
        basis = ("as the configuration's comparison sets" if config.get("comparison_configured", True) else
                 "in the order the trial tables first name the modalities (the configuration's comparison names "
                 "none of them)")
        pairs = ", ".join(f"{a} vs {b}" for a, b in comparison_pairs(order))
        text += (f" Every contrast in this report reads first vs second of the modalities in the order "
                 f"{', '.join(order)} ({pairs}): odds ratios of the first against the second, differences of rates "
                 f"the first minus the second, {basis}.")
    text += method_dependence(without_overall(pooled, config), config)
    return text + " Caveats: " + "; ".join(caveats) + "."


def flow_blocks(flow_figure):
    return [("h2", "Selection of cohorts"),
            ("p", (f"PRISMA 2020-style flow diagram [{REFERENCES['prisma']}], drawn from results/tables/studies.tsv: "
                   "the cohorts read from each trial table, and per outcome the cohorts excluded with each reason and "
                   "those pooled per modality.")),
            ("figure", flow_figure, "Flow diagram of the selection of cohorts.")]


def cumulative_blocks(cumulative, figures, config):
    method = config["primary_method"]
    blocks = [("h2", "Cumulative meta-analysis"),
              ("p", (f"Trials added one at a time in order of publication year (ties broken by study id) "
                     f"[{REFERENCES['cumulative']}]: each row is the pooled estimate of the trials up to and including "
                     f"the one named, by the primary method ({method}); results/tables/cumulative.tsv also has "
                     "logit-REML, metafor's default, for comparison with cumul()."))]
    for entry, figure in zip(config["outcomes"], figures):
        outcome, label = entry["id"], entry["label"]
        rows = without_overall(cumulative[(cumulative["outcome"] == outcome) & (cumulative["method"] == method)],
                               config)
        body = [[r.subgroup, str(r.step), r.study, "" if pd.isna(r.year) else str(r.year), f"{r.events}/{r.n}",
                 pct(r.estimate), interval(r.ci_low, r.ci_high), pct(r.i2, 0)] for r in rows.itertuples()]
        notes = sorted({n.split("; ")[-1] for n in rows["note"] if isinstance(n, str) and "year" in n})
        notes = [note if len(note) < 2000 else note.split(": ")[0] + " (see results/tables/cumulative.tsv)"
                 for note in notes]
        steps = rows["step"].to_numpy(int)
        last = np.r_[steps[1:] <= steps[:-1], True][:len(steps)]  # the last step of each subgroup
        shown = list(np.flatnonzero(np.isin(steps, milestone_steps(steps.max() if len(steps) else 0)) | last))
        blocks += [("h3", f"Cumulative: {label}"),
                   ("figure", figure, f"Cumulative forest plot of {label} ({method})."),
                   *summarised(("table", ["Subgroup", "Step", "Trial added", "Year", "Events/n", "Estimate", "CI",
                                          "I²"], body),
                               shown,
                               "steps 1 to 5, 10, 20, 50, 100, ... and the last of each subgroup",
                               "results/tables/cumulative.tsv")]
        blocks += [("p", f"Order: {note}.") for note in notes]
    return blocks


def small_study_blocks(small_study, figures, config):
    blocks = [("h2", "Small-study effects"),
              ("p", (f"Funnel plots of each modality (logit proportion against its standard error, with the "
                     "logit-REML estimate and its pseudo confidence region, as metafor's funnel()), Egger's "
                     f"regression test [{REFERENCES['egger']}] as metafor's regtest(model = \"rma\", predictor = "
                     f"\"sei\") and Peters' test [{REFERENCES['peters']}]. The tests are run only where a modality has "
                     f"at least {MIN_TRIALS} trials; with fewer they cannot tell chance from asymmetry, and the table "
                     f"says \"not assessed\" instead of a p [{REFERENCES['sterne']}]. Funnel asymmetry of proportions is "
                     "a weak signal of publication bias: single-arm rates vary between trials for many reasons, and "
                     f"tests built for comparative effects are poorly suited to them [{REFERENCES['hunter']}]. A "
                     f"modality with fewer than {FUNNEL_MIN_TRIALS} trials gets no funnel, and its panel says so: two "
                     "points cannot show an asymmetry."))]
    body = [[r.outcome, r.subgroup, r.test.capitalize(), str(r.k), number(r.statistic, 3),
             "" if pd.isna(r.df) else str(int(r.df)), p_value(r.p), r.note if isinstance(r.note, str) else ""]
            for r in small_study.itertuples()]
    blocks.append(("table", ["Outcome", "Subgroup", "Test", "k", "Statistic (z or t)", "df", "p", "Verdict"], body))
    for entry, figure in zip(config["outcomes"], figures):
        blocks.append(("figure", figure, f"Funnel plots of {entry['label']} by modality."))
    return blocks


def certainty_blocks(certainty, config):
    """The summary of findings with the certainty of the evidence (GRADEpro's layout): per outcome, each modality's
    rate and the difference of the first two, trials and patients, the certainty and the reasons for it."""
    if certainty is None or certainty.empty:
        return []
    labels = {o["id"]: o["label"] for o in config["outcomes"]}
    body = []
    for r in certainty.to_dict("records"):
        is_difference = " minus " in str(r["subgroup"]) and r["subgroup"] not in (config.get("comparison") or [])
        value = ((f"{100 * r['estimate']:+.1f} points ({_points(r['ci_low'], r['ci_high'])})" if is_difference else
                  f"{pct(r['estimate'])} ({interval(r['ci_low'], r['ci_high'])})")
                 if not pd.isna(r["estimate"]) else "no estimate")
        reasons = "; ".join(f"{d.replace('_', ' ')}: {r[d]} ({r[d + '_reason']})" for d in
                            ("risk_of_bias", "inconsistency", "imprecision", "indirectness", "publication_bias")
                            if r[d] != "not serious")
        body.append([labels.get(r["outcome"], r["outcome"]), r["subgroup"], value, f"{r['k']} ({r['n']})",
                     r["certainty"], reasons or "no serious concern"])
    return [("h3", "Certainty of the evidence (GRADE)"),
            ("p", ("Single-arm trials start at low certainty (GRADE for non-randomised evidence); each serious "
                   "domain lowers it one level. The suggested ratings, their reasons and any override with its "
                   "justification are in results/tables/certainty.tsv.")),
            ("table", ["Outcome", "Modality or difference", "Rate or difference (CI)", "Trials (patients)",
                       "Certainty", "Reasons"], body)]


def influence_blocks(influence, figures, baujat_method, config):
    """The influence section: per outcome and modality the trials metafor's influence() marks influential in the
    Baujat plots' method, the trials whose omission moves the GLMM's pooled log odds by more than its standard error,
    and the Baujat plots (`figures`, one per outcome). `influence`: influence.tsv."""
    blocks = [("h2", "Influence diagnostics"),
              ("p", ("Per modality, each trial's influence on the random-effects fit on the logit scale, as metafor's "
                     f"influence() [{REFERENCES['influence']}]: studentised deleted residual, DFFITS, Cook's distance, "
                     "covariance ratio, τ² and Q without the trial, hat value and weight. A trial is marked "
                     "influential when |DFFITS| > 3 sqrt(1/(k - 1)), its Cook's distance exceeds the median of χ² "
                     "with 1 df, its hat value exceeds 3/k, or |DFBETAS| > 1. For the GLMM, the trials whose omission "
                     "moves the pooled log odds by more than its standard error. Every method and column is in "
                     f"results/tables/influence.tsv; the Baujat plots [{REFERENCES['baujat']}] show each trial's "
                     "contribution to the heterogeneity against its influence on the pooled estimate. A modality with one "
                     "trial has none."))]
    if baujat_method:
        blocks[-1] = ("p", blocks[-1][1] + f" Influential trials are named for {method_spec(baujat_method).label}.")
    for entry, figure in zip(config["outcomes"], figures):
        rows = influence[influence["outcome"] == entry["id"]]
        sentences = []
        for group in dict.fromkeys(rows["subgroup"]):
            part = rows[rows["subgroup"] == group]
            flagged = part[(part["method"] == baujat_method) & part["inf"].astype(str).eq("True")]["study"].tolist()
            moved = part[(part["method"] == "glmm") & part["moves_beyond_se"].astype(str).eq("True")]["study"].tolist()
            said = [f"{group}: influential {name_list(flagged)}" if flagged else f"{group}: no influential trial"]
            if (part["method"] == "glmm").any():
                said.append(f"omitting {name_list(moved)} moves the GLMM's pooled rate by more than its standard error"
                            if moved else "no single trial moves the GLMM's pooled rate by more than its standard error")
            sentences.append(", ".join(said))
        text = "; ".join(sentences) if sentences else "no modality with 2 or more trials"
        blocks += [("h3", f"Influence: {entry['label']}"), ("p", text + "."),
                   ("figure", figure, f"Baujat plots of {entry['label']} by modality.")]
    return blocks


def _same_decimals(estimate, low, high):
    """'+0.165 (-1.270 to 1.600)': an estimate to 3 significant digits and its interval to as many decimals."""
    decimals = 3 if estimate == 0 else int(np.clip(2 - np.floor(np.log10(abs(estimate))), 1, 6))
    return f"{estimate:+.{decimals}f} ({low:.{decimals}f} to {high:.{decimals}f})"


def meta_regression_blocks(table, figures, config):
    """The meta-regression section (config meta_regressions): per outcome, each moderator set's slopes, QM, R^2 and
    residual heterogeneity by modality and method, the design's limits in words, and the bubble plots (`figures`:
    {(outcome, moderator, across): path}). `table`: meta_regressions.tsv."""
    if table.empty:
        return []
    sets = list(dict.fromkeys(table["moderators"]))
    described = "; ".join(" and ".join(in_sentence(column_title(c)) + f" ({c})" for c in s.split(" + ")) for s in sets)
    blocks = [("h2", "Meta-regression on continuous moderators"),
              ("p", (f"Moderators: {described}, on the scale of the trial tables (the fits centre and scale them "
                     "internally and report coefficients per unit of the column). Each trial's log odds is "
                     "regressed on the moderators within each modality (or across the modalities, modality a "
                     "factor, where the configuration says so): inverse-variance REML on the logit scale with the "
                     "z test and with the Knapp-Hartung adjustment (t and F tests), as metafor's rma(mods = ...), "
                     "and the random-intercept logistic model (GLMM), as rma.glmm(mods = ...). QM tests all "
                     "moderators together; R² is the share of the between-trial variance τ² they account for "
                     "(metafor's pseudo-R², against the model without moderators fitted the same way, truncated "
                     "at 0); τ² and I² are what remains. A design the data cannot support (no more trials than "
                     "coefficients, a moderator the same in every trial, a moderator confounded with modality) "
                     "is said so instead of a number. Every coefficient is in results/tables/meta_regressions.tsv.")),
              ]
    level = level_label(config["level"])
    for entry in config["outcomes"]:
        rows = table[table["outcome"] == entry["id"]]
        if rows.empty:
            continue
        body = []
        for key, part in rows.groupby(["moderators", "group", "method"], sort=False):
            first = part.iloc[0]
            if pd.isna(first["qm"]):
                body.append([*key, "" if pd.isna(first["k"]) else str(int(first["k"])), "not estimable", "", "", "",
                             first["note"] if isinstance(first["note"], str) else ""])
                continue
            slopes = "; ".join(f"{r['term']} {_same_decimals(r['estimate'], r['ci_low'], r['ci_high'])}"
                               for r in part.to_dict("records") if r["term"] != "intercept")
            test = (f"F({int(first['qm_df'])}, {int(first['qm_df2'])}) = {first['qm']:.2f}" if pd.notna(first["qm_df2"])
                    else f"QM({int(first['qm_df'])}) = {first['qm']:.2f}")
            body.append([*key, str(int(first["k"])), slopes, f"{test}, {p_text(first['qm_p'])}", pct(first["r2"], 0),
                         f"{first['tau2']:.3f}, {pct(first['i2'], 0)}",
                         first["note"] if isinstance(first["note"], str) else ""])
        blocks += [("h3", f"Meta-regression: {entry['label']}"),
                   ("table", ["Moderators", "Modality", "Method", "k", f"Slope per unit, log odds ({level} CI)",
                              "Test of moderators", "R²", "Residual τ², I²", "Note"], body)]
        for (outcome, moderator, across), path in figures.items():
            if outcome == entry["id"]:
                where = "across the modalities" if across else "by modality"
                blocks.append(("figure", path, (f"Bubble plot: {entry['label']} against {in_sentence(column_title(moderator))} "
                                                f"{where}; point area by weight, the logit-REML fit with its {level} "
                                                "CI.")))
    return blocks


def benchmark_sentence(benchmarks, config):
    """One sentence of the summary: the primary outcome's pooled rate per modality (primary method) against its
    benchmark, with the Wald p, and with method bayes the probabilities that the pooled rate and a new trial's rate
    exceed it; '' when the primary outcome has no benchmark. `benchmarks`: benchmarks.tsv."""
    primary = Outcomes(config["outcomes"]).primary
    rows = benchmarks[benchmarks["outcome"] == primary.id]
    if rows.empty:
        return ""
    rate, source = rows["benchmark"].iloc[0], rows["source"].iloc[0]
    order = {g: i for i, g in enumerate(config.get("comparison") or [])}  # modalities in the configured order
    rows = rows.sort_values("subgroup", key=lambda c: c.map(order).fillna(len(order)), kind="stable")
    lead = rows[rows["method"] == config["primary_method"]]
    said = [f"{r.subgroup} {pct(r.estimate)} ({p_text(r.p)})" if pd.notna(r.p) else f"{r.subgroup} {pct(r.estimate)}"
            for r in lead.itertuples()]
    text = (f"Against a benchmark {primary.label} rate of {pct(rate, 0)}"
            + (f" ({source})" if isinstance(source, str) and source else "")
            + f", the pooled rates by {method_spec(config['primary_method']).label} are " + "; ".join(said))
    bayes = rows[rows["method"] == "bayes"]
    if not bayes.empty:
        text += ("; the posterior probability that the pooled rate exceeds it is "
                 + ", ".join(f"{pct(r.prob_above)} for {r.subgroup}" for r in bayes.itertuples())
                 + ", and that a new trial's rate does, "
                 + ", ".join(f"{pct(r.prob_new_above)} for {r.subgroup}" for r in bayes.itertuples()))
    return text + " (results/tables/benchmarks.tsv)."


def report_blocks(studies, pooled, tests, loo, methods, overlap, config, figures, input_files, analyses=(),
                  previous=None, skipped=(), review=None, lead=(), certainty=None):
    """The report as blocks: ('h1'|'h2'|'h3'|'p'|'pre', text), ('table', head, rows), ('figure', path, caption).

    `analyses`: (by, where, (studies, pooled, tests), figure) for each moderator analysis; `previous`: the
    studies table of the last run (from its archive), or None; `review`: {"cumulative": table,
    "cumulative_figures": [...], "small_study": table, "funnel_figures": [...], "flow": path}, or None; `lead`:
    blocks of the first section after the table of contents (the Bayesian comparison).
    The summary of findings and the primary forest plot come first, then a table of contents.
    """
    pooled, loo, overlap = (without_overall(t, config) for t in (pooled, loo, overlap))
    method, level = config["primary_method"], config["level"]
    outcomes = Outcomes(config["outcomes"])
    primary = outcomes.primary
    question = [("p", config["question"])] if config.get("question") else []
    source = [("p", f"Data: {config['source']}")] if config.get("source") else []
    mismatch = [] if config.get("comparison_configured", True) else [(
        "p", ("Note: the configuration's comparison names none of the modalities of these trial tables, so the "
              "title, question and data source above may belong to another analysis; set title, question, source and "
              "comparison for this one (README, 'Declaring the question')."))]
    changes = changes_since(previous, studies)
    # something changed since the last run: said at the top, with the headline numbers before and after
    changed = previous is not None and not config.get("previous_unreadable") and not changes[0].startswith("No trial")
    top = ([("h2", "Changes since the last run"), *(("p", text) for text in changes),
            *(("p", text) for text in headline_changes((review or {}).get("previous_pooled"), pooled, config))]
           if changed else [])
    blocks = [("h1", config.get("title") or "Meta-analysis of single-arm trials"),
              *question,
              *source,
              *mismatch,
              *top,
              ("h2", "Summary of findings"),
              *[("p", text) for text in [in_short(certainty, tests, config, ordered_groups(
                  studies[(studies["outcome"] == primary.id) & studies["included"]], config))] if text],
              findings_table(studies, pooled, config),
              ("p", findings_paragraph(studies, pooled, tests, config)),
              *[("p", text) for text in ([benchmark_sentence(review["benchmarks"], config)]
                                         if review and "benchmarks" in review else []) if text],
              *certainty_blocks(certainty, config),
              # the Bayesian comparison's probability statements, also on the first screen
              *[b for b in lead if b[0] == "p" and b[1].startswith(("Probability that", "Prior-data conflict"))],
              ("figure", figures[0], (f"Forest plot of {primary.label}; primary method: "
                                      f"{method_spec(method).label}.")),
              ("p", (f"Every interval in this report is a {level_label(level)} confidence interval (CI) or prediction "
                    "interval (PI), or in the Bayesian section a credible interval (CrI); proportions are shown as "
                    "percentages.")),
              ("toc",),
              *lead]
    if config.get("previous_unreadable"):
        blocks += [("h2", "Changes since the last run"),
                   ("p", config["previous_unreadable"][0].upper() + config["previous_unreadable"][1:])]
    elif not changed:
        blocks += [("h2", "Changes since the last run"), *(("p", text) for text in changes)]
    if config.get("input_warnings"):  # only then: the section is absent from a report without warnings
        blocks += [("h2", "Warnings about the trial tables")] + [("p", w) for w in config["input_warnings"]]
    if review:
        blocks += flow_blocks(review["flow"])
    for entry, figure in zip(outcomes, figures):
        outcome, label = entry.id, entry.label
        kept = studies[(studies["outcome"] == outcome) & studies["included"]]
        definition = [("p", f"Outcome: {entry.definition}.")] if entry.definition else []
        blocks += [
            ("h2", entry.title),
            *definition,
            ("p", summary_sentence(pooled, tests, studies, outcome, method, level, label,
                                   ordered_groups(kept, config))),
            ("p", exclusions_sentence(studies, outcome)),
            ("figure", figure, f"Forest plot of {label} ({method_spec(method).label})."
                               + (" No study weights: the GLMM defines none (as R meta, which omits them); squares are "
                                  "sized by the trials' share of patients." if method_spec(method).family == "glmm"
                                  else "")),
            ("h3", "Trials, per-trial confidence intervals and exclusions"),
            *[with_key_rows(b, "Included", lambda cell: cell != "yes", "the excluded trials and why")
              if b[0] == "table" else b for b in studies_blocks(studies, outcome)],
            ("h3", f"Pooled estimates, primary method ({method})"),
            pooled_block(pooled, outcome, [method]),
            ("h3", "Test for subgroup differences"),
            with_key_rows(tests_block(tests, outcome), "Method", lambda cell: cell == method,
                          f"the tests by the primary method ({method})"),
            ("h3", "All methods"),
            with_key_rows(pooled_block(pooled, outcome, config["methods"]), "Method", lambda cell: cell == method,
                          f"the primary method ({method})"),
            ("h3", f"Leave-one-out ({method})"),
            ("p", ("Each modality pooled again without each trial in turn; every method, and all kept trials "
                  "together, in results/tables/leave_one_out.tsv.")),
            *leave_one_out_block(loo, outcome, method, pooled),
        ]
        if outcome == primary.id:
            blocks += [
                ("h3", "Sensitivity: every method side by side"),
                comparison_block(methods, [*subgroups_of(kept), *(["overall"] if config.get("overall") else [])]),
                ("h3", "Sensitivity: overlapping cohorts"),
                ("p", ("The primary analysis when each set of cohorts that share patients is reduced by each rule: "
                      "'largest', 'latest' or 'earliest' keep one cohort of each overlapping set (and any cohort "
                      "that shares no patient with those kept); 'none' keeps them all and counts shared patients "
                      "twice.")),
                overlap_block(overlap, config["overlap_rule"]),
            ]
    if config.get("skipped_outcomes"):
        blocks.append(("p", ("Outcomes left out, their columns not being in the trial tables: "
                            f"{'; '.join(config['skipped_outcomes'])}.")))
    if review:
        blocks += cumulative_blocks(review["cumulative"], review["cumulative_figures"], config)
        blocks += small_study_blocks(review["small_study"], review["funnel_figures"], config)
        if "influence" in review:
            blocks += influence_blocks(review["influence"], review["baujat_figures"], review["baujat_method"], config)
        if "metareg" in review:
            blocks += meta_regression_blocks(review["metareg"], review["bubble_figures"], config)
    if analyses or skipped:
        blocks.append(("h2", f"Subgroup analyses of {primary.label}"))
        for by, where, tables, figure in analyses:
            blocks += subgroup_analysis_blocks(by, where, tables, figure, config)
        if skipped:
            blocks.append(("p", f"Skipped, their columns not being in the trial tables: {'; '.join(skipped)}."))
    blocks += references_blocks(studies)
    blocks += [("h2", "Methods")] + [("p", text) for text in methods_text(config)]
    return blocks + provenance_blocks(config, input_files)


_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])")


def _md_text(text):
    """Text as Markdown that renders as the text itself: characters that would open a link or image, emphasis,
    code or a table cell are backslash-escaped; Markdown passes raw HTML on, so a '<' that could open a tag or an
    autolink becomes '&lt;' ('p < 0.05' stays readable), and an '&' that would start an entity '&amp;'. An '_'
    inside a word (leave_one_out) stays as it is: it cannot open emphasis there."""
    text = re.sub(r"&(?=#?[0-9A-Za-z]+;)", "&amp;", str(text))
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])", r"\\_", text)


def _md_cell(text):
    return _md_text(text).replace("\n", " ")


def heading_ids(blocks):
    """A unique anchor per heading, as GitHub makes them (lower case, punctuation dropped, spaces to '-',
    '-1', '-2' for repeats), so the table of contents links work in report.html and report.md alike."""
    seen, ids = {}, {}
    for i, block in enumerate(blocks):
        if block[0] in ("h2", "h3"):
            base = re.sub(r"[^\w\- ]", "", str(block[1]).lower()).replace(" ", "-")
            count = seen.get(base, 0)
            seen[base] = count + 1
            ids[i] = base if count == 0 else f"{base}-{count}"
    return ids


def contents(blocks, ids):
    """(anchor, text) of every h2 after the table of contents."""
    start = next((i for i, b in enumerate(blocks) if b[0] == "toc"), 0)
    return [(ids[i], b[1]) for i, b in enumerate(blocks) if i > start and b[0] == "h2"]


def to_markdown(blocks, figure_links):
    """Markdown; figures are linked with the relative paths in `figure_links`."""
    out = []
    ids = heading_ids(blocks)
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_text(block[1]))
        elif kind == "toc":
            out.append("**Contents**\n\n" + "\n".join(f"- [{_md_cell(text)}](#{anchor})"
                                                    for anchor, text in contents(blocks, ids)))
        elif kind == "p":
            out.append(_md_text(block[1]))
        elif kind == "pre":
            # a fence longer than any run of backticks in the text, which therefore cannot close it early
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", block[1])), default=0))
            out.append(f"{fence}\n" + block[1].rstrip("\n") + f"\n{fence}")
        elif kind == "table":
            head, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{_md_cell(block[2])}]({figure_links[block[1]]})")
    return "\n\n".join(out) + "\n"


# Screen: readable from phone width up (wide tables scroll inside their box, long words wrap);
# print: no table, row or figure cut across pages, figures within the page width, no navigation.
STYLE = """h1{font-size:1.8em}body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:0;font-size:0.85em}th,td{border:1px solid #bbb;padding:0.25em 0.5em;
text-align:left;vertical-align:top;overflow-wrap:normal}th{background:#eee}
.table{overflow-x:auto;margin:1em 0;max-width:100%}figure{margin:1em 0}img{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;white-space:pre-wrap}
nav{background:#f6f6f6;padding:0.5em 1em;margin:1em 0}nav ul{margin:0.3em 0;padding-left:1.2em}
details{margin:0.4em 0}summary{cursor:pointer}summary>h3{display:inline}details.figure>summary{color:#333}
details[open]+.keyrows{display:none}.keyrows{margin:0 0 0 1.2em}.note,.hint{color:#555;font-size:0.9em}
.zoom{display:block;cursor:zoom-in}.zoom input{position:absolute;opacity:0;width:1px;height:1px}
.zoom input:checked+.frame{position:fixed;top:0;left:0;right:0;bottom:0;overflow:auto;background:#fff;z-index:10;
cursor:zoom-out}.zoom input:checked+.frame img{max-width:none;width:auto}
.zoom input:focus-visible+.frame img{outline:2px solid #06c}
#summary-of-findings+.table table{font-size:0.95em}
@media screen and (max-width:40em){body{margin:0.5em auto;padding:0 0.5em}h1{font-size:1.3em}
.table table,.table tbody,.table tr,.table td{display:block;width:auto}.table thead{display:none}
.table tr{border:1px solid #bbb;margin:0 0 0.5em}.table td{border:0;overflow-wrap:anywhere}
.table td:before{content:attr(data-label) ": ";font-weight:bold}}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}nav{display:none}
.table{overflow:visible}table{font-size:8pt;break-inside:avoid;page-break-inside:avoid}
tr,figure,img{break-inside:avoid;page-break-inside:avoid}thead{display:table-header-group}
h2,h3{break-after:avoid;page-break-after:avoid}img{max-width:100%;max-height:24cm}
pre{white-space:pre-wrap}.hint,.zoom input{display:none}}"""


# Subsections shown open: the answer itself. Every other subsection, and every figure after the summary, is
# collapsed behind its heading (the key rows of its tables shown beside it), so that the page is short.
OPEN_SECTIONS = ("Certainty of the evidence", "Pooled estimates")
OPEN_ROWS = 8  # a longer table or any preformatted text outside a subsection is collapsed too


def _table_html(head, body):
    esc = html.escape
    cells = "".join(f"<th>{esc(str(h))}</th>" for h in head)
    labels = [esc(str(h)) for h in head]  # shown beside each cell where a phone stacks the table
    rows = "".join("<tr>" + "".join(f'<td data-label="{label}">{esc(str(c))}</td>' for label, c in
                                    zip(labels, row)) + "</tr>" for row in body)
    return f'<div class="table"><table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table></div>'


def _figure_html(path, caption):
    """The figure, enlarged to its full size (and scrollable) on a tap or click, closed by another: a checkbox and
    CSS, so the page stays one file that runs no script."""
    esc = html.escape
    with open(path, "rb") as handle:
        data = base64.b64encode(handle.read()).decode("ascii")
    return (f'<figure><label class="zoom" title="Tap or click to enlarge; again to close">'
            f'<input type="checkbox" aria-label="Enlarge the figure: {esc(caption)}"><span class="frame">'
            f'<img alt="{esc(caption)}" src="data:image/png;base64,{data}"></span></label>'
            f"<figcaption>{esc(caption)} <span class=\"hint\">(tap the figure to enlarge it)</span></figcaption>"
            "</figure>")


def _key_rows_html(block):
    """The rows of a collapsed table that matter (block[3]: their positions and what they are), shown beside it."""
    head, body, (shown, what) = block[1], block[2], block[3]
    note = (f"Shown: {what} ({len(shown)} of {len(body)} rows); open the section above for every row, which its TSV "
            "also holds.")
    return (f'<div class="keyrows"><p class="note">{html.escape(note)}</p>'
            f"{_table_html(head, [body[i] for i in shown])}</div>")


def to_html(blocks):
    """One self-contained HTML file: figures embedded as base64 PNG, all text escaped; after the summary, each
    subsection but the answer's own (OPEN_SECTIONS) and each figure collapsed behind its heading (<details>)."""
    esc = html.escape
    ids = heading_ids(blocks)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(blocks[0][1])}</title><style>{STYLE}</style></head><body>"]
    summary_ends = next((i for i, b in enumerate(blocks) if b[0] == "toc"), len(blocks))
    collapsed, held = False, []  # inside a collapsed subsection; the key rows of its tables, shown after it

    def close():
        nonlocal collapsed, held
        if collapsed:
            out.append("</details>")
            out.extend(held)
        collapsed, held = False, []

    for i, block in enumerate(blocks):
        kind = block[0]
        if kind in ("h2", "h3"):
            close()
            heading = f'<{kind} id="{esc(ids[i])}">{esc(block[1])}</{kind}>'
            if kind == "h3" and i > summary_ends and not str(block[1]).startswith(OPEN_SECTIONS):
                out.append(f'<details class="section"><summary>{heading}</summary>')
                collapsed = True
            else:
                out.append(heading)
        elif kind in ("h1", "p"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "toc":
            links = "".join(f'<li><a href="#{esc(anchor)}">{esc(text)}</a></li>' for anchor, text in contents(blocks, ids))
            out.append(f'<nav aria-label="Contents"><strong>Contents</strong><ul>{links}</ul></nav>')
        elif kind == "pre":
            text = f"<pre>{esc(block[1])}</pre>"
            lines = block[1].count("\n") + 1
            out.append(text if collapsed or i < summary_ends else
                       f'<details class="more"><summary>Show the text ({lines} lines)</summary>{text}</details>')
        elif kind == "table":
            table = _table_html(block[1], block[2])
            if not collapsed and i > summary_ends and len(block[2]) > OPEN_ROWS:
                table = f'<details class="more"><summary>Show the table ({len(block[2])} rows)</summary>{table}</details>'
            out.append(table)
            if collapsed and len(block) > 3 and block[3][0]:
                held.append(_key_rows_html(block))
        elif kind == "figure":
            figure = _figure_html(block[1], block[2])
            if i > summary_ends and not collapsed:
                figure = f'<details class="figure"><summary>Figure: {esc(block[2])}</summary>{figure}</details>'
            out.append(figure)
    close()
    out.append("</body></html>")
    return "\n".join(out) + "\n"
