"""The summary report: one list of blocks rendered twice, as Markdown and as self-contained HTML.

Every text that comes from a data file is escaped where it lands (HTML entities, Markdown pipes).
"""

import base64
import hashlib
import html
import importlib.metadata
import platform
import re

import numpy as np
import pandas as pd
import yaml

from .analysis import METHOD_NAMES, column_title, subgroups_of
from .bayes import describe_prior, settings_of
from .extraction import OUTCOME_LABELS, OVERLAP_RULES, outcome_title

CI_NAMES = {
    "clopper-pearson": "exact binomial (Clopper-Pearson)", "wilson": "Wilson score", "jeffreys": "Jeffreys",
    "agresti-coull": "Agresti-Coull", "wald": "Wald",
}
PACKAGES = ("snakemake", "numpy", "scipy", "pandas", "statsmodels", "matplotlib")
REFERENCES = {
    "clopper-pearson": "Clopper CJ, Pearson ES. Biometrika 1934;26:404-413.",
    "glmm": "Stijnen T, Hamza TH, Özdemir P. Stat Med 2010;29:3046-3067.",
    "dl": "DerSimonian R, Laird N. Control Clin Trials 1986;7:177-188.",
    "reml": "Viechtbauer W. J Educ Behav Stat 2005;30:261-293.",
    "pm": "Paule RC, Mandel J. J Res Natl Bur Stand 1982;87:377-385.",
    "hksj": "Hartung J, Knapp G. Stat Med 2001;20:3875-3889; Sidik K, Jonkman JN. Stat Med 2002;21:3153-3159.",
    "ft": "Freeman MF, Tukey JW. Ann Math Stat 1950;21:607-611; Miller JJ. Am Stat 1978;32:138.",
    "ft-warning": "Schwarzer G, Chemaitelly H, Abu-Raddad LJ, Rücker G. Res Synth Methods 2019;10:476-483.",
    "qprofile": "Viechtbauer W. Stat Med 2007;26:37-52.",
    "i2": "Higgins JPT, Thompson SG. Stat Med 2002;21:1539-1558.",
    "pi": "Higgins JPT, Thompson SG, Spiegelhalter DJ. J R Stat Soc A 2009;172:137-159.",
    "metafor": "Viechtbauer W. J Stat Softw 2010;36(3):1-48.",
}


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


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


def studies_block(studies, outcome):
    rows = studies[studies["outcome"] == outcome]
    body = [
        [r.study, r.modality, f"{_count(r.events) or '–'}/{_count(r.n) or '–'}",
         pct(r.proportion), interval(r.ci_low, r.ci_high), "yes" if r.included else "no",
         r.reason if r.reason else r.events_source]
        for r in rows.itertuples()
    ]
    head = ["Study", "Modality", "Events/n", "Proportion", "CI", "Included", "Reason excluded / how counted"]
    return ("table", head, body)


def pooled_block(pooled, outcome, methods):
    rows = pooled[(pooled["outcome"] == outcome) & pooled["method"].isin(methods)]
    body = [
        [r.method, r.subgroup, str(r.k), f"{r.events}/{r.n}", pct(r.estimate), interval(r.ci_low, r.ci_high),
         interval(r.pi_low, r.pi_high), number(r.tau2), pct(r.i2, 0), f"{number(r.q, 2)} ({r.q_df})",
         p_value(r.q_p), r.note if isinstance(r.note, str) else ""]
        for r in rows.itertuples()
    ]
    head = ["Method", "Subgroup", "k", "Events/n", "Estimate", "CI", "PI", "τ²", "I²", "Q (df)", "p",
            "Note"]
    return ("table", head, body)


def tests_block(tests, outcome):
    rows = tests[tests["outcome"] == outcome].rename(columns={"or": "or_"})  # `or` is a keyword
    body = []
    for r in rows.itertuples():
        df = "" if pd.isna(r.df) else f"{int(r.df)}" + ("" if pd.isna(r.df2) else f", {int(r.df2)}")
        odds = "" if pd.isna(r.lor) else f"{r.contrast}: OR {r.or_:.2f} ({r.or_ci_low:.2f} to {r.or_ci_high:.2f})"
        body.append([r.method, r.test, number(r.statistic, 3), df, p_value(r.p), odds, r.note])
    head = ["Method", "Test", "Statistic (Q, QM or F)", "df", "p", "Odds ratio (CI)", "Note"]
    return ("table", head, body)


