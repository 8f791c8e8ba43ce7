"""Figures a reviewer asks for: the cumulative forest plot, funnel plots and the flow diagram.

Like the forest plot, every text is measured before anything is placed, so nothing overlaps whatever
the labels (study ids, file names, exclusion reasons) say.
"""

import math
import textwrap
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from metaprop.figures.forest import (
    FONT_SIZE,
    MARGIN,
    NOTE_FONT_SIZE,
    PAGE_ROWS,
    ROW_HEIGHT,
    SMALL_FONT_SIZE,
    format_ci,
    format_proportion,
)
from metaprop.spec import FUNNEL_MIN_TRIALS, NOT_ASSESSED, level_label, milestone_steps

FUNNEL_DENSE = 200  # trials a funnel panel draws as before; more are drawn as small translucent dots
PANELS_PER_ROW = 4  # funnel and Baujat panels: 3.6 in each, a figure at most 14.4 in wide
MAX_PANELS = 24  # and at most 6 rows (21.6 in tall); further modalities are named in a note, not drawn
PANEL_INCHES = 3.6  # inches
_GRAPH_WIDTH = 3.0  # inches, the cumulative plot's graph panel
_COL_GAP = 0.2
_MEASURE_FIG = Figure(figsize=(1, 1))  # texts are measured on this canvas before a figure is laid out
FigureCanvasAgg(_MEASURE_FIG)


def _renderer():
    return _MEASURE_FIG.canvas.get_renderer()


def _size(text, prop, renderer):
    """(width, height) of a (multi-line) text in inches, as matplotlib will draw it."""
    if not text:
        return 0.0, 0.0
    measured = Text(0, 0, text, fontproperties=prop)
    measured.set_figure(_MEASURE_FIG)
    box = measured.get_window_extent(renderer=renderer)
    return box.width / renderer.dpi, box.height / renderer.dpi


# ---- cumulative forest plot ----

def cumulative_plot(table, method, outcome, level=0.95):
    """Cumulative forest plot (meta's metacum / metafor's cumul style): per modality, one row per added trial
    with the pooled proportion and CI after it, in order of year. `table` holds one method's rows."""
    rows = [("header", "Added trial", {"year": "Year", "k": "k", "estimate": "Rate (%)",
                                       "ci": f"{level_label(level)}-CI"}, None)]
    groups = list(dict.fromkeys(table["subgroup"]))
    thinned = len(table) + len(groups) + 1 > PAGE_ROWS
    left_out = []
    for group in groups:
        part = table[table["subgroup"] == group]
        if thinned:  # thousands of steps: the milestones only (the table has every step)
            steps = part["step"].to_numpy(int)
            part = part[np.isin(steps, milestone_steps(steps.max())) | (steps == steps.max())]
        if left_out or (len(rows) > 1 and len(rows) + 1 + len(part) > PAGE_ROWS - 1):  # many modalities: one page
            left_out.append(group)
            continue
        rows.append(("subgroup", "All kept trials" if group == "overall" else f"Modality = {group}", {}, None))
        for r in part.itertuples():
            cells = {"year": str(r.year), "k": str(int(r.k)), "estimate": format_proportion(r.estimate),
                     "ci": format_ci(r.ci_low, r.ci_high) or "no estimate"}
            rows.append(("step", f"+ {r.study}", cells, (r.estimate, r.ci_low, r.ci_high)))
    if left_out:
        rows.append(("subgroup", f"... {len(left_out):,} more modalities: every step is in cumulative.tsv", {}, None))
    renderer = _renderer()
    bold = FontProperties(size=FONT_SIZE, weight="bold")
    plain = FontProperties(size=FONT_SIZE)
    columns = ("year", "k", "estimate", "ci")
    widths = {c: 0.0 for c in ("label", *columns)}
    for kind, label, cells, _ in rows:
        prop = plain if kind == "step" else bold
        if kind != "subgroup":
            widths["label"] = max(widths["label"], _size(label, prop, renderer)[0])
        for c, text in cells.items():
            widths[c] = max(widths[c], _size(text, prop, renderer)[0])
    x = {"label": MARGIN}
    edge = MARGIN + widths["label"]
    for c in ("year", "k"):
        edge += _COL_GAP + widths[c]
        x[c] = edge
    graph_left = edge + 0.3
    edge = graph_left + _GRAPH_WIDTH + 0.3 - _COL_GAP
    for c in ("estimate", "ci"):
        edge += _COL_GAP + widths[c]
        x[c] = edge
    width = max(edge + MARGIN, 6.0)
    n_rows = len(rows)
    height = MARGIN + (n_rows + 3.4 + (1 if thinned else 0)) * ROW_HEIGHT + MARGIN
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((graph_left / width, (height - MARGIN - n_rows * ROW_HEIGHT) / height,
                       _GRAPH_WIDTH / width, n_rows * ROW_HEIGHT / height))
    ax.set_xlim(0, 1)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(np.linspace(0, 1, 6), labels=[f"{100 * t:g}" for t in np.linspace(0, 1, 6)],
                  fontsize=SMALL_FONT_SIZE)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"{outcome.title} (%, cumulative)", fontsize=FONT_SIZE)
    ax.patch.set_visible(False)
    transform = blended_transform_factory(fig.dpi_scale_trans, ax.transData)
    for y, (kind, label, cells, values) in enumerate(rows):
        prop = plain if kind == "step" else bold
        kw = {"transform": transform, "va": "center", "fontproperties": prop}
        ax.text(x["label"], y, label, ha="left", **kw)
        for c, text in cells.items():
            ax.text(x[c], y, text, ha="right", **kw)
        if values is not None and all(math.isfinite(v) for v in values):
            est, low, high = values
            ax.plot([low, high], [y, y], color="black", linewidth=0.8, zorder=2)
            ax.plot([est], [y], marker="s", markersize=5, color="0.3", linestyle="none", clip_on=False, zorder=3)
    notes = " ".join(str(n) for n in table["note"] if isinstance(n, str))
    order = ("in order of study id (the tables give no year)" if "no year column" in notes else
             "in order of publication year" + (" (trials without a year last)" if "year not given" in notes else ""))
    note = f"Random-effects model: {method}; trials added {order}"
    if thinned:
        note += ";\nsteps 1-5, 10, 20, 50, 100, ... and the last shown (every step: results/tables/cumulative.tsv)"
    ax.text(x["label"], n_rows + (2.7 if thinned else 2.2), note,
            transform=transform, va="center", ha="left", fontsize=NOTE_FONT_SIZE, fontstyle="italic", color="0.3")
    return fig


