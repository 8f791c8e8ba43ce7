"""Posterior figure of method bayes: each modality's pooled rate and the difference of two, with the credible
intervals and P(difference > delta) marked."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .bayes import RatePosterior, difference_summary, prob_difference_greater

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def rate_density(rate_post, r):
    """Density of the pooled rate expit(mu) at rates r in (0, 1)."""
    r = np.asarray(r, float)
    mu = np.log(r / (1 - r))
    return rate_post.post.mu_pdf(mu) / (r * (1 - r))


def difference_density(a, b, d):
    """Density of rate_a - rate_b at d (central differences of its exact CDF, step 1e-4: a drawing only)."""
    h = 1e-4
    return np.array([(prob_difference_greater(a, b, x - h) - prob_difference_greater(a, b, x + h)) / (2 * h)
                     for x in d])


def posterior_figure(posteriors, deltas, outcome_label, level=0.95, prior_text=""):
    """Left: posterior density of each group's pooled rate with its central credible interval; right (two groups
    or more): the density of the first group minus the second, its interval and P(difference > delta)."""
    groups = list(posteriors)
    rates = {g: RatePosterior(p) for g, p in posteriors.items()}
    pairs = len(groups) >= 2
    fig = Figure(figsize=(10.0 if pairs else 5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if pairs else 1, 1)
    r = np.linspace(0.0005, 0.9995, 1999)
    a_ = (1 - level) / 2
    for colour, g in zip(COLOURS, groups):
        post = posteriors[g]
        y = rate_density(rates[g], r)
        ax.plot(r, y, color=colour, lw=1.5, label=g)
        low, mid, high = (float(1 / (1 + np.exp(-post.mu_quantile(p)))) for p in (a_, 0.5, 1 - a_))
        inside = (r >= low) & (r <= high)
        ax.fill_between(r[inside], y[inside], color=colour, alpha=0.18, lw=0)
        ax.axvline(mid, color=colour, lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"Pooled {outcome_label} rate")
    ax.set_ylabel("Posterior density")
    ax.set_title(f"Pooled rate: median (dashed), {level:.0%} credible interval (shaded)", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    if pairs:
        a, b = groups[0], groups[1]
        summ = difference_summary(rates[a], rates[b], deltas, level)
        ax2 = fig.add_subplot(1, 2, 2)
        lo = max(-1.0, summ["ci_low"] - 2.5 * (summ["median"] - summ["ci_low"]))
        hi = min(1.0, summ["ci_high"] + 2.5 * (summ["ci_high"] - summ["median"]))
        d = np.linspace(lo, hi, 161)
        y = difference_density(rates[a], rates[b], d)
        ax2.plot(d, y, color="black", lw=1.5)
        inside = (d >= summ["ci_low"]) & (d <= summ["ci_high"])
        ax2.fill_between(d[inside], y[inside], color="grey", alpha=0.25, lw=0)
        ax2.axvline(summ["median"], color="black", lw=0.8, ls="--")
        lines = []
        for delta in sorted(summ["prob"]):
            ax2.axvline(delta, color="#555555", lw=0.6, ls=":")
            lines.append(f"P(difference > {delta:+.2f}) = {summ['prob'][delta]:.3f}")
        ax2.text(0.02, 0.97, "\n".join(lines), transform=ax2.transAxes, fontsize=7.5, va="top", ha="left",
                 bbox={"facecolor": "white", "edgecolor": "#cccccc", "boxstyle": "round,pad=0.3"})
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel(f"Difference in pooled rate: {a} minus {b}")
        ax2.set_title(f"Difference: median {summ['median']:+.3f}, {level:.0%} CrI "
                      f"{summ['ci_low']:+.3f} to {summ['ci_high']:+.3f}", fontsize=9)
    if prior_text:
        fig.text(0.01, 0.01, f"Bayesian binomial-normal model; prior: {prior_text}", fontsize=7, color="#444444")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.18, top=0.9, wspace=0.22)
    return fig
