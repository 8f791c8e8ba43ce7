"""Inverse-variance random-effects pooling, vectorised over many meta-analyses at once.

Every function takes effects `y` and within-study variances `v` of shape (k,) for one
meta-analysis or (m, k) for m of them; meta-analyses with fewer than k studies are padded
with NaN. Definitions follow metafor's rma.uni, so that its numbers are ours.

Written by hand because statsmodels' combine_effects fits one meta-analysis per call, does
not truncate DerSimonian-Laird's tau^2 at 0, stops Paule-Mandel at |Q - df| < 1e-5, and has
neither REML nor Q-profile intervals.
"""

import numpy as np
from scipy import stats

TAU2_METHODS = ("dl", "reml", "pm")
_TOL = 1e-13
_MAXITER = 500


def _batch(y, v):
    """2-D float copies with padding zeroed, the mask of real studies, and whether input was 1-D."""
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    single = y.ndim == 1
    y, v = np.atleast_2d(y), np.atleast_2d(v)
    mask = np.isfinite(y) & np.isfinite(v)
    return np.where(mask, y, 0.0), np.where(mask, v, 1.0), mask, single


def _weighted_mean(y, w):
    return (w * y).sum(axis=1) / w.sum(axis=1)


def generalised_q(y, v, tau2, mask):
    """Q(tau^2) = sum w_i (y_i - mu)^2 with w_i = 1 / (v_i + tau^2); Cochran's Q at tau^2 = 0."""
    w = mask / (v + np.asarray(tau2)[:, None])
    mu = _weighted_mean(y, w)
    return (w * (y - mu[:, None]) ** 2).sum(axis=1)


def _solve_generalised_q(y, v, mask, target):
    """The tau^2 >= 0 at which Q(tau^2) equals `target` (0 where Q(0) <= target).

    Newton's method from tau^2 = 0; Q decreases and is convex in tau^2, so the steps
    increase monotonically to the root. This is the Paule-Mandel iteration when target = k - 1.
    """
    target = np.broadcast_to(np.asarray(target, dtype=float), y.shape[:1])
    tau2 = np.zeros(y.shape[0])
    active = generalised_q(y, v, tau2, mask) > target
    for _ in range(_MAXITER):
        w = mask / (v + tau2[:, None])
        r2 = (y - _weighted_mean(y, w)[:, None]) ** 2
        q = (w * r2).sum(axis=1)
        slope = (w**2 * r2).sum(axis=1)  # -dQ/dtau^2 (the derivative of mu drops out)
        step = np.where(active, (q - target) / np.where(active, slope, 1.0), 0.0)
        tau2 = tau2 + step
        if np.all(np.abs(step) <= _TOL * (1 + tau2)):
            return tau2
    raise RuntimeError("generalised Q equation did not converge")


def tau2_dl(y, v):
    """DerSimonian-Laird moment estimator, truncated at 0."""
    y, v, mask, single = _batch(y, v)
    tau2 = _tau2_dl(y, v, mask)
    return tau2[0] if single else tau2


def _tau2_dl(y, v, mask):
    w = mask / v
    k = mask.sum(axis=1)
    c = w.sum(axis=1) - (w**2).sum(axis=1) / w.sum(axis=1)
    q = generalised_q(y, v, np.zeros(y.shape[0]), mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 1, np.maximum(0.0, (q - (k - 1)) / c), np.nan)


def tau2_pm(y, v):
    """Paule-Mandel estimator: Q(tau^2) = k - 1."""
    y, v, mask, single = _batch(y, v)
    tau2 = _tau2_pm(y, v, mask)
    return tau2[0] if single else tau2


def _tau2_pm(y, v, mask):
    k = mask.sum(axis=1)
    return np.where(k > 1, _solve_generalised_q(y, v, mask, k - 1.0), np.nan)


def tau2_reml(y, v):
    """Restricted maximum likelihood by Fisher scoring from the DL value, as metafor does."""
    y, v, mask, single = _batch(y, v)
    tau2 = _tau2_reml(y, v, mask)
    return tau2[0] if single else tau2


