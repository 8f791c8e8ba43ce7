"""Bayesian binomial-normal random-effects model for proportions (method `bayes`), by deterministic quadrature.

events_i ~ Binomial(n_i, expit(theta_i)), theta_i ~ N(mu, tau^2), mu ~ N(0, mu_sd^2), tau ~ half-normal or
half-Cauchy(tau_scale). Written by hand because no Python library fits it without MCMC (statsmodels'
BinomialBayesMixedGLM is variational); each study's likelihood integral over theta_i is the GLMM engine's
adaptive Gauss-Hermite quadrature (glmm._study_log_marginal, with exact derivatives in mu).

How the posterior is integrated, so that its error is bounded:
- over t = log tau: composite Gauss-Legendre panels over the range where the integrand
  prior(tau) tau p(y | tau) is within exp(-DEPTH) of its largest value (found on a coarse grid by Laplace's
  approximation, with a margin), so both tails (like e^t at tau -> 0, a power of tau for large tau) are cut where
  they carry less than ~1e-15 of the mass;
- over mu, for each tau node: the conditional posterior is log-concave (Prekopa), so its mode is found by a
  safeguarded Newton search and its support is cut where the log density has fallen by DEPTH; composite
  Gauss-Legendre panels cover it;
- CDFs at any point are exact integrals of each panel's Legendre interpolant (no resampling), so quantiles are
  roots of the quadrature CDF; tests show results stable to 1e-7 when panels and nodes double. Each study's
  integral needs many Gauss-Hermite nodes when all (or no) events make it one-sided: 61 nodes are within
  ~1e-8 of 161 there (21 nodes were off by 2e-5 in a tail quantile).
"""

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, logit

from .glmm import _study_log_marginal
from .pooling import generalised_q
from .proportions import logit_effects

DEPTH = 38.0  # log-density drop at which a tail is cut (exp(-38) ~ 3e-17)
TAU_PRIORS = ("half-normal", "half-cauchy")
_CELLS = 400_000  # (point x study x node) cells per likelihood call, which bounds memory


def tau_prior_logpdf(tau, family, scale):
    """Log density of the half-normal or half-Cauchy prior of tau (tau > 0)."""
    if family == "half-normal":
        return np.log(2.0) + stats.norm.logpdf(tau, scale=scale)
    if family == "half-cauchy":
        return np.log(2.0) + stats.cauchy.logpdf(tau, scale=scale)
    raise ValueError(f"unknown prior of tau '{family}' (one of {', '.join(TAU_PRIORS)})")


def tau_prior_quantile(p, family, scale):
    """Quantile of the prior of tau."""
    return scale * (stats.norm.ppf((1 + p) / 2) if family == "half-normal" else np.tan(np.pi * p / 2))


def describe_prior(mu_sd, family, scale):
    """'mu ~ N(0, 2^2), tau ~ half-normal(0.5)'."""
    return f"mu ~ N(0, {mu_sd:g}^2) on the logit scale, tau ~ {family}({scale:g})"


class _Legendre:
    """Gauss-Legendre rule of q nodes on [-1, 1], with the matrices that turn node values into the integral of
    their interpolating polynomial up to any point, and into its value at any point."""

    def __init__(self, q):
        self.x, self.w = np.polynomial.legendre.leggauss(q)
        k = np.arange(q)
        # coefficients of the interpolant in the Legendre basis: exact for degree < q by the rule's exactness
        self.to_coef = ((2 * k + 1) / 2)[:, None] * np.polynomial.legendre.legvander(self.x, q - 1).T * self.w

    def partial(self, s):
        """Rows that integrate node values from -1 to s (s: array): (..., q)."""
        q = len(self.x)
        P = np.polynomial.legendre.legvander(s, q)  # P_0..P_q at s
        A = np.empty(P.shape[:-1] + (q,))
        A[..., 0] = s + 1
        kk = np.arange(1, q)
        A[..., 1:] = (P[..., 2:] - P[..., :-2]) / (2 * kk + 1)
        return A @ self.to_coef

    def value(self, s):
        """Rows that interpolate node values at s: (..., q)."""
        return np.polynomial.legendre.legvander(s, len(self.x) - 1) @ self.to_coef


