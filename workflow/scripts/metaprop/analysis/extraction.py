"""From trial-table rows to counts per (study, outcome): exact, reconstructed, or excluded with a reason."""

import math

import numpy as np
import pandas as pd

from metaprop.io.tables import parse_printed_rate, split_list
from metaprop.spec import OVERLAP_RULES, overlap_rule

STUDY_COLUMNS = [
    "study", "modality", "outcome", "events", "n", "proportion", "ci_low", "ci_high", "ci_method",
    "included", "reason", "printed", "events_source", "events_low", "events_high", "overlaps",
    "source_file", "source_line", "reason_code",
]


def counts_matching(kind, value, decimals, n):
    """The range (low, high) of event counts e in 0..n whose percentage 100 e / n reads as printed, or None.

    'value': round(100 e / n, decimals) equals it (either way at an exact half); 'below' / 'at most' /
    'above' / 'at least': 100 e / n is <, <=, > or >= the bound. Computed from the bounds, not by listing
    every count, so any n works.
    """
    eps = 1e-9
    if kind == "value":
        half = 0.5 * 10.0**-decimals
        low, high = math.ceil((value - half) * n / 100 - eps), math.floor((value + half) * n / 100 + eps)
    elif kind in ("below", "at most"):
        bound = value * n / 100
        low, high = 0, (math.ceil(bound) - 1 if kind == "below" else math.floor(bound + eps))
    else:
        bound = value * n / 100
        low, high = (math.floor(bound) + 1 if kind == "above" else math.ceil(bound - eps)), n
    low, high = max(low, 0), min(high, n)
    return (low, high) if low <= high else None


def reconstruct_events(printed, n):
    """(events, low, high, how) from a printed rate and n; events is None when it cannot be used (reconstruction()
    also gives the reason code).

    One matching count: used. Several: the nearest to n p / 100, the range recorded.
    None: the printed rate is impossible for n. A bound with several counts is not a count.
    """
    return reconstruction(printed, n)[:4]


def reconstruction(printed, n):
    """reconstruct_events() and the reason code of an unusable rate ('' when the count is used)."""
    kind, value, decimals = parse_printed_rate(printed)
    if kind in ("blank", "not reported"):
        return None, None, None, "not reported" + ("" if kind == "blank" else f" (printed '{printed}')"), "not_reported"
    if kind == "unreadable":
        return None, None, None, f"printed '{printed}' is not a percentage", "unreadable"
    candidates = counts_matching(kind, value, decimals, n)
    if candidates is None:
        near = math.floor(n * value / 100)
        nearby = ", ".join(f"{e}/{n} = {100 * e / n:.1f}%" for e in (near, near + 1) if 0 <= e <= n)
        return None, None, None, f"inconsistent: no count out of n = {n} gives '{printed}' ({nearby})", "inconsistent"
    low, high = candidates
    if kind != "value":
        if low == high:
            return low, low, high, f"'{printed}' of n = {n} allows only {low} events", ""
        return None, low, high, f"'{printed}' is a bound, not a count ({low} to {high} events of {n} possible)", "bound"
    target = n * value / 100
    nearest = math.floor(target) + (1 if target - math.floor(target) > 0.5 else 0)  # an exact half goes down
    events = min(max(nearest, low), high)
    if low == high:
        return events, low, high, f"reconstructed from '{printed}' of {n} (unique)", ""
    return (events, low, high,
            f"reconstructed from '{printed}' of {n} (nearest to {n * value / 100:g}; {low}-{high} possible)", "")


def _denominator(row, column):
    """(n, how) from the column `column` if it is not n and is filled, else from n."""
    if column != "n" and row.get(column, ""):
        return int(row[column]), f"n = {column}"
    return (int(row["n"]) if row["n"] else None), ""


def extract_outcome(row, outcome):
    """Counts of one outcome (spec.Outcome) for one trial row: dict with events, n, how, the exclusion reason and
    its code.

    An outcome counted over another column than its denominator (an intention-to-treat rate) keeps the events
    counted over that column and divides by its denominator where the row gives it (by the counting column, and
    says so, where it does not).
    """
    out = _counted(row, outcome, outcome.base)
    if outcome.counted_over and outcome.counted_over != outcome.denominator:
        if row.get(outcome.denominator, ""):
            out["n"] = int(row[outcome.denominator])
            out["events_source"] += f"; over {outcome.denominator}"
        elif out["events"] is not None:
            out["events_source"] += f"; {outcome.denominator} not reported, {outcome.counted_over} used"
    return out


def _counted(row, outcome, base):
    """extract_outcome's counts over the column `base` (falling back to n)."""
    label = outcome.label
    exact = row.get(outcome.events, "") if outcome.events else ""
    printed = row.get(outcome.percent, "") if outcome.percent else ""
    n, n_how = _denominator(row, base)
    out = {"events": None, "n": n, "printed": printed, "events_source": "", "events_low": None,
           "events_high": None, "reason": "", "reason_code": ""}
    if outcome.events not in row and outcome.percent not in row:
        out.update(reason=f"no {label} column in the table", reason_code="no_column")
    elif n is None:
        out.update(reason="n not reported", reason_code="n_missing")
    elif n == 0:
        out.update(reason="n is 0", reason_code="n_zero")
    elif exact != "":
        out.update(events=int(exact), events_low=int(exact), events_high=int(exact), events_source="exact count")
        if printed:
            _, low, high, _ = reconstruct_events(printed, n)
            if low is not None and not low <= int(exact) <= high:
                out["events_source"] += f"; printed '{printed}' does not match {exact}/{n}"
    else:
        events, low, high, how, code = reconstruction(printed, n)
        out.update(events=events, events_low=low, events_high=high)
        if events is None and printed == "" and row.get("unplaced", ""):
            out.update(reason=(f"{label} not placed: the table printed '{row['unplaced']}' without saying which "
                               "column it belongs to"), reason_code="unplaced")
        elif events is None:
            out.update(reason=f"{label} {how}", reason_code=code)
        else:
            out["events_source"] = how
    if n_how and out["events"] is not None:
        out["events_source"] += f" ({n_how})"
    return out