# ---- funnel plots ----

def funnel_from_table(table, outcome):
    """funnel_data of one outcome back from funnel_table's rows."""
    rows = table[table["outcome"] == outcome]
    return {g: (list(part["study"]), part["logit"].to_numpy(float), part["se"].to_numpy(float),
                float(part["centre"].iloc[0]))
            for g in dict.fromkeys(rows["subgroup"]) for part in [rows[rows["subgroup"] == g]]}


def panel_figure(groups, title, bottom, empty, top=0.5, min_width=0.0):
    """A figure of one panel per group, PANELS_PER_ROW a row and MAX_PANELS at most: (figure, {group: axes}).
    `bottom` and `top`: inches under and over each row's axes (labels, notes, titles); the figure at least
    `min_width` inches wide; `empty`: what it says when there is no group."""
    shown, left_out = groups[:MAX_PANELS], groups[MAX_PANELS:]
    cols = min(max(len(shown), 1), PANELS_PER_ROW)
    rows = -(-max(len(shown), 1) // cols)
    fig = Figure(figsize=(max(PANEL_INCHES * cols, min_width), PANEL_INCHES * rows + (0.3 if left_out else 0)))
    FigureCanvasAgg(fig)
    height = fig.get_figheight()
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    fig.subplots_adjust(left=0.12 / cols + 0.06, right=0.97, bottom=(bottom + (0.3 if left_out else 0)) / height,
                        top=1 - top / height, wspace=0.35, hspace=(bottom + top) / (PANEL_INCHES - bottom - top))
    fig.suptitle(title, fontsize=FONT_SIZE, y=1 - 0.12 / height)
    if left_out:
        fig.text(0.01, 0.1 / height, f"{len(left_out)} more modalities not drawn (at most {MAX_PANELS} panels): "
                 f"{', '.join(map(str, left_out))}", fontsize=NOTE_FONT_SIZE, wrap=True)
    if not groups:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, empty, ha="center", va="center", fontsize=FONT_SIZE, wrap=True)
    return fig, dict(zip(shown, axes))


