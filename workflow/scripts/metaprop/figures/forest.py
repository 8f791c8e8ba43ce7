"""Forest plots of pooled proportions, laid out like R meta's forest.meta (layout "meta") with subgroups.

The figure is one table: text columns (Study | Events | Total) on the left, the graphical panel in the
middle and (Proportion | 95%-CI | Weight) on the right. Rows are in "row units" (row 0 is the column
header); text columns are placed in inches, so widths are measured first and nothing can overlap.
"""

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Polygon, Rectangle
from matplotlib.transforms import blended_transform_factory

from metaprop.figures.png import png_bytes
from metaprop.spec import level_label
from metaprop.spec import method as method_spec

FIG_WIDTH = 10.0  # inches; only grows if long labels would squeeze the graph below MIN_GRAPH_WIDTH
MIN_GRAPH_WIDTH = 2.5
ROW_HEIGHT = 0.21  # inches per table row
MARGIN = 0.2
BOTTOM_MARGIN = 0.1
COL_GAP = 0.2  # between neighbouring text columns
GRAPH_GAP = 0.3  # between the graph and the text columns; leaves room for squares drawn at 0 or 1
AXIS_ROWS = 2.2  # rows under the axis line taken by tick labels and the x-axis label
FONT_SIZE = 9
SMALL_FONT_SIZE = 8
NOTE_FONT_SIZE = 7.5
MAX_SQUARE = 0.75 * ROW_HEIGHT * 72  # side in points of the largest study's square
MIN_SQUARE = 2.5  # smallest square side in points, so tiny weights stay visible
DIAMOND_HALF_HEIGHT = 0.3  # in rows
PI_HALF_HEIGHT = 0.14  # in rows

LEFT_COLUMNS = ("events", "total")
RIGHT_COLUMNS = ("estimate", "ci", "weight")
HEADERS = {
    "events": "Events",
    "total": "Total",
    "estimate": "Rate (%)",
    "ci": "95%-CI",
    "weight": "Weight",
}
SUMMARY_LABEL = "Random effects model"
COMMON_LABEL = "Common effect model"  # the summary of a common-effect method (spec.Method.common), as R meta's
PREDICTION_LABEL = "Prediction interval"
SUBGROUP_TEST_PREFIX = "Test for subgroup differences"
SVG_HASHSALT = "metaprop-forest"
PNG_DPI = 300  # journals ask 300 dpi of raster figures at their printed size
PAGE_ROWS = 60  # table rows a forest plot has at most on one page; longer plots are split (PDF), summarised (PNG, SVG)
WIDTH_CANDIDATES = 50  # entries per column measured exactly in a split plot (the widest by their characters)
SUMMARY_TRIALS = 3  # trials shown at each end of a subgroup in a summarised plot
SUBSCRIPT_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclass
class Row:
    """One table row: its left label, text cells and what (if anything) is drawn in the graph."""

    kind: str  # header | subgroup | study | summary | predict | hetero | more (trials left out of a summary)
    label: str = ""
    cells: dict = field(default_factory=dict)
    est: float = math.nan
    low: float = math.nan
    high: float = math.nan
    square: float = 0.0  # marker side in points, studies only

    @property
    def bold(self):
        return self.kind in ("header", "subgroup", "summary")

    @property
    def spans(self):
        # Subgroup headers and heterogeneity lines sit alone in their row, so they may run across columns.
        return self.kind in ("subgroup", "hetero", "more")


# ---- number formatting (as meta prints them) ----


def _finite(x):
    return x is not None and not pd.isna(x) and math.isfinite(float(x))


def format_proportion(x):
    """A rate in percent with one decimal (as the tables and the report say it), blank if undefined."""
    return f"{100 * x:.1f}" if _finite(x) else ""


def format_ci(low, high):
    """meta's interval style, in percent: [73.0; 98.1]."""
    if not (_finite(low) and _finite(high)):
        return ""
    return f"[{100 * low:.1f}; {100 * high:.1f}]"


def format_count(x):
    return f"{round(float(x))}" if _finite(x) else ""


def format_weight(w):
    """Weight fraction as a percentage with one decimal, blank if missing."""
    return f"{100 * float(w):.1f}%" if _finite(w) else ""


def format_p(p):
    """p-values with two decimals; meta's forest shows 'p < 0.01' below that."""
    return "p < 0.01" if p < 0.01 else f"p = {p:.2f}"


