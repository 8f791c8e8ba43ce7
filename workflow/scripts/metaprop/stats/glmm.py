"""Random-intercept logistic model for proportions (metafor's rma.glmm(measure="PLO")).

events_i ~ Binomial(n_i, expit(x_i'beta + tau * b_i)), b_i ~ N(0, 1), fitted by maximum likelihood
with adaptive Gauss-Hermite quadrature over b_i (7 nodes, as metafor's call to lme4::glmer).
Written by hand because statsmodels has no maximum-likelihood binomial GLMM (its
BinomialBayesMixedGLM is variational Bayes).

How the maximum is found, so that it is the maximum on every dataset:
- each study's integrand has one mode in b, inside a known bracket; a bracketed Newton finds it;
- gradient and Hessian of the quadrature log-likelihood are exact (second-order forward-mode
  differentiation, written out in `_log_marginal`), so standard errors do not depend on finite-difference steps
  or the CPU;
- the likelihood is profiled over tau on a grid from 0 to `TAU_MAX` (for fixed tau the problem in
  beta is concave), the best grid point refined by a bracketed Newton on the profile's derivative;
  tau = 0 (boundary) and divergence (the profile still rising at `TAU_MAX`) are read off the profile.
Every function fits a batch of m problems at once (studies padded, `mask` False for padding).
"""

import functools

import numpy as np

# scipy.special, not scipy.stats: the functions scipy.stats calls, without its 1 s import in every job
from scipy import special
from scipy.special import expit, gammaln, log_expit, logit

from metaprop.stats.pooling import prediction_interval, standardised_design, typical_within_variance
from metaprop.stats.proportions import logit_effects

TAU_MAX = 100.0
# tau grid of the profile: 0, then geometric to TAU_MAX (ratio ~1.2, so separate modes are not stepped over)
TAU_GRID = np.concatenate([[0.0], np.geomspace(0.01, TAU_MAX, 50)])
_STEP_TOL = 1e-13
# leave-one-out sets of this many studies or more start from a local grid around the full fit's tau
LOCAL_MIN_K = 30
LOCAL_GRID = np.array([0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.4, 2.0, 4.0])
_BATCH_STUDIES = 50_000  # studies evaluated together at most: bounds memory (about 5 kB a study in flight)
# leave-one-out of this many studies or more interpolates the sum over studies (see leave_one_out_glmm)
SURROGATE_MIN_K = 200
_CHEB_NODES = 12
_SURROGATE_TOL = 1e-9  # largest error of the interpolated log-likelihood allowed, absolute


class _Jet:
    """A value with its exact first and second derivatives in two variables (eta, tau): the rows of a stacked array
    (6, ...) of value, d/deta, d/dtau, d2/deta2, d2/deta dtau, d2/dtau2 (as `_log_marginal` computes them).
    """

    def __init__(self, stack):
        self.v, self.e, self.t, self.ee, self.et, self.tt = stack

    def parts(self):
        return self.v, self.e, self.t, self.ee, self.et, self.tt


# Second-order forward-mode differentiation, jets stacked along a leading axis: one numpy call acts on every row
# (used along the quadrature nodes, where arrays are largest). Six rows (value, d/deta, d/dtau, d2/deta2,
# d2/deta dtau, d2/dtau2) or, without tau's derivatives, three (value, d/deta, d2/deta2). The chain rule's terms
# are added in the order of `_mul`.


def _jet_mul(a, b):
    """The product of two stacked jets (any further axes broadcast)."""
    out = a[0] * b
    out[1:] += b[0] * a[1:]
    if len(a) == 3:
        out[2] += (a[1] + a[1]) * b[1]
        return out
    out[3:6:2] += (a[1:3] + a[1:3]) * b[1:3]  # d2/deta2 and d2/dtau2: 2 a' b'
    out[4] += a[1] * b[2]
    out[4] += a[2] * b[1]
    return out


def _jet_apply(x, f0, f1, f2):
    """f(x) for a stacked jet x, given f, f' and f'' at x's value."""
    out = np.empty((len(x),) + np.shape(f1))
    out[0] = f0
    np.multiply(f1, x[1:], out=out[1:])
    if len(x) == 3:
        out[2] += (f2 * x[1]) * x[1]
        return out
    cross = f2 * x[1:3]
    out[3:5] += cross[0] * x[1:3]  # f'' x_eta x_eta, f'' x_eta x_tau
    out[5] += cross[1] * x[2]
    return out


def _binomial_derivatives(t, events, n):
    """log p(events | n, expit(t)) without the binomial coefficient, and its derivatives 1 to 4 in t.

    Written with expit(t) and expit(-t) so that nothing cancels for n up to 10^9 or events at 0 or n.
    """
    p, q = expit(t), expit(-t)
    pq = p * q
    return (
        events * log_expit(t) + (n - events) * log_expit(-t),
        events * q - (n - events) * p,
        -n * pq,
        -n * pq * (q - p),
        -n * pq * (1 - 6 * pq),
    )


def _log_binomial(t, events, n):
    """log Binomial(events | n, expit(t)), binomial coefficient included."""
    return _binomial_derivatives(t, events, n)[0] + gammaln(n + 1) - gammaln(events + 1) - gammaln(n - events + 1)


class _Studies:
    """Per-study constants of the likelihood (events, n of one shape), computed once for a batch's many evaluations."""

    def __init__(self, events, n):
        self.events, self.n = events, n
        self.rest, self.minus_n = n - events, -n
        self.none, self.all = events == 0, events == n
        self.one_sided = bool(self.none.any() or self.all.any())
        with np.errstate(divide="ignore"):
            self.own = logit(events / n)
        # along a trailing axis of quadrature nodes
        self.node_events, self.node_rest, self.node_minus_n = events[..., None], self.rest[..., None], -n[..., None]

    @functools.cached_property
    def fills(self):
        """Arrays of 0, 1, 1/2 and the step tolerance in the studies' shape (operands of the modes' search)."""
        return tuple(np.full(self.events.shape, c) for c in (0.0, 1.0, 0.5, _STEP_TOL))

    @functools.cached_property
    def log_choose(self):
        """log binomial coefficient minus log sqrt(2 pi), the constant of each study's log marginal."""
        return gammaln(self.n + 1) - gammaln(self.events + 1) - gammaln(self.n - self.events + 1) - 0.5 * np.log(2 * np.pi)

    def slopes(self, t):
        """Derivatives 1 to 4 in t of the binomial log-likelihood (as `_binomial_derivatives`)."""
        p, q = expit(t), expit(-t)
        pq = p * q
        d2 = self.minus_n * pq
        return self.events * q - self.rest * p, d2, d2 * (q - p), d2 * (1 - 6 * pq)

    def curvatures(self, t):
        """`slopes` 2 to 4."""
        p, q = expit(t), expit(-t)
        pq = p * q
        d2 = self.minus_n * pq
        return d2, d2 * (q - p), d2 * (1 - 6 * pq)


