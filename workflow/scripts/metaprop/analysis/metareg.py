"""Meta-regression on continuous moderators (config meta_regressions): per outcome, moderator set and modality (or
across the modalities with modality as a factor), metafor's rma(yi, vi, mods = ~ x, method = "REML") with test "z"
and "knha" on the logit scale and rma.glmm(measure = "PLO", mods = ~ x).

One row per coefficient (`term`), the model's numbers repeated on each: k, QM (the omnibus test of the moderators),
R^2 (metafor's pseudo-R^2 against the intercept-only model of the same method), the residual tau^2, I^2 and QE. A
design that cannot be fitted (too few trials for the coefficients, a moderator constant within the modality, a
moderator confounded with modality) gets one row per method that says so in words, with no number. Moderators are
used on the user's scale; the fits standardise them internally (pooling.standardised_design).
"""

import numpy as np
import pandas as pd

# scipy.special, not scipy.stats: the functions scipy.stats calls, without its 1 s import in every job
from scipy import special

from metaprop.spec import comparison_order, moderator_number, subgroups_of
from metaprop.stats.glmm import glmm_regression
from metaprop.stats.pooling import meta_regression, residual_typical_variance, standardised_design
from metaprop.stats.proportions import logit_effects

METAREG_METHODS = ("logit-reml", "logit-reml-hksj", "glmm")
METAREG_COLUMNS = [
    "outcome", "moderators", "group", "method", "term", "estimate", "se", "statistic", "p", "ci_low", "ci_high", "k",
    "coefficients", "qm", "qm_df", "qm_df2", "qm_p", "tau2", "i2", "r2", "qe", "qe_df", "qe_p", "studies", "note",
]
BUBBLE_COLUMNS = ["outcome", "moderator", "group", "method", "line", "study", "x", "proportion", "weight", "fit",
                  "ci_low", "ci_high"]
RUNAWAY_NOTE = "no finite estimate: the likelihood has no finite maximum (a coefficient or tau^2 runs away)"
ALL = "all"  # the group of an entry fitted across the modalities
_GRID = 101  # points of a bubble plot's fitted line


def entry_label(moderators):
    """'year', 'mrd_only_share + year': a moderator set as the table names it."""
    return " + ".join(moderators)


def numeric_moderator(values):
    """Floats of a moderator column's cells, NaN where unknown (blank, 'Unknown', 'Not reported', ...); a cell that
    is neither raises ValueError naming it (the input checks refuse such a table first)."""
    numbers = [moderator_number(value) for value in values]
    for value, number in zip(values, numbers):
        if number is None:
            raise ValueError(f"'{str(value).strip()}' is not a number")
    return np.array(numbers, dtype=float)


def Z_of(X):
    """X with its moderators standardised: its rank is read without the moderators' units deciding it."""
    return standardised_design(X)[0]


def design(table, moderators, across):
    """(X, names, reason): intercept, modality dummies (across modalities) and the moderators as numbers; `reason`
    says in words why the design cannot be fitted ('' when it can)."""
    cols, names = [np.ones(len(table))], ["intercept"]
    if across:
        for m in list(dict.fromkeys(table["modality"]))[1:]:
            cols.append((table["modality"] == m).to_numpy(float))
            names.append(f"modality={m}")
    for column in moderators:
        cols.append(table[column].to_numpy(float))
        names.append(column)
    X = np.column_stack(cols)
    k, p = X.shape
    if k <= p:
        return X, names, (f"{k} trial{'s' if k != 1 else ''} with {entry_label(moderators)} known, not more than the "
                          f"{p} coefficients ({', '.join(names)}); residual heterogeneity needs one more")
    constant = [c for c in moderators if np.ptp(table[c].to_numpy(float)) == 0]
    if constant:
        return X, names, "; ".join(f"{c} is the same ({table[c].iloc[0]:g}) in every trial: its slope cannot be "
                                   "estimated" for c in constant)
    if np.linalg.matrix_rank(Z_of(X)) < p:
        # each part alone of full rank: the moderators are separable from one another but not from modality
        dummies = p - len(moderators)
        separable = np.linalg.matrix_rank(Z_of(np.delete(X, range(1, dummies), axis=1))) == 1 + len(moderators)
        if across and separable:
            return X, names, (f"{entry_label(moderators)} confounded with modality in these trials (its values follow "
                              "modality exactly, e.g. one value per modality): the two cannot be told apart")
        return X, names, (f"{' and '.join(moderators)} are collinear in these trials (one follows from the others): "
                          "their effects cannot be told apart")
    return X, names, ""