def comparison_block(methods, subgroups):
    body = []
    for r in methods.to_dict("records"):
        cells = [f"{pct(r[f'{g}_estimate'])} ({interval(r[f'{g}_ci_low'], r[f'{g}_ci_high'])})" for g in subgroups]
        odds = "" if pd.isna(r.get("or", np.nan)) else f"{r['or']:.2f} ({r['or_ci_low']:.2f} to {r['or_ci_high']:.2f})"
        body.append([r["method"], *cells, p_value(r["between_p"]), p_value(r["metareg_p"]), odds, r["warning"]])
    head = ["Method", *subgroups, "p (between)", "p (meta-regression)", "Odds ratio (CI)", "Warning"]
    return ("table", head, body)


def itt_block(pooled, method):
    rows = pooled[pooled["method"] == method].set_index(["outcome", "subgroup"])
    body = []
    for subgroup in dict.fromkeys(pooled.loc[pooled["outcome"] == "cr", "subgroup"]):
        cells = []
        for outcome in ("cr", "cr_itt"):
            r = rows.loc[(outcome, subgroup)] if (outcome, subgroup) in rows.index else None
            cells.append("" if r is None else f"{r['events']}/{r['n']}: {pct(r['estimate'])} "
                                              f"({interval(r['ci_low'], r['ci_high'])})")
        body.append([subgroup, *cells])
    return ("table", ["Subgroup", "Treated / evaluable (primary)", "Intention to treat"], body)


def leave_one_out_block(loo, outcome, method):
    rows = loo[(loo["outcome"] == outcome) & (loo["method"] == method)]
    body = [[r.subgroup, r.omitted, str(r.k), pct(r.estimate), interval(r.ci_low, r.ci_high), number(r.tau2),
             pct(r.i2, 0)] for r in rows.itertuples()]
    return ("table", ["Subgroup", "Omitted", "k", "Estimate", "CI", "τ²", "I²"], body)


def summary_sentence(pooled, tests, studies, outcome, method, level):
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    rows = pooled[(pooled["outcome"] == outcome) & (pooled["method"] == method)].set_index("subgroup")
    parts = [
        f"{g} {pct(rows.loc[g, 'estimate'])} ({interval(rows.loc[g, 'ci_low'], rows.loc[g, 'ci_high'])}; "
        f"k = {rows.loc[g, 'k']})" if not pd.isna(rows.loc[g, "estimate"]) else
        f"{g}: no estimate ({rows.loc[g, 'note']}; k = {rows.loc[g, 'k']})"
        for g in subgroups_of(kept)
    ]
    test = tests[(tests["outcome"] == outcome) & (tests["method"] == method) & (tests["test"] == "between")]
    text = (
        f"Pooled {OUTCOME_LABELS[outcome]} rate ({method}, {100 * level:g}% CI): {'; '.join(parts)}; "
        f"all kept trials {pct(rows.loc['overall', 'estimate'])} "
        f"({interval(rows.loc['overall', 'ci_low'], rows.loc['overall', 'ci_high'])}; k = {rows.loc['overall', 'k']})."
    )
    if len(test) and not pd.isna(test["p"].iloc[0]):
        t = test.iloc[0]
        text += f" Test for subgroup differences: Q = {t.statistic:.2f}, df = {int(t.df)}, {p_text(t.p)}."
    lone = [g for g in subgroups_of(kept) if rows.loc[g, "k"] == 1 and not pd.isna(rows.loc[g, "estimate"])]
    if lone:
        text += (f" {', '.join(lone)} rest{'s' if len(lone) == 1 else ''} on a single cohort: no between-trial "
                 "variance can be estimated there, and its interval reflects that cohort's sampling error only.")
    return text


def exclusions_sentence(studies, outcome):
    rows = studies[studies["outcome"] == outcome]
    overlap = rows["reason"].str.startswith("shares patients")
    unusable = ~rows["included"] & ~overlap
    return (
        f"{len(rows)} cohorts read; {int(rows['included'].sum())} pooled; {int(unusable.sum())} excluded because "
        f"their counts cannot be used ({', '.join(rows.loc[unusable, 'study']) or 'none'}); {int(overlap.sum())} "
        f"excluded because they share patients with a pooled cohort ({', '.join(rows.loc[overlap, 'study']) or 'none'})."
    )


