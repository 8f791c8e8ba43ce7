"""Bubble plots of a one-moderator meta-regression (metafor's regplot(), meta's bubble()): each trial's rate against
the moderator, point area proportional to the trial's weight, the fitted rate and its confidence band on the
proportion scale in percent; one panel per modality, or one panel with a line per modality across them."""

import textwrap

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from metaprop.figures.forest import FONT_SIZE, NOTE_FONT_SIZE, SMALL_FONT_SIZE
from metaprop.figures.review import PANEL_INCHES, PANELS_PER_ROW, panel_figure
from metaprop.spec import column_title, in_sentence, level_label, method

_AREA = 600.0  # points^2 of a trial holding all the weight
_SHADES = ("0.15", "0.45", "0.65", "0.3")  # lines of several modalities in one panel, told apart by grey and style
_STYLES = ("-", "--", "-.", ":")


def bubble_plot(rows, outcome, moderator, method_label, notes=None, level=0.95):
    """The figure of one outcome and moderator. `rows`: bubble.tsv's rows of it (study rows with x, proportion,
    weight; line rows with study empty and x, fit, ci_low, ci_high), `notes`: {group: why there is no fit} for the
    groups drawn without one."""
    notes = notes or {}
    groups = list(dict.fromkeys([*rows["group"], *notes]))
    width = max(PANEL_INCHES * min(max(len(groups), 1), PANELS_PER_ROW), 5.0)
    title = textwrap.fill(f"Meta-regression on {in_sentence(column_title(moderator))}: {outcome.label} "
                          f"({method_label}, {level_label(level)} CI)", int(13 * width))
    # panels as the funnel and Baujat plots': 4 a row, at most MAX_PANELS, the rest named in a note
    fig, panels = panel_figure(groups, title, bottom=0.6, empty="No meta-regression: no bubble plot.",
                               top=0.45 + 0.2 * title.count("\n"), min_width=5.0)
    for group, ax in panels.items():
        part = rows[rows["group"] == group]
        if part.empty:
            ax.set_axis_off()
            ax.set_title(group, fontsize=FONT_SIZE, fontweight="bold", y=1.0)
            ax.text(0.5, 0.5, textwrap.fill(notes[group], 40), transform=ax.transAxes, ha="center", va="center", wrap=True,
                    fontsize=NOTE_FONT_SIZE)
            continue
        trials = part[part["study"].fillna("") != ""]
        lines = list(dict.fromkeys(part["line"]))
        for i, line in enumerate(lines):
            curve = part[(part["study"].fillna("") == "") & (part["line"] == line)]
            x = curve["x"].to_numpy(float)
            shade, style = _SHADES[i % len(_SHADES)], _STYLES[i % len(_STYLES)]
            ax.fill_between(x, 100 * curve["ci_low"].to_numpy(float), 100 * curve["ci_high"].to_numpy(float),
                            color=shade, alpha=0.15, linewidth=0, zorder=1)
            ax.plot(x, 100 * curve["fit"].to_numpy(float), color=shade, linestyle=style, linewidth=1.2, zorder=2,
                    label=line if len(lines) > 1 else None)
            mine = trials[trials["line"] == line]
            ax.scatter(mine["x"].to_numpy(float), 100 * mine["proportion"].to_numpy(float),
                       s=_AREA * mine["weight"].to_numpy(float), facecolor="none" if i else "0.5",
                       edgecolor=shade, linewidth=0.8, zorder=3)
        ax.set_ylim(0, 100)
        ax.margins(x=0.08)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=bool(np.all(np.mod(trials["x"].to_numpy(float), 1) == 0))))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}%"))
        ax.tick_params(labelsize=SMALL_FONT_SIZE)
        ax.set_xlabel(column_title(moderator), fontsize=FONT_SIZE)
        ax.set_ylabel(f"{outcome.title} (%)", fontsize=FONT_SIZE)
        name = "All modalities" if group == "all" else group
        ax.set_title(f"{name} (k = {len(trials)})", fontsize=FONT_SIZE, fontweight="bold", y=1.0)
        if len(lines) > 1:
            ax.legend(fontsize=NOTE_FONT_SIZE, frameon=False)
    return fig


def bubble_figure(bubble, table, figure, outcome, method_token, level=0.95):
    """The bubble plot of one entry of common.smk's BUBBLES (`figure`: outcome, moderator, across) from bubble.tsv
    and meta_regressions.tsv; groups without a fit say why, from the table's note."""
    moderator = figure["moderator"]
    group = (bubble["group"] == "all") if figure["across"] else (bubble["group"] != "all")
    rows = bubble[(bubble["outcome"] == outcome.id) & (bubble["moderator"] == moderator) & group]
    fits = table[(table["outcome"] == outcome.id) & (table["moderators"] == moderator)
                 & (table["method"] == method_token) & ((table["group"] == "all") == figure["across"])]
    notes = {g: str(fits.loc[fits["group"] == g, "note"].iloc[0]) for g in dict.fromkeys(fits["group"])
             if g not in set(rows["group"])}
    return bubble_plot(rows, outcome, moderator, method(method_token).label, notes, level)
