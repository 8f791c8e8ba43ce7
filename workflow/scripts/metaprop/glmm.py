"""Random-intercept logistic model for proportions (metafor's rma.glmm(measure="PLO")).

events_i ~ Binomial(n_i, expit(mu + tau * b_i)), b_i ~ N(0, 1), fitted by maximum likelihood
with adaptive Gauss-Hermite quadrature over b_i (7 nodes, as metafor's call to lme4::glmer).
Written by hand because statsmodels has no maximum-likelihood binomial GLMM (its
BinomialBayesMixedGLM is variational Bayes).
"""

import numpy as np
from scipy import optimize, stats
from scipy.special import gammaln, log_expit, logsumexp
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from .pooling import prediction_interval, typical_within_variance
from .proportions import logit_effects


def _conditional_modes(mu, tau, events, n):
    """Modes of log p(events_i, b_i) over b_i by Newton's method, and the curvature there."""
    b = np.zeros_like(events)
    for _ in range(100):
        p = np.exp(log_expit(mu + tau * b))
        grad = tau * (events - n * p) - b
        curv = tau**2 * n * p * (1 - p) + 1  # minus the second derivative, >= 1
        step = grad / curv
        b = b + step
        if np.all(np.abs(step) < 1e-12):
            break
    p = np.exp(log_expit(mu + tau * b))
    return b, tau**2 * n * p * (1 - p) + 1


def log_likelihood(mu, tau, events, n, nagq=7):
    """Marginal log-likelihood (mu: one value, or one linear predictor per study) by adaptive Gauss-Hermite quadrature with `nagq` nodes."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    mu = np.broadcast_to(np.asarray(mu, dtype=float), events.shape)  # one linear predictor per study
    nodes, weights = np.polynomial.hermite.hermgauss(nagq)
    mode, curv = _conditional_modes(mu, tau, events, n)
    scale = np.sqrt(2 / curv)
    b = mode[:, None] + scale[:, None] * nodes[None, :]
    eta = mu[:, None] + tau * b
    log_joint = (
        events[:, None] * log_expit(eta)
        + (n - events)[:, None] * log_expit(-eta)
        - b**2 / 2
        - 0.5 * np.log(2 * np.pi)
    )
    log_int = logsumexp(log_joint + nodes**2, b=weights, axis=1) + np.log(scale)
    log_choose = gammaln(n + 1) - gammaln(events + 1) - gammaln(n - events + 1)
    return float(np.sum(log_int + log_choose))


def _newton_polish(objective, theta, steps=20):
    """Newton steps with numerical derivatives after BFGS, which stops early on the flat ridge near tau = 0."""
    for _ in range(steps):
        hess = approx_hess3(theta, objective)
        if np.any(np.linalg.eigvalsh(hess) <= 0):
            break
        step = np.linalg.solve(hess, approx_fprime(theta, objective, centered=True))
        if objective(theta - step) > objective(theta):
            break
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta


def fit_glmm(events, n, X, nagq=7):
    """Maximum-likelihood fit with fixed effects X (intercept first): (beta, tau, covariance of beta).

    The likelihood is even in tau, so tau is optimised unconstrained and its absolute value kept; a fit
    that cannot beat tau = 0 is put on that boundary. The covariance of beta comes from the joint
    (beta, tau) information, as lme4's vcov does, or from beta's alone on the boundary.
    """
    events, n, X = (np.asarray(a, dtype=float) for a in (events, n, X))
    p = X.shape[1]

    def objective(theta):
        return -log_likelihood(X @ theta[:p], theta[p], events, n, nagq)

    y, _ = logit_effects(events, n)
    start = np.append(np.linalg.lstsq(X, y, rcond=None)[0], 0.5)
    fit = optimize.minimize(objective, start, method="BFGS", jac="3-point", options={"gtol": 1e-9})
    fit.x = _newton_polish(objective, fit.x)
    fit.fun = objective(fit.x)
    beta, tau = fit.x[:p], abs(fit.x[p])
    fixed = optimize.minimize(lambda b: objective(np.append(b, 0.0)), beta, method="BFGS", jac="3-point",
                              options={"gtol": 1e-10})
    if fixed.fun <= fit.fun + 1e-12:
        beta, tau = fixed.x, 0.0
        hess = approx_hess3(beta, lambda b: objective(np.append(b, 0.0)))
        return beta, tau, np.linalg.inv(hess)
    hess = approx_hess3(np.append(beta, tau), objective)
    return beta, tau, np.linalg.inv(hess)[:p, :p]


def likelihood_ratio_heterogeneity(events, n):
    """metafor's QE.LRT: deviance of the common-proportion model against the saturated one."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    p = events.sum() / n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_events = np.where(events > 0, events * np.log(events / (n * p)), 0.0)
        dev_rest = np.where(n - events > 0, (n - events) * np.log((n - events) / (n * (1 - p))), 0.0)
    q = max(0.0, float(2 * np.sum(dev_events + dev_rest)))  # no negative rounding noise for k = 1
    df = len(events) - 1
    return q, df, (float(stats.chi2.sf(q, df)) if df > 0 else np.nan)


