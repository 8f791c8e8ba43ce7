"""Tests for the forest plot: content, diamonds, no overlapping text, byte-reproducible files."""

import itertools
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Polygon, Rectangle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from metaprop.figures.forest import (
    PNG_DPI,
    forest_plot,
    format_ci,
    format_p,
    format_tau2,
    heterogeneity_text,
    save_figure,
    subgroup_test_text,
)

METHOD = "glmm"
NAN = math.nan


# ---- building inputs ----


def make_studies(groups, weights=True):
    """groups: {modality: [(study, events, n), ...]}; weights are each study's share of its subgroup's n."""
    rows = []
    for modality, trials in groups.items():
        total = sum(n for _, _, n in trials)
        for study, events, n in trials:
            p = events / n
            rows.append({
                "study": study, "modality": modality, "outcome": "CR", "events": events, "n": n,
                "proportion": p, "ci_low": max(p - 0.15, 0.0), "ci_high": min(p + 0.15, 1.0),
                "ci_method": "clopper-pearson", "included": True, "reason": "",
                "weight": n / total if weights else NAN,
            })
    return pd.DataFrame(rows)


def pooled_row(subgroup, k, events, n, estimate, pi=(0.3, 0.95), method=METHOD, i2=0.71, tau2=0.3012, q_p=0.03):
    return {
        "outcome": "CR", "subgroup": subgroup, "method": method, "k": k, "events": events, "n": n,
        "estimate": estimate, "ci_low": estimate - 0.1, "ci_high": min(estimate + 0.1, 1.0),
        "pi_low": pi[0], "pi_high": pi[1], "tau2": tau2, "tau2_ci_low": NAN, "tau2_ci_high": NAN,
        "i2": i2, "i2_ci_low": 0.0, "i2_ci_high": 0.9, "q": 5.0, "q_df": k - 1, "q_p": q_p,
    }


def make_pooled(studies, single_pi_nan=True, method=METHOD):
    """A pooled row per subgroup (k = 1 subgroups get NaN PI and heterogeneity) and an overall row."""
    rows = []
    for modality, g in studies.groupby("modality", sort=False):
        k = len(g)
        single = {"pi": (NAN, NAN), "i2": NAN, "tau2": NAN, "q_p": NAN} if k == 1 and single_pi_nan else {}
        rows.append(pooled_row(modality, k, g["events"].sum(), g["n"].sum(), 0.6, method=method, **single))
    rows.append(pooled_row("overall", len(studies), studies["events"].sum(), studies["n"].sum(), 0.65,
                           method=method, i2=0.5, tau2=0.12, q_p=0.004))
    return pd.DataFrame(rows)


def make_tests(statistic=5.2134, df=1, p=0.0225, method=METHOD):
    return pd.DataFrame([
        {"outcome": "CR", "method": method, "test": "between", "statistic": statistic, "df": df, "p": p},
        {"outcome": "CR", "method": method, "test": "metareg", "statistic": 9.9, "df": df, "p": 0.5},
    ])


TWO_GROUPS = {
    "Blinatumomab": [("Topp 2015", 81, 189), ("Kantarjian 2016 (older adults)", 123, 261), ("Topp 2014", 25, 36)],
    "CAR-T": [("Maude 2014", 27, 30), ("Lee 2015", 14, 20), ("Davila 2014", 14, 16)],
}
FOUR_GROUPS = {
    "X": [("S1", 10, 50), ("S2", 25, 60), ("S3", 0, 45)],
    "Y": [("S4", 40, 55), ("S5", 41, 41)],
    "Z": [("S6", 5, 20), ("S7", 9, 25), ("S8", 15, 33)],
    "W": [("S9", 50, 100)],
}


# ---- inspecting figures ----


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def diamonds(fig):
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Polygon)]


def prediction_bars(fig):
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]