def methods_text(config):
    rule = config["overlap_rule"]
    cite = f" [{REFERENCES['clopper-pearson']}]" if config["ci_method"] == "clopper-pearson" else ""
    name = CI_NAMES[config["ci_method"]]
    ci_name = ("an " if name[0] in "aeiouAEIOU" else "a ") + name
    return [
        (f"Each trial's proportion has {ci_name} {100 * config['level']:g}% confidence "
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
        "gives the odds ratio of response between two modalities. Sensitivity: every method side by side, and "
        "each subgroup pooled again without each trial in turn. All numbers are checked against R's metafor in "
        "the test suite."),
        *bayes_methods_text(config),
    ]


def bayes_methods_text(config):
    """The methods paragraph of method bayes and the adjusted comparisons (empty without bayes)."""
    if "bayes" not in config["methods"]:
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


def provenance_blocks(config, input_files):
    versions = [["Python", platform.python_version()]] + [[p, importlib.metadata.version(p)] for p in PACKAGES]
    hashes = [[path, sha256(path)] for path in input_files]
    return [
        ("h2", "Reproducibility"),
        ("p", "Software versions:"),
        ("table", ["Software", "Version"], versions),
        ("p", "SHA-256 of every input:"),
        ("table", ["File", "SHA-256"], hashes),
        ("p", "Configuration used:"),
        ("pre", yaml.safe_dump(config, sort_keys=True, allow_unicode=True)),
    ]


