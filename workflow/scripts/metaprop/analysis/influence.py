"""Influence diagnostics per modality, from the pooled and leave-one-out fits (no refitting here).

Inverse-variance random-effects methods on the logit scale: metafor's influence() (Viechtbauer & Cheung 2010) for an
intercept-only rma.uni, column for column, and the Baujat plot's coordinates (metafor's baujat()). The GLMM: each
trial's leave-one-out change in the pooled log odds and in tau^2, and whether the pooled rate moves by more than its
standard error. Definitions as metafor 3.8's influence.rma.uni and baujat.rma, with p = 1 coefficient:

- w_i = 1 / (v_i + tau^2) of the full fit, hat_i = weight_i = w_i / sum w (metafor prints the weight in percent);
- a refit without trial i has mu_(i), variance vb_(i) (with Knapp-Hartung its s2w_(i) included), tau2_(i), QE_(i);
- rstudent = (y_i - mu_(i)) / sqrt(s2w_(i) (v_i + tau2_(i)) + vb_(i)),
- dffits = (mu - mu_(i)) / sqrt(s2w_(i) hat_i (tau2_(i) + v_i)),
- dfbetas = (mu - mu_(i)) / sqrt(s2w_(i) / sum_j 1 / (v_j + tau2_(i))) (all k trials),
- cook_d = (mu - mu_(i))^2 / vb, cov_r = vb_(i) / vb,
- inf: |dffits| > 3 sqrt(1 / (k - 1)), or P(chi2_1 < cook_d) > 0.5, or hat > 3 / k, or |dfbetas| > 1;
- Baujat: x = (y_i - mu)^2 / (tau^2 + v_i), y = (mu_(i) - mu)^2 / vb_(i).

A refit of one trial has tau^2 = 0 and a Wald variance (metafor fits k = 1 so).
"""

import numpy as np
import pandas as pd
from scipy import special

from metaprop.analysis.meta_analysis import study_effects
from metaprop.spec import method, subgroups_of

INFLUENCE_COLUMNS = [
    "outcome", "subgroup", "method", "study", "k", "rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del",
    "hat", "weight", "dfbetas", "inf", "baujat_x", "baujat_y", "estimate_model", "se_model", "estimate_del",
    "delta_estimate", "delta_tau2", "moves_beyond_se",
]


def influence_methods(methods):
    """The methods of `methods` that get influence rows: logit inverse-variance random effects, and the GLMM."""
    return [m for m in methods if method(m).logit_random_effects or (method(m).family == "glmm" and not method(m).common)]


def influence_table(studies, pooled, loo, outcome, methods):
    """Influence rows of `outcome` per modality (k >= 2) and method of influence_methods(methods), from the pooled
    rows and the leave-one-out rows of the same fits."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    parts = [(group, kept[kept["modality"] == group]) for group in subgroups_of(kept)]
    pooled, loo = pooled[pooled["outcome"] == outcome], loo[loo["outcome"] == outcome]
    pieces = []
    for token in influence_methods(methods):
        full = pooled[pooled["method"] == token].set_index("subgroup")
        dropped = loo[loo["method"] == token]
        for group, part in parts:
            if len(part) < 2 or group not in full.index:
                continue
            refits = dropped[dropped["subgroup"] == group].set_index("omitted").loc[part["study"]]
            pieces.append(_group_rows(part, full.loc[group], refits, outcome, group, token))
    if not pieces:
        return pd.DataFrame(columns=INFLUENCE_COLUMNS)
    return pd.concat(pieces, ignore_index=True)[INFLUENCE_COLUMNS]


_CELLS = 1_000_000  # trials x refits summed at once: bounded memory at 10,000 trials


def _weight_sums(v, tau2):
    """sum_j 1 / (v_j + tau2_i) for every i, in blocks of rows (k x k at once would be 800 MB at 10,000 trials)."""
    out = np.empty(len(tau2))
    step = max(1, _CELLS // max(len(v), 1))
    for start in range(0, len(tau2), step):
        out[start:start + step] = (1 / (v[None, :] + tau2[start:start + step, None])).sum(axis=1)
    return out


def _group_rows(part, full, refits, outcome, group, token):
    events, n = part["events"].to_numpy(float), part["n"].to_numpy(float)
    k = len(events)
    mu, se = float(full["estimate_model"]), float(full["se_model"])
    mu_del = refits["estimate_model"].to_numpy(float)
    tau2_del = np.nan_to_num(refits["tau2"].to_numpy(float))  # one trial left: tau^2 = 0, as metafor fits it
    table = pd.DataFrame({"outcome": outcome, "subgroup": group, "method": token, "study": part["study"].to_numpy(),
                          "k": k, "estimate_model": mu, "se_model": se, "estimate_del": mu_del,
                          "delta_estimate": mu_del - mu, "tau2_del": tau2_del,
                          "delta_tau2": tau2_del - np.nan_to_num(float(full["tau2"]))})
    table["moves_beyond_se"] = np.abs(mu_del - mu) > se
    if method(token).family == "glmm":
        return table.reindex(columns=INFLUENCE_COLUMNS)
    with np.errstate(invalid="ignore", divide="ignore"):  # identical trials under HKSJ: variance 0, no number
        return _metafor_influence(table, events, n, full, refits, token)


def _metafor_influence(table, events, n, full, refits, token):
    k = len(events)
    mu, se = float(full["estimate_model"]), float(full["se_model"])
    mu_del, se_del = refits["estimate_model"].to_numpy(float), refits["se_model"].to_numpy(float)
    tau2_del = table["tau2_del"].to_numpy(float)
    y, v = study_effects(events, n, token)
    tau2 = float(full["tau2"])
    vb, vb_del = se**2, se_del**2
    w = 1 / (v + tau2)
    hat = w / w.sum()
    sum_w_del = _weight_sums(v, tau2_del)  # all k trials at each refit's tau^2
    # the refit's Knapp-Hartung factor s2w: its variance over the plain 1 / sum w over the trials it kept
    s2w = vb_del * (sum_w_del - 1 / (v + tau2_del)) if method(token).hksj else np.ones(k)
    s2w = np.where(k - 1 > 1, s2w, 1.0)
    change = mu - mu_del
    resid = y - mu_del
    resid = np.where(np.abs(resid) < 100 * np.finfo(float).eps, 0.0, resid)
    dffits = change / np.sqrt(s2w * hat * (tau2_del + v))
    dfbetas = change / np.sqrt(s2w / sum_w_del)
    cook = change**2 / vb
    table["rstudent"] = resid / np.sqrt(v * s2w + vb_del + tau2_del * s2w)
    table["dffits"], table["cook_d"], table["cov_r"] = dffits, cook, vb_del / vb
    table["qe_del"] = refits["q"].to_numpy(float)
    table["hat"], table["weight"], table["dfbetas"] = hat, hat, dfbetas
    table["inf"] = ((np.abs(dffits) > 3 * np.sqrt(1 / (k - 1))) | (special.chdtr(1, cook) > 0.5) | (hat > 3 / k)
                    | (np.abs(dfbetas) > 1))
    table["baujat_x"] = (y - mu) ** 2 / (tau2 + v)
    table["baujat_y"] = change**2 / vb_del
    return table.reindex(columns=INFLUENCE_COLUMNS)