def format_tau2(tau2):
    """Four decimals like meta's digits.tau2, with exact zero and tiny values written out."""
    if tau2 == 0:
        return "τ² = 0"
    if tau2 < 1e-4:
        return "τ² < 0.0001"
    return f"τ² = {tau2:.4f}"


def format_i2(i2, low, high):
    text = f"I² = {100 * i2:.0f}%"
    if _finite(low) and _finite(high):
        text += f" [{100 * low:.0f}%; {100 * high:.0f}%]"
    return text


def heterogeneity_text(pooled_row):
    """'Heterogeneity: I² = 71% [0%; 90%], τ² = 0.3012, p = 0.03', without the undefined pieces."""
    if _finite(pooled_row.get("k")) and int(pooled_row["k"]) == 1:
        return "Heterogeneity: not applicable (k = 1)"
    pieces = []
    if _finite(pooled_row.get("i2")):
        pieces.append(format_i2(pooled_row["i2"], pooled_row.get("i2_ci_low"), pooled_row.get("i2_ci_high")))
    if _finite(pooled_row.get("tau2")):
        pieces.append(format_tau2(pooled_row["tau2"]))
    if _finite(pooled_row.get("q_p")):
        pieces.append(format_p(pooled_row["q_p"]))
    return "Heterogeneity: " + ", ".join(pieces) if pieces else None


def _chi2_text(row):
    """'χ²₁ = 5.21, df = 1 (p = 0.02)' of a test row."""
    if _finite(row.get("df")):
        df = f"{float(row['df']):g}"
        stat = f"χ²{df.translate(SUBSCRIPT_DIGITS)} = {row['statistic']:.2f}, df = {df}"
    else:
        stat = f"χ² = {row['statistic']:.2f}"
    return stat + (f" ({format_p(row['p'])})" if _finite(row.get("p")) else "")


def subgroup_test_text(tests, method):
    """'Test for subgroup differences: χ²₁ = 5.21, df = 1 (p = 0.02)', or None without a usable row."""
    rows = tests[(tests["method"] == method) & (tests["test"] == "between")]
    if rows.empty or not _finite(rows.iloc[0]["statistic"]):
        return None
    return f"{SUBGROUP_TEST_PREFIX}: {_chi2_text(rows.iloc[0])}"


def within_test_texts(tests, method):
    """A moderator analysis within modality: 'Test for subgroup differences within CAR-T: χ²₂ = 5.98, df = 2
    (p = 0.05)' per modality with two levels or more (the 'between-within' rows)."""
    rows = tests[(tests["method"] == method) & (tests["test"] == "between-within")]
    return [f"{SUBGROUP_TEST_PREFIX} {row['note']}: {_chi2_text(row)}" for row in rows.to_dict("records")
            if _finite(row["statistic"])]


# ---- table rows ----


def _included(studies):
    """Boolean mask of included trials; tolerates 'True'/'False' strings from a TSV read without dtypes."""
    flag = studies["included"]
    if flag.dtype == bool:
        return flag
    return flag.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])


def _square_shares(studies, column="modality"):
    """Share of each study in its subgroup for sizing squares: its weight, else its share of patients."""
    n_share = studies["n"] / studies.groupby(column, sort=False)["n"].transform("sum")
    if "weight" not in studies:
        return n_share
    return studies["weight"].where(studies["weight"].notna(), n_share)


def _study_rows(group, shares, max_share):
    rows = []
    for idx, study in group.iterrows():
        # Square area proportional to weight, as in meta.
        side = MAX_SQUARE * math.sqrt(shares[idx] / max_share) if max_share > 0 else MIN_SQUARE
        cells = {
            "events": format_count(study["events"]),
            "total": format_count(study["n"]),
            "estimate": format_proportion(study["proportion"]),
            "ci": format_ci(study["ci_low"], study["ci_high"]),
            "weight": format_weight(study.get("weight")),
        }
        rows.append(
            Row("study", str(study["study"]), cells, study["proportion"], study["ci_low"], study["ci_high"],
                max(side, MIN_SQUARE))
        )
    return rows


def _summary_rows(pooled_row, weight_cell, label=SUMMARY_LABEL):
    """'Random effects model' with its diamond, then the prediction interval if it is defined."""
    cells = {
        "events": format_count(pooled_row.get("events")),
        "total": format_count(pooled_row.get("n")),
        "estimate": format_proportion(pooled_row["estimate"]),
        "ci": format_ci(pooled_row["ci_low"], pooled_row["ci_high"]),
        "weight": weight_cell,
    }
    rows = [Row("summary", label, cells, pooled_row["estimate"], pooled_row["ci_low"], pooled_row["ci_high"])]
    if _finite(pooled_row.get("pi_low")) and _finite(pooled_row.get("pi_high")):
        ci = format_ci(pooled_row["pi_low"], pooled_row["pi_high"])
        rows.append(Row("predict", PREDICTION_LABEL, {"ci": ci}, low=pooled_row["pi_low"], high=pooled_row["pi_high"]))
    return rows