def _tau2_reml(y, v, mask):
    k = mask.sum(axis=1)
    tau2 = np.nan_to_num(_tau2_dl(y, v, mask))
    for _ in range(_MAXITER):
        w = mask / (v + tau2[:, None])
        sw, sw2, sw3 = w.sum(axis=1), (w**2).sum(axis=1), (w**3).sum(axis=1)
        resid = y - _weighted_mean(y, w)[:, None]
        # P = W - w w'/sum(w): score = y'PPy - tr(P), information = tr(PP)
        y_ppy = ((w * resid) ** 2).sum(axis=1)
        tr_p = sw - sw2 / sw
        tr_pp = sw2 - 2 * sw3 / sw + (sw2 / sw) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):  # k = 1 has no information
            new = np.maximum(0.0, tau2 + (y_ppy - tr_p) / tr_pp)
        done = np.abs(new - tau2) <= _TOL * (1 + new)
        tau2 = new
        if np.all(done | (k < 2)):
            return np.where(k > 1, tau2, np.nan)
    raise RuntimeError("REML did not converge")


_TAU2 = {"dl": _tau2_dl, "reml": _tau2_reml, "pm": _tau2_pm}


def typical_within_variance(v, mask):
    """Higgins & Thompson's typical within-study variance, the s^2 of metafor's I^2."""
    w = mask / v
    k = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (k - 1) * w.sum(axis=1) / (w.sum(axis=1) ** 2 - (w**2).sum(axis=1))


def tau2_qprofile_ci(y, v, level=0.95):
    """Q-profile confidence interval for tau^2 (Viechtbauer 2007; metafor's confint)."""
    y, v, mask, single = _batch(y, v)
    low, high = _tau2_qprofile_ci(y, v, mask, level)
    return (low[0], high[0]) if single else (low, high)


def _tau2_qprofile_ci(y, v, mask, level):
    df = mask.sum(axis=1) - 1.0
    ok = df > 0
    dfs = np.where(ok, df, 1.0)
    alpha = 1 - level
    low = _solve_generalised_q(y, v, mask, stats.chi2.ppf(1 - alpha / 2, dfs))
    high = _solve_generalised_q(y, v, mask, stats.chi2.ppf(alpha / 2, dfs))
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def prediction_interval(estimate, se, tau2, k, level=0.95):
    """Higgins, Thompson & Spiegelhalter (2009): estimate +- t(k-2) sqrt(tau^2 + se^2); NaN for k < 3."""
    k = np.asarray(k, dtype=float)
    t = stats.t.ppf(1 - (1 - level) / 2, np.where(k >= 3, k - 2, 1))
    half = np.where(k >= 3, t * np.sqrt(tau2 + se**2), np.nan)
    return estimate - half, estimate + half


def pool_inverse_variance(y, v, tau2_method="reml", hksj=False, level=0.95):
    """Random-effects pooling on the scale of y; returns a dict of arrays (floats if y is 1-D).

    Keys: k, estimate, se, ci_low, ci_high, pi_low, pi_high, tau2, tau2_ci_low, tau2_ci_high,
    i2, i2_ci_low, i2_ci_high, h2, q, q_df, q_p. One study: no tau^2 (NaN), its own Wald
    interval, as metafor fits k = 1 with a fixed-effect model.
    """
    y, v, mask, single = _batch(y, v)
    k = mask.sum(axis=1).astype(float)
    z = stats.norm.ppf(1 - (1 - level) / 2)

    tau2 = _TAU2[tau2_method](y, v, mask)
    tau2_used = np.nan_to_num(tau2)
    w = mask / (v + tau2_used[:, None])
    estimate = _weighted_mean(y, w)
    se = np.sqrt(1 / w.sum(axis=1))
    crit = np.full_like(k, z)
    if hksj:
        # Knapp-Hartung: scale the variance by the weighted residual mean square, t with k-1 df
        many = k > 1
        scale = (w * (y - estimate[:, None]) ** 2).sum(axis=1) / np.where(many, k - 1, 1)
        se = np.where(many, se * np.sqrt(scale), se)
        crit = np.where(many, stats.t.ppf(1 - (1 - level) / 2, np.where(many, k - 1, 1)), z)

    q = generalised_q(y, v, np.zeros_like(k), mask)
    q_df = k - 1
    q_p = np.where(q_df > 0, stats.chi2.sf(q, np.where(q_df > 0, q_df, 1)), np.nan)
    s2 = typical_within_variance(v, mask)
    tau2_ci_low, tau2_ci_high = _tau2_qprofile_ci(y, v, mask, level)
    pi_low, pi_high = prediction_interval(estimate, se, tau2_used, k, level)

    out = {
        "k": k,
        "estimate": estimate,
        "se": se,
        "ci_low": estimate - crit * se,
        "ci_high": estimate + crit * se,
        "pi_low": pi_low,
        "pi_high": pi_high,
        "tau2": tau2,
        "tau2_ci_low": tau2_ci_low,
        "tau2_ci_high": tau2_ci_high,
        "i2": tau2 / (tau2 + s2),
        "i2_ci_low": tau2_ci_low / (tau2_ci_low + s2),
        "i2_ci_high": tau2_ci_high / (tau2_ci_high + s2),
        "h2": (tau2 + s2) / s2,
        "q": q,
        "q_df": q_df,
        "q_p": q_p,
    }
    return {key: value[0] for key, value in out.items()} if single else out