def _priority(row, rule):
    """Sort key of the overlap rule: the cohort that comes first is kept."""
    year = int(row["year"]) if row.get("year") else None
    if rule in ("latest", "earliest") and year is None:
        raise ValueError(f"overlap rule '{rule}' needs a 'year' for study '{row['study']}'")
    if rule == "largest":
        return (-row["n_used"], row["order"])
    if rule == "latest":
        return (-year, -row["n_used"], row["order"])
    return (year, -row["n_used"], row["order"])


def apply_overlap_rule(usable, rule):
    """Keep cohorts in the rule's order, skipping any that shares patients with one already kept.

    Returns {study: reason} for the cohorts dropped.
    """
    overlap_rule(rule)
    # no declared overlap: nothing to drop, and the rules that need a year do not ask for one
    if rule == "none" or not any(split_list(row.get("overlaps", "")) for row in usable):
        return {}
    dropped, kept = {}, []
    for row in sorted(usable, key=lambda r: _priority(r, rule)):
        clash = [s for s in split_list(row.get("overlaps", "")) if s in kept]
        if clash:
            dropped[row["study"]] = (
                f"shares patients with {', '.join(clash)}, which is kept (overlap rule '{rule}': "
                f"{OVERLAP_RULES[rule]})"
            )
        else:
            kept.append(row["study"])
    return dropped


def studies_table(trials, outcomes, ci_method="clopper-pearson", rule="largest", level=0.95, carry=()):
    """One row per (study, outcome): counts, per-study CI, and whether and why it is excluded (`reason`, and its
    code `reason_code`). `outcomes`: spec.Outcome entries.

    `carry` names trial-table columns copied as they are (moderators for subgroup analyses); ci_method None
    leaves the CIs empty, for callers that only pool the counts.
    """
    records = []
    for outcome in outcomes:
        rows = []
        for order, row in enumerate(trials.to_dict("records")):
            counts = extract_outcome(row, outcome)
            rows.append({**row, **counts, "order": order, "n_used": counts["n"] or 0})
        usable = [r for r in rows if r["events"] is not None]
        dropped = apply_overlap_rule(usable, rule)
        for r in rows:
            reason = r["reason"] or dropped.get(r["study"], "")
            code = r["reason_code"] or ("overlap" if r["study"] in dropped else "")
            records.append({
                "study": r["study"], "modality": r["modality"], "outcome": outcome.id, "reason_code": code,
                "events": r["events"], "n": r["n"], "included": reason == "", "reason": reason,
                "printed": r["printed"], "events_source": r["events_source"],
                "events_low": r["events_low"], "events_high": r["events_high"],
                "overlaps": r.get("overlaps", ""), "source_file": r["source_file"], "source_line": r["source_line"],
                **{column: r.get(column, "") for column in carry if column not in STUDY_COLUMNS},
            })
    table = pd.DataFrame.from_records(records)
    for column in ("events", "n", "events_low", "events_high"):
        table[column] = table[column].astype("Int64")
    has_counts = table["events"].notna() & table["n"].notna()
    events = table.loc[has_counts, "events"].astype(float)
    n = table.loc[has_counts, "n"].astype(float)
    table["proportion"] = np.nan
    table["ci_low"] = np.nan
    table["ci_high"] = np.nan
    table.loc[has_counts, "proportion"] = events / n
    if ci_method is not None:
        # imported here: the checks Snakemake runs before any job compute no interval and need no scipy
        from metaprop.stats.proportions import proportion_ci

        low, high = proportion_ci(events.to_numpy(), n.to_numpy(), ci_method, level)
        table.loc[has_counts, "ci_low"] = low
        table.loc[has_counts, "ci_high"] = high
    table["ci_method"] = np.where(has_counts, ci_method or "", "")
    return table[STUDY_COLUMNS + [c for c in carry if c not in STUDY_COLUMNS]]


def available_outcomes(columns, outcomes):
    """The outcomes (spec.Outcome) the tables' `columns` can give: their events or percent column is there, and an
    outcome counted over another column than its denominator has its denominator column (without it, its rate would
    be the other column's)."""
    def has(outcome):
        counts = outcome.events in columns or outcome.percent in columns
        return counts and (not outcome.counted_over or outcome.denominator in columns)
    return [o for o in outcomes if has(o)]


def unusable_subgroups(studies, outcome):
    """A message for each subgroup of `outcome` with no usable trial, listing why each of its rows is out."""
    rows = studies[studies["outcome"] == outcome.id]
    messages = []
    for group in dict.fromkeys(rows["modality"]):
        part = rows[rows["modality"] == group]
        if not part["included"].any():
            reasons = "; ".join(
                f"{r.source_file}, line {r.source_line} (study '{r.study}'): {r.reason}" for r in part.itertuples()
            )
            messages.append(f"subgroup '{group}' has no usable trial for {outcome.label}: {reasons}.")
    return messages