def pool_glmm(events, n, nagq=7, level=0.95):
    """Maximum-likelihood random-intercept logistic model; same keys as pool_inverse_variance.

    Extra keys: `boundary` (tau^2 estimated at 0) and `note` (why a value is missing).
    One study: the fixed-effect logistic estimate, no tau^2. Every study with 0 events (or
    every study with all events): no finite estimate, which the note says.
    """
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    k = len(events)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    nan = float("nan")
    out = dict.fromkeys(
        ["estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high",
         "i2", "i2_ci_low", "i2_ci_high", "h2"],
        nan,
    )
    out.update(k=float(k), boundary=False, note="")
    out["q"], out["q_df"], out["q_p"] = likelihood_ratio_heterogeneity(events, n)

    if np.all(events == 0) or np.all(events == n):
        out["note"] = "no finite maximum-likelihood estimate: every study has " + (
            "0 events" if np.all(events == 0) else "all events"
        )
        return out
    if k == 1:
        # a lone study: fixed-effect logistic regression, i.e. its own log odds and Wald interval
        estimate = np.log(events[0] / (n[0] - events[0]))
        se = np.sqrt(1 / events[0] + 1 / (n[0] - events[0]))
        out.update(estimate=estimate, se=se, ci_low=estimate - z * se, ci_high=estimate + z * se,
                   note="one study: no between-study variance")
        return out

    beta, tau, cov = fit_glmm(events, n, np.ones((k, 1)), nagq)
    with np.errstate(invalid="ignore"):  # a diverging fit can leave a negative variance, caught below
        mu, se, tau2 = float(beta[0]), float(np.sqrt(cov[0, 0])), tau**2
    out["boundary"] = tau2 == 0.0
    if out["boundary"]:
        out["note"] = "tau^2 estimated at the boundary 0"
    if not np.isfinite(se) or tau2 > 100:
        # e.g. studies at 0 and at all events only: the likelihood keeps rising as tau grows
        out.update(note=f"no finite maximum-likelihood estimate: tau^2 diverges ({tau2:.3g} and rising)")
        return out
    _, v = logit_effects(events, n)
    s2 = float(typical_within_variance(v)[0])
    pi_low, pi_high = prediction_interval(mu, se, tau2, k, level)
    out.update(
        estimate=mu, se=se, ci_low=mu - z * se, ci_high=mu + z * se, pi_low=float(pi_low),
        pi_high=float(pi_high), tau2=tau2, i2=tau2 / (tau2 + s2), h2=(tau2 + s2) / s2,
    )
    return out


def glmm_regression(events, n, X, nagq=7, level=0.95):
    """GLMM with covariates X (intercept first), metafor's rma.glmm(measure="PLO", mods=): coefficients with
    Wald CIs, tau^2, and the Wald omnibus test QM of every coefficient but the intercept."""
    beta, tau, cov = fit_glmm(events, n, X, nagq)
    with np.errstate(invalid="ignore"):  # a diverging fit can leave a negative variance; the caller checks
        se = np.sqrt(np.diag(cov))
    z = stats.norm.ppf(1 - (1 - level) / 2)
    qm = float(beta[1:] @ np.linalg.solve(cov[1:, 1:], beta[1:]))
    m = len(beta) - 1
    return {"beta": beta, "se": se, "ci_low": beta - z * se, "ci_high": beta + z * se, "tau2": tau**2,
            "statistic": qm, "df": m, "df2": np.nan, "p": float(stats.chi2.sf(qm, m))}