def _model_rows(base, names, fit, method, k, table, note, r2, i2):
    """One row per coefficient (z test, or t with k - p df for Knapp-Hartung), the model's numbers on each."""
    se = fit["se"]
    stat = fit["beta"] / se
    knha = np.isfinite(fit["df2"])
    p_coef = 2 * (special.stdtr(fit["df2"], -np.abs(stat)) if knha else special.ndtr(-np.abs(stat)))
    model = {"k": k, "coefficients": len(names), "qm": fit["statistic"], "qm_df": fit["df"],
             "qm_df2": fit["df2"], "qm_p": fit["p"], "tau2": fit["tau2"], "i2": i2, "r2": r2,
             "qe": fit.get("qe", np.nan), "qe_df": fit.get("qe_df"), "qe_p": fit.get("qe_p", np.nan),
             "studies": "; ".join(table["study"]), "note": note}
    return [{**base, "method": method, "term": name, "estimate": fit["beta"][j], "se": se[j], "statistic": stat[j],
             "p": p_coef[j], "ci_low": fit["ci_low"][j], "ci_high": fit["ci_high"][j], **model}
            for j, name in enumerate(names)]


def pseudo_r2(tau2_intercept_only, tau2):
    """metafor's R^2 of rma.uni: (tau^2 without moderators - residual tau^2) / tau^2 without moderators, truncated at
    0, and 0 when the model without moderators has tau^2 = 0."""
    if not tau2_intercept_only > 0:
        return 0.0
    return max(0.0, (tau2_intercept_only - tau2) / tau2_intercept_only)


def fit_group(table, outcome, moderators, group, across, level=0.95, nagq=7):
    """(rows, fits) of one moderator set in one group of trials: rows of METAREG_COLUMNS for each method, fits
    {method: (fit, X, names, table)} of those estimated (for the bubble plots)."""
    base = {"outcome": outcome, "moderators": entry_label(moderators), "group": group}
    known = table.dropna(subset=list(moderators))
    left_out = [s for s in table["study"] if s not in set(known["study"])]
    remarks = [f"left out ({entry_label(moderators)} unknown): {', '.join(left_out)}"] if left_out else []
    if across and known["modality"].nunique() < 2:
        only = known["modality"].iloc[0] if len(known) else "none"
        reason = f"with {entry_label(moderators)} known only {only} remains: no comparison across modalities"
        X, names = None, []
    else:
        X, names, reason = design(known, moderators, across)
    if reason:
        return [{**base, "method": m, "k": len(known), "coefficients": len(names) or None,
                 "studies": "; ".join(known["study"]), "note": "; ".join([reason, *remarks])}
                for m in METAREG_METHODS], {}
    events, n = known["events"].to_numpy(float), known["n"].to_numpy(float)
    y, v = logit_effects(events, n)
    ones = np.ones((len(known), 1))
    k = len(known)
    rows, fits = [], {}
    tau2_re = meta_regression(y, v, ones, "reml", False, level)["tau2"]
    for method in ("logit-reml", "logit-reml-hksj"):
        fit = meta_regression(y, v, X, "reml", method.endswith("-hksj"), level)
        boundary = ["residual tau^2 estimated at the boundary 0"] if fit["tau2"] == 0 else []
        rows += _model_rows(base, names, fit, method, k, known, "; ".join(boundary + remarks),
                            pseudo_r2(tau2_re, fit["tau2"]), fit["i2"])
        fits[method] = (fit, X, names, known, y, v)
    fit = glmm_regression(events, n, X, nagq, level)
    if fit["diverged"]:
        rows.append({**base, "method": "glmm", "k": k, "coefficients": len(names), "studies": "; ".join(known["study"]),
                     "note": "; ".join([RUNAWAY_NOTE, *remarks])})
    else:
        null = glmm_regression(events, n, ones, nagq, level)
        typical = residual_typical_variance(v, X)
        boundary = ["residual tau^2 estimated at the boundary 0"] if fit["boundary"] else []
        rows += _model_rows(base, names, fit, "glmm", k, known, "; ".join(boundary + remarks),
                            pseudo_r2(null["tau2"] if not null["diverged"] else np.nan, fit["tau2"]),
                            fit["tau2"] / (typical + fit["tau2"]))
        fits["glmm"] = (fit, X, names, known, y, v)
    return rows, fits


