"""Inverse-variance random-effects pooling, vectorised over many meta-analyses at once.

Every function takes effects `y` and within-study variances `v` of shape (k,) for one
meta-analysis or (m, k) for m of them; meta-analyses with fewer than k studies are padded
with NaN. Definitions follow metafor's rma.uni, so that its numbers are ours.

Written by hand because statsmodels' combine_effects fits one meta-analysis per call, does
not truncate DerSimonian-Laird's tau^2 at 0, stops Paule-Mandel at |Q - df| < 1e-5, and has
neither REML nor Q-profile intervals.
"""

import numpy as np

# scipy.special, not scipy.stats: the functions scipy.stats calls, without its 1 s import in every job
from scipy import special
from scipy.special import gammaln

TAU2_METHODS = ("dl", "reml", "pm")
_TOL = 1e-13
_MAXITER = 500


def _batch(y, v):
    """2-D float copies, padding turned into y = 0, v = inf (weight 0), the study count, and whether y was 1-D."""
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    single = y.ndim == 1
    y, v = np.atleast_2d(y), np.atleast_2d(v)
    real = np.isfinite(y) & np.isfinite(v)
    return np.where(real, y, 0.0), np.where(real, v, np.inf), real.sum(axis=1).astype(float), single


def _weights(v, tau2):
    return 1 / (v + tau2[:, None])


def _weighted_mean(y, w):
    return (w * y).sum(axis=1) / w.sum(axis=1)


def _q_at(y, w):
    """sum w_i (y_i - mu)^2 for given weights."""
    return (w * (y - _weighted_mean(y, w)[:, None]) ** 2).sum(axis=1)


def generalised_q(y, v, tau2):
    """Q(tau^2) = sum w_i (y_i - mu)^2 with w_i = 1 / (v_i + tau^2); Cochran's Q at tau^2 = 0."""
    y, v, _, single = _batch(y, v)
    q = _q_at(y, _weights(v, np.broadcast_to(np.asarray(tau2, dtype=float), y.shape[:1])))
    return q[0] if single else q


def _iterate(step, y, v, tau2, active, target=None):
    """Apply `step(y, v, tau2, target)` to the rows still moving until every row has converged.

    Converged rows are dropped (the arrays compacted once half of them are done), so a batch costs
    what its rows need rather than what its slowest row needs.
    """
    tau2 = tau2.copy()
    target = np.zeros(len(tau2)) if target is None else target
    rows = np.flatnonzero(active)
    ys, vs, ts = y[rows], v[rows], target[rows]
    moving = np.ones(len(rows), dtype=bool)
    for _ in range(_MAXITER):
        if not moving.any():
            return tau2
        if moving.sum() < len(rows) / 2:
            rows, ys, vs, ts = rows[moving], ys[moving], vs[moving], ts[moving]
            moving = moving[moving]
        old = tau2[rows]
        new = np.where(moving, step(ys, vs, old, ts), old)
        tau2[rows] = new
        moving &= np.abs(new - old) > _TOL * (1 + new)
    raise RuntimeError("tau^2 iteration did not converge")


def _newton_q(y, v, tau2, target):
    """One step towards Q(tau^2) = target: Newton's on 1/Q while Q > target, Newton's on Q otherwise.

    1/Q is nearly linear in tau^2, so its steps cross a long flat stretch of Q in one go; an overshoot
    (Q < target) is undone by Newton's step on the convex, decreasing Q, which lands short of the root.
    The derivative of mu drops out of dQ/dtau^2 = -sum w^2 (y - mu)^2.
    """
    w = _weights(v, tau2)
    r2 = (y - _weighted_mean(y, w)[:, None]) ** 2
    q, slope = (w * r2).sum(axis=1), (w**2 * r2).sum(axis=1)
    # identical effects (slope 0) have Q = 0 whatever tau^2: nothing to solve
    step = np.divide(q - target, slope, out=np.zeros_like(slope), where=slope > 0)
    return tau2 + step * np.maximum(1.0, np.divide(q, target, out=np.ones_like(q), where=target > 0))