def _pooled_lookup(pooled, method):
    """Pooled rows of this method keyed by subgroup name (as text)."""
    rows = pooled[pooled["method"] == method]
    if rows.empty:
        # A plot without any summary would look valid, so a wrong method name must not pass silently.
        raise ValueError(f"no pooled estimates for method {method!r}")
    return {str(r["subgroup"]): r for _, r in rows.iterrows()}


def _build_rows(studies, pooled_by_subgroup, subgroup_label, headers=HEADERS, column="modality",
                summary_label=SUMMARY_LABEL):
    """Header, then per subgroup (value of `column`): label, studies, summary, PI, heterogeneity; then the overall
    summary."""
    rows = [Row("header", "Study", dict(headers))]
    shares = _square_shares(studies, column)
    max_share = float(shares.max()) if shares.notna().any() else 0.0
    shares = shares.fillna(0.0)
    for name, group in studies.groupby(column, sort=False):
        rows.append(Row("subgroup", f"{subgroup_label} = {name}"))
        rows += _study_rows(group, shares, max_share)
        sub = pooled_by_subgroup.get(str(name))
        if sub is None:
            continue
        # Study weights are shares of their subgroup, so a subgroup's summary carries all of it.
        has_weights = "weight" in group and group["weight"].notna().any()
        rows += _summary_rows(sub, format_weight(1.0) if has_weights else "", summary_label)
        het = heterogeneity_text(sub)
        if het:
            rows.append(Row("hetero", het))
    overall = pooled_by_subgroup.get("overall")
    if overall is not None:
        rows += _summary_rows(overall, "", summary_label)
    return rows


# ---- layout ----


def _font(kind):
    if kind == "more":
        return FontProperties(size=SMALL_FONT_SIZE, style="italic")
    if kind == "hetero":
        return FontProperties(size=SMALL_FONT_SIZE)
    bold = kind in ("header", "subgroup", "summary")
    return FontProperties(size=FONT_SIZE, weight="bold" if bold else "normal")


def _text_width(text, prop, renderer):
    """Rendered width in inches."""
    if not text:
        return 0.0
    width, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)
    return width / renderer.dpi


def _column_widths(rows, renderer, widest_only=False):
    """Widest entry of each column; spanning rows are left out since they share their row with nothing.

    widest_only: measure only the entries likeliest to be widest (by the sum of their characters' widths, kerning
    aside), for plots of thousands of rows where measuring every entry took most of the time.
    """
    if widest_only:
        return _widest_column_widths(rows, renderer)
    widths = {col: 0.0 for col in ("study", *LEFT_COLUMNS, *RIGHT_COLUMNS)}
    for row in rows:
        if row.spans:
            continue
        prop = _font(row.kind)
        widths["study"] = max(widths["study"], _text_width(row.label, prop, renderer))
        for col, text in row.cells.items():
            widths[col] = max(widths[col], _text_width(text, prop, renderer))
    return widths


def _widest_column_widths(rows, renderer, candidates=WIDTH_CANDIDATES):
    entries = {col: {} for col in ("study", *LEFT_COLUMNS, *RIGHT_COLUMNS)}
    for row in rows:
        if row.spans:
            continue
        bold = row.bold
        entries["study"].setdefault((row.label, bold), row.kind)
        for col, text in row.cells.items():
            entries[col].setdefault((text, bold), row.kind)
    char_width = {}

    def rough(text, kind):
        for c in set(text) - {c for c, k in char_width if k == kind}:
            char_width[c, kind] = _text_width(c, _font(kind), renderer)
        return sum(char_width[c, kind] for c in text)

    widths = {}
    for col, found in entries.items():
        ranked = sorted(found.items(), key=lambda item: -rough(item[0][0], item[1]))[:candidates]
        widths[col] = max((_text_width(text, _font(kind), renderer) for (text, _), kind in ranked), default=0.0)
    return widths