class Panels:
    """Densities on composite Gauss-Legendre panels, one row per component: [lo, hi] (J,) cut into P equal panels
    of q nodes; `dens` (J, P, q) at the nodes, each row integrating to one."""

    def __init__(self, lo, hi, panels, rule, dens=None):
        self.lo, self.hi, self.P, self.rule = np.asarray(lo, float), np.asarray(hi, float), panels, rule
        self.width = (self.hi - self.lo) / panels
        left = self.lo[:, None] + self.width[:, None] * np.arange(panels)
        self.nodes = left[..., None] + (self.width[:, None, None] / 2) * (rule.x + 1)
        self.weights = np.broadcast_to((self.width[:, None, None] / 2) * rule.w, self.nodes.shape)
        self.dens = dens

    def set_log_density(self, logf):
        """Normalise exp(logf) per row; returns each row's log integral."""
        top = logf.max(axis=(1, 2), keepdims=True)
        f = np.exp(logf - top)
        total = (f * self.weights).sum(axis=(1, 2))
        self.dens = f / total[:, None, None]
        return np.log(total) + top[:, 0, 0]

    def _locate(self, x):
        """Panel index and reference coordinate of points x (X,), or (X, J) one per row, in each row: (X, J) each."""
        x = np.asarray(x, float)
        pos = ((x[:, None] if x.ndim == 1 else x) - self.lo) / self.width
        p = np.clip(np.floor(pos), 0, self.P - 1).astype(int)
        return p, np.clip(2 * (pos - p) - 1, -1.0, 1.0), pos

    def cdf(self, x):
        """Each row's CDF at points x (X,), or (X, J) one per row: (X, J)."""
        x = np.asarray(x, float)
        x = x[None] if x.ndim == 0 else x
        panel_mass = (self.dens * self.weights).sum(axis=2)  # (J, P)
        before = np.concatenate([np.zeros((len(self.lo), 1)), np.cumsum(panel_mass, axis=1)], axis=1)
        out = np.empty((len(x), len(self.lo)))
        for start in range(0, len(x), 512):
            p, s, pos = self._locate(x[start:start + 512])
            rows = np.arange(len(self.lo))
            inside = np.einsum("xjq,xjq->xj", self.rule.partial(s), self.dens[rows, p]) * (self.width / 2)
            value = before[rows, p] + inside
            out[start:start + 512] = np.where(pos <= 0, 0.0, np.where(pos >= self.P, 1.0, value))
        return out

    def pdf(self, x):
        """Each row's density at points x (X,), or (X, J) one per row: (X, J)."""
        x = np.asarray(x, float)
        x = x[None] if x.ndim == 0 else x
        p, s, pos = self._locate(x)
        rows = np.arange(len(self.lo))
        value = np.einsum("xjq,xjq->xj", self.rule.value(s), self.dens[rows, p])
        return np.where((pos < 0) | (pos > self.P), 0.0, value)