def _bracketed_newton(f_and_slope, low, high, start, maxiter=200):
    """Roots of decreasing functions (elementwise) in [low, high], f(low) >= 0 >= f(high): Newton's step, or
    bisection when that step leaves the bracket or would not halve the last step (as Numerical Recipes' rtsafe),
    so the iteration can neither leave the bracket nor cycle inside it. `f_and_slope(x, where)` evaluates the
    elements `where` (flat indices) at x; only elements still moving are evaluated."""
    shape = np.shape(start)
    x, low, high = (np.ravel(np.broadcast_to(a, shape)).astype(float) for a in (start, low, high))
    x = np.clip(x, low, high)
    last_step = high - low
    where = np.arange(x.size)
    for _ in range(maxiter):
        if where.size == 0:
            break
        xs, lo, hi = x[where], low[where], high[where]
        fx, slope = f_and_slope(xs, where)
        lo, hi = np.where(fx > 0, xs, lo), np.where(fx < 0, xs, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -fx / slope
        newton = xs + step
        use = (newton >= lo) & (newton <= hi) & np.isfinite(newton) & (np.abs(2 * step) <= np.abs(last_step[where]))
        new = np.where(fx == 0, xs, np.where(use, newton, (lo + hi) / 2))
        moved = new - xs
        x[where], low[where], high[where], last_step[where] = new, lo, hi, moved
        where = where[np.abs(moved) > _STEP_TOL * (1 + np.abs(new))]
    return x.reshape(shape)


def conditional_modes(eta, tau, events, n, start=None):
    """Mode in b of log p(events_i | b) + log N(b; 0, 1), for each study (arrays broadcast).

    `start`: modes to start from (e.g. those of a nearby eta and tau). Solved for t = eta + tau b: events expit(-t) - (n - events) expit(t) = (t - eta) / tau^2, whose root lies
    between eta and the study's own logit (towards -inf with 0 events, +inf with all events, by at most
    tau^2 n expit(+-eta)).
    """
    eta, tau, events, n = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (eta, tau, events, n)))
    return _modes(eta, tau, _Studies(events, n), start)


def _modes(eta, tau, studies, start=None, maxiter=200):
    """conditional_modes for the studies' constants (arrays of one shape): the bracketed Newton of
    `_bracketed_newton`, written out on whole arrays (a converged element is no longer updated, so each element
    takes the same steps as there), with array operands only (a Python number costs a conversion per call)."""
    if np.ndim(eta) == 0:  # one study: updated in place below, so as an array of one
        one = _Studies(np.reshape(studies.events, 1), np.reshape(studies.n, 1))
        return np.asarray(_modes(np.reshape(eta, 1), np.reshape(tau, 1), one,
                                 None if start is None else np.reshape(start, 1), maxiter)[0])
    positive = tau > 0
    every = np.count_nonzero(positive) == positive.size
    tau2 = tau * tau if every else np.where(positive, tau * tau, 1.0)
    own = studies.own
    if studies.one_sided:
        n = studies.n
        own = np.where(studies.none, eta - tau2 * n * expit(eta),
                       np.where(studies.all, eta + tau2 * n * expit(-eta), own))
    low, high = np.minimum(eta, own), np.maximum(eta, own)
    if start is None:
        d1, d2 = studies.slopes(eta)[:2]
        start = eta + tau2 * d1 / (1 - tau2 * d2)  # Newton's step from eta
    else:
        start = eta + tau * start
    x = np.clip(start, low, high)
    last_size = high - low
    # within finite bounds a Newton step that is not finite is outside them, so needs no test of its own
    bounded = np.count_nonzero(np.isfinite(last_size)) == x.size
    events, rest, minus_n, inverse = studies.events, studies.rest, studies.minus_n, 1 / tau2
    zero, one, half, tol = studies.fills
    active = None  # every element moving
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(maxiter):
            p, q = expit(x), expit(-x)
            fx = events * q - rest * p - (x - eta) / tau2
            step = fx / (inverse - minus_n * p * q)  # -f / f', f' = -n p q - 1 / tau^2
            np.copyto(low, x, where=fx > zero)
            np.copyto(high, x, where=fx < zero)
            newton = x + step
            use = (newton >= low) & (newton <= high)
            if not bounded:
                use &= np.isfinite(newton)
            size = np.abs(step)
            use &= size + size <= last_size
            new = (low + high) * half  # bisection, unless Newton's step is taken
            np.copyto(new, newton, where=use)
            np.copyto(new, x, where=fx == zero)
            last_size = np.abs(new - x)
            moving = last_size > tol * (one + np.abs(new))
            if active is None:
                x = new
                if np.count_nonzero(moving) == moving.size:
                    continue
                active = moving
            else:
                np.copyto(x, new, where=active)
                active &= moving
            if not np.count_nonzero(active):
                break
    if every:
        return (x - eta) / tau
    return np.where(positive, (x - eta) / np.where(positive, tau, 1.0), 0.0)


@functools.cache
def _hermite(nagq):
    """Gauss-Hermite nodes and weights, computed once per number of nodes (each fit evaluates them dozens of times)."""
    nodes, weights = np.polynomial.hermite.hermgauss(nagq)
    return nodes, weights, 2 * nodes, nodes**2


def _study_log_marginal(eta, tau, events, n, nagq, start=None):
    """Each study's quadrature log marginal likelihood (binomial coefficient included) as a `_Jet` in (eta, tau),
    and the conditional modes (found from `start`, if given)."""
    eta, tau, events, n = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (eta, tau, events, n)))
    stack, mode = _log_marginal(eta, tau, _Studies(events, n), nagq, start)
    return _Jet(stack), mode


def _mul(a, b):
    """The product of two jets (tuples of six arrays)."""
    av, ae, at, aee, aet, att = a
    bv, be, bt, bee, bet, btt = b
    return (av * bv, av * be + bv * ae, av * bt + bv * at, av * bee + bv * aee + (ae + ae) * be,
            av * bet + bv * aet + ae * bt + at * be, av * btt + bv * att + (at + at) * bt)


def _apply(x, f0, f1, f2):
    """f(x) for a jet x (tuple of six arrays), given f, f' and f'' at x's value."""
    _, e, t, ee, et, tt = x
    f2e = f2 * e
    return f0, f1 * e, f1 * t, f1 * ee + f2e * e, f1 * et + f2e * t, f1 * tt + (f2 * t) * t


def _reciprocal(apply, x):
    v = x[0]
    return apply(x, 1 / v, -1 / v**2, 2 / v**3)


def _eta_plus_tau_times(eta, tau, b):
    """The jet eta + tau b, eta and tau being the two variables."""
    bv, be, bt, bee, bet, btt = b
    return tau * bv + eta, tau * be + 1.0, tau * bt + bv, tau * bee, tau * bet + be, tau * btt + (bt + bt)


def _times_tau(tau, x):
    """tau x, tau being the second variable."""
    xv, xe, xt, xee, xet, xtt = x
    return tau * xv, tau * xe, tau * xt + xv, tau * xee, tau * xet + xe, tau * xtt + (xt + xt)


def _times_tau2(tau2, x):
    """(tau tau) x; `tau2` = (tau tau, tau + tau, 2 (tau + tau)), the nonzero parts of the jet tau tau."""
    square, twice, twice2 = tau2
    xv, xe, xt, xee, xet, xtt = x
    return (square * xv, square * xe, square * xt + xv * twice, square * xee, square * xet + twice * xe,
            square * xtt + (xv + xv) + twice2 * xt)


# the same without tau's derivatives: jets (value, d/deta, d2/deta2), whose terms involve no other row


def _mul_eta(a, b):
    av, ae, aee = a
    bv, be, bee = b
    return av * bv, av * be + bv * ae, av * bee + bv * aee + (ae + ae) * be


def _apply_eta(x, f0, f1, f2):
    _, e, ee = x
    return f0, f1 * e, f1 * ee + (f2 * e) * e


def _eta_plus_tau_times_eta(eta, tau, b):
    bv, be, bee = b
    return tau * bv + eta, tau * be + 1.0, tau * bee


def _times_tau_eta(tau, x):
    return tau * x[0], tau * x[1], tau * x[2]


def _times_tau2_eta(tau2, x):
    square = tau2[0]
    return square * x[0], square * x[1], square * x[2]