def _columns(widths):
    """x (inches) of each column's anchor (study: left edge, others: right edge), graph span, figure width."""
    x = {"study": MARGIN}
    edge = MARGIN + widths["study"]
    for col in LEFT_COLUMNS:
        edge += COL_GAP + widths[col]
        x[col] = edge
    graph_left = edge + GRAPH_GAP
    right_block = GRAPH_GAP + sum(widths[c] for c in RIGHT_COLUMNS) + COL_GAP * (len(RIGHT_COLUMNS) - 1) + MARGIN
    graph_width = max(FIG_WIDTH - graph_left - right_block, MIN_GRAPH_WIDTH)
    edge = graph_left + graph_width + GRAPH_GAP - COL_GAP
    for col in RIGHT_COLUMNS:
        edge += COL_GAP + widths[col]
        x[col] = edge
    return x, (graph_left, graph_left + graph_width), edge + MARGIN


def _footer_start(n_rows, footer_width, graph_left):
    """First row of the overall heterogeneity lines: beside the x axis if they fit left of it, else below it."""
    fits_left = MARGIN + footer_width + COL_GAP <= graph_left
    return n_rows if fits_left else n_rows + AXIS_ROWS


# ---- drawing ----


def _draw_text_row(ax, transform, row, y, x, on=None):
    """The row's texts on the axes, or on `on` (the figure: no clip path for each of thousands of texts)."""
    prop = _font(row.kind)
    kw = {"transform": transform, "va": "center", "fontproperties": prop}
    target = ax if on is None else on
    if row.label:
        target.text(x["study"], y, row.label, ha="left", **kw)
    for col, text in row.cells.items():
        if text:
            target.text(x[col], y, text, ha="right", **kw)


def _draw_diamond(ax, row, y):
    h = DIAMOND_HALF_HEIGHT
    corners = [(row.low, y), (row.est, y - h), (row.high, y), (row.est, y + h)]
    ax.add_patch(Polygon(corners, closed=True, facecolor="0.6", edgecolor="black", linewidth=0.8, zorder=3))


def _draw_prediction(ax, row, y):
    h = PI_HALF_HEIGHT
    ax.add_patch(
        Rectangle((row.low, y - h), row.high - row.low, 2 * h, facecolor="red", edgecolor="black",
                  linewidth=0.6, zorder=3)
    )


def _draw_study(ax, row, y):
    if _finite(row.low) and _finite(row.high):
        ax.plot([row.low, row.high], [y, y], color="black", linewidth=0.8, solid_capstyle="butt", zorder=2)
    if _finite(row.est):
        # clip_on=False so squares at 0 or 1 are drawn whole (GRAPH_GAP leaves room for them).
        ax.plot([row.est], [y], marker="s", markersize=row.square, color="0.5", markeredgewidth=0,
                linestyle="none", clip_on=False, zorder=3)


def _draw_graphics(ax, rows, batched=False):
    if batched:  # one collection for all lines and one for all squares: thousands of plot() calls took minutes
        studies = [(y, row) for y, row in enumerate(rows) if row.kind == "study"]
        lines = [[(row.low, y), (row.high, y)] for y, row in studies if _finite(row.low) and _finite(row.high)]
        ax.add_collection(LineCollection(lines, colors="black", linewidths=0.8, capstyle="butt", zorder=2))
        marks = [(row.est, y, row.square) for y, row in studies if _finite(row.est)]
        if marks:
            est, ys, side = zip(*marks)
            ax.scatter(est, ys, s=np.square(side), marker="s", color="0.5", linewidths=0, clip_on=False, zorder=3)
        rows = [row if row.kind != "study" else Row("more") for row in rows]
    for y, row in enumerate(rows):
        if row.kind == "study":
            _draw_study(ax, row, y)
        elif row.kind == "summary" and all(_finite(v) for v in (row.est, row.low, row.high)):
            _draw_diamond(ax, row, y)
        elif row.kind == "predict":
            _draw_prediction(ax, row, y)


def _style_axis(ax, n_rows, outcome_label):
    ax.set_xlim(0, 1)
    # Row 0 at the top; the axis line sits half a row under the last row.
    ax.set_ylim(n_rows - 0.5, -0.5)
    ticks = np.linspace(0, 1, 6)
    ax.set_xticks(ticks, labels=[f"{100 * t:g}" for t in ticks], fontsize=SMALL_FONT_SIZE)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_linewidth(0.8)
    ax.tick_params(axis="x", width=0.8, length=3.5)
    ax.set_xlabel(f"{outcome_label} (%)", fontsize=FONT_SIZE)
    ax.patch.set_visible(False)