def _log_lik_derivatives(mu, tau, events, n, nagq):
    """sum_i log L_i(mu, tau) and its first two derivatives in mu, for points mu, tau of one shape."""
    mu, tau = np.broadcast_arrays(np.asarray(mu, float), np.asarray(tau, float))
    flat_mu, flat_tau = mu.ravel(), tau.ravel()
    out = np.empty((3, flat_mu.size))
    step = max(1, _CELLS // (len(events) * nagq))
    for start in range(0, flat_mu.size, step):
        part = slice(start, start + step)
        jet, _ = _study_log_marginal(flat_mu[part, None], flat_tau[part, None], events, n, nagq)
        out[:, part] = jet.v.sum(axis=1), jet.e.sum(axis=1), jet.ee.sum(axis=1)
    return [a.reshape(mu.shape) for a in out]


def _log_conditional(mu, tau, events, n, mu_sd, nagq):
    """log N(mu; 0, mu_sd^2) + sum_i log L_i(mu, tau), with its first two derivatives in mu."""
    v, d1, d2 = _log_lik_derivatives(mu, tau, events, n, nagq)
    return (v + stats.norm.logpdf(mu, scale=mu_sd), d1 - mu / mu_sd**2, d2 - 1 / mu_sd**2)


def _conditional_modes(tau, events, n, mu_sd, nagq):
    """Mode of the (log-concave) conditional posterior of mu for each tau, by Newton steps halved until they
    rise; returns mode, log density there and its curvature."""
    mu = np.full(tau.shape, logit((events.sum() + 0.5) / (n.sum() + 1.0)))
    h, g, c = _log_conditional(mu, tau, events, n, mu_sd, nagq)
    active = np.ones(tau.shape, dtype=bool)
    for _ in range(200):
        i = np.flatnonzero(active)
        step = -g[i] / c[i]
        for _ in range(60):
            h_new, g_new, c_new = _log_conditional(mu[i] + step, tau[i], events, n, mu_sd, nagq)
            worse = ~(h_new >= h[i] - 1e-12 * np.abs(h[i]))
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        mu[i], h[i], g[i], c[i] = mu[i] + step, h_new, g_new, c_new
        active[i] = np.abs(step) > 1e-10 * (1 + np.abs(mu[i]))
        if not active.any():
            return mu, h, c
    raise RuntimeError("bayes: the conditional mode of mu did not converge")


def _cut(mode, h_mode, curvature, direction, tau, events, n, mu_sd, nagq):
    """Distance from the mode where the conditional log density has fallen by DEPTH (or a little further)."""
    d = np.sqrt(2 * DEPTH / -curvature)
    short = np.ones(tau.shape, dtype=bool)
    for _ in range(200):
        i = np.flatnonzero(short)
        h, _, _ = _log_conditional(mode[i] + direction * d[i], tau[i], events, n, mu_sd, nagq)
        short[i] = h > h_mode[i] - DEPTH
        if not short.any():
            return d
        d = np.where(short, d * 1.25, d)
    raise RuntimeError("bayes: the conditional posterior of mu has no finite tail cut")


class Posterior:
    """The joint posterior of (mu, tau) on quadrature nodes, with exact-quadrature marginals.

    `tau_panels`: the marginal posterior of t = log tau; `mu`: the conditional posterior of mu given each tau node,
    weighted by `tau_weights` (posterior mass of each tau node) for the marginal of mu.
    """

    def __init__(self, events, n, mu_sd=2.0, tau_prior="half-normal", tau_scale=0.5, nagq=61, q=16, tau_width=1.0,
                 mu_panels=8, tau_min_panels=8):
        self.events, self.n = np.asarray(events, float), np.asarray(n, float)
        self.mu_sd, self.family, self.scale, self.nagq = float(mu_sd), tau_prior, float(tau_scale), nagq
        tau_prior_logpdf(1.0, tau_prior, tau_scale)  # an unknown family stops here
        rule = _Legendre(q)
        self.c = self.scale / 10  # tau = c sinh(s): linear near tau = 0 (no tail to cut there), logarithmic far out
        s_lo, s_hi = self._tau_range()
        n_tau = max(tau_min_panels, int(np.ceil((s_hi - s_lo) / tau_width)))
        self.tau_panels = Panels([s_lo], [s_hi], n_tau, rule)
        s = self.tau_panels.nodes.ravel()
        tau = self.c * np.sinh(s)
        mode, h_mode, curv = _conditional_modes(tau, self.events, self.n, self.mu_sd, nagq)
        left = _cut(mode, h_mode, curv, -1.0, tau, self.events, self.n, self.mu_sd, nagq)
        right = _cut(mode, h_mode, curv, 1.0, tau, self.events, self.n, self.mu_sd, nagq)
        self.mu = Panels(mode - left, mode + right, mu_panels, rule)
        logf, _, _ = _log_conditional(self.mu.nodes, tau[:, None, None], self.events, self.n, self.mu_sd, nagq)
        log_z = self.mu.set_log_density(logf)
        log_g = tau_prior_logpdf(tau, tau_prior, tau_scale) + np.log(self.c * np.cosh(s)) + log_z
        log_mass = self.tau_panels.set_log_density(log_g.reshape(1, n_tau, q))
        self.log_marginal_likelihood = float(log_mass[0])
        self.tau_weights = (self.tau_panels.dens * self.tau_panels.weights).ravel()
        self.tau = tau

    def _tau_range(self):
        """Range of s = asinh(tau / c) carrying the posterior: Laplace's approximation on a coarse grid, with a
        margin (from s = 0 when the posterior is not negligible at tau = 0)."""
        s_max = np.arcsinh(tau_prior_quantile(1 - 1e-15, self.family, self.scale) / self.c)
        grid = np.arange(0.0, s_max + 0.25, 0.125)
        grid[0] = 1e-6
        tau = self.c * np.sinh(grid)
        _, h, curv = _conditional_modes(tau, self.events, self.n, self.mu_sd, min(self.nagq, 9))
        log_g = (tau_prior_logpdf(tau, self.family, self.scale) + np.log(np.cosh(grid)) + h
                 + 0.5 * np.log(-2 * np.pi / curv))
        keep = np.flatnonzero(log_g > log_g.max() - DEPTH - 6)
        lo = 0.0 if keep[0] <= 2 else grid[keep[0] - 2]
        return lo, grid[min(keep[-1] + 2, len(grid) - 1)]

    # -- marginals ------------------------------------------------------------------------------------------
    def mu_cdf(self, x):
        """Posterior CDF of mu at points x."""
        return self.mu.cdf(x) @ self.tau_weights

    def mu_pdf(self, x):
        """Posterior density of mu at points x."""
        return self.mu.pdf(x) @ self.tau_weights

    def mu_quantile(self, p):
        return _root(lambda x: self.mu_cdf([x])[0] - p, self.mu.lo.min(), self.mu.hi.max())

    def tau_cdf(self, tau):
        return self.tau_panels.cdf(np.arcsinh(np.atleast_1d(tau) / self.c))[:, 0]

    def tau_quantile(self, p):
        lo, hi = self.tau_panels.lo[0], self.tau_panels.hi[0]
        return float(self.c * np.sinh(_root(lambda t: self.tau_panels.cdf([t])[0, 0] - p, lo, hi)))

    def predictive_cdf(self, x):
        """Posterior predictive CDF of a new trial's logit rate theta_new = mu + tau z at points x (X,)."""
        x = np.atleast_1d(np.asarray(x, float))
        wide = self.tau > self.mu.width  # Phi((x - mu) / tau) smooth on the mu panels: integrate over mu nodes
        out = np.zeros(len(x))
        if wide.any():
            z = (x[:, None, None, None] - self.mu.nodes[wide]) / self.tau[wide][:, None, None]
            inner = (stats.norm.cdf(z) * (self.mu.dens * self.mu.weights)[wide]).sum(axis=(2, 3))
            out += inner @ self.tau_weights[wide]
        if (~wide).any():  # else E_z F(x - tau z | tau): F smooth on the scale of tau, z by Gauss-Legendre panels
            rows = np.flatnonzero(~wide)
            sub = Panels(self.mu.lo[rows], self.mu.hi[rows], self.mu.P, self.mu.rule, self.mu.dens[rows])
            zr = _z_rule()
            for i, xi in enumerate(x):
                points = xi - self.tau[rows][None, :] * zr[0][:, None]  # (Z, R)
                cdf = sub.cdf(points)
                out[i] += (zr[1] @ cdf) @ self.tau_weights[rows]
        return out

    def predictive_quantile(self, p):
        lo = self.mu.lo.min() - 12 * self.tau.max()
        hi = self.mu.hi.max() + 12 * self.tau.max()
        lo, hi = max(lo, self.mu.lo.min() - 200), min(hi, self.mu.hi.max() + 200)
        return _root(lambda x: self.predictive_cdf([x])[0] - p, lo, hi)

    def summary(self, level=0.95):
        """Posterior summaries of one pooled row (rates and tau^2)."""
        a = (1 - level) / 2
        mu = [self.mu_quantile(p) for p in (0.5, a, 1 - a)]
        tau = [self.tau_quantile(p) for p in (0.5, a, 1 - a)]
        new = [self.predictive_quantile(p) for p in (a, 1 - a)]
        mean = float(self.mu_cdf_moments())
        return {"estimate": float(expit(mu[0])), "ci_low": float(expit(mu[1])), "ci_high": float(expit(mu[2])),
                "pi_low": float(expit(new[0])), "pi_high": float(expit(new[1])),
                "tau2": tau[0] ** 2, "tau2_ci_low": tau[1] ** 2, "tau2_ci_high": tau[2] ** 2,
                "mu_median": mu[0], "mu_mean": mean, "mu_sd": self.mu_sd_posterior()}

    def mu_cdf_moments(self):
        """Posterior mean of mu."""
        return float(((self.mu.dens * self.mu.weights * self.mu.nodes).sum(axis=(1, 2))) @ self.tau_weights)

    def mu_sd_posterior(self):
        m = self.mu_cdf_moments()
        second = ((self.mu.dens * self.mu.weights * self.mu.nodes**2).sum(axis=(1, 2))) @ self.tau_weights
        return float(np.sqrt(max(second - m * m, 0.0)))


def _z_rule(panels=8, q=16):
    """Gauss-Legendre panels over z in [-9, 9] with the standard normal density folded into the weights."""
    rule = _Legendre(q)
    p = Panels([-9.0], [9.0], panels, rule)
    z, w = p.nodes.ravel(), p.weights.ravel() * stats.norm.pdf(p.nodes.ravel())
    return z, w / w.sum()


def _root(f, lo, hi):
    """Root of an increasing function in [lo, hi] (Brent), to machine precision."""
    return float(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=500))


