"""The selection of cohorts (PRISMA 2020 style), counted from studies.tsv alone."""

import pandas as pd

from metaprop.spec import REASONS, in_comparison_order, reason_category


def flow_counts(studies, comparison=()):
    """What the flow diagram shows, from the studies table only, the pooled modalities in the order of
    `comparison` (config's; first appearance for the rest).

    Returns {"sources": [(file, cohorts)], "total": cohorts, "outcomes": [(outcome, read, [(category, count)],
    [(modality, count)])]}; per outcome, excluded plus pooled add up to the cohorts read.
    """
    first = studies.drop_duplicates("study")
    sources = "source_file" in studies.columns
    files = first["source_file"].fillna("").astype(str) if sources else pd.Series("trial tables", index=first.index)
    out = {"sources": [(f, int((files == f).sum())) for f in dict.fromkeys(files)], "total": len(first), "outcomes": []}
    order = list(dict.fromkeys(REASONS.values()))
    for outcome in dict.fromkeys(studies["outcome"]):
        rows = studies[studies["outcome"] == outcome]
        excluded = rows[~rows["included"]]["reason_code"].map(reason_category).value_counts()
        excluded = sorted(excluded.items(), key=lambda item: (order.index(item[0]) if item[0] in order else
                                                               len(order), item[0]))
        kept = in_comparison_order(rows[rows["included"]], comparison)
        pooled = [(g, int((kept["modality"] == g).sum())) for g in dict.fromkeys(kept["modality"])]
        out["outcomes"].append((outcome, len(rows), [(c, int(k)) for c, k in excluded], pooled))
    return out
