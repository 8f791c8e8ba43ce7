"""Posterior figure of method bayes: each modality's pooled rate and the difference of two, with the credible
intervals and P(difference > delta) marked."""

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metaprop.figures.forest import FONT_SIZE, NOTE_FONT_SIZE, SMALL_FONT_SIZE
from metaprop.spec import level_label

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def group_colours(n):
    """A distinct colour for each of n groups: the six above, then matplotlib's tab20, then evenly spaced hues
    (every group is drawn and named in the legend, however many)."""
    if n <= len(COLOURS):
        return COLOURS[:n]
    if n <= 20:
        return [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors[:n]]
    return [matplotlib.colors.to_hex(matplotlib.colormaps["hsv"](i / n)) for i in range(n)]


def curves_from_table(table, outcome, level):
    """The posterior_curves of one outcome back from curves_table's rows (what the figure job reads)."""
    rows = table[table["outcome"] == outcome]
    curves = {"level": level, "rate": None, "groups": {}, "difference": None}
    for g in dict.fromkeys(rows.loc[rows["curve"] == "rate", "group"]):
        part = rows[(rows["curve"] == "rate") & (rows["group"] == g)]
        curves["rate"] = part["x"].to_numpy(float)
        first = part.iloc[0]
        curves["groups"][g] = {"density": part["density"].to_numpy(float), "low": float(first["ci_low"]),
                               "median": float(first["median"]), "high": float(first["ci_high"])}
    diff = rows[rows["curve"] == "difference"]
    if len(diff):
        first = diff.iloc[0]
        prob = {float(c.removeprefix("prob_gt_")): float(first[c]) for c in diff.columns if c.startswith("prob_gt_")}
        curves["difference"] = {"pair": (first["group_1"], first["group_2"]), "d": diff["x"].to_numpy(float),
                                "density": diff["density"].to_numpy(float),
                                "summary": {"median": float(first["median"]), "ci_low": float(first["ci_low"]),
                                            "ci_high": float(first["ci_high"]), "prob": prob}}
    return curves


def draw_posterior(curves, outcome_label, prior_text=""):
    """Left: posterior density of each group's pooled rate with its central credible interval; right (two groups
    or more): the density of the first group minus the second, its interval and P(difference > delta)."""
    level, r, diff = curves["level"], curves["rate"], curves["difference"]
    fig = Figure(figsize=(10.0 if diff else 5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if diff else 1, 1)
    # rates in percent and differences in percentage points, as in the tables and the text (densities per unit)
    handles = []
    for colour, (g, c) in zip(group_colours(len(curves["groups"])), curves["groups"].items()):
        y = c["density"] / 100
        handles += ax.plot(100 * r, y, color=colour, lw=1.5)
        inside = (r >= c["low"]) & (r <= c["high"])
        ax.fill_between(100 * r[inside], y[inside], color=colour, alpha=0.18, lw=0)
        ax.axvline(100 * c["median"], color=colour, lw=0.8, ls="--")
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"Pooled {outcome_label} rate (%)", fontsize=FONT_SIZE)
    ax.set_ylabel("Posterior density (per percentage point)", fontsize=FONT_SIZE)
    ax.set_title(f"Pooled rate: median (dashed), {level_label(level)} credible interval (shaded)",
                 fontsize=FONT_SIZE, y=1.0)
    # handles and labels given: matplotlib's own legend would drop a modality whose name starts with '_'
    ax.legend(handles, list(curves["groups"]), frameon=False, fontsize=SMALL_FONT_SIZE, ncol=1 + (len(handles) - 1) // 8)
    if diff:
        (a, b), summ, d, y = diff["pair"], diff["summary"], diff["d"], diff["density"] / 100
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(100 * d, y, color="black", lw=1.5)
        inside = (d >= summ["ci_low"]) & (d <= summ["ci_high"])
        ax2.fill_between(100 * d[inside], y[inside], color="grey", alpha=0.25, lw=0)
        ax2.axvline(100 * summ["median"], color="black", lw=0.8, ls="--")
        lines = []
        for delta in sorted(summ["prob"]):
            ax2.axvline(100 * delta, color="#555555", lw=0.6, ls=":")
            lines.append(f"P(difference > {100 * delta:+g} points) = {summ['prob'][delta]:.3f}")
        ax2.text(0.02, 0.97, "\n".join(lines), transform=ax2.transAxes, fontsize=NOTE_FONT_SIZE, va="top", ha="left",
                 bbox={"facecolor": "white", "edgecolor": "#cccccc", "boxstyle": "round,pad=0.3"})
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel(f"Difference in pooled rate (percentage points):\n{a} minus {b}", fontsize=FONT_SIZE)
        ax2.set_title(f"Difference: median {100 * summ['median']:+.1f} points, {level_label(level)} CrI "
                      f"{100 * summ['ci_low']:+.1f} to {100 * summ['ci_high']:+.1f}", fontsize=FONT_SIZE, y=1.0)
    if prior_text:
        fig.text(0.01, 0.01, f"Bayesian binomial-normal model; prior: {prior_text}", fontsize=NOTE_FONT_SIZE,
                 color="#444444")
    for axis in fig.axes:
        axis.tick_params(labelsize=SMALL_FONT_SIZE)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.9, wspace=0.22)
    return fig


def posterior_figure(posteriors, deltas, outcome_label, level=0.95, prior_text=""):
    """draw_posterior of posterior_curves({group: Posterior})."""
    # for callers with fitted posteriors; the jobs draw from posterior_curves.tsv
    from metaprop.analysis.posterior_curves import posterior_curves

    return draw_posterior(posterior_curves(posteriors, deltas, level), outcome_label, prior_text)
