"""Single proportions: confidence intervals and the scales proportions are pooled on."""

import numpy as np
from scipy import special
from scipy.special import expit

# The normal-approximation intervals: our method tokens -> statsmodels' names for proportion_confint.
STATSMODELS_CI = {"wilson": "wilson", "agresti-coull": "agresti_coull", "wald": "normal"}


def _beta_interval(events, n, level, prior):
    """Quantiles of the beta posterior (prior 0: Clopper-Pearson's beta bounds; 0.5: Jeffreys), as statsmodels'
    proportion_confint computes them (tests/test_proportions.py: bit-identical)."""
    alpha = (1 - level) / 2
    if prior == 0:  # Clopper-Pearson: Beta(x, n - x + 1) and Beta(x + 1, n - x) bounds, 0 at x = 0 and 1 at x = n
        low = np.where(events == 0, 0.0, special.betaincinv(np.maximum(events, 1e-300), n - events + 1, alpha))
        high = np.where(events == n, 1.0, special.betainccinv(events + 1, np.maximum(n - events, 1e-300), alpha))
        return low, high
    low = special.betaincinv(events + prior, n - events + prior, alpha)
    high = special.betainccinv(events + prior, n - events + prior, alpha)
    # Brown, Cai & DasGupta (2001): the Jeffreys interval reaches 0 at 0 events and 1 at n; statsmodels' does not
    return np.where(events == 0, 0.0, low), np.where(events == n, 1.0, high)


def proportion_ci(events, n, method="clopper-pearson", level=0.95):
    """Confidence interval for events/n; arrays in, (low, high) arrays out, clipped to [0, 1]."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    if method in ("clopper-pearson", "jeffreys"):
        # scipy's beta quantiles, as statsmodels uses them: its import (0.7 CPU-s) would double the extract job
        low, high = _beta_interval(events, n, level, 0.0 if method == "clopper-pearson" else 0.5)
    else:
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(events, n, alpha=1 - level, method=STATSMODELS_CI[method])
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def clopper_pearson(events, n, level=0.95):
    """Exact binomial (Clopper-Pearson) interval."""
    return proportion_ci(events, n, "clopper-pearson", level)


def logit_effects(events, n, add=0.5):
    """Log odds and its variance; `add` goes to both cells of studies with 0 or n events.

    This is metafor's escalc(measure="PLO") with its defaults add=1/2, to="only0".
    """
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    zero_cell = (events == 0) | (events == n)
    x = np.where(zero_cell, events + add, events)
    m = np.where(zero_cell, n - events + add, n - events)
    return np.log(x / m), 1 / x + 1 / m


def freeman_tukey(events, n):
    """Freeman-Tukey double arcsine on metafor's scale (escalc "PFT"): half of Miller's."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    y = 0.5 * (np.arcsin(np.sqrt(events / (n + 1))) + np.arcsin(np.sqrt((events + 1) / (n + 1))))
    return y, 1 / (4 * n + 2)


def inverse_freeman_tukey(y, n):
    """Miller's (1978) inverse of the double arcsine for one n (metafor's transf.ipft).

    metafor maps values below the transform of 0 events to 0 and above that of n events to 1.
    """
    y = np.asarray(y, dtype=float)
    n = np.asarray(n, dtype=float)
    s = np.sin(2 * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 0.5 * (1 - np.sign(np.cos(2 * y)) * np.sqrt(1 - (s + (s - 1 / s) / n) ** 2))
    p = np.where(y > freeman_tukey(n, n)[0], 1.0, p)
    return np.where(y < freeman_tukey(0, n)[0], 0.0, p)


def harmonic_mean(n):
    """Harmonic mean of the sample sizes, the single n metafor's transf.ipft.hm uses."""
    n = np.asarray(n, dtype=float)
    return len(n) / np.sum(1 / n)


def back_transform(y, scale, n_hm=None):
    """Model scale -> proportion, for 'logit' or 'ft' (the latter needs the harmonic-mean n)."""
    if scale == "logit":
        return expit(y)
    return inverse_freeman_tukey(y, n_hm)