def _footnote(method, studies, level=0.95):
    note = f"{'Common-effect' if method_spec(method).common else 'Random-effects'} model: {method}"
    ci_methods = studies["ci_method"].dropna().unique() if "ci_method" in studies else []
    if len(ci_methods) == 1:
        note += f"; {level_label(level)}-CIs of single studies: {ci_methods[0]}"
    return note


def forest_plot(studies, pooled, tests, *, method, outcome_label="Proportion", subgroup_label="Modality",
                level=0.95, pdf_name=None, column="modality", benchmark=None):
    """Forest plot of included studies by subgroup with random-effects summaries; returns a Figure.

    Up to PAGE_ROWS table rows the figure is the whole plot. Above, the Figure returned is a summary (per subgroup
    its first and last SUMMARY_TRIALS trials, a line counting the others, its diamond and heterogeneity) for the PNG
    and SVG, and carries the whole plot split over pages in `fig.pdf_pages`, which save_figure writes to the PDF.
    `pdf_name`: the PDF's file name, for the summary's pointer to it. `benchmark`: a rate (fraction) drawn as a
    dotted reference line, and said in the footnote.
    """
    studies = studies[_included(studies)]
    pooled_by_subgroup = _pooled_lookup(pooled, method)
    headers = {**HEADERS, "ci": f"{level_label(level)}-CI"}
    rows = _build_rows(studies, pooled_by_subgroup, subgroup_label, headers, column,
                       COMMON_LABEL if method_spec(method).common else SUMMARY_LABEL)
    overall = pooled_by_subgroup.get("overall")
    footer = [heterogeneity_text(overall) if overall is not None else None, subgroup_test_text(tests, method),
              *within_test_texts(tests, method)]
    footer = [line for line in footer if line]
    footnote = _footnote(method, studies, level)
    if benchmark is not None:
        footnote += f"; dotted line: benchmark {format_proportion(benchmark)}%"
    if len(rows) <= PAGE_ROWS:
        return _draw_forest(rows, None, footer, footnote, overall, outcome_label, benchmark)
    pages = _pages(rows)
    measure = Figure(figsize=(FIG_WIDTH, 1.0))
    FigureCanvasAgg(measure)
    widths = _column_widths(rows, measure.canvas.get_renderer(), widest_only=True)  # every page the same columns
    tail = len(_summary_rows(overall, "", SUMMARY_LABEL)) if overall is not None else 0
    figure = _draw_forest(_summary_rows_of(rows, pdf_name, len(pages), tail), widths, footer, footnote, overall,
                          outcome_label, benchmark)
    figure.pdf_pages = [
        _draw_forest([rows[0], *page], widths, footer if i == len(pages) else [],
                     f"{footnote}; page {i} of {len(pages)}", overall, outcome_label, benchmark)
        for i, page in enumerate(pages, start=1)
    ]
    return figure


def _pages(rows):
    """Rows after the header in pages of at most PAGE_ROWS - 1 (each page repeats the header)."""
    body = rows[1:]
    size = PAGE_ROWS - 1
    return [body[i:i + size] for i in range(0, len(body), size)]


def _summary_rows_of(rows, pdf_name, n_pages, tail=0):
    """Every row but the studies of a subgroup beyond its first and last SUMMARY_TRIALS, which one line counts; and,
    were that still longer than a page (many subgroups), the subgroups that fit on one page, a line counting the
    others, and the `tail` rows of the overall summary: the PNG and SVG stay one page tall whatever the data."""
    out, run = [], []
    where = pdf_name or "the PDF"

    def flush():
        if len(run) > 2 * SUMMARY_TRIALS + 1:
            hidden = len(run) - 2 * SUMMARY_TRIALS
            out.extend(run[:SUMMARY_TRIALS])
            out.append(Row("more", f"... {hidden:,} more trials (full list: {where}, {n_pages} pages)"))
            out.extend(run[-SUMMARY_TRIALS:])
        else:
            out.extend(run)
        run.clear()

    for row in rows:
        if row.kind == "study":
            run.append(row)
            continue
        flush()
        out.append(row)
    flush()
    if len(out) <= PAGE_ROWS:
        return out
    body, end = out[1:len(out) - tail], out[len(out) - tail:]
    starts = [i for i, row in enumerate(body) if row.kind == "subgroup"] + [len(body)]
    blocks = [body[a:b] for a, b in itertools.pairwise(starts)]
    kept = []
    for block in blocks:
        if 1 + sum(map(len, kept)) + len(block) + 1 + tail > PAGE_ROWS and kept:
            break
        kept.append(block)
    hidden = len(blocks) - len(kept)
    more = Row("more", f"... {hidden:,} more subgroups (full plot: {where}, {n_pages} pages)")
    return [out[0], *(row for block in kept for row in block), *([more] if hidden else []), *end]