def q_between_subgroups(estimates, ses):
    """Cochran's Q across subgroup estimates (fixed-effect weights 1/se^2), df = groups - 1."""
    estimates = np.asarray(estimates, dtype=float)
    w = 1 / np.asarray(ses, dtype=float) ** 2
    mu = np.sum(w * estimates) / np.sum(w)
    q = float(np.sum(w * (estimates - mu) ** 2))
    df = len(estimates) - 1
    return q, df, float(stats.chi2.sf(q, df))


def _wls(y, v, X, tau2):
    """Weighted least squares at tau^2: coefficients, their covariance, the projection P and y'Py."""
    w = 1 / (v + tau2)
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = xtwx_inv @ (X.T @ (w * y))
    P = np.diag(w) - (w[:, None] * X) @ xtwx_inv @ (X.T * w)
    return beta, xtwx_inv, P, float(y @ P @ y)


def _tau2_regression(y, v, X, method):
    """tau^2 of a meta-regression (metafor's rma.uni with mods): DL, REML or PM, truncated at 0."""
    k, p = X.shape
    if method == "dl":
        _, _, P, qe = _wls(y, v, X, 0.0)
        return max(0.0, (qe - (k - p)) / np.trace(P))
    tau2 = 0.0
    for _ in range(_MAXITER):
        _, _, P, qe = _wls(y, v, X, tau2)
        Py = P @ y
        if method == "reml":
            # Fisher scoring: score y'PPy - tr(P), information tr(PP)
            new = max(0.0, tau2 + (Py @ Py - np.trace(P)) / np.sum(P * P))
        else:
            # Paule-Mandel: Newton on y'P(tau^2)y = k - p, whose derivative is -y'PPy
            new = max(0.0, tau2 + (qe - (k - p)) / (Py @ Py)) if qe > k - p or tau2 > 0 else 0.0
        if abs(new - tau2) <= _TOL * (1 + new):
            return new
        tau2 = new
    raise RuntimeError("meta-regression tau^2 did not converge")


def meta_regression(y, v, X, tau2_method="reml", hksj=False, level=0.95):
    """Mixed-effects meta-regression y = X b + u + e with a common tau^2 (metafor's rma(yi, vi, mods=)).

    X has an intercept column first. Returns coefficients, their SEs and CIs, tau^2 and the omnibus
    test of every coefficient but the intercept: QM ~ chi2(m), or with hksj F(m, k - p) as metafor's
    test="knha".
    """
    y, v, X = (np.asarray(a, dtype=float) for a in (y, v, X))
    k, p = X.shape
    tau2 = _tau2_regression(y, v, X, tau2_method)
    beta, vb, _, qe_tau = _wls(y, v, X, tau2)
    df2 = k - p
    if hksj:
        vb = vb * qe_tau / df2
    se = np.sqrt(np.diag(vb))
    m = p - 1
    qm = float(beta[1:] @ np.linalg.solve(vb[1:, 1:], beta[1:]))
    if hksj:
        crit = stats.t.ppf(1 - (1 - level) / 2, df2)
        statistic, p_value = qm / m, float(stats.f.sf(qm / m, m, df2))
    else:
        crit = stats.norm.ppf(1 - (1 - level) / 2)
        statistic, p_value = qm, float(stats.chi2.sf(qm, m))
    return {
        "beta": beta, "se": se, "ci_low": beta - crit * se, "ci_high": beta + crit * se, "tau2": tau2,
        "statistic": statistic, "df": m, "df2": df2 if hksj else np.nan, "p": p_value,
    }
