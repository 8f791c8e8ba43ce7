"""Bayesian binomial-normal random-effects model for proportions (method `bayes`), by deterministic quadrature.

events_i ~ Binomial(n_i, expit(theta_i)), theta_i ~ N(mu, tau^2), mu ~ N(0, mu_sd^2), tau ~ half-normal or
half-Cauchy(tau_scale). Written by hand because no Python library fits it without MCMC (statsmodels'
BinomialBayesMixedGLM is variational); each study's likelihood integral over theta_i is the GLMM engine's
adaptive Gauss-Hermite quadrature (the value of glmm._study_log_marginal, computed here without its derivative
jets; the Newton search for the mode in mu uses the quadrature's exact first and second derivatives in mu).

How the posterior is integrated, so that its error is bounded:
- over t = log tau: composite Gauss-Legendre panels over the range where the integrand
  prior(tau) tau p(y | tau) is within exp(-DEPTH) of its largest value (found on a coarse grid by Laplace's
  approximation, with a margin), so both tails (like e^t at tau -> 0, a power of tau for large tau) are cut where
  they carry less than ~1e-15 of the mass;
- over mu, for each tau node: the conditional posterior is log-concave (Prekopa), so its mode is found by a
  safeguarded Newton search and its support is cut where the log density has fallen by DEPTH; composite
  Gauss-Legendre panels cover it. The log-likelihood of the studies with events and non-events is analytic in mu:
  at each tau node it is evaluated at Chebyshev points of the mu range and interpolated to the panel nodes when
  its Chebyshev coefficients have fallen to rounding noise (else evaluated at every node); studies with all or
  no events are evaluated at every node (their quadrature error is not smooth in mu). Tests show both ways agree
  to 1e-12;
- CDFs at any point are exact integrals of each panel's Legendre interpolant (no resampling), so quantiles are
  roots of the quadrature CDF, found by Newton steps kept inside a bracket; tests show results stable to 1e-7
  when panels and nodes double. Each study's integral needs many Gauss-Hermite nodes when all (or no) events
  make it one-sided: 61 nodes are within ~1e-8 of 161 there (21 nodes were off by 2e-5 in a tail quantile);
- differences of two pooled rates integrate one posterior's grid against the other's CDF, read from a piecewise
  Chebyshev interpolant of its exact CDF (panels split until the error is below ~3e-13);
- from LARGE_K studies the likelihood costs k studies at every node, so the sum over studies is interpolated once
  over (mu, tau) on a box found to hold the posterior (_posterior_box), checked against the exact sum off its nodes
  to 1e-9, and the integration above runs on the interpolant; if the check fails or the integration leaves the box,
  every node is evaluated exactly (the surrogate of glmm.leave_one_out_glmm, for the posterior). Tests hold the two
  paths to 1e-8 on quantiles, means and probabilities.
"""

import numpy as np
from scipy.special import chdtrc, expit, gammaln, logit, ndtr, ndtri

from metaprop.spec import comparison_pairs, describe_prior, prob_column, settings_of
from metaprop.stats.glmm import _bracketed_newton, conditional_modes
from metaprop.stats.pooling import generalised_q, tau2_dl
from metaprop.stats.proportions import logit_effects

DEPTH = 38.0  # log-density drop at which a tail is cut (exp(-38) ~ 3e-17)
TAU_PRIORS = ("half-normal", "half-cauchy")
_CELLS = 65_536  # (point x study x node) cells per likelihood call, which bounds memory
_LOG_SQRT_2PI = np.log(np.sqrt(2 * np.pi))
_CHEB = (16, 32, 64)  # Chebyshev degrees tried for the log-likelihood along mu at each tau node, then every node exactly
_CHEB_TOL = 64 * np.finfo(float).eps  # tail coefficients below this (times the values' size) are rounding noise
_CDF_TOL = 1e-14  # the interpolated marginal CDF of mu: largest tail coefficient allowed (absolute; errors <~ 3e-13)
WIDEN = (1.5, 3.0)  # the interpolant's box: conditional tails of mu times these (and s range x 1, 2), in turn
LARGE_K = 200  # from this many studies the likelihood sum is interpolated over (mu, tau) (see _SurrogateLikelihood)
_SURROGATE_TOL = 1e-9  # largest error of the interpolated log-likelihood sum allowed at the check points, absolute
_SURROGATE_TAIL = 1e-10  # last Chebyshev coefficients along an axis below this: that axis's degree suffices
_SURROGATE_DEGREES = (12, 24, 48)  # degrees tried along mu and along s (nested Chebyshev points), then the exact path
_SURROGATE_MAX_NODES = 1300  # beyond this the grid costs over a sixth of the exact path (~7,000 point sums): that runs
_SURROGATE_CHECK = np.array([-0.83, -0.31, 0.17, 0.71])  # off-node check points per axis (reference coordinates)


def _norm_logpdf(x, scale=1.0):
    """log N(x; 0, scale^2) (scipy.stats.norm.logpdf's formula, without importing scipy.stats: ~1 s a process)."""
    return -(x / scale) ** 2 / 2.0 - _LOG_SQRT_2PI - np.log(scale)


def tau_prior_logpdf(tau, family, scale):
    """Log density of the half-normal or half-Cauchy prior of tau (tau > 0)."""
    if family == "half-normal":
        return np.log(2.0) + _norm_logpdf(tau, scale)
    if family == "half-cauchy":
        z = np.asarray(tau, float) / scale
        return np.log(2.0) - np.log(np.pi) - np.log1p(z * z) - np.log(scale)
    raise ValueError(f"unknown prior of tau '{family}' (one of {', '.join(TAU_PRIORS)})")


def tau_prior_quantile(p, family, scale):
    """Quantile of the prior of tau."""
    return scale * (ndtri((1 + p) / 2) if family == "half-normal" else np.tan(np.pi * p / 2))


class _Legendre:
    """Gauss-Legendre rule of q nodes on [-1, 1], with the matrix that turns node values into the Legendre
    coefficients of their interpolating polynomial."""

    def __init__(self, q):
        self.x, self.w = np.polynomial.legendre.leggauss(q)
        k = np.arange(q)
        # coefficients of the interpolant in the Legendre basis: exact for degree < q by the rule's exactness
        self.to_coef = ((2 * k + 1) / 2)[:, None] * np.polynomial.legendre.legvander(self.x, q - 1).T * self.w