def _draw_forest(rows, widths, footer, footnote, overall, outcome_label, benchmark=None):
    """The figure of `rows`, with the column widths given (every page of a split plot alike) or measured on them."""
    fig = Figure(figsize=(FIG_WIDTH, 1.0))
    FigureCanvasAgg(fig)  # Agg canvas without pyplot, so text can be measured and nothing global changes
    renderer = fig.canvas.get_renderer()
    x, (graph_left, graph_right), fig_width = _columns(widths or _column_widths(rows, renderer))
    footer_width = max((_text_width(t, _font("hetero"), renderer) for t in footer), default=0.0)
    footer_row = _footer_start(len(rows), footer_width, graph_left)
    note_row = max(footer_row + len(footer), len(rows) + AXIS_ROWS) + 0.5
    fig_height = MARGIN + (note_row + 1) * ROW_HEIGHT + BOTTOM_MARGIN
    fig.set_size_inches(fig_width, fig_height)

    top = fig_height - MARGIN
    ax = fig.add_axes((
        graph_left / fig_width,
        (top - len(rows) * ROW_HEIGHT) / fig_height,
        (graph_right - graph_left) / fig_width,
        len(rows) * ROW_HEIGHT / fig_height,
    ))
    _style_axis(ax, len(rows), outcome_label)
    # x in inches from the figure's left edge, y in table rows: text and graphics share the row grid.
    transform = blended_transform_factory(fig.dpi_scale_trans, ax.transData)

    for y, row in enumerate(rows):
        _draw_text_row(ax, transform, row, y, x, on=None if widths is None else fig)
    _draw_graphics(ax, rows, batched=widths is not None)
    if overall is not None and _finite(overall["estimate"]):
        ax.plot([overall["estimate"]] * 2, [0.5, len(rows) - 0.5], color="0.4", linestyle=(0, (4, 3)),
                linewidth=0.8, zorder=1)
    if benchmark is not None:
        ax.plot([benchmark] * 2, [0.5, len(rows) - 0.5], color="#b2182b", linestyle=(0, (1, 2)), linewidth=1.0,
                zorder=1)
    for i, line in enumerate(footer):
        _draw_text_row(ax, transform, Row("hetero", line), footer_row + i, x)
    ax.text(x["study"], note_row, footnote, transform=transform, va="center", ha="left",
            fontsize=NOTE_FONT_SIZE, fontstyle="italic", color="0.3")
    return fig


def save_figure(fig, paths):
    """Write the figure to the given {'pdf'|'svg'|'png': path}; output bytes do not depend on time or run."""
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {"Software": None}}
    unknown = set(paths) - set(metadata)
    if unknown:
        raise ValueError(f"unsupported figure formats: {sorted(unknown)}")
    # A fixed hash salt makes SVG element ids the same on every run; TrueType fonts in the PDF (fonttype 42), which
    # submission systems accept, not matplotlib's default Type 3.
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "pdf.fonttype": 42}):
        for fmt, path in paths.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pages = getattr(fig, "pdf_pages", None) if fmt == "pdf" else None
            if pages:  # a plot too long for one page: the whole of it, page by page
                with PdfPages(path, metadata=metadata["pdf"]) as pdf:
                    for page in pages:
                        pdf.savefig(page)
            elif fmt == "png":
                _save_png(fig, path)
            else:
                fig.savefig(path, format=fmt, dpi=PNG_DPI, metadata=metadata[fmt])


def _save_png(fig, path):
    """The figure as an RGB PNG at PNG_DPI (the figures are opaque: matplotlib's alpha channel is 255 throughout),
    drawn by matplotlib's Agg as savefig(dpi=PNG_DPI) draws it."""
    dpi = fig.dpi
    fig.set_dpi(PNG_DPI)
    try:
        fig.canvas.draw()
        data = png_bytes(np.asarray(fig.canvas.buffer_rgba())[..., :3], PNG_DPI)
    finally:
        fig.set_dpi(dpi)
    Path(path).write_bytes(data)


def message_figure(text):
    """A one-line figure for an analysis with nothing to plot, so its files exist and say why."""
    fig = Figure(figsize=(FIG_WIDTH, 0.6))
    FigureCanvasAgg(fig)
    fig.text(0.02, 0.5, text, fontsize=FONT_SIZE, va="center")
    return fig
