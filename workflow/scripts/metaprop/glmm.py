"""Random-intercept logistic model for proportions (metafor's rma.glmm(measure="PLO")).

events_i ~ Binomial(n_i, expit(mu + tau * b_i)), b_i ~ N(0, 1), fitted by maximum likelihood
with adaptive Gauss-Hermite quadrature over b_i (7 nodes, as metafor's call to lme4::glmer).
Written by hand because statsmodels has no maximum-likelihood binomial GLMM (its
BinomialBayesMixedGLM is variational Bayes).
"""

import numpy as np
from scipy import optimize, stats
from scipy.special import gammaln, log_expit, logsumexp
from statsmodels.tools.numdiff import approx_hess3

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
    """Marginal log-likelihood by adaptive Gauss-Hermite quadrature with `nagq` nodes."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    nodes, weights = np.polynomial.hermite.hermgauss(nagq)
    mode, curv = _conditional_modes(mu, tau, events, n)
    scale = np.sqrt(2 / curv)
    b = mode[:, None] + scale[:, None] * nodes[None, :]
    eta = mu + tau * b
    log_joint = (
        events[:, None] * log_expit(eta)
        + (n - events)[:, None] * log_expit(-eta)
        - b**2 / 2
        - 0.5 * np.log(2 * np.pi)
    )
    log_int = logsumexp(log_joint + nodes**2, b=weights, axis=1) + np.log(scale)
    log_choose = gammaln(n + 1) - gammaln(events + 1) - gammaln(n - events + 1)
    return float(np.sum(log_int + log_choose))


def _fit(events, n, nagq, tau_start):
    """Maximise over (mu, tau); the likelihood is even in tau, so tau is left unconstrained."""
    y, _ = logit_effects(events, n)

    def objective(theta):
        return -log_likelihood(theta[0], theta[1], events, n, nagq)

    start = np.array([np.mean(y), tau_start])
    fit = optimize.minimize(objective, start, method="BFGS", jac="3-point", options={"gtol": 1e-10})
    # Nelder-Mead from BFGS' point: BFGS may stop early on the flat ridge near tau = 0
    fit = optimize.minimize(
        objective, fit.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000}
    )
    return fit.x[0], abs(fit.x[1]), -fit.fun, objective


def likelihood_ratio_heterogeneity(events, n):
    """metafor's QE.LRT: deviance of the common-proportion model against the saturated one."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    p = events.sum() / n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_events = np.where(events > 0, events * np.log(events / (n * p)), 0.0)
        dev_rest = np.where(n - events > 0, (n - events) * np.log((n - events) / (n * (1 - p))), 0.0)
    q = float(2 * np.sum(dev_events + dev_rest))
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

    mu, tau, _, objective = _fit(events, n, nagq, tau_start=0.5)
    # profile at tau = 0 (the fixed-effect model); keep it when the fit cannot beat it
    mu0 = optimize.minimize_scalar(lambda m: objective([m, 0.0]), bracket=(mu - 1, mu + 1)).x
    if objective([mu0, 0.0]) <= objective([mu, tau]) + 1e-12:
        mu, tau = mu0, 0.0
    tau2 = tau**2
    out["boundary"] = tau2 == 0.0
    if out["boundary"]:
        hess = approx_hess3(np.array([mu]), lambda t: objective([t[0], 0.0]))
        se = float(np.sqrt(1 / hess[0, 0]))
        out["note"] = "tau^2 estimated at the boundary 0"
    else:
        # variance of mu from the joint (mu, tau) information, as lme4's vcov does
        hess = approx_hess3(np.array([mu, tau]), objective)
        se = float(np.sqrt(np.linalg.inv(hess)[0, 0]))
    _, v = logit_effects(events, n)
    s2 = float(typical_within_variance(v[None, :], np.ones((1, k), dtype=bool))[0])
    pi_low, pi_high = prediction_interval(mu, se, tau2, k, level)
    out.update(
        estimate=mu, se=se, ci_low=mu - z * se, ci_high=mu + z * se, pi_low=float(pi_low),
        pi_high=float(pi_high), tau2=tau2, i2=tau2 / (tau2 + s2), h2=(tau2 + s2) / s2,
    )
    return out