class Panels:
    """Densities on composite Gauss-Legendre panels, one row per component: [lo, hi] (J,) cut into P equal panels
    of q nodes; `dens` (J, P, q) at the nodes, each row integrating to one."""

    def __init__(self, lo, hi, panels, rule, dens=None):
        self.lo, self.hi, self.P, self.rule = np.asarray(lo, float), np.asarray(hi, float), panels, rule
        self.width = (self.hi - self.lo) / panels
        left = self.lo[:, None] + self.width[:, None] * np.arange(panels)
        self.nodes = left[..., None] + (self.width[:, None, None] / 2) * (rule.x + 1)
        self.weights = np.broadcast_to((self.width[:, None, None] / 2) * rule.w, self.nodes.shape)
        self.dens = None
        if dens is not None:
            self._set(dens)

    def _set(self, dens):
        """Each panel's interpolant of `dens` and its integral from the row's start, as Chebyshev series in the
        panel's reference coordinate (flat over row and panel, coefficient first: (q or q + 1, J * P))."""
        self.dens = dens
        rule, q = self.rule, len(self.rule.x)
        legendre = dens @ rule.to_coef.T  # (J, P, q) Legendre coefficients of each panel's interpolant
        # int_{-1}^s P_0 = P_1 + P_0, int_{-1}^s P_k = (P_{k+1} - P_{k-1}) / (2k + 1)
        integral = np.zeros(legendre.shape[:-1] + (q + 1,))
        integral[..., 0] += legendre[..., 0]
        integral[..., 1] += legendre[..., 0]
        k = np.arange(1, q)
        integral[..., 2:] += legendre[..., 1:] / (2 * k + 1)
        integral[..., :q - 1] -= legendre[..., 1:] / (2 * k + 1)
        integral *= (self.width / 2)[:, None, None]
        panel_mass = (dens * self.weights).sum(axis=2)
        before = np.concatenate([np.zeros((len(self.lo), 1)), np.cumsum(panel_mass, axis=1)], axis=1)
        integral[..., 0] += before[:, :-1]
        J, P = dens.shape[:2]
        self._pdf_coef = (legendre @ _leg2cheb(q - 1)).reshape(J * P, q).T.copy()
        self._cdf_coef = (integral @ _leg2cheb(q)).reshape(J * P, q + 1).T.copy()
        self.before = before

    def set_log_density(self, logf):
        """Normalise exp(logf) per row; returns each row's log integral."""
        top = logf.max(axis=(1, 2), keepdims=True)
        f = np.exp(logf - top)
        total = (f * self.weights).sum(axis=(1, 2))
        self._set(f / total[:, None, None])
        return np.log(total) + top[:, 0, 0]

    def _locate(self, x):
        """Flat (row, panel) index, reference coordinate and position in panels of points x (X,), or (X, J) one
        per row, in each row: (X, J) each."""
        x = np.asarray(x, float)
        pos = ((x[:, None] if x.ndim == 1 else x) - self.lo) / self.width
        p = np.clip(np.floor(pos), 0, self.P - 1).astype(int)
        return np.arange(len(self.lo)) * self.P + p, np.clip(2 * (pos - p) - 1, -1.0, 1.0), pos

    def cdf_pdf(self, x, pdf=True):
        """Each row's CDF and density at points x (X,), or (X, J) one per row: (X, J) each (the density None when
        not asked for)."""
        x = np.asarray(x, float)
        x = x[None] if x.ndim == 0 else x
        idx, s, pos = self._locate(x)
        cdf = np.where(pos <= 0, 0.0, np.where(pos >= self.P, 1.0, _clenshaw(self._cdf_coef, idx, s)))
        if not pdf:
            return cdf, None
        return cdf, np.where((pos < 0) | (pos > self.P), 0.0, _clenshaw(self._pdf_coef, idx, s))

    def cdf(self, x):
        """Each row's CDF at points x (X,), or (X, J) one per row: (X, J)."""
        return self.cdf_pdf(x, pdf=False)[0]

    def pdf(self, x):
        """Each row's density at points x (X,), or (X, J) one per row: (X, J)."""
        x = np.asarray(x, float)
        x = x[None] if x.ndim == 0 else x
        idx, s, pos = self._locate(x)
        return np.where((pos < 0) | (pos > self.P), 0.0, _clenshaw(self._pdf_coef, idx, s))


_LEG2CHEB = {}


def _leg2cheb(degree):
    """Matrix taking Legendre coefficients (last axis, degree + 1) to Chebyshev ones."""
    if degree not in _LEG2CHEB:
        # each Legendre polynomial sampled at Chebyshev points, then their Chebyshev coefficients (no power basis)
        values = np.polynomial.legendre.legvander(_cheb_points(degree), degree).T
        _LEG2CHEB[degree] = _cheb_coefficients(values)
    return _LEG2CHEB[degree]


def _clenshaw(coef, idx, s):
    """sum_k coef[k, idx] T_k(s) (Clenshaw's recurrence), coef (K, N) gathered at flat indices idx, s of idx's shape."""
    b1 = np.zeros(s.shape)
    b2 = np.zeros(s.shape)
    two_s = 2 * s
    for k in range(coef.shape[0] - 1, 0, -1):
        b1, b2 = coef[k][idx] + two_s * b1 - b2, b1
    return coef[0][idx] + s * b1 - b2