def subgroup_analysis_blocks(by, where, tables, figure, config):
    """One moderator analysis of the primary outcome: summary, forest plot, unknowns, estimates and tests."""
    studies, pooled, tests = tables
    outcome, method = config["outcomes"][0], config["primary_method"]
    restriction = f" ({', '.join(f'{k} = {v}' for k, v in where.items())} only)" if where else ""
    blocks = [("h3", f"By {column_title(by)[0].lower() + column_title(by)[1:]}{restriction}")]
    unknown = studies[~studies["included"] & studies["reason"].str.endswith("unknown")]["study"]
    if unknown.any():
        blocks.append(("p", f"{column_title(by)} unknown, so not in this analysis: {', '.join(unknown)}."))
    if pooled.empty:
        return blocks + [("p", "No kept trial has a known value: nothing to pool.")]
    return blocks + [
        ("p", summary_sentence(pooled, tests, studies, outcome, method, config["level"])),
        ("figure", figure, f"Forest plot of {OUTCOME_LABELS[outcome]} by {column_title(by).lower()}."),
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
    return [f"{label}: {'; '.join(items)}." for label, items in
            (("Added", added), ("Removed", removed), ("Edited", edited)) if items]


def overlap_block(overlap, configured):
    body = []
    for r in overlap.to_dict("records"):
        if pd.isna(r["subgroup"]) or r["subgroup"] == "":
            body.append([r["overlap_rule"], "", "", "", "", r["note"]])
            continue
        label = r["overlap_rule"] + (" (configured)" if r["overlap_rule"] == configured else "")
        body.append([label, r["subgroup"], str(int(r["k"])), (f"{pct(r['estimate'])} "
                     f"({interval(r['ci_low'], r['ci_high'])})"), p_value(r["between_p"]), r["studies"]])
    return ("table", ["Overlap rule", "Subgroup", "k", "Estimate (CI)", "p (between)", "Cohorts pooled"], body)


def report_blocks(studies, pooled, tests, loo, methods, overlap, config, figures, input_files, analyses=(),
                  previous=None, skipped=(), lead=()):
    """The report as blocks: ('h1'|'h2'|'h3'|'p'|'pre', text), ('table', head, rows), ('figure', path, caption).

    `analyses`: (by, where, (studies, pooled, tests), figure) for each moderator analysis; `previous`: the
    studies table of the last run (from its archive), or None; `lead`: blocks shown first (the Bayesian
    comparison).
    """
    method, level = config["primary_method"], config["level"]
    blocks = [("h1", "Meta-analysis of single-arm trials: CD19 CAR T cells and blinatumomab"),
              ("p", (f"Every interval in this report is a {100 * level:g}% confidence interval (CI) or prediction "
                    "interval (PI), or in the Bayesian section a credible interval (CrI); proportions are shown as "
                    "percentages.")),
              *lead,
              ("h2", "Changes since the last run")]
    blocks += [("p", text) for text in changes_since(previous, studies)]
    for outcome, figure in zip(config["outcomes"], figures):
        label = OUTCOME_LABELS[outcome]
        blocks += [
            ("h2", outcome_title(outcome)),
            ("p", summary_sentence(pooled, tests, studies, outcome, method, level)),
            ("p", exclusions_sentence(studies, outcome)),
            ("figure", figure, f"Forest plot of {label} ({METHOD_NAMES[method]})."),
            ("h3", "Trials, per-trial confidence intervals and exclusions"),
            studies_block(studies, outcome),
            ("h3", f"Pooled estimates, primary method ({method})"),
            pooled_block(pooled, outcome, [method]),
            ("h3", "Test for subgroup differences"),
            tests_block(tests, outcome),
            ("h3", "All methods"),
            pooled_block(pooled, outcome, config["methods"]),
            ("h3", f"Leave-one-out ({method})"),
            ("p", ("Each subgroup (and all kept trials) pooled again without each trial in turn; every method is in "
                  "results/tables/leave_one_out.tsv.")),
            leave_one_out_block(loo, outcome, method),
        ]
        if outcome == "cr_itt" and "cr" in config["outcomes"]:
            blocks += [("h3", "Intention to treat beside the primary analysis"),
                       ("p", ("Responders over the enrolled patients where a source gives them (n_enrolled), over the "
                             "treated or evaluable n otherwise; see the 'how counted' column above.")),
                       itt_block(pooled, method)]
        if outcome == config["outcomes"][0]:
            kept = studies[(studies["outcome"] == outcome) & studies["included"]]
            blocks += [
                ("h3", "Sensitivity: every method side by side"),
                comparison_block(methods, [*subgroups_of(kept), "overall"]),
                ("h3", "Sensitivity: overlapping cohorts"),
                ("p", ("The primary analysis when each set of cohorts that share patients is reduced by each rule: "
                      "'largest', 'latest' or 'earliest' keep one cohort of each overlapping set (and any cohort "
                      "that shares no patient with those kept); 'none' keeps them all and counts shared patients "
                      "twice.")),
                overlap_block(overlap, config["overlap_rule"]),
            ]
    if analyses or skipped:
        blocks.append(("h2", f"Subgroup analyses of {OUTCOME_LABELS[config['outcomes'][0]]}"))
        for by, where, tables, figure in analyses:
            blocks += subgroup_analysis_blocks(by, where, tables, figure, config)
        if skipped:
            blocks.append(("p", f"Skipped, their columns not being in the trial tables: {'; '.join(skipped)}."))
    blocks += [("h2", "Methods")] + [("p", text) for text in methods_text(config)]
    return blocks + provenance_blocks(config, input_files)


def _md_text(text):
    """Markdown passes raw HTML on: a '<' that could open a tag becomes '&lt;' ('p < 0.05' stays readable)."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", str(text))


def _md_cell(text):
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks, figure_links):
    """Markdown; figures are linked with the relative paths in `figure_links`."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_text(block[1]))
        elif kind == "p":
            out.append(_md_text(block[1]))
        elif kind == "pre":
            out.append("```\n" + block[1].rstrip("\n") + "\n```")
        elif kind == "table":
            head, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{_md_cell(block[2])}]({figure_links[block[1]]})")
    return "\n\n".join(out) + "\n"


STYLE = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}th,td{border:1px solid #bbb;padding:0.25em 0.5em;
text-align:left;vertical-align:top}th{background:#eee}img{max-width:100%}pre{background:#f6f6f6;padding:1em}"""


def to_html(blocks):
    """One self-contained HTML file: figures embedded as base64 PNG, all text escaped."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(blocks[0][1])}</title><style>{STYLE}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "pre":
            out.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "figure":
            with open(block[1], "rb") as handle:
                data = base64.b64encode(handle.read()).decode("ascii")
            out.append(f'<figure><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{esc(block[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