def all_text_boxes(fig):
    """Rendered extents of every non-empty text, including tick labels and the axis label."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    artists = []
    for ax in fig.axes:
        artists += list(ax.texts) + list(ax.get_xticklabels()) + [ax.xaxis.label]
    return [(a.get_text(), a.get_window_extent(renderer)) for a in artists if a.get_visible() and a.get_text()]


def assert_no_text_overlap(fig):
    boxes = all_text_boxes(fig)
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert clashes == []


def graphics_boxes(fig):
    """Extents of diamonds, prediction bars, squares and whiskers; the dashed reference line crosses rows by design."""
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if not is_vertical(ln)]
    return [a.get_window_extent(renderer) for a in [*ax.patches, *lines]]


def is_vertical(line):
    xs = line.get_xdata()
    return len(xs) > 1 and len(set(xs)) == 1


def assert_texts_clear_of_graphics(fig):
    boxes = all_text_boxes(fig)
    hits = [text for text, box in boxes for graphic in graphics_boxes(fig) if box.overlaps(graphic)]
    assert hits == []


# ---- formatting ----


def test_number_formats_follow_meta():
    # rates in percent, one decimal, as the tables and the report say them (issue 16: one unit everywhere)
    assert format_ci(0.7312, 0.9801) == "[73.1; 98.0]"
    assert format_ci(0.0, 1.0) == "[0.0; 100.0]"
    assert format_ci(NAN, 0.5) == ""
    assert format_p(0.0225) == "p = 0.02"
    assert format_p(0.004) == "p < 0.01"
    assert format_tau2(0.30121) == "τ² = 0.3012"
    assert format_tau2(0.0) == "τ² = 0"
    assert format_tau2(3e-6) == "τ² < 0.0001"


def test_heterogeneity_text_pieces():
    row = pooled_row("A", 4, 10, 40, 0.5)
    assert heterogeneity_text(row) == "Heterogeneity: I² = 71% [0%; 90%], τ² = 0.3012, p = 0.03"
    row.update(i2_ci_low=NAN, tau2=NAN)
    assert heterogeneity_text(row) == "Heterogeneity: I² = 71%, p = 0.03"
    assert heterogeneity_text(pooled_row("A", 1, 5, 10, 0.5)) == "Heterogeneity: not applicable (k = 1)"
    row.update(i2=NAN, q_p=NAN)
    assert heterogeneity_text(row) is None


def test_subgroup_test_text_uses_df_and_method():
    tests = pd.concat([make_tests(), make_tests(statistic=1.0, df=3, p=0.8, method="logit-dl")])
    assert subgroup_test_text(tests, METHOD) == "Test for subgroup differences: χ²₁ = 5.21, df = 1 (p = 0.02)"
    assert subgroup_test_text(tests, "logit-dl") == "Test for subgroup differences: χ²₃ = 1.00, df = 3 (p = 0.80)"
    assert subgroup_test_text(make_tests(df=NAN), METHOD) == "Test for subgroup differences: χ² = 5.21 (p = 0.02)"
    assert subgroup_test_text(make_tests(statistic=NAN), METHOD) is None
    assert subgroup_test_text(make_tests().iloc[1:], METHOD) is None


# ---- figure content ----


@pytest.fixture
def two_group_fig():
    studies = make_studies(TWO_GROUPS)
    return forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD)


def test_two_subgroups_content(two_group_fig):
    shown = texts(two_group_fig)
    for study in ("Topp 2015", "Kantarjian 2016 (older adults)", "Davila 2014"):
        assert study in shown
    for header in ("Study", "Events", "Total", "Rate (%)", "95%-CI", "Weight"):
        assert header in shown
    assert "Modality = Blinatumomab" in shown and "Modality = CAR-T" in shown
    assert shown.count("Random effects model") == 3
    assert shown.count("Prediction interval") == 3
    assert shown.count("Heterogeneity: I² = 71% [0%; 90%], τ² = 0.3012, p = 0.03") == 2
    assert "Heterogeneity: I² = 50% [0%; 90%], τ² = 0.1200, p < 0.01" in shown
    assert "Test for subgroup differences: χ²₁ = 5.21, df = 1 (p = 0.02)" in shown
    assert "Random-effects model: glmm; 95%-CIs of single studies: clopper-pearson" in shown
    # Study cells: events, total, proportion, CI and weight (81/189 of 486 patients).
    for cell in ("81", "189", "42.9", "38.9%"):
        assert cell in shown
    assert "229" in shown and "486" in shown  # summed events/total of the subgroup


def test_two_subgroups_graphics(two_group_fig):
    assert len(diamonds(two_group_fig)) == 3
    assert len(prediction_bars(two_group_fig)) == 3
    ax = two_group_fig.axes[0]
    assert ax.get_xlim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "20", "40", "60", "80", "100"]
    assert ax.get_xlabel() == "Proportion (%)"
    # The dashed reference line sits at the overall estimate.
    verticals = [ln for ln in ax.lines if is_vertical(ln)]
    assert [ln.get_xdata()[0] for ln in verticals] == [0.65]
    assert_no_text_overlap(two_group_fig)
    assert_texts_clear_of_graphics(two_group_fig)


def test_squares_scale_with_weight(two_group_fig):
    squares = [ln for ln in two_group_fig.axes[0].lines if ln.get_marker() == "s"]
    assert len(squares) == 6
    sizes = [ln.get_markersize() for ln in squares]
    # Kantarjian (41% of its subgroup) has the largest square, Davila (24%) a smaller one than Maude (45%).
    assert max(sizes) == sizes[1]
    assert sizes[5] < sizes[3]


def test_one_subgroup_without_between_test():
    studies = make_studies({"CAR-T": TWO_GROUPS["CAR-T"]})
    fig = forest_plot(studies, make_pooled(studies), make_tests().iloc[1:], method=METHOD,
                      outcome_label="Overall response", subgroup_label="Therapy")
    shown = texts(fig)
    assert "Therapy = CAR-T" in shown
    assert len(diamonds(fig)) == 2
    assert not any(t.startswith("Test for subgroup differences") for t in shown)
    assert fig.axes[0].get_xlabel() == "Overall response (%)"
    assert_no_text_overlap(fig)


def test_four_subgroups_single_study_and_nan_pi():
    studies = make_studies(FOUR_GROUPS)
    pooled = make_pooled(studies)
    pooled.loc[pooled["subgroup"] == "Z", ["pi_low", "pi_high"]] = NAN
    tests = make_tests(statistic=12.345, df=3, p=0.0063)
    fig = forest_plot(studies, pooled, tests, method=METHOD)
    shown = texts(fig)
    assert len(diamonds(fig)) == 5
    # PIs for X, Y and overall only: Z's is NaN and W has a single study.
    assert len(prediction_bars(fig)) == 3
    assert shown.count("Prediction interval") == 3
    assert "Heterogeneity: not applicable (k = 1)" in shown
    assert "Test for subgroup differences: χ²₃ = 12.35, df = 3 (p < 0.01)" in shown
    # CIs touching 0 and 1 (S3 with 0 events, S5 with all events) are printed in full.
    assert "[0.0; 15." in " ".join(shown) and "; 100.0]" in " ".join(shown)
    assert "100.0%" in shown  # the single study carries its whole subgroup
    assert_no_text_overlap(fig)
    assert_texts_clear_of_graphics(fig)


def test_missing_weights_leave_blank_cells():
    studies = make_studies(TWO_GROUPS, weights=False)
    fig = forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD)
    assert not any(t.endswith("%") for t in texts(fig) if not t.startswith("Heterogeneity"))
    squares = [ln.get_markersize() for ln in fig.axes[0].lines if ln.get_marker() == "s"]
    assert len(squares) == 6 and min(squares) > 0  # sized by patients instead

    no_column = forest_plot(studies.drop(columns="weight"), make_pooled(studies), make_tests(), method=METHOD)
    assert texts(no_column) == texts(fig)


def test_only_included_studies_and_chosen_method():
    studies = make_studies(TWO_GROUPS)
    studies.loc[studies["study"] == "Lee 2015", ["included", "reason"]] = [False, "duplicate cohort"]
    pooled = pd.concat([make_pooled(studies), make_pooled(studies, method="logit-dl").assign(estimate=0.2)])
    fig = forest_plot(studies, pooled, make_tests(), method=METHOD)
    shown = texts(fig)
    assert "Lee 2015" not in shown
    assert "0.20" not in shown  # estimates of the other method are not used
    assert len(diamonds(fig)) == 3


def test_many_studies_with_long_names_do_not_overlap():
    rng = np.random.default_rng(1)
    groups = {}
    for g, modality in enumerate(["CAR-T", "Blinatumomab", "Inotuzumab ozogamicin", "Chemotherapy"]):
        groups[modality] = [
            (f"Investigator{i} {2000 + i} (older adults, relapsed/refractory cohort {g})",
             int(rng.integers(0, 40)), 40)
            for i in range(10)
        ]
    studies = make_studies(groups)
    fig = forest_plot(studies, make_pooled(studies), make_tests(statistic=30.1, df=3, p=1e-6), method=METHOD)
    assert len(diamonds(fig)) == 5
    width, height = fig.get_size_inches()
    assert height > 10  # height grows with the number of rows
    assert width >= 10
    assert_no_text_overlap(fig)
    assert_texts_clear_of_graphics(fig)


def test_unknown_method_is_an_error():
    studies = make_studies(TWO_GROUPS)
    with pytest.raises(ValueError, match="logit-pm"):
        forest_plot(studies, make_pooled(studies), make_tests(), method="logit-pm")


def test_height_scales_with_rows_and_width_is_fixed():
    small = make_studies({"CAR-T": TWO_GROUPS["CAR-T"]})
    large = make_studies(FOUR_GROUPS)
    fig_small = forest_plot(small, make_pooled(small), make_tests(), method=METHOD)
    fig_large = forest_plot(large, make_pooled(large), make_tests(), method=METHOD)
    assert fig_small.get_size_inches()[1] < fig_large.get_size_inches()[1]
    assert fig_small.get_size_inches()[0] == pytest.approx(10.0)
    assert fig_large.get_size_inches()[0] == pytest.approx(10.0)


def test_no_global_figures_left_open(two_group_fig):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


# ---- saving ----


def test_save_figure_is_byte_reproducible(tmp_path):
    studies = make_studies(TWO_GROUPS)
    pooled, tests = make_pooled(studies), make_tests()
    for run in ("a", "b"):
        fig = forest_plot(studies, pooled, tests, method=METHOD)
        save_figure(fig, {fmt: str(tmp_path / run / f"forest.{fmt}") for fmt in ("pdf", "svg", "png")})
        # Saving the same figure again must give the same bytes as well.
        save_figure(fig, {fmt: str(tmp_path / run / f"again.{fmt}") for fmt in ("pdf", "svg", "png")})
    for fmt in ("pdf", "svg", "png"):
        first = (tmp_path / "a" / f"forest.{fmt}").read_bytes()
        assert len(first) > 1000
        assert first == (tmp_path / "b" / f"forest.{fmt}").read_bytes()
        assert first == (tmp_path / "a" / f"again.{fmt}").read_bytes()
    assert (tmp_path / "a" / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_figure_rejects_unknown_format(tmp_path, two_group_fig):
    with pytest.raises(ValueError):
        save_figure(two_group_fig, {"jpg": str(tmp_path / "forest.jpg")})



def test_benchmark_line_and_its_footnote_in_percent():
    studies = make_studies(TWO_GROUPS)
    fig = forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD, benchmark=0.3)
    assert any(t.endswith("dotted line: benchmark 30.0%") for t in texts(fig))
    dotted = [line for line in fig.axes[0].lines if list(line.get_xdata()) == [0.3, 0.3]]
    assert len(dotted) == 1


def test_labels_from_data_are_text_never_mathtext_in_every_figure():
    from matplotlib.text import Text
    from metaprop.figures.posterior import draw_posterior
    from metaprop.figures.review import MAX_PANELS, baujat_plot, funnel_plot
    from metaprop.spec import Outcome

    odd = {"$a_1$": [("$x^2$ 2015", 8, 10), ("b_c 2016", 5, 9), ("#y 2017", 3, 10)], "Arm $2$": [("z 2018", 4, 9)]}
    studies = make_studies(odd)
    outcome = Outcome("cr", "$CR_{3}$ rate", "cr_events")
    rng = np.random.default_rng(0)
    funnel = {g: ([s for s, _, _ in rows], rng.normal(size=len(rows)), rng.uniform(0.2, 1, len(rows)), 0.0)
              for g, rows in odd.items()}
    influence = pd.DataFrame({"subgroup": studies["modality"], "study": studies["study"],
                              "baujat_x": rng.uniform(size=4), "baujat_y": rng.uniform(size=4)})
    r = np.linspace(0.001, 0.999, 999)
    curves = {"level": 0.95, "rate": r, "difference": None,
              "groups": {g: {"density": np.exp(-((r - 0.5) ** 2) / 0.01), "low": 0.3, "median": 0.5, "high": 0.7}
                         for g in odd}}
    figures = [
        forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD, outcome_label=outcome.label),
        funnel_plot(funnel, pd.DataFrame(columns=["subgroup", "test", "assessed", "note", "p"]), outcome),
        baujat_plot(influence, outcome, "$tau$"),
        draw_posterior(curves, outcome.label, "mu ~ N(0, 2^2)"),
    ]
    for fig in figures:
        shown = [t for t in fig.findobj(Text) if "$" in t.get_text()]
        assert shown and not any(t.get_parse_math() for t in shown)
    # more modalities than panels: a bounded figure that names those it leaves out
    many = {f"Arm {i}": funnel["$a_1$"] for i in range(MAX_PANELS + 3)}
    fig = funnel_plot(many, pd.DataFrame(columns=["subgroup", "test", "assessed", "note", "p"]), outcome)
    assert tuple(fig.get_size_inches()) == (14.4, 6 * 3.6 + 0.3)
    assert any("3 more modalities not drawn" in t.get_text() and f"Arm {MAX_PANELS + 2}" in t.get_text()
               for t in fig.texts)


def test_funnel_panels_below_three_trials_say_why():
    from metaprop.figures.review import funnel_plot
    from metaprop.spec import Outcome

    data = {"A": (["a", "b"], np.array([0.1, 0.5]), np.array([0.3, 0.4]), 0.3),
            "B": (["c", "d", "e"], np.array([0.1, 0.5, 0.2]), np.array([0.3, 0.4, 0.5]), 0.3)}
    fig = funnel_plot(data, pd.DataFrame(columns=["subgroup", "test", "assessed", "note", "p"]),
                      Outcome("cr", "complete response", "cr_events"))
    a, b = fig.axes[:2]
    assert [t.get_text() for t in a.texts] == ["No funnel plot below 3 trials."] and not a.axison
    assert b.axison and len(b.lines[-1].get_xdata()) == 3


def test_moderator_forest_carries_the_test_within_each_modality():
    from metaprop.figures.forest import within_test_texts

    tests = pd.DataFrame([
        {"outcome": "CR", "method": METHOD, "test": "between-within", "statistic": 5.978497, "df": 2, "p": 0.0503,
         "note": "within CAR-T"},
        {"outcome": "CR", "method": METHOD, "test": "metareg-within", "statistic": 5.98, "df": 2, "p": 0.05,
         "note": "within CAR-T"},
        {"outcome": "CR", "method": "logit-reml", "test": "between-within", "statistic": 1.0, "df": 1, "p": 0.3,
         "note": "within CAR-T"},
    ])
    said = "Test for subgroup differences within CAR-T: χ²₂ = 5.98, df = 2 (p = 0.05)"
    assert within_test_texts(tests, METHOD) == [said]
    studies = make_studies(TWO_GROUPS)
    fig = forest_plot(studies, make_pooled(studies), tests, method=METHOD)
    assert said in texts(fig)


def test_pdf_fonts_are_truetype_and_characters_outside_the_cut_fall_back(tmp_path):
    import re

    from matplotlib.figure import Figure
    from metaprop.figures.fonts import CHARACTERS, FAMILY

    fig = Figure(figsize=(3, 1))
    fig.add_axes((0, 0, 1, 1)).text(0.1, 0.5, "Ionescu ș 2019, τ² ≥ 0")
    assert "ș" not in CHARACTERS and "τ" in CHARACTERS and "≥" in CHARACTERS
    save_figure(fig, {"pdf": tmp_path / "f.pdf"})
    raw = (tmp_path / "f.pdf").read_bytes()
    fonts = set(re.findall(rb"/BaseFont /[A-Z]{6}\+([\w-]+)", raw))
    # the cut face for what figures print, the whole DejaVu Sans for a character outside it; both TrueType
    assert fonts == {FAMILY.replace(" ", "").encode() + b"-Regular", b"DejaVuSans"}, fonts
    assert b"/Subtype /Type3" not in raw and raw.count(b"/FontFile2") >= 2


def test_pdfs_embed_the_layout_free_twin_of_the_face_text_is_laid_out_with(tmp_path):
    import io
    import re
    import zlib

    from fontTools.ttLib import TTFont
    from matplotlib.figure import Figure
    from metaprop.figures import fonts

    folder = fonts._cached(fonts._sources())
    face, twin = TTFont(folder / "MetaPropSans-Regular.ttf"), TTFont(folder / "MetaPropSans-Regular.embed.ttf")
    assert face.getGlyphOrder() == twin.getGlyphOrder()  # glyph ids mean the same in both
    assert "GPOS" in face and not any(table in twin for table in fonts.LAYOUT_TABLES)  # kerning kept for layout
    features = {record.FeatureTag for record in face["GSUB"].table.FeatureList.FeatureRecord}
    assert not features & {"liga", "dlig", "hlig"}  # "fi" stays two glyphs: one embedded copy of the face
    fig = Figure(figsize=(3, 1))
    fig.add_axes((0, 0, 1, 1)).text(0.1, 0.5, "Office fidelity, AVAT")
    save_figure(fig, {"pdf": tmp_path / "f.pdf"})
    raw = (tmp_path / "f.pdf").read_bytes()
    streams = [zlib.decompress(m.group(1)) for m in re.finditer(rb"/Length1 \d+[^>]*>>\s*stream\n(.*?)\nendstream", raw,
                                                                 re.DOTALL)]
    assert len(streams) == 1  # one face, one copy
    embedded = TTFont(io.BytesIO(streams[0]))
    assert "glyf" in embedded and "GPOS" not in embedded and "GSUB" not in embedded


def test_a_pdf_needing_the_glyphs_of_an_earlier_one_gets_the_same_font_subset_without_fonttools(tmp_path,
                                                                                              monkeypatch):
    from fontTools import subset
    from matplotlib.figure import Figure

    def pdf(name, text):
        fig = Figure(figsize=(3, 1))
        fig.add_axes((0, 0, 1, 1)).text(0.1, 0.5, text)
        save_figure(fig, {"pdf": tmp_path / f"{name}.pdf"})
        return (tmp_path / f"{name}.pdf").read_bytes()

    calls = []
    real = subset.Subsetter.subset
    monkeypatch.setattr(subset.Subsetter, "subset", lambda self, font: calls.append(1) or real(self, font))
    first = pdf("first", "Baujat 2024: zqŽΩ")  # glyphs no other test embeds together
    subsets = len(calls)  # matplotlib embeds characters past U+00FF as a subset of their own: 2
    assert subsets == 2
    again = pdf("again", "ΩŽzq: 2024 Baujat")  # the same characters: the subsets kept are embedded again
    assert len(calls) == subsets and again != first
    streams = [re.findall(rb"/Length1 \d+[^>]*>>\s*stream\n(.*?)\nendstream", raw, re.DOTALL) for raw in (first, again)]
    assert streams[0] == streams[1] and len(streams[0]) == 2  # the same font bytes, timestamp and all
    pdf("other", "Baujat 2024: zqŽΩx")  # one more character below U+0100: that subset made anew
    assert len(calls) == subsets + 1


def test_the_cut_font_is_cached_byte_identical_and_falls_back_where_the_cache_is_read_only(tmp_path, monkeypatch):
    import matplotlib
    from metaprop.figures import fonts

    sources = fonts._sources()
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path / "cache"))
    cached = fonts._cached(sources)
    assert cached.parent == tmp_path / "cache" / "metaprop-fonts" and fonts._cached(sources) == cached
    assert [p.name for p in (tmp_path / "cache" / "metaprop-fonts").iterdir()] == [cached.name]  # no staging left
    fonts._cut_all(sources, tmp_path / "fresh")
    for face in cached.iterdir():  # the cut is deterministic: the cache holds what a new cut gives
        assert face.read_bytes() == (tmp_path / "fresh" / face.name).read_bytes()
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path / "file" / "cache"))
    fallback = fonts._cached(sources)
    assert sorted(p.name for p in fallback.iterdir()) == sorted(p.name for p in cached.iterdir())


def test_many_subgroups_keep_the_png_one_page_tall_and_the_pdf_whole():
    from matplotlib.text import Text
    from metaprop.figures.forest import PAGE_ROWS

    groups = {f"Arm {g}": [(f"S{g}_{t}", 5 + t, 20) for t in range(3)] for g in range(30)}
    studies = make_studies(groups)
    fig = forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD, pdf_name="forest_x.pdf")

    def every_text(figure):
        return [t.get_text() for t in figure.findobj(Text)]

    shown = every_text(fig)
    subgroups = [t for t in shown if t.startswith("Modality = ")]
    assert 1 <= len(subgroups) < 30 and subgroups == [f"Modality = Arm {g}" for g in range(len(subgroups))]
    more = [t for t in shown if t.startswith("... ")]
    assert more == [f"... {30 - len(subgroups)} more subgroups (full plot: forest_x.pdf, {len(fig.pdf_pages)} pages)"]
    assert fig.get_size_inches()[1] < (PAGE_ROWS + 8) * 0.21  # one page of rows, and its axis and footer
    trials = [t for page in fig.pdf_pages for t in every_text(page) if re.fullmatch(r"S\d+_\d", t)]
    assert sorted(trials) == sorted(studies["study"])  # every trial in the PDF, once


def test_png_bytes_decode_to_the_pixels_and_resolution_given():
    import io

    from metaprop.figures.png import png_bytes
    from PIL import Image

    rgb = np.random.default_rng(20261205).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(png_bytes(rgb, 300)))
    assert decoded.mode == "RGB" and decoded.size == (53, 37) and "dpi" in decoded.info
    assert (np.asarray(decoded) == rgb).all()
    assert [round(d) for d in decoded.info["dpi"]] == [300, 300] and set(decoded.info) == {"dpi"}  # no text chunks
    with pytest.raises(ValueError, match="8-bit RGB"):
        png_bytes(np.zeros((2, 2, 4), np.uint8), 300)


def test_png_figures_have_the_pixels_matplotlib_savefig_draws(tmp_path):
    # what a user of savefig(dpi=300) would get, alpha aside: the figures are opaque
    from PIL import Image

    studies = make_studies({"CAR-T": [("A 2014", 27, 30), ("B 2015", 14, 20)], "Blinatumomab": [("C 2017", 20, 48)]})
    fig = forest_plot(studies, make_pooled(studies), make_tests(), method=METHOD, outcome_label="CR")
    save_figure(fig, {"png": tmp_path / "ours.png"})
    fig.savefig(tmp_path / "savefig.png", dpi=PNG_DPI)
    ours, theirs = (np.asarray(Image.open(tmp_path / name)) for name in ("ours.png", "savefig.png"))
    assert ours.shape[2] == 3 and (theirs[..., 3] == 255).all()
    assert (ours == theirs[..., :3]).all()


def test_panel_figures_with_no_group_say_why():
    from metaprop.figures.bubble import bubble_plot
    from metaprop.figures.review import baujat_plot, funnel_plot
    from metaprop.spec import Outcome

    outcome = Outcome("cr", "complete response", "cr_events")
    empty = {
        "No kept trial: no funnel plot.": funnel_plot({}, pd.DataFrame(columns=["subgroup", "test"]), outcome),
        "No modality with 2 or more trials and a logit random-effects method: no Baujat plot.":
            baujat_plot(pd.DataFrame(columns=["subgroup", "study", "baujat_x", "baujat_y"]), outcome, "REML"),
        "No meta-regression: no bubble plot.":
            bubble_plot(pd.DataFrame(columns=["group", "study", "line", "x", "proportion", "weight"]), outcome, "year",
                        "REML"),
    }
    for message, fig in empty.items():
        first = fig.axes[0]
        assert [t.get_text() for t in first.texts] == [message] and not first.axison