def _bubble_rows(outcome, moderator, group, method, fit, X, names, table, y, v):
    """The bubble plot's data: each trial (x, proportion, weight, fitted rate and its CI at x) and the fitted line
    on a grid of x (per modality across modalities), rates as fractions."""
    beta, vcov, crit = fit["beta"], fit["vcov"], fit["crit"]

    def predict(design_rows):
        eta = design_rows @ beta
        half = crit * np.sqrt(np.einsum("ij,jk,ik->i", design_rows, vcov, design_rows))
        return special.expit(eta), special.expit(eta - half), special.expit(eta + half)

    w = 1 / (v + fit["tau2"])
    fitted, low, high = predict(X)
    base = {"outcome": outcome, "moderator": moderator, "group": group, "method": method}
    lines = list(dict.fromkeys(table["modality"])) if group == ALL else [group]
    rows = [{**base, "line": line, "study": s, "x": x, "proportion": e / m, "weight": wi / w.sum(), "fit": f,
             "ci_low": lo, "ci_high": hi}
            for line, s, x, e, m, wi, f, lo, hi in zip(table["modality"] if group == ALL else [group] * len(table),
                                                        table["study"], table[moderator], table["events"], table["n"],
                                                        w, fitted, low, high)]
    x_all = table[moderator].to_numpy(float)
    for i, line in enumerate(lines):
        grid = np.linspace(x_all.min(), x_all.max(), _GRID)
        D = np.zeros((_GRID, len(names)))
        D[:, 0] = 1.0
        D[:, names.index(moderator)] = grid
        if group == ALL and i > 0:
            D[:, names.index(f"modality={line}")] = 1.0
        f, lo, hi = predict(D)
        rows += [{**base, "line": line, "study": "", "x": x, "fit": a, "ci_low": b, "ci_high": c}
                 for x, a, b, c in zip(grid, f, lo, hi)]
    return rows


def meta_regressions(studies, outcome, entries, comparison=None, level=0.95, nagq=7, bubble_method="logit-reml"):
    """(table, bubble) of every configured meta-regression of one outcome. `entries`: [{"moderators": [...],
    "across": bool}]; groups are the modalities in the order of `comparison`, or 'all' for an entry across them.
    `bubble` has the data of the bubble plots (one-moderator entries, method `bubble_method`)."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]].copy()
    rows, bubble = [], []
    for entry in entries:
        moderators, across = list(entry["moderators"]), bool(entry.get("across"))
        missing = [c for c in moderators if c not in kept.columns]
        if missing:
            rows += [{"outcome": outcome, "moderators": entry_label(moderators), "group": ALL if across else "",
                      "method": m, "note": f"no column {', '.join(missing)} in the trial tables"}
                     for m in METAREG_METHODS]
            continue
        table = kept.assign(**{c: numeric_moderator(kept[c]) for c in moderators})
        order = comparison_order(subgroups_of(table), comparison)
        if across:
            table = table.assign(_order=table["modality"].map(order.index)).sort_values("_order", kind="stable")
            groups = [(ALL, table.drop(columns="_order"))]
        else:
            groups = [(m, table[table["modality"] == m]) for m in order]
        for group, part in groups:
            found, fits = fit_group(part, outcome, moderators, group, across, level, nagq)
            rows += found
            if len(moderators) == 1 and bubble_method in fits:
                fit, X, names, known, y, v = fits[bubble_method]
                bubble += _bubble_rows(outcome, moderators[0], group, bubble_method, fit, X, names, known, y, v)
    table = pd.DataFrame.from_records(rows, columns=METAREG_COLUMNS)
    table = table.astype({"k": "Int64", "coefficients": "Int64", "qm_df": "Int64", "qe_df": "Int64"})
    return table, pd.DataFrame.from_records(bubble, columns=BUBBLE_COLUMNS)