class RatePosterior:
    """The marginal posterior of a pooled rate expit(mu) on one global grid of the mu scale, for differences."""

    def __init__(self, post, panels=32, q=16):
        self.post = post
        lo = post.mu_quantile(1e-13) if post.mu_cdf([post.mu.lo.min()])[0] < 1e-13 else post.mu.lo.min()
        hi = post.mu_quantile(1 - 1e-13) if post.mu_cdf([post.mu.hi.max()])[0] > 1 - 1e-13 else post.mu.hi.max()
        self.grid = Panels([lo], [hi], panels, _Legendre(q))
        self.x = self.grid.nodes.ravel()
        self.w = self.grid.weights.ravel() * post.mu_pdf(self.x)
        self.w /= self.w.sum()
        self.rate = expit(self.x)
        self.spread = float(np.sqrt(self.w @ self.rate**2 - (self.w @ self.rate) ** 2))

    def rate_cdf(self, r):
        """P(expit(mu) <= r) for r in [0, 1] (exact marginal CDF)."""
        r = np.asarray(r, float)
        out = np.where(r >= 1, 1.0, 0.0)
        inside = (r > 0) & (r < 1)
        if inside.any():
            out[inside] = self.post.mu_cdf(logit(r[inside]))
        return out


def prob_difference_greater(a, b, delta):
    """P(rate_a - rate_b > delta) for independent posteriors a, b (RatePosterior), integrating over the narrower
    one's grid with the other's exact CDF."""
    if a.spread <= b.spread:
        return float(a.w @ b.rate_cdf(a.rate - delta))
    return float(b.w @ (1.0 - a.rate_cdf(b.rate + delta)))