class _Likelihood:
    """sum_i log L_i(mu, tau) of a set of studies, each L_i by the GLMM engine's adaptive Gauss-Hermite quadrature
    (the value of glmm._study_log_marginal, without its derivative jets: ~10 times cheaper), vectorised over points."""

    def __init__(self, events, n, nagq, weights=None):
        if weights is None and len(events) >= LARGE_K:
            # many studies of few distinct (events, n) (e.g. single-patient trials: two): each pair once, weighted
            pairs, counts = np.unique(np.stack([events, n], axis=1), axis=0, return_counts=True)
            if len(pairs) * 4 <= len(events):
                events, n, weights = pairs[:, 0].copy(), pairs[:, 1].copy(), counts.astype(float)
        self.events, self.n, self.nagq, self.weights = events, n, nagq, weights
        self.x, self.w = np.polynomial.hermite.hermgauss(nagq)
        self.x2 = self.x**2
        self.const = gammaln(n + 1) - gammaln(events + 1) - gammaln(n - events + 1) - 0.5 * np.log(2 * np.pi)

    def __call__(self, mu, tau, derivatives=False):
        """Sum over studies at points mu, tau (broadcast); with `derivatives`, also its first two derivatives in mu
        (the quadrature of the exact derivatives: E and Var of the binomial score under each theta_i's posterior)."""
        mu, tau = np.broadcast_arrays(np.asarray(mu, float), np.asarray(tau, float))
        flat_mu, flat_tau = mu.ravel(), tau.ravel()
        out = np.empty((3 if derivatives else 1, flat_mu.size))
        step = max(1, _CELLS // (len(self.events) * self.nagq))
        for start in range(0, flat_mu.size, step):
            part = slice(start, start + step)
            out[:, part] = self._block(flat_mu[part, None], flat_tau[part, None], derivatives)
        return [a.reshape(mu.shape) for a in out] if derivatives else out[0].reshape(mu.shape)

    def _block(self, eta, tau, derivatives):
        y, n, x = self.events, self.n, self.x
        b = conditional_modes(eta, tau, y, n)
        for _ in range(2):  # as glmm._study_log_marginal: two Newton steps from the mode
            t = eta + tau * b
            p, q = expit(t), expit(-t)
            score = tau * (y * q - (n - y) * p) - b
            slope = tau * tau * (-n * p * q) - 1.0
            b = b - score * (1 / slope)
        t = eta + tau * b
        p, q = expit(t), expit(-t)
        d2 = -n * p * q
        curvature = 1.0 - tau * tau * d2
        scale = np.sqrt(2.0 / curvature)
        theta = (tau * scale)[..., None] * x
        theta += t[..., None]
        # log Binomial without its coefficient, y log expit(theta) + (n - y) log expit(-theta), as
        # y min(theta, 0) - (n - y) max(theta, 0) - n log1p(exp(-|theta|)): one log1p per cell, nothing cancels
        soft = np.abs(theta)
        np.negative(soft, out=soft)
        np.exp(soft, out=soft)
        np.log1p(soft, out=soft)
        log_joint = np.where(theta < 0, y[:, None], -(n - y)[:, None])
        log_joint *= theta
        log_joint -= n[:, None] * soft
        # - (b + scale x)^2 / 2 + x^2, the Gaussian term and Gauss-Hermite's weight function, as a quadratic in x
        quad = (1.0 - 0.5 * scale * scale)[..., None] * self.x2
        quad -= (b * scale)[..., None] * x
        quad -= (0.5 * b * b)[..., None]
        log_joint += quad
        top = log_joint.max(axis=-1, keepdims=True)
        log_joint -= top
        share = np.exp(log_joint, out=log_joint)
        share *= self.w
        total = share.sum(axis=-1)
        value = (top[..., 0] + np.log(total) + np.log(scale)) + self.const
        value = value.sum(axis=-1) if self.weights is None else value @ self.weights
        if not derivatives:
            return value[None]
        share /= total[..., None]
        prob = np.exp(-np.maximum(-theta, 0.0) - soft)  # expit(theta)
        score = y[:, None] - n[:, None] * prob
        # the exact first two derivatives of the quadrature value in mu (the mode b and the scale move with mu, as
        # glmm's jets carry them), so that Newton stops at the quadrature's own maximum, with its curvature there
        d3, d4 = d2 * (q - p), d2 * (1 - 6 * p * q)
        slope = tau * tau * d2 - 1.0
        db = -tau * d2 / slope
        dt = 1.0 + tau * db
        ddb = tau * d3 * dt / slope**2
        ddt = tau * ddb
        dcurv, ddcurv = -tau * tau * d3 * dt, -tau * tau * (d4 * dt * dt + d3 * ddt)
        dscale = -0.5 * scale * dcurv / curvature
        ddscale = -0.5 * (dscale * dcurv / curvature + scale * (ddcurv * curvature - dcurv**2) / curvature**2)
        xs = x * tau[..., None]
        dtheta = dt[..., None] + dscale[..., None] * xs
        ddtheta = ddt[..., None] + ddscale[..., None] * xs
        centre, dcentre = b[..., None] + scale[..., None] * x, db[..., None] + dscale[..., None] * x
        dlog_joint = score * dtheta - centre * dcentre
        ddlog_joint = (-n[:, None] * prob * (1 - prob) * dtheta**2 + score * ddtheta - dcentre**2
                       - centre * (ddb[..., None] + ddscale[..., None] * x))
        d1 = (share * dlog_joint).sum(axis=-1)
        d2_sum = ((share * ((dlog_joint - d1[..., None]) ** 2 + ddlog_joint)).sum(axis=-1)
                  + (ddscale * scale - dscale**2) / scale**2)
        if self.weights is not None:
            return value, (d1 + dscale / scale) @ self.weights, d2_sum @ self.weights
        return value, (d1 + dscale / scale).sum(axis=-1), d2_sum.sum(axis=-1)


def _log_conditional(mu, tau, lik, mu_sd):
    """log N(mu; 0, mu_sd^2) + sum_i log L_i(mu, tau), with its first two derivatives in mu."""
    v, d1, d2 = lik(mu, tau, derivatives=True)
    return (v + _norm_logpdf(mu, mu_sd), d1 - mu / mu_sd**2, d2 - 1 / mu_sd**2)


def _conditional_modes(tau, lik, mu_sd, start):
    """Mode of the (log-concave) conditional posterior of mu for each tau, by Newton steps halved until they
    rise; returns mode, log density there and its curvature."""
    mu = np.full(tau.shape, start) if np.ndim(start) == 0 else np.array(start, float)
    h, g, c = _log_conditional(mu, tau, lik, mu_sd)
    active = np.ones(tau.shape, dtype=bool)
    for _ in range(200):
        i = np.flatnonzero(active)
        step = -g[i] / c[i]
        for _ in range(60):
            h_new, g_new, c_new = _log_conditional(mu[i] + step, tau[i], lik, mu_sd)
            worse = ~(h_new >= h[i] - 1e-12 * np.abs(h[i]))
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        mu[i], h[i], g[i], c[i] = mu[i] + step, h_new, g_new, c_new
        active[i] = np.abs(step) > 1e-10 * (1 + np.abs(mu[i]))
        if not active.any():
            return mu, h, c
    raise RuntimeError("bayes: the conditional mode of mu did not converge")


def _cut(mode, h_mode, curvature, direction, tau, lik, mu_sd):
    """Distance from the mode where the conditional log density has fallen by DEPTH (or a little further)."""
    d = np.sqrt(2 * DEPTH / -curvature)
    short = np.ones(tau.shape, dtype=bool)
    for _ in range(200):
        i = np.flatnonzero(short)
        h = lik(mode[i] + direction * d[i], tau[i]) + _norm_logpdf(mode[i] + direction * d[i], mu_sd)
        short[i] = h > h_mode[i] - DEPTH
        if not short.any():
            return d
        d = np.where(short, d * 1.25, d)
    raise RuntimeError("bayes: the conditional posterior of mu has no finite tail cut")


def _cheb_points(m):
    """Chebyshev points of the second kind on [-1, 1], cos(pi j / m), j = 0..m (those of m nest in those of 2m)."""
    return np.cos(np.pi * np.arange(m + 1) / m)


def _cheb_coefficients(values):
    """Chebyshev coefficients (last axis) of the interpolant through values at _cheb_points(m) (last axis m + 1)."""
    m = values.shape[-1] - 1
    # DCT-I by a real FFT of the even extension
    ext = np.concatenate([values, values[..., -2:0:-1]], axis=-1)
    c = np.fft.rfft(ext, axis=-1).real / m
    c[..., 0] /= 2
    c[..., m] /= 2
    return c[..., :m + 1]


def _cheb_values(coef, u):
    """Clenshaw's recurrence: sum_k coef[..., k] T_k(u), coef (..., K) with u (..., X): (..., X)."""
    b1 = b2 = np.zeros(np.broadcast_shapes(coef.shape[:-1] + (1,), u.shape))
    for k in range(coef.shape[-1] - 1, 0, -1):
        b1, b2 = coef[..., k, None] + 2 * u * b1 - b2, b1
    return coef[..., 0, None] + u * b1 - b2


def _log_lik_on_panels(panels, tau, events, n, nagq):
    """sum_i log L_i at every mu node of each tau row, (J, P, q). The studies with events and non-events: from
    their exact sum at Chebyshev points of the row's range when its coefficients fall to rounding noise (degree 16,
    32 or 64: it is analytic in mu), else at every node exactly. Studies with all or no events: at every node
    exactly (their quadrature error, ~1e-8 at large tau, is not smooth in mu, so no interpolant reproduces it)."""
    J = len(tau)
    one_sided = (events == 0) | (events == n)
    out = np.zeros(panels.nodes.shape)
    if one_sided.any():
        out += _Likelihood(events[one_sided], n[one_sided], nagq)(panels.nodes, tau[:, None, None])
    if one_sided.all():
        return out
    lik = _Likelihood(events[~one_sided], n[~one_sided], nagq)
    u = (2 * (panels.nodes - panels.lo[:, None, None]) / (panels.hi - panels.lo)[:, None, None] - 1).reshape(J, -1)
    smooth = np.empty(u.shape)
    todo, values = np.arange(J), None
    for m in _CHEB:
        points = _cheb_points(m)
        new = points if values is None else points[1::2]  # the even points are known from degree m / 2
        fresh = lik(panels.lo[todo, None] + (new + 1) / 2 * (panels.hi - panels.lo)[todo, None], tau[todo, None])
        if values is None:
            values = fresh
        else:
            merged = np.empty((len(todo), m + 1))
            merged[:, 0::2], merged[:, 1::2] = values, fresh
            values = merged
        coef = _cheb_coefficients(values)
        ok = np.abs(coef[:, -4:]).max(axis=1) <= _CHEB_TOL * (1 + np.abs(values).max(axis=1))
        smooth[todo[ok]] = _cheb_values(coef[ok], u[todo[ok]])
        todo, values = todo[~ok], values[~ok]
        if todo.size == 0:
            break
    if todo.size:
        smooth[todo] = lik(panels.nodes[todo].reshape(len(todo), -1), tau[todo, None])
    return out + smooth.reshape(panels.nodes.shape)


class _OutsideBox(Exception):
    """The integration reached beyond the box of the interpolated likelihood: the exact likelihood takes over."""


def _tau_coordinate(tau, c):
    """The interpolants' coordinate along tau: asinh(tau / c) (nearly log tau far from 0), or tau itself (c None)."""
    return tau if c is None else np.arcsinh(tau / c)


class _SurrogateLikelihood:
    """sum_i log L_i(mu, tau) of many studies as one 2-D Chebyshev interpolant in (mu, _tau_coordinate(tau, c)) on a
    box holding the posterior (the interface of _Likelihood; the box [lo, hi] in (mu, tau)). For large k the sum is
    smooth there (a function of tau^2 near tau = 0, so in tau on boxes from 0; nearly quadratic in log tau away from
    0, so in asinh(tau / c) there), so a few hundred exact evaluations replace the thousands the integration needs;
    points outside the box raise _OutsideBox."""

    def __init__(self, coef, lo, hi, c):
        self.lo, self.hi, self.c = lo, hi, c
        ref_lo, ref_hi = np.array([lo[0], _tau_coordinate(lo[1], c)]), np.array([hi[0], _tau_coordinate(hi[1], c)])
        self.centre, self.half = (ref_lo + ref_hi) / 2, (ref_hi - ref_lo) / 2
        self.coef = coef
        self.d1 = np.polynomial.chebyshev.chebder(coef, axis=0) / self.half[0]
        self.d2 = np.polynomial.chebyshev.chebder(self.d1, axis=0) / self.half[0]

    def covers(self, lo, hi):
        return bool(np.all(self.lo <= lo) and np.all(hi <= self.hi))

    def __call__(self, mu, tau, derivatives=False):
        mu, tau = np.broadcast_arrays(np.asarray(mu, float), np.asarray(tau, float))
        u = (mu - self.centre[0]) / self.half[0]
        v = (_tau_coordinate(tau, self.c) - self.centre[1]) / self.half[1]
        if np.any(np.abs(u) > 1 + 1e-12) or np.any(np.abs(v) > 1 + 1e-12):
            raise _OutsideBox
        value = np.polynomial.chebyshev.chebval2d(u, v, self.coef)
        if not derivatives:
            return value
        cheb = np.polynomial.chebyshev
        return value, cheb.chebval2d(u, v, self.d1), cheb.chebval2d(u, v, self.d2)


def _interpolate_likelihood(lik, lo, hi, c):
    """The _SurrogateLikelihood of `lik` on the box [lo, hi] of (mu, tau), in (mu, _tau_coordinate): degrees along
    each axis doubled until its last coefficients fall below _SURROGATE_TAIL, then checked against the exact sum at
    16 points off the nodes; None when no degree in _SURROGATE_DEGREES suffices (or the grid would pass
    _SURROGATE_MAX_NODES) or the check fails by more than _SURROGATE_TOL."""
    ref_lo, ref_hi = np.array([lo[0], _tau_coordinate(lo[1], c)]), np.array([hi[0], _tau_coordinate(hi[1], c)])
    centre, half = (ref_lo + ref_hi) / 2, (ref_hi - ref_lo) / 2

    def exact(u, v):
        v = centre[1] + half[1] * v
        return lik(centre[0] + half[0] * u, v if c is None else c * np.sinh(v))

    level = [0, 0]
    points = [_cheb_points(_SURROGATE_DEGREES[0])] * 2
    values = exact(points[0][:, None], points[1][None, :])
    while True:
        coef = _cheb_coefficients(_cheb_coefficients(values).T).T
        grow = [np.abs(coef[-3:]).max() > _SURROGATE_TAIL, np.abs(coef[:, -3:]).max() > _SURROGATE_TAIL]
        if not any(grow):
            break
        for axis in (0, 1):
            if not grow[axis]:
                continue
            if level[axis] + 1 == len(_SURROGATE_DEGREES):
                return None
            level[axis] += 1
            m = _SURROGATE_DEGREES[level[axis]]
            if (m + 1) * (values.shape[1 - axis]) > _SURROGATE_MAX_NODES:
                return None
            new = _cheb_points(m)[1::2]  # the even points are those of degree m / 2, known
            shape = list(values.shape)
            shape[axis] = m + 1
            merged = np.empty(shape)
            if axis == 0:
                merged[0::2], merged[1::2] = values, exact(new[:, None], points[1][None, :])
            else:
                merged[:, 0::2], merged[:, 1::2] = values, exact(points[0][:, None], new[None, :])
            values, points[axis] = merged, _cheb_points(m)
    cu, cv = np.meshgrid(_SURROGATE_CHECK, _SURROGATE_CHECK[::-1], indexing="ij")
    error = np.polynomial.chebyshev.chebval2d(cu, cv, coef) - exact(cu, cv)
    if not np.max(np.abs(error)) <= _SURROGATE_TOL:
        return None
    return _SurrogateLikelihood(coef, lo, hi, c)


def _posterior_box(events, n, mu_sd, family, scale, c, start, widen=1.5):
    """A box in (mu, tau) holding every point the integration visits, or None if it cannot be found. With 9
    Gauss-Hermite nodes (only the place and spread are needed): the joint mode of the posterior of (mu, s = asinh(tau
    / c)) and its curvature, by Newton's method on finite differences; then from the mode along s, in steps doubling
    from its standard deviation, the profile (Laplace's approximation of the marginal of s, as _tau_range) until it
    has fallen by DEPTH + 8 (or s reaches 0 or the prior's 1 - 1e-15 quantile), the crossing then bisected, a tenth
    added; over mu, the conditional modes met inside that range plus or minus `widen` times the Gaussian distance of a
    fall by DEPTH."""
    lik = _Likelihood(events, n, 9)

    def log_post(mu, s):  # even in s (tau = c sinh s), so s may cross 0
        s = np.abs(s)
        tau = c * np.sinh(s)
        return (lik(mu, tau) + _norm_logpdf(mu, mu_sd) + tau_prior_logpdf(tau, family, scale)
                + np.log(c * np.cosh(s)))

    y, v = logit_effects(events, n)
    x = np.array([start, np.arcsinh(max(np.sqrt(tau2_dl(y, v)), c) / c)])
    h = np.array([0.05, 0.05])
    stencil = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], float)
    boost = 1.0
    for _ in range(60):
        pts = x + stencil * h
        f = log_post(pts[:, 0], pts[:, 1])
        grad = np.array([f[1] - f[2], f[3] - f[4]]) / (2 * h)
        cross = (f[5] - f[6] - f[7] + f[8]) / (4 * h[0] * h[1])
        hess = np.array([[(f[1] - 2 * f[0] + f[2]) / h[0] ** 2, cross], [cross, (f[3] - 2 * f[0] + f[4]) / h[1] ** 2]])
        if not np.all(np.isfinite(hess)):
            return None
        concave = hess[0, 0] < 0 and np.linalg.det(hess) > 0
        if concave:
            step, boost = -np.linalg.solve(hess, grad), 1.0
        else:  # convex along s (e.g. tau far below its mode): Newton in mu, steps doubling along s uphill
            step = np.array([-grad[0] / hess[0, 0] if hess[0, 0] < 0 else np.sign(grad[0]) * h[0],
                             np.sign(grad[1]) * h[1] * boost])
            boost *= 2
        step = np.clip(step, -1.0, 1.0)
        for _ in range(40):
            if log_post(*(x + step)) >= f[0]:
                break
            step /= 2
        x = x + step
        if concave:
            sd = np.sqrt(np.diag(np.linalg.inv(-hess)))
            if np.all(np.abs(step) <= 1e-3 * sd) and np.allclose(h, np.clip(sd / 2, 1e-6, 0.5), rtol=0.5):
                break
            h = np.clip(sd / 2, 1e-6, 0.5)
    else:
        return None

    def profile(s, mu):
        tau = c * np.sinh(np.array([max(s, 1e-6)]))
        try:
            mode, top, curv = _conditional_modes(tau, lik, mu_sd, mu)
        except RuntimeError:
            return mu, np.nan, np.nan  # counts as not yet fallen: the walk goes on to 0 or the prior's end
        value = tau_prior_logpdf(tau, family, scale) + np.log(np.cosh(s)) + top + 0.5 * np.log(-2 * np.pi / curv)
        return float(mode[0]), float(curv[0]), float(value[0])

    s_max = np.arcsinh(tau_prior_quantile(1 - 1e-15, family, scale) / c)
    s0 = min(abs(x[1]), s_max)
    seen = [profile(s0, x[0])]
    peak = seen[0][2]
    ends = []
    for direction in (1.0, -1.0):
        d, inside = max(sd[1], 1e-3), 0.0
        while True:
            s = s0 + direction * d
            if not 0 < s < s_max:
                ends.append(min(max(s, 0.0), s_max))
                break
            seen.append(profile(s, seen[-1][0]))
            peak = max(peak, seen[-1][2])
            if seen[-1][2] < peak - DEPTH - 8:
                outside = d
                for _ in range(4):  # the crossing to a sixteenth of the last step, so the box is not twice too wide
                    mid = (inside + outside) / 2
                    seen.append(profile(s0 + direction * mid, seen[-1][0]))
                    inside, outside = (mid, outside) if seen[-1][2] >= peak - DEPTH - 8 else (inside, mid)
                ends.append(s0 + direction * 1.1 * outside)
                break
            inside, d = d, 2 * d
    stretch = widen / 1.5  # the walk overshoots already: the s range widens only on the second try
    s_lo, s_hi = max(s0 - stretch * (s0 - ends[1]), 0.0), min(s0 + stretch * (ends[0] - s0), s_max)
    # over mu: the points of the walk inside the range (those beyond it would widen the box for nothing)
    modes, curvs = np.array([[m, cv] for m, cv, value in seen if not value < peak - DEPTH - 8]).T
    cut = widen * np.sqrt(2 * DEPTH / -curvs)
    lo, hi = np.array([np.min(modes - cut), c * np.sinh(s_lo)]), np.array([np.max(modes + cut), c * np.sinh(s_hi)])
    return (lo, hi) if np.all(np.isfinite([lo, hi])) and np.all(lo < hi) else None


