"""The selection of cohorts (PRISMA 2020 style), counted from studies.tsv alone."""

import pandas as pd

from .analysis import subgroups_of

# Reason categories, in the order the diagram lists them; the first pattern found in a reason decides.
REASON_CATEGORIES = (
    ("overlapping cohort", ("shares patients",)),
    ("inconsistent count", ("inconsistent",)),
    ("bound rather than a count", ("is a bound",)),
    ("unreadable value", ("is not a percentage",)),
    ("value not placed in a column", ("not placed",)),
    ("not reported", ("not reported", "column in the table")),
)


def reason_category(reason):
    """The category of an exclusion reason from studies.tsv; a reason no category knows stands as itself."""
    text = str(reason)
    for category, patterns in REASON_CATEGORIES:
        if any(p in text for p in patterns):
            return category
    return text


def flow_counts(studies):
    """What the flow diagram shows, from the studies table only.

    Returns {"sources": [(file, cohorts)], "total": cohorts, "outcomes": [(outcome, read, [(category, count)],
    [(modality, count)])]}; per outcome, excluded plus pooled add up to the cohorts read.
    """
    first = studies.drop_duplicates("study")
    sources = "source_file" in studies.columns
    files = first["source_file"].fillna("").astype(str) if sources else pd.Series("trial tables", index=first.index)
    out = {"sources": [(f, int((files == f).sum())) for f in dict.fromkeys(files)], "total": len(first), "outcomes": []}
    order = [c for c, _ in REASON_CATEGORIES]
    for outcome in dict.fromkeys(studies["outcome"]):
        rows = studies[studies["outcome"] == outcome]
        excluded = rows[~rows["included"]]["reason"].map(reason_category).value_counts()
        excluded = sorted(excluded.items(), key=lambda item: (order.index(item[0]) if item[0] in order else
                                                               len(order), item[0]))
        kept = rows[rows["included"]]
        pooled = [(g, int((kept["modality"] == g).sum())) for g in subgroups_of(kept)]
        out["outcomes"].append((outcome, len(rows), [(c, int(k)) for c, k in excluded], pooled))
    return out