def difference_quantile(a, b, p):
    """Quantile of rate_a - rate_b."""
    return _root(lambda d: (1 - prob_difference_greater(a, b, d)) - p, -1.0, 1.0)


def difference_summary(a, b, deltas, level=0.95):
    """Median and central credible interval of rate_a - rate_b, and P(difference > delta) for each delta."""
    q = (1 - level) / 2
    return {"median": difference_quantile(a, b, 0.5), "ci_low": difference_quantile(a, b, q),
            "ci_high": difference_quantile(a, b, 1 - q),
            "prob": {float(d): prob_difference_greater(a, b, d) for d in deltas}}


def bayes_note(events, n, mu_sd, family, scale):
    """Why the reader should look twice at a Bayesian pooled row (k = 1, all or no events)."""
    notes = []
    if len(events) == 1:
        notes.append(f"one study: the between-trial SD is known only through its prior ({family}({scale:g})), and "
                     "the credible and predictive intervals carry that uncertainty")
    if np.all(events == 0):
        notes.append(f"every study has 0 events: the posterior is proper, its lower tail set by the prior on mu "
                     f"(N(0, {mu_sd:g}^2))")
    elif np.all(events == n):
        notes.append(f"every study has all events: the posterior is proper, its upper tail set by the prior on mu "
                     f"(N(0, {mu_sd:g}^2))")
    return "; ".join(notes)


