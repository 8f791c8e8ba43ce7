"""Comparisons of modalities adjusted for who was enrolled: one meta-regression ~ modality + moderators.

By logit-REML (metafor's rma(yi, vi, mods = ~ modality + age_group, method = "REML"), with the QM test of the
modality coefficients given the others, anova(fit, btt = ...)) and by the GLMM with the same covariates
(rma.glmm(measure = "PLO", mods = ...)). When the design cannot separate modality from the moderators (too few
studies for the coefficients, or modality confounded with them) the row says so and carries no number.
"""

import numpy as np
import pandas as pd

# scipy.special, not scipy.stats: the functions scipy.stats calls, without its 1 s import in every job
from scipy import special

from metaprop.analysis.meta_analysis import modality_contrasts
from metaprop.spec import UNKNOWN
from metaprop.stats.glmm import fit_many, runaway
from metaprop.stats.pooling import meta_regression
from metaprop.stats.proportions import logit_effects

ADJUSTED_COLUMNS = [
    "outcome", "moderators", "method", "k", "coefficients", "statistic", "df", "p", "contrast", "lor", "lor_se",
    "lor_ci_low", "lor_ci_high", "or", "or_ci_low", "or_ci_high", "tau2", "studies", "note", "group_1", "group_2",
]


def _levels(values):
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def design(kept, moderators):
    """Design matrix (intercept, modality dummies, moderator dummies), the rows used, its column names and a
    reason why the design cannot separate modality from the moderators ('' when it can), and remarks."""
    table = kept.copy()
    dropped = []
    for column in moderators:
        value = table[column].fillna("").astype(str).str.strip()
        unknown = value.str.lower().isin(UNKNOWN)
        dropped += [f"{s} ({column} unknown)" for s in table.loc[unknown, "study"]]
        table = table[~unknown].assign(**{column: value[~unknown]})
    remarks = [f"left out: {', '.join(dropped)}"] if dropped else []
    modalities = _levels(table["modality"])
    if len(modalities) < 2:
        only = modalities[0] if modalities else "none"
        return None, table, [], (f"cannot separate modality from {', '.join(moderators)}: with the moderators known "
                                 f"only {only} remains"), remarks
    cols, names = [np.ones(len(table))], ["intercept"]
    for m in modalities[1:]:
        cols.append((table["modality"] == m).to_numpy(float))
        names.append(f"modality={m}")
    for column in moderators:
        levels = _levels(table[column])
        for level in levels[1:]:
            cols.append((table[column] == level).to_numpy(float))
            names.append(f"{column}={level}")
        for level in levels:
            where = _levels(table.loc[table[column] == level, "modality"])
            if len(where) == 1:
                remarks.append(f"{column} = {level} only in {where[0]}")
    X = np.column_stack(cols)
    k, p = X.shape
    if k <= p:
        return X, table, names, (f"cannot separate modality from {', '.join(moderators)}: {k} studies are not more "
                                 f"than the {p} coefficients (and tau^2 needs one more)"), remarks
    if np.linalg.matrix_rank(X) < p:
        return X, table, names, (f"cannot separate modality from {', '.join(moderators)}: modality is confounded "
                                 "with the moderators (no level of them is shared by the modalities)"), remarks
    return X, table, names, "", remarks


def _row(outcome, moderators, method, table, names, beta, cov, tau2, level, modality_cols, note, comparison=None):
    """A result row: the Wald test of the modality coefficients given the others, and for two modalities the log
    odds ratio of the first of `comparison` against the second."""
    b, V = beta[modality_cols], cov[np.ix_(modality_cols, modality_cols)]
    qm = float(b @ np.linalg.solve(V, b))
    row = {"outcome": outcome, "moderators": " + ".join(moderators), "method": method, "k": len(table),
           "coefficients": len(beta), "statistic": qm, "df": len(b), "p": float(special.chdtrc(len(b), qm)),
           "tau2": tau2, "studies": "; ".join(table["study"]), "note": note}
    if len(b) == 1:
        modalities = _levels(table["modality"])
        order = [m for m in (comparison or modalities) if m in modalities]
        row.update(modality_contrasts(b, V, modalities, order, special.ndtri(1 - (1 - level) / 2))[0])
    return row


def adjusted_comparison(studies, outcome, moderators, level=0.95, nagq=7, comparison=None):
    """Rows (logit-reml, glmm) of one adjusted comparison of the modalities for one outcome."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    missing = [c for c in moderators if c not in kept.columns]
    base = {"outcome": outcome, "moderators": " + ".join(moderators)}
    if missing:
        return [{**base, "method": m, "note": f"no column {', '.join(missing)} in the trial tables"}
                for m in ("logit-reml", "glmm")]
    X, table, names, reason, remarks = design(kept, moderators)
    if reason:
        return [{**base, "method": m, "k": len(table), "studies": "; ".join(table["study"]),
                 "note": "; ".join([reason, *remarks])} for m in ("logit-reml", "glmm")]
    note = "; ".join(remarks)
    modality_cols = [i for i, name in enumerate(names) if name.startswith("modality=")]
    events, n = table["events"].to_numpy(float), table["n"].to_numpy(float)
    y, v = logit_effects(events, n)
    fit = meta_regression(y, v, X, "reml", False, level)
    cov = np.linalg.inv(X.T @ (X / (v + fit["tau2"])[:, None]))  # covariance of the REML coefficients at tau^2
    rows = [_row(outcome, moderators, "logit-reml", table, names, fit["beta"], cov, fit["tau2"], level, modality_cols,
                 note, comparison)]
    degenerate = [m for m in _levels(table["modality"])
                  if (table.loc[table["modality"] == m, "events"] == 0).all()
                  or (table.loc[table["modality"] == m, "events"] == table.loc[table["modality"] == m, "n"]).all()]
    g = fit_many(events[None], n[None], X[None], np.ones((1, len(X)), dtype=bool), nagq)
    beta, cov, tau = g["beta"][0], g["cov"][0], float(g["tau"][0])
    if degenerate or bool(g["diverged"][0]) or not np.all(np.isfinite(cov)) or runaway(X, beta):
        why = (f"every study of {', '.join(degenerate)} has 0 events or all events" if degenerate
               else "the likelihood has no finite maximum")
        rows.append({**base, "method": "glmm", "k": len(table), "coefficients": len(names),
                     "studies": "; ".join(table["study"]), "note": "; ".join([f"no finite estimate: {why}", *remarks])})
    else:
        boundary = ["tau^2 estimated at the boundary 0"] if bool(g["boundary"][0]) else []
        rows.append(_row(outcome, moderators, "glmm", table, names, beta, cov, tau**2, level, modality_cols,
                         "; ".join(boundary + remarks), comparison))
    return rows


def adjusted_comparisons(studies, outcome, moderator_sets, level=0.95, nagq=7, comparison=None):
    """Every configured adjusted comparison for one outcome, as a table; contrasts read first vs second of
    `comparison`."""
    rows = [r for mods in moderator_sets
            for r in adjusted_comparison(studies, outcome, list(mods), level, nagq, comparison)]
    table = pd.DataFrame.from_records(rows, columns=ADJUSTED_COLUMNS)
    return table.astype({"k": "Int64", "coefficients": "Int64", "df": "Int64"})