def _solve_generalised_q(y, v, target, start=None):
    """The tau^2 >= 0 at which Q(tau^2) equals `target` (0 where Q(0) <= target).

    Iterated from `start` (default 0) with _newton_q; this is the Paule-Mandel estimator when
    target = k - 1.
    """
    target = np.broadcast_to(np.asarray(target, dtype=float), y.shape[:1])
    start = np.zeros(y.shape[0]) if start is None else start
    return _iterate(_newton_q, y, v, start, _q_at(y, _weights(v, start)) > target, target)


def tau2_dl(y, v):
    """DerSimonian-Laird moment estimator, truncated at 0."""
    y, v, k, single = _batch(y, v)
    tau2 = _tau2_dl(y, v, k)
    return tau2[0] if single else tau2


def _tau2_dl(y, v, k):
    w = 1 / v
    c = w.sum(axis=1) - (w**2).sum(axis=1) / w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 1, np.maximum(0.0, (_q_at(y, w) - (k - 1)) / c), np.nan)


def tau2_pm(y, v):
    """Paule-Mandel estimator: Q(tau^2) = k - 1."""
    y, v, k, single = _batch(y, v)
    tau2 = _tau2_pm(y, v, k)
    return tau2[0] if single else tau2


def _tau2_pm(y, v, k):
    return np.where(k > 1, _solve_generalised_q(y, v, k - 1.0), np.nan)


def tau2_reml(y, v):
    """Restricted maximum likelihood, from the DL value, as metafor's rma(method="REML")."""
    y, v, k, single = _batch(y, v)
    tau2 = _tau2_reml(y, v, k)
    return tau2[0] if single else tau2


def _reml_derivatives(y, v, tau2):
    """REML score y'PPy - tr(P), Fisher information tr(PP) and observed information 2 y'PPPy - tr(PP),
    with P = W - w w'/sum(w) (each up to the same factor 1/2)."""
    w = _weights(v, tau2)
    sw, sw2 = w.sum(axis=1), (w**2).sum(axis=1)
    py = w * (y - _weighted_mean(y, w)[:, None])
    score = (py**2).sum(axis=1) - (sw - sw2 / sw)
    fisher = sw2 - 2 * (w**3).sum(axis=1) / sw + (sw2 / sw) ** 2
    observed = 2 * ((w * py**2).sum(axis=1) - (w * py).sum(axis=1) ** 2 / sw) - fisher
    return score, fisher, observed


def _reml_step(y, v, tau2, _):
    """One Fisher-scoring step, as metafor takes it, turning to Newton's step once close to the maximum.

    Far from it Newton can jump to another mode of a bimodal likelihood; close to it, where Fisher scoring
    crawls, Newton converges quadratically to the same point. metafor halves a step that would make tau^2
    negative; where the score at 0 is not positive those halvings converge to 0, so we go there at once.
    """
    score, fisher, observed = _reml_derivatives(y, v, tau2)
    step = score / fisher
    close = (observed > 0) & (np.abs(step) < 1e-3 * (1 + tau2))
    new = tau2 + np.where(close, score / np.where(close, observed, 1.0), step)
    negative = new < 0
    if negative.any():
        score0, _, _ = _reml_derivatives(y[negative], v[negative], np.zeros(negative.sum()))
        halved = tau2[negative] + (new[negative] - tau2[negative]) / 2
        new[negative] = np.where(score0 <= 0, 0.0, np.maximum(halved, tau2[negative] / 2))
    return new