def _log_marginal(eta, tau, studies, nagq, start=None, tau_too=True):
    """`_study_log_marginal` for the studies' constants (eta, tau of their shape): the stacked jet (6, ...) and the
    modes.

    The jets are written out (tuples of arrays, and stacked arrays (6, ...) along the quadrature nodes) with the
    chain rule's terms added in the order of the general formulas (`_mul`, `_apply`); terms that are exactly zero
    (derivatives of eta, tau and of the first mode, a constant) are left out. Batches are small, so the cost is per
    numpy call."""
    mode = _modes(eta, tau, studies, start)
    if tau_too:
        mul, apply, shift, times_tau, times_tau2 = _mul, _apply, _eta_plus_tau_times, _times_tau, _times_tau2
        twice = tau + tau
        tau2 = (tau * tau, twice, twice + twice)
    else:
        mul, apply, shift, times_tau, times_tau2 = (_mul_eta, _apply_eta, _eta_plus_tau_times_eta, _times_tau_eta,
                                                    _times_tau2_eta)
        tau2 = (tau * tau,)
    # first Newton step from b = mode (a constant): t = eta + tau b has derivatives 1, b, 0, 0, 0
    d1, d2, d3, d4 = studies.slopes(tau * mode + eta)
    if tau_too:
        d2b, d3b, d4b = d2 * mode, d3 * mode, d4 * mode
        score = (tau * d1 - mode, tau * d2, tau * d2b + d1, tau * d3, tau * d3b + d2, tau * (d3b * mode) + (d2b + d2b))
        slope = times_tau2(tau2, (d2, d3, d3b, d4, d4b, d4b * mode))
    else:
        score, slope = (tau * d1 - mode, tau * d2, tau * d3), times_tau2(tau2, (d2, d3, d4))
    q = mul(score, _reciprocal(apply, (slope[0] - 1.0,) + slope[1:]))
    b = (mode - q[0],) + tuple(-x for x in q[1:])
    # second step, the jets general
    t = shift(eta, tau, b)
    d1, d2, d3, d4 = studies.slopes(t[0])
    score = [s - c for s, c in zip(times_tau(tau, apply(t, d1, d2, d3)), b)]
    slope = times_tau2(tau2, apply(t, d2, d3, d4))
    q = mul(score, _reciprocal(apply, (slope[0] - 1.0,) + slope[1:]))
    b = [c - s for c, s in zip(b, q)]
    t = shift(eta, tau, b)
    d2, d3, d4 = studies.curvatures(t[0])
    c = times_tau2(tau2, apply(t, d2, d3, d4))
    c = (1.0 - c[0],) + tuple(-x for x in c[1:])  # curvature 1 - tau^2 f''(t)
    half = [h + h for h in _reciprocal(apply, c)]  # 2 / c
    root = np.sqrt(half[0])
    scale = apply(half, root, 0.5 / root, -0.25 / half[0]**1.5)
    nodes, weights, twice_nodes, squares = _hermite(nagq)
    # at node j, b_j = b + scale x_j: t_j = t + (tau scale) x_j and b_j^2 = b^2 + 2 b scale x_j + scale^2 x_j^2 are
    # linear in x_j, so only the binomial term needs the chain rule node by node
    t_at = np.array(t)[..., None] + np.array(times_tau(tau, scale))[..., None] * nodes
    pair = np.array([b, scale]).swapaxes(0, 1)
    squares_of = _jet_mul(pair.take([0, 0, 1], axis=1), pair.take([0, 1, 1], axis=1))  # b b, b scale, scale scale
    quadratic = squares_of[:, 0, ..., None] + squares_of[:, 1, ..., None] * twice_nodes + squares_of[:, 2, ..., None] * squares
    v = t_at[0]
    minus_v = -v
    p, q = expit(v), expit(minus_v)
    events, rest = studies.node_events, studies.node_rest
    log_joint = _jet_apply(t_at, events * log_expit(v) + rest * log_expit(minus_v), events * q - rest * p,
                           studies.node_minus_n * (p * q))
    log_joint -= quadratic * 0.5
    # log sum_j w_j exp(log_joint_j + x_j^2), with its derivatives: weighted means over the nodes
    shifted = log_joint[0] + squares
    top = shifted.max(axis=-1)
    share = weights * np.exp(shifted - top[..., None])
    total = share.sum(axis=-1)
    share /= total[..., None]
    if tau_too:
        log_joint[3:5] += log_joint[1:3] * log_joint[1]  # second moments: ee + e e, et + e t, tt + t t
        log_joint[5] += log_joint[2] * log_joint[2]
        me, mt, mee, met, mtt = np.einsum("...j,c...j->c...", share, log_joint[1:])
        out = np.array([top + np.log(total), me, mt, mee - me * me, met - me * mt, mtt - mt * mt])
    else:
        log_joint[2] += log_joint[1] * log_joint[1]
        me, mee = np.einsum("...j,c...j->c...", share, log_joint[1:])
        out = np.array([top + np.log(total), me, mee - me * me])
    sv = scale[0]
    out += apply(scale, np.log(sv), 1 / sv, -1 / sv**2)
    out[0] += studies.log_choose
    return out, mode


def study_log_likelihoods(mu, tau, events, n, nagq=7):
    """Each study's marginal log-likelihood log int Binomial(events | n, expit(mu + tau b)) N(b; 0, 1) db by
    adaptive Gauss-Hermite quadrature with `nagq` nodes around the conditional mode (binomial coefficient
    included); mu, tau, events, n broadcast (e.g. a grid of (mu, tau) against the studies)."""
    jet, _ = _study_log_marginal(mu, np.abs(tau), events, n, nagq)
    return jet.v


def log_likelihood(mu, tau, events, n, nagq=7):
    """Marginal log-likelihood (mu: one value, or one linear predictor per study) by adaptive Gauss-Hermite
    quadrature with `nagq` nodes, binomial coefficients included (lme4's logLik() plus the saturated
    log-likelihood)."""
    events = np.asarray(events, dtype=float)
    return float(study_log_likelihoods(np.broadcast_to(np.asarray(mu, dtype=float), events.shape), tau, events, n,
                                       nagq).sum())


