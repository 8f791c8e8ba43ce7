"""Cumulative meta-analysis: the pooled rate after each trial is added in order of publication year."""

import numpy as np
import pandas as pd

from metaprop.analysis.meta_analysis import pool, pool_many
from metaprop.spec import milestone_steps, subgroups_of

CUMULATIVE_ALL_STEPS = 200  # trials up to which every step is pooled on its own (above: batches; GLMM thinned)
_STEPS_PER_BATCH = 200
CUMULATIVE_COLUMNS = [
    "outcome", "subgroup", "method", "step", "study", "year", "k", "events", "n", "estimate", "ci_low", "ci_high",
    "tau2", "i2", "estimate_model", "se_model", "note",
]


def cumulative_methods(primary):
    """The primary method and logit-REML (metafor's default), each once."""
    return list(dict.fromkeys([primary, "logit-reml"]))


def publication_order(kept):
    """Rows in order of `year` (ties and missing years broken by study id; missing years last) and a note.

    Returns (ordered rows, note); the note says when a year is missing, so the order is never silently guessed.
    """
    years = kept["year"] if "year" in kept.columns else pd.Series("", index=kept.index)
    years = years.fillna("").astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    missing = years == ""
    key = pd.DataFrame({"missing": missing, "year": years.where(~missing, "9999"), "study": kept["study"].astype(str)})
    order = key.sort_values(["missing", "year", "study"], kind="stable").index
    note = ""
    if "year" not in kept.columns:
        note = "no year column: trials added in order of study id"
    elif missing.any():
        note = "year not given, added last (by study id): " + ", ".join(kept.loc[missing, "study"].astype(str))
    ordered = kept.loc[order].copy()
    ordered["year"] = years.loc[order]
    return ordered, note


def cumulative_table(studies, outcome, methods, level=0.95, nagq=7):
    """Per method, subgroup (modality) and overall: the pooled result after each trial is added by year.

    `studies` is the studies table; only included rows of `outcome` are used. One row per step, naming the
    trial added at that step; `note` carries the pooling note and any ordering caveat.
    """
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    groups = [(g, kept[kept["modality"] == g]) for g in subgroups_of(kept)] + [("overall", kept)]
    rows = []
    for method in methods:
        for name, part in groups:
            ordered, order_note = publication_order(part)
            events, n = ordered["events"].to_numpy(float), ordered["n"].to_numpy(float)
            fits = _cumulative_fits(events, n, method, level, nagq)
            for step in range(1, len(ordered) + 1):
                res = fits[step - 1]
                note = "; ".join(t for t in (res.get("note", ""), order_note) if t)
                rows.append({
                    "outcome": outcome, "subgroup": name, "method": method, "step": step,
                    "study": ordered["study"].iloc[step - 1], "year": ordered["year"].iloc[step - 1],
                    **{key: res[key] for key in ("k", "events", "n", "estimate", "ci_low", "ci_high", "tau2", "i2",
                                                 "estimate_model", "se_model")},
                    "note": note,
                })
    table = pd.DataFrame.from_records(rows, columns=CUMULATIVE_COLUMNS)
    return table.astype({"k": int, "step": int}) if len(table) else table


def glmm_steps(k):
    """Steps the GLMM is fitted at in a cumulative meta-analysis of k trials: every one up to
    CUMULATIVE_ALL_STEPS trials; above, the milestones and the last (a fit costs about 0.2 ms a trial plus 0.1 s:
    all 10,000 steps of 10,000 trials would take hours)."""
    if k <= CUMULATIVE_ALL_STEPS:
        return list(range(1, k + 1))
    return sorted(set(milestone_steps(k)) | {k})


def _cumulative_fits(events, n, method, level, nagq):
    """The pooled result after each step (a list of k dicts). Up to CUMULATIVE_ALL_STEPS trials every step is
    pooled on its own, as always; above, inverse-variance steps are pooled in batches of neighbouring steps (no
    tau^2 CI: the table has none) and the GLMM only at glmm_steps, the other steps' rows saying so."""
    k = len(events)
    if k <= CUMULATIVE_ALL_STEPS:
        return [pool(events[:step], n[:step], method, level, nagq) for step in range(1, k + 1)]
    if method != "glmm":
        fits = []
        for start in range(1, k + 1, _STEPS_PER_BATCH):
            steps = range(start, min(k, start + _STEPS_PER_BATCH - 1) + 1)
            fits += pool_many([(events[:step], n[:step]) for step in steps], method, level, nagq, tau2_ci=False)
        return fits
    fitted = glmm_steps(k)
    found = dict(zip(fitted, pool_many([(events[:step], n[:step]) for step in fitted], method, level, nagq)))
    skipped = (f"GLMM not fitted at this step: with {k:,} trials it is fitted at steps 1-5, 10, 20, 50, 100, ... "
               "and the last; the logit-reml rows have every step")
    blank = dict.fromkeys(("estimate", "ci_low", "ci_high", "tau2", "i2", "estimate_model", "se_model"), float("nan"))
    events_so_far, n_so_far = np.cumsum(events), np.cumsum(n)
    return [found.get(step) or {**blank, "k": step, "events": int(events_so_far[step - 1]),
                                "n": int(n_so_far[step - 1]), "note": skipped}
            for step in range(1, k + 1)]
