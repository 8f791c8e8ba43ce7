"""Single proportions: confidence intervals and the scales proportions are pooled on."""

import numpy as np
from scipy.special import expit

# Our method tokens -> statsmodels' names for proportion_confint.
CI_METHODS = {
    "clopper-pearson": "beta",
    "wilson": "wilson",
    "jeffreys": "jeffreys",
    "agresti-coull": "agresti_coull",
    "wald": "normal",
}


def proportion_ci(events, n, method="clopper-pearson", level=0.95):
    """Confidence interval for events/n; arrays in, (low, high) arrays out, clipped to [0, 1]."""
    from statsmodels.stats.proportion import proportion_confint  # 1.8 s to import: only jobs drawing CIs pay it

    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    low, high = proportion_confint(events, n, alpha=1 - level, method=CI_METHODS[method])
    if method == "jeffreys":
        # Brown, Cai & DasGupta (2001): the Jeffreys interval reaches 0 at 0 events and 1 at n; statsmodels' does not
        low, high = np.where(events == 0, 0.0, low), np.where(events == n, 1.0, high)
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def level_label(level):
    """'95%', '97.5%', '99.9%': the confidence level as a percentage with every digit it has (0.9512345 ->
    '95.12345%'), never rounded up to '100%'."""
    return f"{round(100 * level, 8):.10g}%"


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