def _tau2_he(y, v, k):
    """Hedges' unweighted moment estimator, metafor's starting value for REML."""
    mean = y.sum(axis=1) / k
    finite = np.isfinite(v)
    rss = (np.where(finite, y - mean[:, None], 0.0) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.maximum(0.0, (rss - (k - 1) / k * np.where(finite, v, 0.0).sum(axis=1)) / (k - 1))


def _reml_loglik(y, v, tau2):
    """Restricted log-likelihood up to a constant (padding has v = inf and adds log(inf); masked by the caller)."""
    w = _weights(v, tau2)
    finite = np.isfinite(v)
    log_var = np.where(finite, np.log(np.where(finite, v, 1.0) + tau2[:, None]), 0.0).sum(axis=1)
    return -0.5 * (log_var + np.log(w.sum(axis=1)) + _q_at(y, w))


def _tau2_reml(y, v, k):
    start = np.nan_to_num(_tau2_he(y, v, k))
    tau2 = _iterate(_reml_step, y, v, start, k > 1)
    # as metafor (ll0check): Fisher scoring can stop at a local maximum that tau^2 = 0 beats
    zeros = np.zeros_like(tau2)
    tau2 = np.where(_reml_loglik(y, v, zeros) > _reml_loglik(y, v, tau2), 0.0, tau2)
    return np.where(k > 1, tau2, np.nan)


def _tau2_ee(y, v, k):
    """A common-effect model: tau^2 is 0 by definition (NaN for one study, as every method leaves it)."""
    return np.where(k > 1, 0.0, np.nan)


_TAU2 = {"dl": _tau2_dl, "reml": _tau2_reml, "pm": _tau2_pm, "ee": _tau2_ee}


def _common_effect_statistics(out):
    """A common-effect fit (metafor's rma(method="EE")) reports I^2 = max(0, (Q - df) / Q) and H^2 = Q / df from
    Cochran's Q, has no tau^2 interval and no prediction interval (metafor's predict() gives the CI again)."""
    q, df = out["q"], out["q_df"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["i2"] = np.where(df > 0, np.maximum(0.0, (q - df) / q), np.nan)
        out["h2"] = np.where(df > 0, q / df, np.nan)
    for key in ("pi_low", "pi_high", "tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high"):
        out[key] = np.full_like(out["k"], np.nan)
    return out


def typical_within_variance(v):
    """Higgins & Thompson's typical within-study variance, the s^2 of metafor's I^2 (rows of v; inf = padding)."""
    w = 1 / np.atleast_2d(np.asarray(v, dtype=float))
    k = (w > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (k - 1) * w.sum(axis=1) / (w.sum(axis=1) ** 2 - (w**2).sum(axis=1))


def tau2_qprofile_ci(y, v, level=0.95):
    """Q-profile confidence interval for tau^2 (Viechtbauer 2007; metafor's confint)."""
    y, v, k, single = _batch(y, v)
    low, high = _tau2_qprofile_ci(y, v, k, level)
    return (low[0], high[0]) if single else (low, high)


def _tau2_qprofile_ci(y, v, k, level):
    ok = k > 1
    df = np.where(ok, k - 1, 1.0)
    alpha = 1 - level
    low = _solve_generalised_q(y, v, 2 * special.gammaincinv(df / 2, 1 - alpha / 2))
    high = _solve_generalised_q(y, v, 2 * special.gammaincinv(df / 2, alpha / 2), start=low)  # the lower root is left of it
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def prediction_interval(estimate, se, tau2, k, level=0.95):
    """Higgins, Thompson & Spiegelhalter (2009): estimate +- t(k-2) sqrt(tau^2 + se^2); NaN for k < 3."""
    k = np.asarray(k, dtype=float)
    t = special.stdtrit(np.where(k >= 3, k - 2, 1), 1 - (1 - level) / 2)
    half = np.where(k >= 3, t * np.sqrt(tau2 + se**2), np.nan)
    return estimate - half, estimate + half


def pool_inverse_variance(y, v, tau2_method="reml", hksj=False, level=0.95, tau2_ci=True):
    """Random-effects pooling on the scale of y; returns a dict of arrays (floats if y is 1-D).

    Keys: k, estimate, se, ci_low, ci_high, pi_low, pi_high, tau2, tau2_ci_low, tau2_ci_high,
    i2, i2_ci_low, i2_ci_high, h2, q, q_df, q_p. One study: no tau^2 (NaN), its own Wald
    interval, as metafor fits k = 1 with a fixed-effect model. tau2_ci=False skips the Q-profile
    intervals (NaN), the costliest part, for simulations that do not need them.
    """
    y, v, k, single = _batch(y, v)
    tau2 = _TAU2[tau2_method](y, v, k)
    tau2_ci = tau2_ci and tau2_method != "ee"
    w = _weights(v, np.nan_to_num(tau2))
    estimate = _weighted_mean(y, w)
    # Knapp-Hartung: the variance scaled by the weighted residual mean square, t with k-1 df
    hksj_scale = (w * (y - estimate[:, None]) ** 2).sum(axis=1) / np.where(k > 1, k - 1, 1) if hksj else None
    out = _pooled_result(k, estimate, np.sqrt(1 / w.sum(axis=1)), tau2, typical_within_variance(v), _q_at(y, 1 / v),
                         level, hksj_scale, _tau2_qprofile_ci(y, v, k, level) if tau2_ci else None)
    if tau2_method == "ee":
        out = _common_effect_statistics(out)
    return {key: value[0] for key, value in out.items()} if single else out


def q_between_subgroups(estimates, ses):
    """Cochran's Q across subgroup estimates (fixed-effect weights 1/se^2), df = groups - 1."""
    estimates = np.asarray(estimates, dtype=float)
    w = 1 / np.asarray(ses, dtype=float) ** 2
    mu = np.sum(w * estimates) / np.sum(w)
    q = float(np.sum(w * (estimates - mu) ** 2))
    df = len(estimates) - 1
    return q, df, float(special.chdtrc(df, q))


def _wls(y, v, X, tau2):
    """Weighted least squares at tau^2: coefficients, their covariance, Py, y'Py, tr(P) and tr(PP), with
    P = W - W X (X'WX)^-1 X'W computed through p x p matrices only (never k x k, so 10,000 studies fit)."""
    w = 1 / (v + tau2)
    xw = X * w[:, None]
    xtwx_inv = np.linalg.inv(X.T @ xw)
    beta = xtwx_inv @ (xw.T @ y)
    py = w * (y - X @ beta)
    second = xtwx_inv @ (xw.T @ xw)  # (X'WX)^-1 X'W^2X
    third = xtwx_inv @ (xw.T @ (xw * w[:, None]))  # (X'WX)^-1 X'W^3X
    trace_p = w.sum() - np.trace(second)
    trace_pp = (w**2).sum() - 2 * np.trace(third) + np.trace(second @ second)
    return beta, xtwx_inv, py, float(y @ py), trace_p, trace_pp


def _tau2_regression(y, v, X, method):
    """tau^2 of a meta-regression (metafor's rma.uni with mods): DL, REML or PM, truncated at 0. Iterations stop when
    tau^2 moves less than _TOL of tau^2 plus the typical within-study variance: a criterion in the units of the
    effects' variance, so neither their scale nor the moderators' changes when it is met."""
    k, p = X.shape
    if method == "ee":
        return 0.0
    _, _, _, qe, trace_p, _ = _wls(y, v, X, 0.0)
    if method == "dl":
        return max(0.0, (qe - (k - p)) / trace_p)
    typical = (k - p) / trace_p
    tau2 = 0.0
    for _ in range(_MAXITER):
        _, _, py, qe, trace_p, trace_pp = _wls(y, v, X, tau2)
        if method == "reml":
            # Fisher scoring: score y'PPy - tr(P), information tr(PP)
            new = max(0.0, tau2 + (py @ py - trace_p) / trace_pp)
        else:
            # Paule-Mandel: Newton on y'P(tau^2)y = k - p, whose derivative is -y'PPy
            new = max(0.0, tau2 + (qe - (k - p)) / (py @ py)) if qe > k - p or tau2 > 0 else 0.0
        if abs(new - tau2) <= _TOL * (new + typical):
            return new
        tau2 = new
    raise RuntimeError("meta-regression tau^2 did not converge")


def residual_typical_variance(v, X):
    """metafor's typical within-study variance of a meta-regression, (k - p) / tr(P) at tau^2 = 0, the s^2 of its I^2
    for mixed models (NaN when k <= p)."""
    v, X = np.asarray(v, dtype=float), np.asarray(X, dtype=float)
    k, p = X.shape
    if k <= p:
        return np.nan
    return (k - p) / _wls(np.zeros(k), v, standardised_design(X)[0], 0.0)[4]


def standardised_design(X):
    """(Z, T) with Z = X T: every column of X but a constant one centred (when X has an intercept column of ones) and
    scaled to standard deviation 1. A model fitted on Z is the model on X (the same column space); its coefficients
    g and covariance V are X's as T g and T V T'. Fitting on Z keeps X'WX well conditioned whatever the moderators'
    units (publication years near 2015 make it singular to double precision)."""
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0)
    varying = sd > 0
    intercept = np.any(np.all(X == 1.0, axis=0))
    centre = np.where(varying & intercept, X.mean(axis=0), 0.0)
    scale = np.where(varying, np.where(intercept, sd, np.sqrt((X**2).mean(axis=0))), 1.0)
    T = np.diag(1 / scale)
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    if len(ones):
        T[ones[0]] -= centre / scale  # the intercept takes up the centres: x = z * scale + centre
    return X @ T, T


def meta_regression(y, v, X, tau2_method="reml", hksj=False, level=0.95):
    """Mixed-effects meta-regression y = X b + u + e with a common tau^2 (metafor's rma(yi, vi, mods=)).

    X has an intercept column first. Returns coefficients, their SEs and CIs, tau^2 and the omnibus
    test of every coefficient but the intercept: QM ~ chi2(m), or with hksj F(m, k - p) as metafor's
    test="knha"; the test of residual heterogeneity QE ~ chi2(k - p), and I^2 and H^2 of the residual
    heterogeneity as metafor defines them (typical within-study variance (k - p) / tr(P) at tau^2 = 0).
    Fitted on standardised moderators (standardised_design), reported on X's scale.
    """
    y, v, X = (np.asarray(a, dtype=float) for a in (y, v, X))
    k, p = X.shape
    Z, T = standardised_design(X)
    tau2 = _tau2_regression(y, v, Z, tau2_method)
    gamma, vg, _, qe_tau, _, _ = _wls(y, v, Z, tau2)
    qe = _wls(y, v, Z, 0.0)[3]
    df2 = k - p
    if hksj:
        vg = vg * qe_tau / df2
    beta, vb = T @ gamma, T @ vg @ T.T
    se = np.sqrt(np.diag(vb))
    m = p - 1
    # the test of every coefficient but the intercept, on Z's scale: T maps them by a diagonal, so the value is X's
    qm = float(gamma[1:] @ np.linalg.solve(vg[1:, 1:], gamma[1:]))
    if hksj:
        crit = special.stdtrit(df2, 1 - (1 - level) / 2)
        statistic, p_value = qm / m, float(special.fdtrc(m, df2, qm / m))
    else:
        crit = special.ndtri(1 - (1 - level) / 2)
        statistic, p_value = qm, float(special.chdtrc(m, qm))
    typical = residual_typical_variance(v, Z)
    return {
        "beta": beta, "se": se, "ci_low": beta - crit * se, "ci_high": beta + crit * se, "vcov": vb, "crit": crit,
        "tau2": tau2, "statistic": statistic, "df": m, "df2": df2 if hksj else np.nan, "p": p_value,
        "qe": qe, "qe_df": df2, "qe_p": float(special.chdtrc(df2, qe)) if df2 > 0 else np.nan,
        "i2": tau2 / (typical + tau2), "h2": tau2 / typical + 1,
    }


# Leave-one-out without refitting k sets of k - 1 studies (k^2 cells): every sum a fit needs, over all studies but
# study i at study i's own tau^2, is the all-study sum (a Taylor series in tau^2 around the full fit's tau^2, whose
# coefficients are power sums computed once) minus study i's own term, exact. Written by hand: no library does it.
_LOO_TERMS = 48  # Taylor terms; with |t - t0| / min(v + t0) <= _LOO_REACH the remainder is below 1e-18
_LOO_REACH = 0.4


class _LooSums:
    """sum_{j != i} y_j^a / (v_j + t_i)^m for every study i at its own t_i (a = 0, 1, 2; m = 1, 2, 3), and
    sum_{j != i} log(v_j + t_i), from power sums around t0; rows whose t_i is too far from t0 are flagged."""

    def __init__(self, y, v, t0):
        self.y, self.v, self.t0 = y, v, t0
        u = 1 / (v + t0)
        self.scale = u.max()
        s = u / self.scale  # in (0, 1]: powers never overflow
        powers = s[None, :] ** np.arange(_LOO_TERMS + 4)[:, None]
        self.power = np.stack([powers @ y**a for a in range(3)], axis=1)  # (terms, a)
        self.log_total = np.log(v + t0).sum()

        n = np.arange(_LOO_TERMS)
        # Taylor coefficients of the all-study sums in x = (t - t0) * scale: binom(-m, n) = (-1)^n binom(m + n - 1, n)
        self.coef = {(m, a): self.scale**m * (-1.0) ** n * np.exp(gammaln(m + n) - gammaln(m) - gammaln(n + 1))
                     * self.power[m:m + _LOO_TERMS, a] for m in (1, 2, 3) for a in range(3)}
        self.log_coef = np.concatenate([[self.log_total], (-1.0) ** n[1:] * -1 / n[1:] * self.power[1:_LOO_TERMS, 0]])
        self._t, self._x = None, None

    def _ratio(self, t):
        return (np.asarray(t, float) - self.t0) * self.scale

    def outside(self, t):
        return np.abs(self._ratio(t)) > _LOO_REACH

    def _powers(self, t):
        """x^0 .. x^(terms-1) per row (k, terms), kept for the last t asked for (every sum of a step shares it)."""
        if self._t is None or not np.array_equal(self._t, t):
            x = np.clip(self._ratio(t), -_LOO_REACH, _LOO_REACH)
            self._t, self._x = np.array(t, dtype=float), np.cumprod(np.column_stack([np.ones(len(x))] + [x] * (_LOO_TERMS - 1)), axis=1)
        return self._x

    def sum(self, t, m, a):
        return self._powers(t) @ self.coef[m, a] - self.y**a / (self.v + t) ** m

    def log_sum(self, t):
        return self._powers(t) @ self.log_coef - np.log(self.v + t)


def _loo_moments(sums, t):
    """Weighted mean, Q(t), sum w^2 r^2, sum w^3 r^2, sum w^2 r (r = y - mean) and the sums of w, w^2, w^3."""
    s = {(m, a): sums.sum(t, m, a) for m in (1, 2, 3) for a in (0, 1, 2)}
    mu = s[1, 1] / s[1, 0]
    q = s[1, 2] - 2 * mu * s[1, 1] + mu**2 * s[1, 0]
    w2r2 = s[2, 2] - 2 * mu * s[2, 1] + mu**2 * s[2, 0]
    w3r2 = s[3, 2] - 2 * mu * s[3, 1] + mu**2 * s[3, 0]
    w2r = s[2, 1] - mu * s[2, 0]
    return mu, q, w2r2, w3r2, w2r, s[1, 0], s[2, 0], s[3, 0]


def _loo_iterate(step, sums, start, active):
    """Iterate `step(t)` on the active rows until each has moved less than the tolerance of _iterate."""
    tau2 = start.copy()
    moving = active.copy()
    for _ in range(_MAXITER):
        if not moving.any():
            return tau2
        new = np.maximum(step(tau2), 0.0)
        new = np.where(moving, new, tau2)
        moving &= np.abs(new - tau2) > _TOL * (1 + new)
        tau2 = new
    raise RuntimeError("leave-one-out tau^2 iteration did not converge")


def leave_one_out_inverse_variance(y, v, tau2_method="reml", hksj=False, level=0.95):
    """pool_inverse_variance(tau2_ci=False) of the studies without each one in turn, in O(k) memory and about
    O(k) time (arrays of length k, row i without study i); every fit converges to the tolerance of the exact path,
    started from the full data's tau^2. Rows the series cannot reach are refitted exactly. Needs k >= 3."""
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    k = len(y)
    centre = y.mean()  # sums of centred effects: no cancellation when the effects sit far from 0
    yc = y - centre
    full = float(_TAU2[tau2_method](yc[None], v[None], np.array([float(k)]))[0])
    zero = _LooSums(yc, v, 0.0)
    kl = np.full(k, k - 1.0)
    _, q0, _, _, _, sw0, sw20, _ = _loo_moments(zero, np.zeros(k))
    if tau2_method == "ee":
        tau2, sums, far = np.zeros(k), zero, np.zeros(k, dtype=bool)
    elif tau2_method == "dl":
        tau2 = np.maximum(0.0, (q0 - (kl - 1)) / (sw0 - sw20 / sw0))
        sums = _LooSums(yc, v, full)
        far = sums.outside(tau2)
    else:
        sums = _LooSums(yc, v, full)
        if tau2_method == "pm":
            def step(t):
                _, q, w2r2, *_ = _loo_moments(sums, t)
                target = kl - 1
                return t + np.divide(q - target, w2r2, out=np.zeros(k), where=w2r2 > 0) * np.maximum(1.0, q / target)
            tau2 = _loo_iterate(step, sums, np.full(k, full), q0 > kl - 1)
            tau2 = np.where(q0 > kl - 1, tau2, 0.0)
        else:
            def step(t):
                _, _, w2r2, w3r2, w2r, sw, sw2, sw3 = _loo_moments(sums, t)
                score = w2r2 - (sw - sw2 / sw)
                fisher = sw2 - 2 * sw3 / sw + (sw2 / sw) ** 2
                observed = 2 * (w3r2 - w2r**2 / sw) - fisher
                fs = score / fisher
                close = (observed > 0) & (np.abs(fs) < 1e-3 * (1 + t))
                new = t + np.where(close, score / np.where(close, observed, 1.0), fs)
                # as _reml_step: a step below 0 goes to 0 where the score there is not positive, else is halved
                negative = new < 0
                if negative.any():
                    _, _, w2r2_0, _, _, sw_0, sw2_0, _ = _loo_moments(zero, np.zeros(k))
                    score0 = w2r2_0 - (sw_0 - sw2_0 / sw_0)
                    halved = np.maximum(t + (new - t) / 2, t / 2)
                    new = np.where(negative, np.where(score0 <= 0, 0.0, halved), new)
                return new
            tau2 = _loo_iterate(step, sums, np.full(k, full), np.ones(k, dtype=bool))
            # ll0check as _tau2_reml: the restricted log-likelihood at 0 against the maximum found
            def loglik(s, t):
                _, q, *_rest = _loo_moments(s, t)
                return -0.5 * (s.log_sum(t) + np.log(s.sum(t, 1, 0)) + q)
            tau2 = np.where(loglik(zero, np.zeros(k)) > loglik(sums, tau2), 0.0, tau2)
        far = sums.outside(tau2) | ~np.isfinite(tau2)
    mu, q_tau, _, _, _, sw, _, _ = _loo_moments(sums, np.where(far, full, tau2))
    s2 = (kl - 1) * sw0 / (sw0**2 - sw20)  # typical_within_variance of each set
    out = _pooled_result(kl, mu + centre, np.sqrt(1 / sw), tau2, s2, q0, level, q_tau / (kl - 1) if hksj else None)
    if tau2_method == "ee":
        out = _common_effect_statistics(out)
    for i in np.flatnonzero(far):  # beyond the series' reach: the exact fit
        rest = np.arange(k) != i
        exact = pool_inverse_variance(y[rest], v[rest], tau2_method, hksj, level, tau2_ci=False)
        for key in out:
            out[key][i] = exact[key]
    out["exact"] = far
    return out


def _pooled_result(k, estimate, se, tau2, s2, q, level, hksj_scale=None, tau2_ci=None):
    """pool_inverse_variance's keys from a fit's pieces (arrays over fits): `s2` the typical within-study
    variance, `q` Cochran's Q, `hksj_scale` the Knapp-Hartung residual mean square (None: Wald), `tau2_ci` the
    Q-profile (low, high) of tau^2 (None: NaN)."""
    z = special.ndtri(1 - (1 - level) / 2)
    crit = np.full_like(k, z)
    if hksj_scale is not None:
        many = k > 1
        se = np.where(many, se * np.sqrt(hksj_scale), se)
        crit = np.where(many, special.stdtrit(np.where(many, k - 1, 1), 1 - (1 - level) / 2), z)
    tau2_ci_low, tau2_ci_high = tau2_ci if tau2_ci is not None else (np.full_like(k, np.nan), np.full_like(k, np.nan))
    pi_low, pi_high = prediction_interval(estimate, se, np.nan_to_num(tau2), k, level)
    q_df = k - 1
    return {
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
        "q_p": np.where(q_df > 0, special.chdtrc(np.where(q_df > 0, q_df, 1), q), np.nan),
    }