_SURROGATES = {}  # interpolated likelihoods of the data sets fitted in this process (other priors reuse them)
_MAX_SURROGATES = 16


def _surrogate_for(events, n, nagq, mu_sd, family, scale, c, start, widen=1.5):
    """An interpolated likelihood covering this posterior's box, reused when one of the same data covers it; or why
    there is none (then the exact path runs)."""
    box = _posterior_box(events, n, mu_sd, family, scale, c, start, widen)
    if box is None:
        return "no box around the posterior found"
    key = (events.tobytes(), n.tobytes(), nagq)
    for sur in _SURROGATES.get(key, []):
        if sur.covers(*box):
            return sur
    lo, hi = box
    pad = (hi - lo) / 10  # so that nearby priors' boxes fit in it
    lo, hi = np.array([lo[0] - pad[0], max(lo[1] - pad[1], 0.0)]), hi + pad
    # each distinct (events, n) once, counted by its multiplicity
    pairs, count = np.unique(np.stack([events, n], axis=1), axis=0, return_counts=True)
    sur = _interpolate_likelihood(_Likelihood(pairs[:, 0], pairs[:, 1], nagq, count.astype(float)), lo, hi,
                                  None if lo[1] == 0 else c)
    if sur is None:
        return "interpolation not accurate enough"
    if len(_SURROGATES) >= _MAX_SURROGATES:
        _SURROGATES.pop(next(iter(_SURROGATES)))
    _SURROGATES.setdefault(key, []).append(sur)
    return sur