def funnel_plot(data, tests, outcome, level=0.95):
    """One funnel per modality (metafor's funnel() of a logit rma fit): logit proportion against its standard
    error, the pseudo confidence region centre +- z SE, and the small-study verdict under each panel.

    `data`: {group: (studies, y, se, centre)} from small_study.funnel_data; `tests`: small_study_table rows."""
    groups = list(data)
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)  # the standard library's: scipy's import would cost the job 0.1 s
    fig, panels = panel_figure(groups, f"Funnel plots: {outcome.label}", bottom=0.97,
                               empty="No kept trial: no funnel plot.")
    for group, ax in panels.items():
        _, y, se, centre = data[group]
        ax.set_title(f"{group} (k = {len(y)})", fontsize=FONT_SIZE, fontweight="bold", y=1.0)
        if len(y) < FUNNEL_MIN_TRIALS:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"No funnel plot below {FUNNEL_MIN_TRIALS} trials.", transform=ax.transAxes,
                    ha="center", va="center", fontsize=FONT_SIZE)
            continue
        top = max(float(se.max()) * 1.05, 0.1)
        xlim = (min(y.min(), centre - z * top) - 0.3, max(y.max(), centre + z * top) + 0.3)
        ax.set_facecolor("0.88")
        ax.add_patch(Polygon([(centre - z * top, top), (centre, 0), (centre + z * top, top)], closed=True,
                             facecolor="white", edgecolor="0.4", linestyle=":", linewidth=0.8, zorder=1))
        ax.plot([centre, centre], [0, top], color="0.2", linewidth=0.8, zorder=2)
        if len(y) <= FUNNEL_DENSE:
            ax.plot(y, se, "o", color="black", markersize=4, zorder=3)
        else:  # thousands of trials: small translucent dots, so that where they crowd shows instead of a blot
            ax.plot(y, se, "o", color="black", markersize=1.5, markeredgewidth=0, alpha=0.3, zorder=3)
        ax.set_xlim(*xlim)
        ax.set_ylim(top, 0)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 / (1 + math.exp(-v)):.0f}%"))
        ax.tick_params(axis="x", labelsize=SMALL_FONT_SIZE)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="y", labelsize=SMALL_FONT_SIZE)
        ax.set_xlabel("Rate (%, logit scale)", fontsize=FONT_SIZE)
        ax.set_ylabel("Standard error (logit)", fontsize=FONT_SIZE)
        ax.text(0.5, -0.22, small_study_verdict(tests, group), transform=ax.transAxes, ha="center", va="top",
                fontsize=NOTE_FONT_SIZE, wrap=True)
    return fig


def small_study_verdict(tests, group):
    """'Egger p = 0.41; Peters p = 0.52', or the reason the tests were not run."""
    rows = tests[tests["subgroup"] == group]
    if rows.empty:
        return ""
    if not rows["assessed"].any():
        return str(rows["note"].iloc[0]) or NOT_ASSESSED
    parts = []
    for r in rows.itertuples():
        name = r.test.capitalize()
        p = "p < 0.001" if r.p < 0.001 else f"p = {r.p:.3f}"
        parts.append(f"{name} {p}" if r.assessed else f"{name}: {r.note}")
    return "; ".join(parts)


# ---- flow diagram ----

_WRAP = 44  # characters per line inside a box
_PAD = 0.1  # inches between a box's edge and its text
_V_GAP = 0.35  # between boxes stacked in a column
_H_GAP = 0.6  # between the main column and the exclusion column
_SECTION_GAP = 0.3
_TRUNK = 0.25  # inches from the left edge to the line joining the sources to every outcome


def _wrap(lines):
    return "\n".join(textwrap.fill(line, _WRAP, break_long_words=True, break_on_hyphens=False) for line in lines)