class _Problems:
    """m GLMM fits at once: events, n (m, k), design X (m, k, p), mask (m, k) of the studies that exist."""

    def __init__(self, events, n, X, mask, nagq):
        self.mask = mask
        self.events = np.where(mask, events, 0.0)
        self.n = np.where(mask, n, 1.0)
        self.X = np.where(mask[..., None], X, 0.0)
        self.nagq = nagq
        self.modes = None  # the last modes found, the next search's start
        self.studies = _Studies(self.events, self.n)
        self.weight = mask.astype(float)

    def derivatives(self, beta, tau, tau_too=True):
        """Log-likelihood (m,), gradient (m, p+1) and Hessian (m, p+1, p+1) in (beta, tau), and the modes.
        `tau_too` False: gradient (m, p) and Hessian (m, p, p) in beta only (half the work)."""
        eta = np.einsum("mkp,mp->mk", self.X, beta)
        tau_of = np.empty_like(eta)  # tau of each study: no broadcasting in the many small operations that follow
        tau_of[...] = tau[:, None]
        stack, mode = _log_marginal(eta, tau_of, self.studies, self.nagq, self.modes, tau_too)
        self.modes = mode
        if not tau_too:
            value, g_eta, h_ee = stack * self.weight
            return (value.sum(axis=1), np.einsum("mk,mkp->mp", g_eta, self.X),
                    np.einsum("mk,mkp,mkq->mpq", h_ee, self.X, self.X), mode)
        value, g_eta, g_tau, h_ee, h_et, h_tt = stack * self.weight
        value = value.sum(axis=1)
        grad = np.concatenate([np.einsum("mk,mkp->mp", g_eta, self.X), g_tau.sum(axis=1)[:, None]], axis=1)
        p = self.X.shape[2]
        hess = np.empty((len(value), p + 1, p + 1))
        hess[:, :p, :p] = np.einsum("mk,mkp,mkq->mpq", h_ee, self.X, self.X)
        hess[:, :p, p] = hess[:, p, :p] = np.einsum("mk,mkp->mp", h_et, self.X)
        hess[:, p, p] = h_tt.sum(axis=1)
        return value, grad, hess, mode

    def start(self):
        """Weighted least squares of the studies' logits (with 1/2 added), a start for beta."""
        z = logit((self.events + 0.5) / (self.n + 1))
        w = self.mask / (1 / (self.events + 0.5) + 1 / (self.n - self.events + 0.5))
        xtwx = np.einsum("mk,mkp,mkq->mpq", w, self.X, self.X)
        xtwz = np.einsum("mk,mkp,mk->mp", w, self.X, z)
        return np.linalg.solve(xtwx, xtwz[..., None])[..., 0]

    def maximise_beta(self, beta, tau, maxiter=100, tau_too=True):
        """beta maximising the likelihood at fixed tau (concave there): Newton's method with step halving.
        `tau_too`: as in `derivatives`, for the gradient and Hessian returned."""
        return _halving_newton(lambda b: self.derivatives(b, tau, tau_too)[:3], beta, 1e-10, maxiter)


def _halving_newton(derivatives, beta, tol, maxiter):
    """Newton's method in beta for m concave problems at once, each step halved until the value does not fall;
    `derivatives(beta)` gives (value, gradient, Hessian), whose first beta.shape[1] entries are beta's. Stops when no
    problem moves more than `tol` relative to its beta."""
    p = beta.shape[1]
    value, grad, hess = derivatives(beta)
    for _ in range(maxiter):
        step = _newton_step(hess[:, :p, :p], grad[:, :p])
        size = np.ones(len(beta))
        for _ in range(60):
            trial = beta + size[:, None] * step
            new_value, new_grad, new_hess = derivatives(trial)
            worse = ~(new_value >= value - 1e-12 * np.abs(value))
            if not worse.any():
                break
            size = np.where(worse, size / 2, size)
        moved = np.max(np.abs(size[:, None] * step), axis=1)
        beta, value, grad, hess = trial, new_value, new_grad, new_hess
        if np.all(moved <= tol * (1 + np.max(np.abs(beta), axis=1))):
            break
    return beta, value, grad, hess


def _solve(hess, vector):
    """hess^-1 vector for each problem; a Hessian that underflowed to singular (beta far out, every probability
    at 0 or 1) gets a ridge of 1e-12 of its diagonal instead of failing the whole batch."""
    with np.errstate(all="ignore"):
        if hess.shape[1] == 1:  # one coefficient: the same ridge, and LAPACK's 1 x 1 solve is this division
            h = hess[:, 0]
            out = vector / (h - (1e-12 * (1 + np.abs(h)) + 1e-300))
        else:
            scale = 1e-12 * (1 + np.abs(np.diagonal(hess, axis1=1, axis2=2)).max(axis=1))
            ridge = hess - (scale + 1e-300)[:, None, None] * np.eye(hess.shape[1])
            out = np.linalg.solve(ridge, vector[..., None])[..., 0]
    return np.where(np.isfinite(out), out, 0.0)


def _newton_step(hess, grad, limit=5.0):
    """-hess^-1 grad for each problem, no component larger than `limit` (logit units)."""
    step = -_solve(hess, grad)
    largest = np.abs(step[:, 0]) if step.shape[1] == 1 else np.abs(step).max(axis=1)
    return step * np.minimum(1.0, limit / np.maximum(largest, 1e-300))[:, None]


def _profile_slope(grad, hess):
    """Derivative and curvature of the profile likelihood in tau: d/dtau and the Schur complement."""
    p = grad.shape[1] - 1
    h_bt = hess[:, :p, p]
    solved = _solve(hess[:, :p, :p], h_bt)
    return grad[:, p], hess[:, p, p] - np.einsum("mp,mp->m", h_bt, solved)


def fit_many(events, n, X, mask, nagq=7, grid=TAU_GRID):
    """Maximum-likelihood fits of m problems at once (arrays (m, k) and X (m, k, p), padding masked).

    Returns a dict of arrays: beta (m, p), tau (m,), cov (m, p, p) of beta, loglik (marginal, binomial
    coefficients included), loglik_conditional (metafor's logLik()), boundary, diverged, modes (m, k).
    The covariance of beta comes from the joint (beta, tau) information, as lme4's vcov does, or from beta's
    alone on the boundary tau = 0. `grid`: the tau values profiled first (0 first, increasing); the maximum is
    refined between the best one's neighbours, and a best value at the last one counts as divergence.

    A fit depends on its inputs alone, and one process often fits the same set twice (a subgroup pooled, then
    its leave-one-out's full fit; overlap rules that keep the same trials): the last `_FITS_KEPT` fits of up to
    `_FITS_MAX_STUDIES` studies are kept by their inputs' bytes and handed out as copies.
    """
    inputs = [np.ascontiguousarray(a, dtype=float) for a in (events, n, X, grid)] + [np.asarray(mask, dtype=bool)]
    if inputs[0].size > _FITS_MAX_STUDIES:
        return _fit_many(events, n, X, mask, nagq, grid)
    key = (nagq,) + tuple((a.shape, a.tobytes()) for a in inputs)
    fit = _FITS.pop(key, None)
    if fit is None:
        fit = _fit_many(events, n, X, mask, nagq, grid)
        if len(_FITS) >= _FITS_KEPT:
            del _FITS[next(iter(_FITS))]  # the least recently used
    _FITS[key] = fit
    return {name: value.copy() for name, value in fit.items()}


_FITS = {}  # fit_many's recent fits, least recently used first (clear it after changing this module's constants)
_FITS_KEPT = 32
_FITS_MAX_STUDIES = 20_000  # larger batches are not kept: their keys and results would hold much memory


