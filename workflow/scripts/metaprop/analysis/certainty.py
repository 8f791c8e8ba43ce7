"""GRADE-style certainty of the evidence per outcome and modality, and for the comparison of the first two modalities.

Five domains, each a suggested rating ('not serious', 'serious', 'not assessed', 'not assessable') with its reason in
words; evidence from single-arm trials starts at low certainty (GRADE for non-randomised evidence), each serious
domain lowers it one level. Every suggestion can be overridden in config (`certainty: overrides`) with a
justification, which the table and the report carry. No R package does this, so it is written here; the rules are
the GRADE handbook's, made explicit in `certainty` of config.yaml where they need a number.
"""

import numpy as np
import pandas as pd

from metaprop.spec import comparison_pairs

LEVELS = ("very low", "low", "moderate", "high")
START = "low"  # single-arm trials: non-randomised evidence
DOMAINS = ("risk_of_bias", "inconsistency", "imprecision", "indirectness", "publication_bias")
CERTAINTY_COLUMNS = ["outcome", "subgroup", "k", "n", "estimate", "ci_low", "ci_high", "start",
                     *(c for d in DOMAINS for c in (d, f"{d}_reason")), "certainty"]
DEFAULTS = {"min_patients": 200, "max_ci_width": 0.2, "max_i2": 0.5}


def _rob(kept, settings):
    """Risk of bias from a per-trial judgement column the config names (low / some concerns / high)."""
    column = (settings.get("risk_of_bias") or {}).get("column")
    if not column:
        return "not assessed", "no risk-of-bias judgement per trial was given (config certainty: risk_of_bias)"
    if column not in kept.columns:
        return "not assessed", f"the column '{column}' is not in the trial tables"
    values = kept[column].fillna("").astype(str).str.strip().str.lower()
    high = list(kept.loc[values == "high", "study"])
    some = list(kept.loc[values == "some concerns", "study"])
    unknown = list(kept.loc[~values.isin(["low", "some concerns", "high"]), "study"])
    if high or len(some) > len(kept) / 2 or unknown:
        parts = [f"high risk: {', '.join(high)}" if high else "", f"some concerns: {', '.join(some)}" if some else "",
                 f"not judged: {', '.join(unknown)}" if unknown else ""]
        return "serious", "; ".join(p for p in parts if p)
    return "not serious", f"low risk or some concerns in a minority ({len(some)} of {len(kept)} trials)"


def _inconsistency(row, threshold):
    if row["k"] < 2:
        return "not assessable", "one trial: no variation between trials can be seen"
    reasons = []
    if np.isfinite(row["i2"]) and row["i2"] >= DEFAULTS["max_i2"]:
        reasons.append(f"I² = {100 * row['i2']:.0f}%")
    if threshold is not None and np.isfinite(row["pi_low"]) and row["pi_low"] < threshold < row["pi_high"]:
        reasons.append(f"the prediction interval ({100 * row['pi_low']:.0f}% to {100 * row['pi_high']:.0f}%) spans "
                       f"the threshold of {100 * threshold:g}%")
    if reasons:
        return "serious", "; ".join(reasons)
    i2 = f"I² = {100 * row['i2']:.0f}%" if np.isfinite(row["i2"]) else "I² not defined"
    return "not serious", i2


def _imprecision(n, low, high, threshold, settings, what="rate"):
    reasons = []
    if n < settings["min_patients"]:
        reasons.append(f"{int(n)} patients, fewer than {settings['min_patients']}")
    if np.isfinite(low) and high - low > settings["max_ci_width"]:
        reasons.append(f"the interval is {100 * (high - low):.0f} points wide")
    if threshold is not None and np.isfinite(low) and low < threshold < high:
        reasons.append(f"the interval includes the {what} of {100 * threshold:g}%" if what == "rate" else
                       "the interval includes no difference")
    if reasons:
        return "serious", "; ".join(reasons)
    return "not serious", f"{int(n)} patients; interval {100 * low:.0f} to {100 * high:.0f}"


def _publication_bias(small_study, outcome, group):
    rows = small_study[(small_study["outcome"] == outcome) & (small_study["subgroup"] == group)]
    if rows.empty or not rows["assessed"].astype(bool).any():
        return "not assessable", "fewer than 10 trials: small-study effects cannot be told from chance"
    egger = rows[rows["test"] == "egger"]
    if len(egger) and egger["p"].iloc[0] < 0.1:
        return "serious", f"Egger's test p = {egger['p'].iloc[0]:.3f}"
    return "not serious", "no small-study effect detected (Egger's test p >= 0.10)"


def _rated(domains):
    """The certainty from the start and the serious domains."""
    down = sum(rating == "serious" for rating, _ in domains.values())
    return LEVELS[max(0, LEVELS.index(START) - down)]