def _invert(cdf_pdf, p, lo, hi, cells=64, start=None):
    """Points x in [lo, hi] with cdf(x) = p, for each p, given `cdf_pdf(x) -> (cdf, density)` nondecreasing: the
    bracketing cell of a grid (or from `start`), then Newton steps kept inside the bracket (glmm's rtsafe) to ~1e-13
    (written here, vectorised over p, because scipy's brentq takes one root per Python loop)."""
    p = np.atleast_1d(np.asarray(p, float))
    if start is not None:
        return _bracketed_newton(lambda x, where: _minus(cdf_pdf(x), p[where]), np.full(p.shape, lo),
                                 np.full(p.shape, hi), start)
    grid = np.linspace(lo, hi, cells + 1)
    F = cdf_pdf(grid)[0]
    i = np.clip(np.searchsorted(F, p, side="left") - 1, 0, cells - 1)
    low, high, f_low, f_high = grid[i], grid[i + 1], F[i], F[i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        start = np.where(f_high > f_low, low + (p - f_low) / (f_high - f_low) * (high - low), (low + high) / 2)

    return _bracketed_newton(lambda x, where: _minus(cdf_pdf(x), p[where]), low, high, start)


def _minus(cdf_pdf, p):
    """p - cdf and its slope, the decreasing function whose root _bracketed_newton finds."""
    return p - cdf_pdf[0], -cdf_pdf[1]


class Posterior:
    """The joint posterior of (mu, tau) on quadrature nodes, with exact-quadrature marginals.

    `tau_panels`: the marginal posterior of t = log tau; `mu`: the conditional posterior of mu given each tau node,
    weighted by `tau_weights` (posterior mass of each tau node) for the marginal of mu. `exact`: every mu node's
    likelihood evaluated directly, instead of interpolated along mu (for tests: the two agree to rounding).
    `interpolate`: with LARGE_K studies or more (None), or when True, the sum of the studies' log-likelihoods comes
    from its checked interpolant over (mu, tau) (_SurrogateLikelihood), and the exact path runs if the interpolant
    cannot be had or the integration leaves its box; `likelihood_path` says which ran ('direct', 'interpolated',
    'direct (interpolation ...)').
    """

    def __init__(self, events, n, mu_sd=2.0, tau_prior="half-normal", tau_scale=0.5, nagq=61, q=16, tau_width=1.0,
                 mu_panels=8, tau_min_panels=8, exact=False, interpolate=None):
        self.events, self.n = np.asarray(events, float), np.asarray(n, float)
        self.mu_sd, self.family, self.scale, self.nagq = float(mu_sd), tau_prior, float(tau_scale), nagq
        tau_prior_logpdf(1.0, tau_prior, tau_scale)  # an unknown family stops here
        rule = _Legendre(q)
        self.c = self.scale / 10  # tau = c sinh(s): linear near tau = 0 (no tail to cut there), logarithmic far out
        start = logit((self.events.sum() + 0.5) / (self.n.sum() + 1.0))
        self.likelihood_path = "direct"
        if interpolate is None:  # with only all- or no-event studies the prior shapes a tail of mu: no small box
            interpolate = len(self.events) >= LARGE_K and not np.all((self.events == 0) | (self.events == self.n))
        for widen in WIDEN if interpolate and not exact else ():  # a box twice as wide if the first is left
            sur = _surrogate_for(self.events, self.n, nagq, self.mu_sd, tau_prior, self.scale, self.c, start, widen)
            if isinstance(sur, str):
                self.likelihood_path = f"direct ({sur})"
                break
            try:
                self._integrate(rule, tau_width, mu_panels, tau_min_panels, sur,
                                self._tau_range_in_box(sur, sur.centre[0]))
                self.likelihood_path = "interpolated"
                return
            except _OutsideBox:
                self.likelihood_path = "direct (the posterior reached beyond the interpolated box)"
            except RuntimeError:  # a Newton search on the interpolant failed: the exact path decides
                self.likelihood_path = "direct (a search on the interpolant did not converge)"
                break
        lik = _Likelihood(self.events, self.n, nagq)
        self._integrate(rule, tau_width, mu_panels, tau_min_panels, lik, self._tau_range(start), exact)

    def _integrate(self, rule, tau_width, mu_panels, tau_min_panels, lik, tau_range, exact=False):
        """The panels over s and, for each s node, over mu, with the posterior's densities on them."""
        tau_prior, tau_scale = self.family, self.scale
        s_lo, s_hi, grid, grid_modes = tau_range
        q = len(rule.x)
        n_tau = max(tau_min_panels, int(np.ceil((s_hi - s_lo) / tau_width)))
        self.tau_panels = Panels([s_lo], [s_hi], n_tau, rule)
        s = self.tau_panels.nodes.ravel()
        tau = self.c * np.sinh(s)
        # Newton from the coarse grid's modes (9 nodes): the same maximum, in fewer steps
        mode, h_mode, curv = _conditional_modes(tau, lik, self.mu_sd, np.interp(s, grid, grid_modes))
        left = _cut(mode, h_mode, curv, -1.0, tau, lik, self.mu_sd)
        right = _cut(mode, h_mode, curv, 1.0, tau, lik, self.mu_sd)
        self.mu = Panels(mode - left, mode + right, mu_panels, rule)
        if exact or isinstance(lik, _SurrogateLikelihood):
            loglik = lik(self.mu.nodes, tau[:, None, None])
        else:
            loglik = _log_lik_on_panels(self.mu, tau, self.events, self.n, self.nagq)
        log_z = self.mu.set_log_density(loglik + _norm_logpdf(self.mu.nodes, self.mu_sd))
        log_g = tau_prior_logpdf(tau, tau_prior, tau_scale) + np.log(self.c * np.cosh(s)) + log_z
        log_mass = self.tau_panels.set_log_density(log_g.reshape(1, n_tau, q))
        self.log_marginal_likelihood = float(log_mass[0])
        self.tau_weights = (self.tau_panels.dens * self.tau_panels.weights).ravel()
        self.tau = tau
        self._summaries, self._rate = {}, None

    def _tau_range(self, start):
        """Range of s = asinh(tau / c) carrying the posterior: Laplace's approximation on a coarse grid, with a
        margin (from s = 0 when the posterior is not negligible at tau = 0); and the grid with its modes of mu."""
        s_max = np.arcsinh(tau_prior_quantile(1 - 1e-15, self.family, self.scale) / self.c)
        grid = np.arange(0.0, s_max + 0.25, 0.125)
        grid[0] = 1e-6
        tau = self.c * np.sinh(grid)
        lik = _Likelihood(self.events, self.n, min(self.nagq, 9))
        modes, h, curv = _conditional_modes(tau, lik, self.mu_sd, start)
        log_g = (tau_prior_logpdf(tau, self.family, self.scale) + np.log(np.cosh(grid)) + h
                 + 0.5 * np.log(-2 * np.pi / curv))
        keep = np.flatnonzero(log_g > log_g.max() - DEPTH - 6)
        lo = 0.0 if keep[0] <= 2 else grid[keep[0] - 2]
        return lo, grid[min(keep[-1] + 2, len(grid) - 1)], grid, modes

    def _tau_range_in_box(self, sur, start, points=65):
        """As _tau_range, on a grid of the interpolant's box in s; _OutsideBox if the range reaches an edge of the
        box (other than s = 0)."""
        s_lo, s_hi = np.arcsinh(sur.lo[1] / self.c), np.arcsinh(sur.hi[1] / self.c)
        grid = np.linspace(s_lo, s_hi, points)
        if grid[0] == 0.0:
            grid[0] = min(1e-6, grid[1] / 2)
        tau = np.clip(self.c * np.sinh(grid), sur.lo[1], sur.hi[1])  # rounding must not leave the box
        modes, h, curv = _conditional_modes(tau, sur, self.mu_sd, start)
        log_g = (tau_prior_logpdf(tau, self.family, self.scale) + np.log(np.cosh(grid)) + h
                 + 0.5 * np.log(-2 * np.pi / curv))
        keep = np.flatnonzero(log_g > log_g.max() - DEPTH - 6)
        if (keep[0] == 0 and sur.lo[1] > 0) or keep[-1] == points - 1:
            raise _OutsideBox
        lo = 0.0 if keep[0] == 0 else grid[keep[0] - 1]
        return lo, grid[keep[-1] + 1], grid, modes

    # -- marginals ------------------------------------------------------------------------------------------
    def mu_cdf_pdf(self, x, pdf=True):
        """Posterior CDF and density of mu at points x."""
        cdf, dens = self.mu.cdf_pdf(np.atleast_1d(np.asarray(x, float)), pdf)
        return cdf @ self.tau_weights, (dens @ self.tau_weights if pdf else None)

    def mu_cdf(self, x):
        """Posterior CDF of mu at points x."""
        return self.mu_cdf_pdf(x, pdf=False)[0]

    def mu_pdf(self, x):
        """Posterior density of mu at points x."""
        return self.mu.pdf(np.atleast_1d(np.asarray(x, float))) @ self.tau_weights

    def mu_quantiles(self, p):
        """Quantiles of mu at probabilities p (array)."""
        return _invert(self.mu_cdf_pdf, p, self.mu.lo.min(), self.mu.hi.max())

    def mu_quantile(self, p):
        return float(self.mu_quantiles([p])[0])

    def tau_cdf(self, tau):
        return self.tau_panels.cdf(np.arcsinh(np.atleast_1d(tau) / self.c))[:, 0]

    def tau_quantiles(self, p):
        """Quantiles of tau at probabilities p (array)."""
        def cdf_pdf(s):
            cdf, dens = self.tau_panels.cdf_pdf(s)
            return cdf[:, 0], dens[:, 0]

        return self.c * np.sinh(_invert(cdf_pdf, p, self.tau_panels.lo[0], self.tau_panels.hi[0]))

    def tau_quantile(self, p):
        return float(self.tau_quantiles([p])[0])

    def predictive_cdf_pdf(self, x, pdf=True):
        """Posterior predictive CDF (and density) of a new trial's logit rate theta_new = mu + tau z at points x."""
        x = np.atleast_1d(np.asarray(x, float))
        wide = self.tau > self.mu.width  # Phi((x - mu) / tau) smooth on the mu panels: integrate over mu nodes
        cdf, dens = np.zeros(len(x)), np.zeros(len(x))
        if wide.any():
            z = (x[:, None, None, None] - self.mu.nodes[wide]) / self.tau[wide][:, None, None]
            mass = (self.mu.dens * self.mu.weights)[wide]
            cdf += (ndtr(z) * mass).sum(axis=(2, 3)) @ self.tau_weights[wide]
            if pdf:
                phi = np.exp(-z**2 / 2.0) / np.sqrt(2 * np.pi)
                dens += ((phi * mass).sum(axis=(2, 3)) / self.tau[wide]) @ self.tau_weights[wide]
        if (~wide).any():  # else E_z F(x - tau z | tau): F smooth on the scale of tau, z by Gauss-Legendre panels
            rows = np.flatnonzero(~wide)
            sub = Panels(self.mu.lo[rows], self.mu.hi[rows], self.mu.P, self.mu.rule, self.mu.dens[rows])
            z, w = _z_rule()
            points = x[:, None, None] - self.tau[rows][None, None, :] * z[None, :, None]  # (X, Z, R)
            c, d = sub.cdf_pdf(points.reshape(-1, len(rows)), pdf)
            cdf += np.einsum("z,xzr->xr", w, c.reshape(points.shape)) @ self.tau_weights[rows]
            if pdf:
                dens += np.einsum("z,xzr->xr", w, d.reshape(points.shape)) @ self.tau_weights[rows]
        return cdf, (dens if pdf else None)

    def predictive_cdf(self, x):
        """Posterior predictive CDF of a new trial's logit rate theta_new = mu + tau z at points x (X,)."""
        return self.predictive_cdf_pdf(x, pdf=False)[0]

    def predictive_quantiles(self, p):
        lo = self.mu.lo.min() - 12 * self.tau.max()
        hi = self.mu.hi.max() + 12 * self.tau.max()
        lo, hi = max(lo, self.mu.lo.min() - 200), min(hi, self.mu.hi.max() + 200)
        # Newton from the normal approximation (a grid of this CDF costs more than the steps it saves)
        sd = np.sqrt(self.mu_sd_posterior() ** 2 + self.tau_weights @ self.tau**2)
        start = np.clip(self.mu_cdf_moments() + ndtri(np.asarray(p, float)) * sd, lo, hi)
        return _invert(self.predictive_cdf_pdf, p, lo, hi, start=start)

    def predictive_quantile(self, p):
        return float(self.predictive_quantiles([p])[0])

    def summary(self, level=0.95):
        """Posterior summaries of one pooled row (rates and tau^2)."""
        if level not in self._summaries:
            a = (1 - level) / 2
            mu = [float(v) for v in self.mu_quantiles([0.5, a, 1 - a])]
            tau = [float(v) for v in self.tau_quantiles([0.5, a, 1 - a])]
            new = [float(v) for v in self.predictive_quantiles([a, 1 - a])]
            mean = float(self.mu_cdf_moments())
            self._summaries[level] = {
                "estimate": float(expit(mu[0])), "ci_low": float(expit(mu[1])), "ci_high": float(expit(mu[2])),
                "pi_low": float(expit(new[0])), "pi_high": float(expit(new[1])),
                "tau2": tau[0] ** 2, "tau2_ci_low": tau[1] ** 2, "tau2_ci_high": tau[2] ** 2,
                "mu_median": mu[0], "mu_mean": mean, "mu_sd": self.mu_sd_posterior()}
        return dict(self._summaries[level])

    def mu_cdf_moments(self):
        """Posterior mean of mu."""
        return float(((self.mu.dens * self.mu.weights * self.mu.nodes).sum(axis=(1, 2))) @ self.tau_weights)

    def mu_sd_posterior(self):
        m = self.mu_cdf_moments()
        second = ((self.mu.dens * self.mu.weights * self.mu.nodes**2).sum(axis=(1, 2))) @ self.tau_weights
        return float(np.sqrt(max(second - m * m, 0.0)))

    def rate_posterior(self):
        """The RatePosterior of this posterior (built once)."""
        if self._rate is None:
            self._rate = RatePosterior(self)
        return self._rate


_Z_RULE = []


def _z_rule(panels=8, q=16):
    """Gauss-Legendre panels over z in [-9, 9] with the standard normal density folded into the weights."""
    if not _Z_RULE:
        rule = _Legendre(q)
        p = Panels([-9.0], [9.0], panels, rule)
        z = p.nodes.ravel()
        w = p.weights.ravel() * (np.exp(-z**2 / 2.0) / np.sqrt(2 * np.pi))
        _Z_RULE.append((z, w / w.sum()))
    return _Z_RULE[0]


class _PiecewiseChebyshev:
    """A function on [a, b] as Chebyshev interpolants of degree `deg` on panels split until each panel's last
    coefficients fall below `tol` (absolute): evaluation of the function and of its derivative anywhere."""

    def __init__(self, f, a, b, breaks, tol, deg=16, max_rounds=12):
        points = _cheb_points(deg)
        edges = np.unique(np.concatenate([[a, b], np.asarray(breaks, float)]))
        edges = edges[(edges >= a) & (edges <= b)]
        lo, hi = edges[:-1], edges[1:]
        done_lo, done_hi, done_coef = [], [], []
        for round_ in range(max_rounds):
            x = (lo[:, None] + hi[:, None]) / 2 + (hi - lo)[:, None] / 2 * points
            coef = _cheb_coefficients(f(x.ravel()).reshape(x.shape))
            # the last round keeps what it has: panels 2^-12 of the first are at rounding already
            ok = (np.abs(coef[:, -3:]).max(axis=1) <= tol) | (round_ == max_rounds - 1)
            done_lo.append(lo[ok]), done_hi.append(hi[ok]), done_coef.append(coef[ok])
            mid = (lo[~ok] + hi[~ok]) / 2
            lo, hi = np.concatenate([lo[~ok], mid]), np.concatenate([mid, hi[~ok]])
            if lo.size == 0:
                break
        order = np.argsort(np.concatenate(done_lo))
        self.lo, self.hi = np.concatenate(done_lo)[order], np.concatenate(done_hi)[order]
        self.coef = np.concatenate(done_coef)[order]
        self.dcoef = np.polynomial.chebyshev.chebder(self.coef, axis=1)

    def __call__(self, x, derivative=False):
        x = np.asarray(x, float)
        i = np.clip(np.searchsorted(self.lo, x, side="right") - 1, 0, len(self.lo) - 1)
        half = (self.hi[i] - self.lo[i]) / 2
        u = np.clip((x - self.lo[i]) / half - 1, -1.0, 1.0)
        coef = (self.dcoef if derivative else self.coef)[i]
        value = _cheb_values(coef.reshape(-1, coef.shape[-1]), u.reshape(-1, 1))[:, 0].reshape(x.shape)
        if derivative:  # constant outside [a, b]
            return np.where((x < self.lo[0]) | (x > self.hi[-1]), 0.0, value / half)
        return value


class RatePosterior:
    """The marginal posterior of a pooled rate expit(mu) on one global grid of the mu scale, for differences; its
    CDF anywhere from a piecewise Chebyshev interpolant of the exact quadrature CDF (to 1e-15)."""

    def __init__(self, post, panels=32, q=16):
        self.post = post
        lo_min, hi_max = post.mu.lo.min(), post.mu.hi.max()
        ends = post.mu_cdf([lo_min, hi_max])
        tails = post.mu_quantiles([1e-13, 1 - 1e-13])
        lo = tails[0] if ends[0] < 1e-13 else lo_min
        hi = tails[1] if ends[1] > 1 - 1e-13 else hi_max
        self.grid = Panels([lo], [hi], panels, _Legendre(q))
        self.x = self.grid.nodes.ravel()
        self.w = self.grid.weights.ravel() * post.mu_pdf(self.x)
        self.w /= self.w.sum()
        self.rate = expit(self.x)
        self.spread = float(np.sqrt(self.w @ self.rate**2 - (self.w @ self.rate) ** 2))
        self._cdf = _PiecewiseChebyshev(post.mu_cdf, lo_min, hi_max, np.linspace(lo, hi, 9), _CDF_TOL)

    def rate_cdf(self, r):
        """P(expit(mu) <= r) for r in [0, 1]."""
        r = np.asarray(r, float)
        out = np.where(r >= 1, 1.0, 0.0)
        inside = (r > 0) & (r < 1)
        if inside.any():
            out[inside] = self._cdf(logit(r[inside]))
        return out

    def rate_pdf(self, r):
        """Density of expit(mu) at r in [0, 1]."""
        r = np.asarray(r, float)
        out = np.zeros(r.shape)
        inside = (r > 0) & (r < 1)
        if inside.any():
            ri = r[inside]
            # the interpolant's rounding leaves -1e-13 where the posterior has no mass: a density is not negative
            out[inside] = np.maximum(self._cdf(logit(ri), derivative=True) / (ri * (1 - ri)), 0.0)
        return out


def difference_cdf_pdf(a, b, d):
    """CDF and density of rate_a - rate_b at points d, for independent posteriors a, b (RatePosterior), integrating
    over the narrower one's grid with the other's CDF."""
    d = np.atleast_1d(np.asarray(d, float))
    if a.spread <= b.spread:
        r = a.rate[None, :] - d[:, None]
        return 1.0 - b.rate_cdf(r) @ a.w, b.rate_pdf(r) @ a.w
    r = b.rate[None, :] + d[:, None]
    return a.rate_cdf(r) @ b.w, a.rate_pdf(r) @ b.w


def prob_difference_greater(a, b, delta):
    """P(rate_a - rate_b > delta) for independent posteriors a, b (RatePosterior), integrating over the narrower
    one's grid with the other's CDF."""
    if a.spread <= b.spread:
        return float(a.w @ b.rate_cdf(a.rate - delta))
    return float(b.w @ (1.0 - a.rate_cdf(b.rate + delta)))


def difference_quantiles(a, b, p):
    """Quantiles of rate_a - rate_b at probabilities p (array)."""
    return _invert(lambda d: difference_cdf_pdf(a, b, d), p, -1.0, 1.0)


def difference_quantile(a, b, p):
    """Quantile of rate_a - rate_b."""
    return float(difference_quantiles(a, b, [p])[0])


def difference_summary(a, b, deltas, level=0.95):
    """Median and central credible interval of rate_a - rate_b, and P(difference > delta) for each delta."""
    q = (1 - level) / 2
    median, low, high = (float(x) for x in difference_quantiles(a, b, [0.5, q, 1 - q]))
    return {"median": median, "ci_low": low, "ci_high": high,
            "prob": {float(d): prob_difference_greater(a, b, d) for d in deltas}}


PRIOR_CONFLICT_P = 0.01  # a prior-predictive p below this: the data sit where the prior of mu put almost nothing


def prior_conflict(events, n, mu_sd):
    """Box's prior-predictive check of the prior of mu: the data's pooled logit (common-effect inverse variance, 0.5
    added to 0 or all events) against its prior-predictive N(0, mu_sd^2 + SE^2). Returns (z, p)."""
    y, v = logit_effects(np.asarray(events, float), np.asarray(n, float))
    w = 1 / np.asarray(v)
    estimate, se = float(w @ y / w.sum()), float(np.sqrt(1 / w.sum()))
    z = estimate / np.sqrt(mu_sd**2 + se**2)
    return z, float(2 * ndtr(-abs(z)))


def bayes_note(events, n, mu_sd, family, scale):
    """Why the reader should look twice at a Bayesian pooled row (k = 1, all or no events, a prior of mu the data
    contradict)."""
    notes = []
    z, p = prior_conflict(events, n, mu_sd)
    if p < PRIOR_CONFLICT_P:
        notes.append(f"prior-data conflict: the data's pooled logit lies {abs(z):.1f} prior-predictive SDs from the "
                     f"prior of mu (N(0, {mu_sd:g}^2), p = {p:.2g}), so the prior pulls the estimate (to let the data "
                     "speak, widen bayes: mu_sd in config.yaml)")  # no '; ' inside: notes are joined by it
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


_FITS = {}  # posteriors already integrated in this process (pooled rows, differences, prior sensitivity, figure)
_MAX_FITS = 256


def fit(events, n, settings=None, tau_prior=None, tau_scale=None):
    """The posterior of one set of studies under the configured priors (or another prior of tau); the same data
    and priors again give the same Posterior object, integrated once."""
    s = settings_of(settings)
    events, n = np.asarray(events, float), np.asarray(n, float)
    family, scale = tau_prior or s["tau_prior"], float(tau_scale or s["tau_scale"])
    key = (events.tobytes(), n.tobytes(), float(s["mu_sd"]), family, scale)
    if key not in _FITS:
        if len(_FITS) >= _MAX_FITS:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = Posterior(events, n, s["mu_sd"], family, scale)
    return _FITS[key]


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
    q_p = float(chdtrc(len(events) - 1, q)) if len(events) > 1 else np.nan
    nan = float("nan")
    return {"k": len(events), "estimate": summ["mu_median"], "se": summ["mu_sd"],
            "ci_low": float(logit(summ["ci_low"])), "ci_high": float(logit(summ["ci_high"])),
            "pi_low": float(logit(summ["pi_low"])), "pi_high": float(logit(summ["pi_high"])),
            "tau2": summ["tau2"], "tau2_ci_low": summ["tau2_ci_low"], "tau2_ci_high": summ["tau2_ci_high"],
            "i2": nan, "i2_ci_low": nan, "i2_ci_high": nan, "h2": nan, "q": q, "q_df": len(events) - 1, "q_p": q_p,
            "note": "; ".join(x for x in (describe_prior(s["mu_sd"], s["tau_prior"], s["tau_scale"]),
                                          bayes_note(events, n, s["mu_sd"], s["tau_prior"], s["tau_scale"])) if x)}


def difference_rows(posteriors, deltas, level=0.95):
    """One row per pair (a, b) of groups in the order of `posteriors` ({group: Posterior}), a before b: rate_a -
    rate_b (first minus second), its posterior median and central credible interval, and P(rate_a - rate_b >
    delta) for each delta."""
    rates = {g: p.rate_posterior() for g, p in posteriors.items()}
    rows = []
    for a, b in comparison_pairs(rates):
        summ = difference_summary(rates[a], rates[b], deltas, level)
        rows.append({"contrast": f"{a} minus {b}", "group_1": a, "group_2": b, "diff_median": summ["median"],
                     "diff_ci_low": summ["ci_low"], "diff_ci_high": summ["ci_high"],
                     **{prob_column(d): p for d, p in summ["prob"].items()}})
    return rows, rates