DEFAULTS = {"mu_sd": 2.0, "tau_prior": "half-normal", "tau_scale": 0.5, "deltas": [0.0, 0.1, 0.2],
            "sensitivity_priors": [{"tau_prior": "half-normal", "tau_scale": 0.25},
                                   {"tau_prior": "half-normal", "tau_scale": 0.5},
                                   {"tau_prior": "half-normal", "tau_scale": 1.0},
                                   {"tau_prior": "half-cauchy", "tau_scale": 1.0}]}


def settings_of(config_bayes=None):
    """The `bayes` block of config.yaml with its defaults filled in."""
    return {**DEFAULTS, **(config_bayes or {})}


def fit(events, n, settings=None, tau_prior=None, tau_scale=None):
    """The posterior of one set of studies under the configured priors (or another prior of tau)."""
    s = settings_of(settings)
    return Posterior(events, n, s["mu_sd"], tau_prior or s["tau_prior"], tau_scale or s["tau_scale"])


def pool_bayes(events, n, settings=None, level=0.95, post=None):
    """A pooled row on the logit scale (as pool_inverse_variance's keys; analysis._finish back-transforms it):
    posterior median of mu, central credible interval, predictive interval of a new trial, tau^2 median and
    interval; Cochran's Q on the logit effects as a description; I^2 is not defined here."""
    events, n = np.asarray(events, float), np.asarray(n, float)
    s = settings_of(settings)
    post = post or fit(events, n, s)
    summ = post.summary(level)
    y, v = logit_effects(events, n)
    q = float(generalised_q(y, v, 0.0)) if len(events) > 1 else 0.0
    q_p = float(stats.chi2.sf(q, len(events) - 1)) if len(events) > 1 else np.nan
    nan = float("nan")
    return {"k": len(events), "estimate": summ["mu_median"], "se": summ["mu_sd"],
            "ci_low": float(logit(summ["ci_low"])), "ci_high": float(logit(summ["ci_high"])),
            "pi_low": float(logit(summ["pi_low"])), "pi_high": float(logit(summ["pi_high"])),
            "tau2": summ["tau2"], "tau2_ci_low": summ["tau2_ci_low"], "tau2_ci_high": summ["tau2_ci_high"],
            "i2": nan, "i2_ci_low": nan, "i2_ci_high": nan, "h2": nan, "q": q, "q_df": len(events) - 1, "q_p": q_p,
            "note": "; ".join(x for x in (describe_prior(s["mu_sd"], s["tau_prior"], s["tau_scale"]),
                                          bayes_note(events, n, s["mu_sd"], s["tau_prior"], s["tau_scale"])) if x)}


def prob_column(delta):
    """Column of P(difference > delta): 'prob_gt_0.1' (delta as a fraction, as in config)."""
    return f"prob_gt_{float(delta):g}"


def difference_rows(posteriors, deltas, level=0.95):
    """One row per ordered pair (a, b) of groups: rate_a - rate_b, its posterior median and central credible
    interval, and P(rate_a - rate_b > delta) for each delta. `posteriors`: {group: Posterior}."""
    rates = {g: RatePosterior(p) for g, p in posteriors.items()}
    rows = []
    for a, rate_a in rates.items():
        for b, rate_b in rates.items():
            if a == b:
                continue
            summ = difference_summary(rate_a, rate_b, deltas, level)
            rows.append({"contrast": f"{a} minus {b}", "diff_median": summ["median"], "diff_ci_low": summ["ci_low"],
                         "diff_ci_high": summ["ci_high"],
                         **{prob_column(d): p for d, p in summ["prob"].items()}})
    return rows, rates