def certainty_table(studies, pooled, tests, small_study, outcomes, method, comparison, settings=None,
                    benchmarks=None):
    """certainty.tsv: per outcome (spec.Outcome) and modality, and for the first pair of `comparison`, the five
    domains and the certainty, with the config's overrides applied. An outcome's decision threshold is its
    `certainty: thresholds` entry, or else its benchmark rate (config `benchmarks`)."""
    settings = {**DEFAULTS, **(settings or {})}
    thresholds = {**{o: b["rate"] for o, b in (benchmarks or {}).items()}, **(settings.get("thresholds") or {})}
    notes = settings.get("indirectness") or {}
    overrides = settings.get("overrides") or []
    records = []
    for outcome in outcomes:
        kept_all = studies[(studies["outcome"] == outcome.id) & studies["included"]]
        rows = pooled[(pooled["outcome"] == outcome.id) & (pooled["method"] == method)].set_index("subgroup")
        threshold = thresholds.get(outcome.id)
        indirect = (("serious", notes[outcome.id]) if outcome.id in notes else
                    ("not serious", "population, intervention and outcome as the question asks"))
        groups = [g for g in comparison if g in rows.index]
        by_group = {}
        for group in groups:
            row, kept = rows.loc[group], kept_all[kept_all["modality"] == group]
            domains = {"risk_of_bias": _rob(kept, settings), "inconsistency": _inconsistency(row, threshold),
                       "imprecision": _imprecision(row["n"], row["ci_low"], row["ci_high"], threshold, settings),
                       "indirectness": indirect, "publication_bias": _publication_bias(small_study, outcome.id, group)}
            by_group[group] = domains
            records.append(_record(outcome.id, group, row["k"], row["n"], row["estimate"], row["ci_low"],
                                   row["ci_high"], domains))
        if len(groups) >= 2:
            a, b = comparison_pairs(groups)[0]
            diff = tests[(tests["outcome"] == outcome.id) & (tests["method"] == method)
                         & (tests["test"] == "rate-difference") & (tests["group_1"] == a) & (tests["group_2"] == b)]
            estimate, low, high = ((diff["diff_median"].iloc[0], diff["diff_ci_low"].iloc[0],
                                    diff["diff_ci_high"].iloc[0]) if len(diff) else (np.nan,) * 3)
            worst = {d: max((by_group[g][d] for g in (a, b)), key=lambda r: r[0] == "serious") for d in DOMAINS}
            worst["imprecision"] = _imprecision(rows.loc[a, "n"] + rows.loc[b, "n"], low, high, 0.0, settings,
                                                what="difference")
            worst["inconsistency"] = max((by_group[g]["inconsistency"] for g in (a, b)),
                                         key=lambda r: r[0] == "serious")
            records.append(_record(outcome.id, f"{a} minus {b}", rows.loc[a, "k"] + rows.loc[b, "k"],
                                   rows.loc[a, "n"] + rows.loc[b, "n"], estimate, low, high, worst,
                                   start_reason="a comparison across single-arm trials"))
    table = pd.DataFrame.from_records(records, columns=CERTAINTY_COLUMNS + ["override"])
    return _apply_overrides(table, overrides)


def _record(outcome, subgroup, k, n, estimate, low, high, domains, start_reason="single-arm trials"):
    record = {"outcome": outcome, "subgroup": subgroup, "k": int(k), "n": int(n), "estimate": estimate,
              "ci_low": low, "ci_high": high, "start": f"{START} ({start_reason})", "certainty": _rated(domains),
              "override": ""}
    for domain, (rating, reason) in domains.items():
        record[domain], record[f"{domain}_reason"] = rating, reason
    return record


def _apply_overrides(table, overrides):
    """Config overrides {outcome, subgroup, domain, rating, justification}: the rating replaced, the justification
    kept beside it, the certainty rated again."""
    for entry in overrides:
        rows = (table["outcome"] == entry["outcome"]) & (table["subgroup"] == entry["subgroup"])
        if not rows.any():
            raise ValueError(f"config certainty override: no row for outcome '{entry['outcome']}' and subgroup "
                             f"'{entry['subgroup']}'")
        table.loc[rows, entry["domain"]] = entry["rating"]
        table.loc[rows, f"{entry['domain']}_reason"] = f"overridden: {entry['justification']}"
        table.loc[rows, "override"] = (table.loc[rows, "override"] + f"{entry['domain']}: {entry['justification']}; ")
    for i in table.index:
        table.loc[i, "certainty"] = _rated({d: (table.loc[i, d], "") for d in DOMAINS})
    table["override"] = table["override"].str.rstrip("; ")
    return table