def flow_diagram(counts, outcomes):
    """PRISMA 2020-style selection diagram from flow.flow_counts: the cohorts read from each table, then per
    outcome (titles from `outcomes`, spec.Outcomes) the cohorts assessed, those excluded by reason and those pooled
    by modality."""
    renderer = _renderer()
    prop = FontProperties(size=FONT_SIZE)
    top_text = _wrap([f"Cohorts read from the trial tables: {counts['total']}",
                      *(f"{name or 'trial tables'}: {k}" for name, k in counts["sources"])])
    sections = []
    for outcome, read, excluded, pooled in counts["outcomes"]:
        assessed = _wrap([f"{outcomes.title(outcome)}: {read} cohorts assessed"])
        n_excluded = sum(k for _, k in excluded)
        exc = _wrap([f"Excluded: {n_excluded}", *(f"{reason}: {k}" for reason, k in excluded)] if excluded
                    else ["Excluded: 0"])
        pool = _wrap([f"Pooled: {sum(k for _, k in pooled)}", *(f"{g}: {k}" for g, k in pooled)])
        sections.append((assessed, exc, pool))

    def box(text):
        w, h = _size(text, prop, renderer)
        return w + 2 * _PAD, h + 2 * _PAD

    main_w = max([box(top_text)[0]] + [box(t)[0] for a, _, p in sections for t in (a, p)])
    side_w = max([box(e)[0] for _, e, _ in sections] + [1.0])
    left = _TRUNK + 0.3
    side_left = left + main_w + _H_GAP
    width = side_left + side_w + MARGIN

    # Layout top-down in inches from the top edge: (x, y_top, w, h, text) per box.
    boxes, arrows = [], []
    y = MARGIN
    h = box(top_text)[1]
    boxes.append((left, y, main_w, h, top_text))
    trunk_top = y + h / 2
    y += h + _SECTION_GAP
    trunk_ends = []
    for assessed, exc, pool in sections:
        ha, he, hp = box(assessed)[1], box(exc)[1], box(pool)[1]
        mid_offset = ha + _V_GAP / 2  # the exclusion arrow leaves the main flow halfway between the two boxes
        shift = max(0.0, he / 2 - mid_offset)
        top = y + shift
        boxes.append((left, top, main_w, ha, assessed))
        pool_top = top + ha + _V_GAP
        boxes.append((left, pool_top, main_w, hp, pool))
        mid = top + mid_offset
        boxes.append((side_left, mid - he / 2, side_w, he, exc))
        arrows.append(((left + main_w / 2, top + ha), (left + main_w / 2, pool_top)))
        arrows.append(((left + main_w / 2, mid), (side_left, mid)))
        trunk_ends.append(top + ha / 2)
        arrows.append(((_TRUNK, top + ha / 2), (left, top + ha / 2)))
        y = max(pool_top + hp, mid + he / 2) + _SECTION_GAP
    height = y - _SECTION_GAP + MARGIN

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    trans = fig.dpi_scale_trans

    def fy(v):  # from the top edge to matplotlib's bottom-up inches
        return height - v

    for bx, by, bw, bh, text in boxes:
        fig.patches.append(FancyBboxPatch((bx, fy(by + bh)), bw, bh, boxstyle="square,pad=0", transform=trans,
                                          facecolor="white", edgecolor="black", linewidth=0.8, figure=fig))
        fig.text(bx + _PAD, fy(by + _PAD), text, transform=trans, ha="left", va="top", fontproperties=prop)
    if trunk_ends:  # a line from the sources box down the left edge, with an arrow into every outcome
        fig.lines.append(_line([(left, fy(trunk_top)), (_TRUNK, fy(trunk_top))], trans))
        fig.lines.append(_line([(_TRUNK, fy(trunk_top)), (_TRUNK, fy(trunk_ends[-1]))], trans))
    for (x0, y0), (x1, y1) in arrows:
        fig.patches.append(FancyArrowPatch((x0, fy(y0)), (x1, fy(y1)), transform=trans, arrowstyle="-|>",
                                           mutation_scale=8, linewidth=0.8, color="black", shrinkA=0, shrinkB=0,
                                           figure=fig))
    return fig


def _line(points, transform):
    (x0, y0), (x1, y1) = points
    return Line2D([x0, x1], [y0, y1], transform=transform, color="black", linewidth=0.8)


BAUJAT_LABELLED = 30  # a panel names its trials up to this many; above, the 5 farthest out


def baujat_plot(table, outcome, method_label):
    """Baujat plot per modality (metafor's baujat()), drawn from influence.tsv's rows of one outcome and method:
    each trial's contribution to the heterogeneity (x) against its influence on the pooled estimate (y).

    `table`: the rows with subgroup, study, baujat_x, baujat_y; `method_label`: the method's description."""
    groups = list(dict.fromkeys(table["subgroup"])) if len(table) else []
    fig, panels = panel_figure(groups, f"Baujat plots: {outcome.label} ({method_label})", bottom=0.54,
                               empty="No modality with 2 or more trials and a logit random-effects method: no Baujat plot.")
    for group, ax in panels.items():
        rows = table[table["subgroup"] == group]
        x, y = rows["baujat_x"].to_numpy(float), rows["baujat_y"].to_numpy(float)
        finite = np.isfinite(x) & np.isfinite(y)
        ax.plot(x[finite], y[finite], "o", color="black", markersize=4, zorder=3)
        named = np.flatnonzero(finite)
        if len(named) > BAUJAT_LABELLED:
            named = named[np.argsort(-(x[named] / max(x[named].max(), 1e-300) + y[named] / max(y[named].max(), 1e-300)),
                                     kind="stable")[:5]]
        middle = (x[finite].min() + x[finite].max()) / 2 if finite.any() else 0.0
        for i in named:  # names to the left of the points in the right half, so that none leaves the panel
            right = x[i] > middle
            ax.annotate(str(rows["study"].iloc[i]), (x[i], y[i]), xytext=(-3 if right else 3, 3),
                        textcoords="offset points", ha="right" if right else "left", fontsize=NOTE_FONT_SIZE,
                        annotation_clip=False)
        ax.margins(0.15)
        ax.tick_params(labelsize=SMALL_FONT_SIZE)
        ax.set_xlabel("Contribution to heterogeneity", fontsize=FONT_SIZE)
        ax.set_ylabel("Influence on the pooled estimate", fontsize=FONT_SIZE)
        ax.set_title(f"{group} (k = {len(rows)})", fontsize=FONT_SIZE, fontweight="bold", y=1.0)
    return fig