def _fit_many(events, n, X, mask, nagq, grid, search_again=True):
    """fit_many without the memory of recent fits. Problems whose every study has n = 1 (binary data) get
    `_fit_binary`; a batch without one takes the path below unchanged (its results bit-identical)."""
    binary = np.all(~np.asarray(mask, dtype=bool) | (np.asarray(n, dtype=float) == 1), axis=1)
    if binary.any():
        return _fit_split(events, n, X, mask, nagq, grid, binary)
    prob = _Problems(*(np.asarray(a, dtype=float) for a in (events, n, X)), np.asarray(mask, dtype=bool), nagq)
    m, p = len(prob.events), prob.X.shape[2]
    beta = prob.start()
    beta, at_zero = prob.maximise_beta(beta, np.zeros(m), tau_too=False)[:2]
    profile, betas = [], []
    for tau in grid:
        # one Newton step in beta from the previous grid point's maximum: beta(tau) moves little between grid points,
        # and the quadratic model's gain gives the profile value to second order
        value, grad, hess, _ = prob.derivatives(beta, np.full(m, tau), tau_too=False)  # beta's derivatives only
        step = _newton_step(hess[:, :p, :p], grad[:, :p])
        beta = beta + step
        profile.append(value + 0.5 * np.einsum("mp,mp->m", grad[:, :p], step))
        betas.append(beta)
    profile, betas = np.array(profile).T, np.array(betas).transpose(1, 0, 2)
    best = np.argmax(profile, axis=1)
    rows = np.arange(m)
    beta, grid_best = betas[rows, best], profile[rows, best]
    diverged = best == len(grid) - 1

    # refine: a bracketed Newton on the profile's derivative, between the best grid point's neighbours
    tau0 = grid[best]
    beta, grid_best, grad, hess = prob.maximise_beta(beta, tau0)
    slope, curve = _profile_slope(grad, hess)
    rising = np.where(best == 0, curve > 0, slope > 0)  # at tau = 0 the slope is 0 and the curvature decides
    low = np.where(rising, tau0, grid[np.maximum(best - 1, 0)])
    high = np.where(rising, grid[np.minimum(best + 1, len(grid) - 1)], tau0)
    boundary = (best == 0) & ~rising
    active = ~boundary & ~diverged
    tau = tau0.copy()
    for _ in range(100):  # joint Newton steps in (beta, tau), tau kept in its bracket: one evaluation each
        if not active.any():
            break
        _, grad, hess, _ = prob.derivatives(beta, tau)
        h_bb, h_bt = hess[:, :p, :p], hess[:, :p, p]
        to_optimum = _solve(h_bb, grad[:, :p])  # beta's Newton step at this tau, negated
        along = _solve(h_bb, h_bt)  # how beta's optimum moves with tau, negated
        slope = np.where(active, grad[:, p] - np.einsum("mp,mp->m", h_bt, to_optimum), 0.0)
        curve = hess[:, p, p] - np.einsum("mp,mp->m", h_bt, along)
        low = np.where(slope > 0, tau, low)
        high = np.where(slope < 0, tau, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = tau - slope / curve
        inside = (newton >= low) & (newton <= high) & (curve < 0)
        new = np.where(active, np.where(slope == 0, tau, np.where(inside, newton, (low + high) / 2)), tau)
        new_beta = beta - to_optimum - along * (new - tau)[:, None]
        new_beta = np.where(active[:, None] & np.isfinite(new_beta), new_beta, beta)
        active &= (np.abs(new - tau) > 1e-12 * (1 + tau)) | (np.max(np.abs(new_beta - beta), axis=1) > 1e-10)
        beta, tau = new_beta, new
    beta, value, grad, hess = prob.maximise_beta(beta, tau)
    # the refined point must not fall below the best grid point (e.g. a Newton step onto a lesser mode)
    fell = value < grid_best - 1e-10 * (1 + np.abs(grid_best))
    tau = np.where(fell, tau0, tau)
    if fell.any():
        beta, value, grad, hess = prob.maximise_beta(np.where(fell[:, None], betas[rows, best], beta), tau)

    cov = np.full((m, p, p), np.nan)
    with np.errstate(invalid="ignore"):
        info = -hess
        # an interior point where the likelihood is not concave is no verified maximum: no estimate, a note
        not_concave = ~boundary & ~diverged & ~_positive_definite(info)
        interior = ~boundary & ~diverged & ~not_concave
        if interior.any():
            cov[interior] = np.linalg.inv(info[interior])[:, :p, :p]
        if boundary.any():
            cov[boundary] = np.linalg.inv(info[boundary][:, :p, :p])
    eta = np.einsum("mkp,mp->mk", prob.X, beta)
    modes = conditional_modes(eta, tau[:, None], prob.events, prob.n)
    # metafor's logLik() of rma.glmm: the saturated log-likelihood minus half lme4's (conditional) deviance, i.e.
    # the binomial log-likelihood at the conditional modes
    conditional = (_log_binomial(eta + tau[:, None] * modes, prob.events, prob.n) * prob.mask).sum(axis=1)
    out = {"beta": beta, "tau": tau, "cov": cov, "loglik": value, "loglik_conditional": conditional,
           "gradient": grad, "boundary": boundary, "diverged": diverged, "not_concave": not_concave, "modes": modes,
           "binary": np.zeros(m, dtype=bool)}
    # a search that ends below the likelihood at tau = 0 has not found the maximum (the profile's one-step values
    # misled it on a nearly flat ridge): searched again from the exact profile; never taken by a fit that succeeds
    out["fell"] = ~diverged & (value < at_zero - 1e-9 * (1 + np.abs(at_zero)))
    if search_again and out["fell"].any():
        _search_again(out, prob, nagq, grid, at_zero)
    return out


def _search_again(out, prob, nagq, grid, at_zero):
    """For the fits of `out` that fell below their likelihood at tau = 0: the profile evaluated exactly (beta
    maximised at every grid point), then the search rerun on the grid points around its best one (the last grid
    point still meaning divergence); fits that fall again keep `fell`, and the note says no maximum was found."""
    for row in np.flatnonzero(out["fell"]):
        one = _Problems(prob.events[row:row + 1], prob.n[row:row + 1], prob.X[row:row + 1], prob.mask[row:row + 1],
                        nagq)
        beta, profile = one.start(), []
        for tau in grid:
            beta, value = one.maximise_beta(beta, np.array([tau]), tau_too=False)[:2]
            profile.append(float(value[0]))
        best = int(np.argmax(profile))
        local = grid[-3:] if best == len(grid) - 1 else grid[max(best - 1, 1):best + 3]
        local = np.concatenate([[0.0], local[local > 0]])
        fit = _fit_many(one.events, one.n, one.X, one.mask, nagq, local, search_again=False)
        fit["fell"] = ~fit["diverged"] & (fit["loglik"] < at_zero[row] - 1e-9 * (1 + abs(at_zero[row])))
        for key in out:
            out[key][row] = fit[key][0]


def _fit_split(events, n, X, mask, nagq, grid, binary):
    """_fit_many of a batch with binary problems: those by `_fit_binary`, the others by `_fit_many`, merged."""
    events, n, X, mask = (np.asarray(a) for a in (events, n, X, mask))
    out = _fit_binary(events[binary], X[binary], mask[binary].astype(bool))
    if (~binary).any():
        rest = _fit_many(events[~binary], n[~binary], X[~binary], mask[~binary], nagq, grid)
        merged = {}
        for key, value in out.items():
            merged[key] = np.empty((len(binary),) + value.shape[1:], dtype=value.dtype)
            merged[key][binary], merged[key][~binary] = value, rest[key]
        out = merged
    return out


def _fit_binary(events, X, mask, maxiter=200):
    """Fits of problems whose every study has n = 1: tau = 0 and beta the logistic regression's.

    With one patient per study, study i's marginal likelihood is P_i^y (1 - P_i)^(1 - y) with
    P_i = E[expit(x_i'beta + tau z)]: for every tau some beta gives the same P_i (exactly so with an intercept or
    a factor), so the likelihood is flat along a ridge and tau is not identified (7-node quadrature tilts that
    ridge by its own error, which is how a fit ends far along it). Its maximum at tau = 0, where quadrature is
    exact, is the maximum of the exact likelihood; rows carry `binary` so that the note can say so.
    """
    events, X = np.where(mask, events, 0.0), np.where(mask[..., None], X, 0.0)
    m, p = len(events), X.shape[2]

    def derivatives(beta):
        eta = np.einsum("mkp,mp->mk", X, beta)
        value = ((events * log_expit(eta) + (1 - events) * log_expit(-eta)) * mask).sum(axis=1)
        prob = expit(eta)
        grad = np.einsum("mk,mkp->mp", (events - prob) * mask, X)
        hess = -np.einsum("mk,mkp,mkq->mpq", prob * expit(-eta) * mask, X, X)
        return value, grad, hess

    # start: the intercept at the mean rate (its exact maximum without covariates), then Newton with step halving
    rate = np.clip(events.sum(axis=1) / mask.sum(axis=1), 1e-12, 1 - 1e-12)
    beta = np.zeros((m, p))
    beta[:, 0] = logit(rate)
    beta, value, grad, hess = _halving_newton(derivatives, beta, 1e-12, maxiter)
    cov = np.full((m, p, p), np.nan)
    with np.errstate(invalid="ignore"):
        definite = _positive_definite(-hess)
        if definite.any():
            cov[definite] = np.linalg.inv(-hess[definite])
    full_grad = np.concatenate([grad, np.zeros((m, 1))], axis=1)
    # with tau = 0 the marginal and the conditional log-likelihoods are the same binomial log-likelihood
    return {"beta": beta, "tau": np.zeros(m), "cov": cov, "loglik": value, "loglik_conditional": value.copy(),
            "gradient": full_grad, "boundary": np.ones(m, dtype=bool), "diverged": np.zeros(m, dtype=bool),
            "not_concave": np.zeros(m, dtype=bool), "modes": np.zeros(events.shape), "binary": np.ones(m, dtype=bool),
            "fell": np.zeros(m, dtype=bool)}


def _positive_definite(matrices):
    """Per matrix of a stack: all eigenvalues finite and positive."""
    finite = np.isfinite(matrices).all(axis=(1, 2))
    values = np.linalg.eigvalsh(np.where(finite[:, None, None], matrices, np.eye(matrices.shape[-1])))
    return finite & (values > 0).all(axis=1)


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
    return q, df, (float(special.chdtrc(df, q)) if df > 0 else np.nan)


BINARY_NOTE = ("every trial has n = 1: tau^2 is not identifiable (with one patient per trial the likelihood depends "
               "on mu and tau only through the mean rate), so tau^2 = 0 and the pooled rate is the common rate")
POOLED_KEYS = ["estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high",
               "i2", "i2_ci_low", "i2_ci_high", "h2", "loglik", "loglik_marginal"]


def pool_glmm_many(datasets, nagq=7, level=0.95, near_tau=None):
    """pool_glmm for many (events, n) pairs, fitted together in batches of one size (e.g. every leave-one-out set).

    `near_tau`: for sets that differ little from one whose tau is known (leave-one-out sets of a fit with
    `LOCAL_MIN_K` studies or more), the profile is searched on a local grid around it first; a set whose best
    local value is at the grid's top is searched again on the whole grid.
    """
    results, batch = [], []
    for events, n in datasets:
        out, ready = _pool_glmm_special(np.asarray(events, float), np.asarray(n, float), level)
        results.append(out)
        if not ready:
            batch.append(len(results) - 1)
    sizes = [len(datasets[i][0]) for i in batch]
    for k in sorted(set(sizes)):  # sets of one size together: no padding
        same = [i for i, size in zip(batch, sizes) if size == k]
        grid = TAU_GRID
        if near_tau is not None and k >= LOCAL_MIN_K:
            grid = np.concatenate([[0.0], np.unique(np.maximum(near_tau, 0.05) * LOCAL_GRID)])
        for chunk in range(0, len(same), max(1, _BATCH_STUDIES // k)):  # bounded memory
            part = same[chunk:chunk + max(1, _BATCH_STUDIES // k)]
            events = np.array([datasets[i][0] for i in part], dtype=float)
            n = np.array([datasets[i][1] for i in part], dtype=float)
            fit = fit_many(events, n, np.ones(events.shape + (1,)), np.ones(events.shape, dtype=bool), nagq, grid)
            again = fit["diverged"] & (grid[-1] < TAU_MAX)
            if again.any():
                full = fit_many(events[again], n[again], np.ones(events[again].shape + (1,)),
                                np.ones(events[again].shape, dtype=bool), nagq)
                for key in fit:
                    fit[key][again] = full[key]
            for row, i in enumerate(part):
                _fill_pooled(results[i], fit, row, events[row], n[row], level, nagq)
    return results


def pool_glmm(events, n, nagq=7, level=0.95):
    """Maximum-likelihood random-intercept logistic model; same keys as pool_inverse_variance.

    Extra keys: `boundary` (tau^2 estimated at 0), `note` (why a value is missing), `loglik` (metafor's
    logLik()) and `loglik_marginal` (the maximised quadrature log-likelihood). One study: the fixed-effect
    logistic estimate, no tau^2. Every study with 0 events (or every study with all events): no finite
    estimate, which the note says.
    """
    return pool_glmm_many([(events, n)], nagq, level)[0]


def _pool_glmm_special(events, n, level):
    """The row of a dataset that needs no fit (one study, or no finite estimate), or a blank row to fill."""
    k = len(events)
    nan = float("nan")
    out = dict.fromkeys(POOLED_KEYS, nan)
    out.update(k=float(k), boundary=False, note="")
    out["q"], out["q_df"], out["q_p"] = likelihood_ratio_heterogeneity(events, n)
    if np.all(events == 0) or np.all(events == n):
        out["note"] = "no finite maximum-likelihood estimate: every study has " + (
            "0 events" if np.all(events == 0) else "all events"
        )
        return out, True
    if k == 1:
        # a lone study: fixed-effect logistic regression, i.e. its own log odds and Wald interval
        z = special.ndtri(1 - (1 - level) / 2)
        estimate = np.log(events[0] / (n[0] - events[0]))
        se = np.sqrt(1 / events[0] + 1 / (n[0] - events[0]))
        loglik = float(_log_binomial(estimate, events[0], n[0]))
        out.update(estimate=estimate, se=se, ci_low=estimate - z * se, ci_high=estimate + z * se, loglik=loglik,
                   loglik_marginal=loglik, note="one study: no between-study variance")
        return out, True
    return out, False


QUADRATURE_CHECK_NODES = 31  # the fit's log-likelihood is evaluated again with this many nodes
QUADRATURE_TOLERANCE = 1e-3  # log-likelihood units: beyond, the note says the quadrature is not accurate here
QUADRATURE_CHECK_MAX_K = 500  # the check costs k x 31 evaluations a fit: above, leave-one-out would cost k^2 x 31


def quadrature_error(loglik, mu, tau, events, n, nagq):
    """How far the fit's `nagq`-node log-likelihood `loglik` at (mu, tau) is from the QUADRATURE_CHECK_NODES-node
    one: on ordinary data 1e-5 or less; with trials of one or two patients at a very large tau the integrand is too
    sharp for few nodes, and the maximum found is then one of the quadrature's, not the likelihood's (which the note
    says)."""
    if nagq >= QUADRATURE_CHECK_NODES or not tau > 0 or len(events) > QUADRATURE_CHECK_MAX_K:
        return 0.0
    k = len(events)
    at = (np.full(k, mu), np.full(k, tau), np.asarray(events, dtype=float), np.asarray(n, dtype=float))
    return abs(float(_study_log_marginal(*at, QUADRATURE_CHECK_NODES)[0].v.sum()) - loglik)


def _fill_pooled(out, fit, row, events, n, level, nagq=7):
    """Fill a pooled row from row `row` of a batch fit."""
    z = special.ndtri(1 - (1 - level) / 2)
    k = len(events)
    out["loglik"], out["loglik_marginal"] = float(fit["loglik_conditional"][row]), float(fit["loglik"][row])
    if fit["diverged"][row]:
        out["note"] = (f"no finite maximum-likelihood estimate: tau^2 diverges (the profile likelihood still rises at tau^2 = "
                       f"{TAU_MAX**2:.0f})")
        out["loglik"] = out["loglik_marginal"] = float("nan")
        return
    if "fell" in fit and fit["fell"][row]:
        out["note"] = ("no maximum-likelihood estimate found: the search ended below the likelihood at tau^2 = 0 "
                       "(the likelihood is nearly flat in tau)")
        out["loglik"] = out["loglik_marginal"] = float("nan")
        return
    if fit["not_concave"][row]:
        out["note"] = (f"no finite maximum-likelihood estimate found: the likelihood is not concave at the best point "
                       f"reached (tau^2 = {float(fit['tau'][row]) ** 2:.3g}, where quadrature with few nodes can be unreliable)")
        out["loglik"] = out["loglik_marginal"] = float("nan")
        return
    mu, se, tau2 = float(fit["beta"][row, 0]), float(np.sqrt(fit["cov"][row, 0, 0])), float(fit["tau"][row]) ** 2
    out["boundary"] = bool(fit["boundary"][row])
    if "binary" in fit and fit["binary"][row]:
        out["note"] = BINARY_NOTE
    elif out["boundary"]:
        out["note"] = "tau^2 estimated at the boundary 0"
    elif tau2 > 100:
        out["note"] = f"tau^2 = {tau2:.3g} is very large: the likelihood is nearly flat in tau"
    error = quadrature_error(out["loglik_marginal"], mu, np.sqrt(tau2), events, n, nagq)
    if error > QUADRATURE_TOLERANCE:
        out["note"] = "; ".join(x for x in (out["note"], (
            f"the {nagq}-node quadrature is not accurate at this fit (its log-likelihood is {error:.3g} from a "
            f"{QUADRATURE_CHECK_NODES}-node evaluation): tau^2 and the pooled estimate are approximate")) if x)
    _, v = logit_effects(events, n)
    s2 = float(typical_within_variance(v)[0])
    pi_low, pi_high = prediction_interval(mu, se, tau2, k, level)
    out.update(
        estimate=mu, se=se, ci_low=mu - z * se, ci_high=mu + z * se, pi_low=float(pi_low),
        pi_high=float(pi_high), tau2=tau2, i2=tau2 / (tau2 + s2), h2=(tau2 + s2) / s2,
    )


def leave_one_out_glmm(events, n, nagq=7, level=0.95):
    """pool_glmm of the studies without each one in turn (a list of k rows).

    Up to `SURROGATE_MIN_K` studies every set is fitted in one batch. Above, refitting k sets of k - 1 studies
    costs k^2 study evaluations a step, so the sum over all studies is replaced by its Chebyshev interpolant on a
    box around the full fit that holds every refit; each refit is then exact for its own study. The interpolant
    is checked against the exact sum at points off its nodes, and the refits of the most influential studies
    against the exact likelihood; if either check fails, every set is fitted exactly.
    """
    events, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)

    def sets():  # made one at a time: all k at once would hold k^2 numbers (1.6 GB at 10,000 studies)
        return ((np.delete(events, i), np.delete(n, i)) for i in range(len(events)))

    if len(events) > 2 and np.all(n == 1):
        # single-patient trials: a set is fixed by the responder count it keeps, so each distinct set is fitted once
        fits = {v: pool_glmm_many([(np.delete(events, i), n[1:])], nagq, level)[0]
                for v, i in zip(*np.unique(events, return_index=True))}
        return [dict(fits[v]) for v in events]
    full = fit_many(events[None], n[None], np.ones((1, len(events), 1)), np.ones((1, len(events)), bool), nagq)
    if len(events) >= SURROGATE_MIN_K and not full["diverged"][0] and not full["boundary"][0]:
        fit = _leave_one_out_by_surrogate(events, n, float(full["beta"][0, 0]), float(full["tau"][0]), nagq)
        if fit is not None:
            results = []
            for row, (e, size) in enumerate(sets()):
                out, ready = _pool_glmm_special(e, size, level)
                if not ready:
                    _fill_pooled(out, fit, row, e, size, level, nagq)
                results.append(out)
            return results
    return pool_glmm_many(list(sets()), nagq, level, near_tau=float(full["tau"][0]))


def _sum_log_marginal(mu, tau, events, n, nagq):
    """sum_i log L_i(mu, tau) at many (mu, tau) points (flat arrays), in chunks of bounded memory."""
    out = np.empty(len(mu))
    step = max(1, _BATCH_STUDIES // len(events))
    for start in range(0, len(mu), step):
        part = slice(start, start + step)
        jet, _ = _study_log_marginal(mu[part, None], tau[part, None], events, n, nagq)
        out[part] = jet.v.sum(axis=1)
    return out


def _leave_one_out_by_surrogate(events, n, mu, tau, nagq):
    """Leave-one-out fits with the sum over studies interpolated (see leave_one_out_glmm); None if not accurate."""
    from numpy.polynomial import chebyshev as cheb

    k = len(events)
    jet, _ = _study_log_marginal(np.full(k, mu), np.full(k, tau), events, n, nagq)
    grad = np.stack([jet.e, jet.t], axis=1)
    hess = np.stack([np.stack([jet.ee, jet.et], -1), np.stack([jet.et, jet.tt], -1)], axis=1)
    shift = np.linalg.solve(hess.sum(axis=0) - hess, grad[..., None])[..., 0]  # one Newton step for each refit
    reach = 3 * np.abs(shift).max(axis=0) + 1e-6
    low, high = np.array([mu, tau]) - reach, np.array([mu, tau]) + reach
    if low[1] < 0:
        return None  # a refit may reach tau = 0: the exact fits decide the boundary
    nodes = np.cos(np.pi * (np.arange(_CHEB_NODES) + 0.5) / _CHEB_NODES)
    width = (high - low) / 2
    centre = (high + low) / 2
    grid_mu, grid_tau = np.meshgrid(centre[0] + width[0] * nodes, centre[1] + width[1] * nodes, indexing="ij")
    values = _sum_log_marginal(grid_mu.ravel(), grid_tau.ravel(), events, n, nagq).reshape(grid_mu.shape)
    vander = np.linalg.inv(cheb.chebvander(nodes, _CHEB_NODES - 1))
    coef = vander @ values @ vander.T
    check = np.array([-0.83, -0.31, 0.17, 0.71])
    cu, ct = np.meshgrid(check, check[::-1], indexing="ij")
    exact = _sum_log_marginal(centre[0] + width[0] * cu.ravel(), centre[1] + width[1] * ct.ravel(), events, n, nagq)
    if np.max(np.abs(cheb.chebval2d(cu.ravel(), ct.ravel(), coef) - exact)) > _SURROGATE_TOL:
        return None
    d_mu, d_tau = cheb.chebder(coef, axis=0) / width[0], cheb.chebder(coef, axis=1) / width[1]
    d_mumu, d_mutau = cheb.chebder(d_mu, axis=0) / width[0], cheb.chebder(d_mu, axis=1) / width[1]
    d_tautau = cheb.chebder(d_tau, axis=1) / width[1]

    theta = np.array([mu, tau]) + shift
    for _ in range(50):
        u, w = (theta[:, 0] - centre[0]) / width[0], (theta[:, 1] - centre[1]) / width[1]
        own, _ = _study_log_marginal(theta[:, 0], theta[:, 1], events, n, nagq)
        g = np.stack([cheb.chebval2d(u, w, d_mu) - own.e, cheb.chebval2d(u, w, d_tau) - own.t], axis=1)
        h_mt = cheb.chebval2d(u, w, d_mutau) - own.et
        h = np.stack([np.stack([cheb.chebval2d(u, w, d_mumu) - own.ee, h_mt], -1),
                      np.stack([h_mt, cheb.chebval2d(u, w, d_tautau) - own.tt], -1)], axis=1)
        step = -np.linalg.solve(h, g[..., None])[..., 0]
        theta = theta + step
        if np.any(np.abs(theta - centre) > width) or not np.all(np.isfinite(theta)):
            return None
        if np.all(np.abs(step) <= 1e-12 * (1 + np.abs(theta))):
            break
    else:
        return None
    if np.any(np.linalg.eigvalsh(h) >= 0):
        return None
    # the most influential refits, checked against the exact likelihood: one exact Newton step must not move them
    for i in np.argsort(-np.abs(shift[:, 1]) - np.abs(shift[:, 0]))[:3]:
        rest = np.arange(k) != i
        check_fit, _ = _study_log_marginal(theta[i, 0], theta[i, 1], events[rest], n[rest], nagq)
        g_exact = np.array([check_fit.e.sum(), check_fit.t.sum()])
        h_exact = np.array([[check_fit.ee.sum(), check_fit.et.sum()], [check_fit.et.sum(), check_fit.tt.sum()]])
        if np.max(np.abs(np.linalg.solve(h_exact, g_exact))) > 1e-9 * (1 + np.max(np.abs(theta[i]))):
            return None
    u, w = (theta[:, 0] - centre[0]) / width[0], (theta[:, 1] - centre[1]) / width[1]
    own, _ = _study_log_marginal(theta[:, 0], theta[:, 1], events, n, nagq)
    return {"beta": theta[:, :1], "tau": theta[:, 1], "cov": np.linalg.inv(-h)[:, :1, :1],
            "loglik": cheb.chebval2d(u, w, coef) - own.v, "loglik_conditional": np.full(k, np.nan),
            "boundary": np.zeros(k, dtype=bool), "diverged": np.zeros(k, dtype=bool),
            "not_concave": ~_positive_definite(-h)}


# A fitted log odds beyond this (a rate below 2e-22 or above 1 - 2e-22) is a coefficient running away, not an
# estimate: read off the fitted values X beta, which no change of the moderators' units or centring moves.
RUNAWAY_LOGIT = 50.0


def runaway(X, beta):
    """Whether the fitted log odds X beta of some study lie beyond RUNAWAY_LOGIT (a group with 0 or all events)."""
    return bool(np.any(np.abs(np.asarray(X, dtype=float) @ np.asarray(beta, dtype=float)) > RUNAWAY_LOGIT))


def glmm_regression(events, n, X, nagq=7, level=0.95):
    """GLMM with covariates X (intercept first), metafor's rma.glmm(measure="PLO", mods=): coefficients with
    Wald CIs, tau^2, and the Wald omnibus test QM of every coefficient but the intercept. `diverged` is True
    when the likelihood has no finite maximum (tau^2 or a coefficient runs away). Fitted on standardised
    moderators (pooling.standardised_design), reported on X's scale."""
    X = np.asarray(X, dtype=float)
    Z, T = standardised_design(X)
    fit = fit_many(np.asarray(events, float)[None], np.asarray(n, float)[None], Z[None],
                   np.ones((1, len(X)), dtype=bool), nagq)
    gamma, tau, cov_z = fit["beta"][0], float(fit["tau"][0]), fit["cov"][0]
    beta, cov = T @ gamma, T @ cov_z @ T.T
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(cov))
    z = special.ndtri(1 - (1 - level) / 2)
    # on Z's scale: T maps the coefficients but the intercept by a diagonal, so the value is X's
    qm = float(gamma[1:] @ np.linalg.solve(cov_z[1:, 1:], gamma[1:])) if np.all(np.isfinite(cov_z)) else np.nan
    m = len(beta) - 1
    diverged = bool(fit["diverged"][0]) or not np.all(np.isfinite(se)) or runaway(Z, gamma)
    return {"beta": beta, "se": se, "ci_low": beta - z * se, "ci_high": beta + z * se, "vcov": cov, "crit": z,
            "tau2": tau**2, "statistic": qm, "df": m, "df2": np.nan, "p": float(special.chdtrc(m, qm)), "diverged": diverged,
            "boundary": bool(fit["boundary"][0]), "loglik": float(fit["loglik_conditional"][0]),
            "loglik_marginal": float(fit["loglik"][0])}


# ---- the common-effect logistic model (metafor's rma.glmm(measure="PLO", method="EE")) ---------------------------
# A fixed intercept (and covariates) without a random effect: a binomial GLM, fitted by Newton's method on the exact
# log-likelihood. Apart from the random-effects engine above, which it leaves as it is.

def _logistic_fit(events, n, X, maxiter=100):
    """Maximum-likelihood logistic regression of events / n on X: (beta, covariance, log-likelihood with binomial
    coefficients, converged). Newton's method from the pooled log odds; not converged when a coefficient runs away
    (a group with 0 or all events)."""
    events, n, X = (np.asarray(a, dtype=float) for a in (events, n, X))
    p0 = events.sum() / n.sum()
    beta = np.zeros(X.shape[1])
    beta[0] = np.log(p0 / (1 - p0)) if 0 < p0 < 1 else 0.0
    converged = False
    for _ in range(maxiter):
        eta = X @ beta
        p = special.expit(eta)
        info = (X * (n * p * (1 - p))[:, None]).T @ X
        step = np.linalg.solve(info, X.T @ (events - n * p))
        beta = beta + step
        if np.all(np.abs(X @ step) <= 1e-13 * (1 + np.abs(X @ beta))):  # on the fitted log odds: scale-free
            converged = True
            break
    eta = X @ beta
    p = special.expit(eta)
    cov = np.linalg.inv((X * (n * p * (1 - p))[:, None]).T @ X)
    loglik = float(np.sum(_log_binomial(eta, events, n)))
    return beta, cov, loglik, converged and not runaway(X, beta)


def pool_glmm_common(events, n, level=0.95):
    """The common-effect logistic model: the pooled log odds log(sum events / sum non-events) with its Wald interval;
    tau^2 = 0 by definition, I^2 = 0 and H^2 = 1 as metafor reports them, Q the likelihood-ratio test of
    heterogeneity (QE.LRT), no prediction interval. Same keys as pool_glmm."""
    events, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    out, ready = _pool_glmm_special(events, n, level)
    if ready:
        return out
    z = special.ndtri(1 - (1 - level) / 2)
    beta, cov, loglik, _ = _logistic_fit(events, n, np.ones((len(events), 1)))
    mu, se = float(beta[0]), float(np.sqrt(cov[0, 0]))
    out.update(estimate=mu, se=se, ci_low=mu - z * se, ci_high=mu + z * se, tau2=0.0, i2=0.0, h2=1.0,
               loglik=loglik, loglik_marginal=loglik, note="common-effect model: tau^2 = 0 by definition")
    return out


def glmm_common_regression(events, n, X, level=0.95):
    """The common-effect logistic model with covariates X (intercept first), metafor's rma.glmm(measure="PLO",
    mods=, method="EE"): coefficients with Wald CIs and the Wald omnibus test QM of every coefficient but the
    intercept; the keys of glmm_regression (tau^2 = 0)."""
    beta, cov, loglik, converged = _logistic_fit(events, n, X)
    se = np.sqrt(np.diag(cov))
    z = special.ndtri(1 - (1 - level) / 2)
    qm = float(beta[1:] @ np.linalg.solve(cov[1:, 1:], beta[1:]))
    m = len(beta) - 1
    return {"beta": beta, "se": se, "ci_low": beta - z * se, "ci_high": beta + z * se, "vcov": cov, "crit": z,
            "tau2": 0.0, "statistic": qm, "df": m, "df2": np.nan, "p": float(special.chdtrc(m, qm)),
            "diverged": not converged, "boundary": False, "loglik": loglik, "loglik_marginal": loglik}
