"""What a reviewer asks for: cumulative meta-analysis, small-study tests, the flow diagram, the report's first screen.

Parity fixtures come from tests/make_fixtures_reviewer.R (metafor cumul(), regtest(); Peters' test by its
definition with R's lm()). Tolerance: 1e-6 relative (1e-10 absolute) for every inverse-variance number, the
fixtures being made with metafor's REML threshold at 1e-10.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from conftest import BUNDLED, BUNDLED_ENTRIES, FIXTURES, ROOT
from matplotlib.patches import FancyBboxPatch
from metaprop.analysis.cumulative import cumulative_methods, cumulative_table, publication_order
from metaprop.analysis.extraction import studies_table
from metaprop.analysis.flow import flow_counts
from metaprop.analysis.small_study import funnel_data, small_study_table
from metaprop.figures.review import cumulative_plot, flow_diagram, funnel_plot
from metaprop.io.tables import read_trials
from metaprop.report.text import findings_paragraph, findings_table, heading_ids, report_blocks, to_html, to_markdown
from metaprop.spec import NOT_ASSESSED, Outcomes, UnknownKey, reason_category
from scipy.special import expit

RTOL, ATOL = 1e-6, 1e-10
CUMULATIVE = pd.read_csv(FIXTURES / "metafor_cumulative.tsv", sep="\t", comment="#")
SMALL_STUDY = pd.read_csv(FIXTURES / "metafor_small_study.tsv", sep="\t", comment="#")


def dataset(name, outcome="cr"):
    """A fixture dataset as a studies table: every row included."""
    data = pd.read_csv(FIXTURES / "reviewer" / f"{name}.tsv", sep="\t", dtype={"year": str})
    return data.assign(outcome=outcome, included=True, reason="")


@pytest.fixture(scope="module")
def cumulative_ours():
    methods = list(dict.fromkeys(CUMULATIVE["method"]))
    return {name: cumulative_table(dataset(name), "cr", methods).set_index(["subgroup", "method", "step"])
            for name in dict.fromkeys(CUMULATIVE["dataset"])}


@pytest.mark.parametrize("row", list(CUMULATIVE.itertuples()), ids=lambda r: f"{r.dataset}-{r.subgroup}-{r.method}-{r.step}")
def test_cumulative_matches_metafor_cumul(row, cumulative_ours):
    ours = cumulative_ours[row.dataset].loc[(row.subgroup, row.method, row.step)]
    assert ours["study"] == row.study  # same order: year, then study id
    assert ours["estimate_model"] == pytest.approx(row.est_model, rel=RTOL, abs=ATOL)
    assert ours["estimate"] == pytest.approx(expit(row.est_model), rel=RTOL, abs=ATOL)
    assert ours["ci_low"] == pytest.approx(expit(row.ci_low_model), rel=RTOL, abs=ATOL)
    assert ours["ci_high"] == pytest.approx(expit(row.ci_high_model), rel=RTOL, abs=ATOL)
    if row.step >= 2:  # metafor fits one study with tau^2 = 0; we leave it undefined
        assert ours["tau2"] == pytest.approx(row.tau2, rel=RTOL, abs=1e-8)
        assert ours["i2"] == pytest.approx(row.i2, rel=RTOL, abs=1e-8)
    else:
        assert math.isnan(ours["tau2"]) and "one study" in ours["note"]


def test_cumulative_order_is_year_then_study_id_and_says_when_a_year_is_missing():
    table = pd.DataFrame({"study": ["b", "a", "c", "d"], "year": ["2016", "2016", "", "2014"]})
    ordered, note = publication_order(table)
    assert list(ordered["study"]) == ["d", "a", "b", "c"]
    assert note == "year not given, added last (by study id): c"
    ordered, note = publication_order(table.drop(columns="year"))
    assert list(ordered["study"]) == ["a", "b", "c", "d"] and note == "no year column: trials added in order of study id"
    # a year read as a number from a TSV with a blank cell is still the same year
    assert list(publication_order(pd.DataFrame({"study": ["x", "y"], "year": [2015.0, 2014.0]}))[0]["year"]) == [
        "2014", "2015"]


def test_cumulative_methods_are_primary_then_logit_reml_once():
    assert cumulative_methods("glmm") == ["glmm", "logit-reml"]
    assert cumulative_methods("logit-reml") == ["logit-reml"]


def test_cumulative_last_step_is_the_full_analysis():
    from metaprop.analysis.meta_analysis import pool

    data = dataset("cumulative")
    table = cumulative_table(data, "cr", ["glmm"])
    for group, part in [*data.groupby("modality"), ("overall", data)]:
        last = table[table["subgroup"] == group].iloc[-1]
        full = pool(part["events"], part["n"], "glmm")
        assert last["k"] == len(part) and last["estimate"] == pytest.approx(full["estimate"], rel=1e-8)  # study order changes the optimiser path only


@pytest.mark.parametrize("row", list(SMALL_STUDY.itertuples()), ids=lambda r: f"{r.dataset}-{r.subgroup}-{r.test}")
def test_small_study_tests_match_metafor_regtest_and_r_lm(row):
    ours = small_study_table(dataset(row.dataset), "cr", min_trials=1).set_index(["subgroup", "test"])
    ours = ours.loc[(row.subgroup, row.test)]
    assert ours["assessed"] and ours["k"] == row.k
    for column in ("statistic", "p", "intercept", "slope", "slope_se"):
        assert ours[column] == pytest.approx(getattr(row, column), rel=RTOL, abs=ATOL), column
    if row.test == "peters":
        assert ours["df"] == row.df
    else:
        assert math.isnan(ours["df"])  # z test


def test_small_study_tests_not_assessed_below_ten_trials():
    table = small_study_table(dataset("cumulative"), "cr")  # 4 and 6 trials
    assert list(table["note"]) == [NOT_ASSESSED] * 4 and not table["assessed"].any()
    assert NOT_ASSESSED == "not assessed: fewer than 10 trials"
    assert table[["statistic", "p"]].isna().all().all()
    assessed = small_study_table(dataset("small_study"), "cr")  # 12 and 10 trials
    assert assessed["assessed"].all() and list(assessed["k"]) == [12, 12, 10, 10]
    fixture = SMALL_STUDY[SMALL_STUDY["dataset"] == "small_study"]
    assert assessed["p"].to_numpy() == pytest.approx(fixture["p"].to_numpy(), rel=RTOL)


def test_small_study_test_with_equal_trial_sizes_is_not_run_and_says_why():
    data = pd.DataFrame({"study": [f"s{i}" for i in range(10)], "modality": "X", "events": range(3, 13), "n": 40,
                         "outcome": "cr", "included": True, "reason": ""})
    table = small_study_table(data, "cr").set_index("test")
    assert table.loc["peters", "note"] == "not assessed: every trial has the same size"
    assert table.loc["egger", "assessed"]


def test_funnel_plot_shows_the_verdict_and_the_centre(tmp_path):
    for name, verdict in (("cumulative", NOT_ASSESSED), ("small_study", "Egger p = 0.001; Peters p < 0.001")):
        data = dataset(name)
        tests = small_study_table(data, "cr")
        funnel = funnel_data(data, "cr")
        fig = funnel_plot(funnel, tests, BUNDLED[0])
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert texts[0] == verdict
        assert len(fig.axes) == 2 and [len(ax.lines[-1].get_xdata()) for ax in fig.axes] == [
            len(data[data["modality"] == g]) for g in funnel]
    # the centre is the logit-REML estimate, as metafor's funnel() of an rma fit
    centre = funnel["A"][3]
    from metaprop.analysis.meta_analysis import pool

    part = data[data["modality"] == "A"]
    assert centre == pytest.approx(pool(part["events"], part["n"], "logit-reml")["estimate_model"], rel=1e-12)


def bundled_studies():
    return studies_table(read_trials([str(ROOT / "data/raw/table1.tsv")], BUNDLED), BUNDLED)


def test_flow_counts_add_up_to_the_twelve_rows_of_table_1():
    counts = flow_counts(bundled_studies())
    assert counts["total"] == 12 and counts["sources"] == [(str(ROOT / "data/raw/table1.tsv"), 12)]
    for outcome, read, excluded, pooled in counts["outcomes"]:
        assert read == 12
        assert sum(k for _, k in excluded) + sum(k for _, k in pooled) == 12, outcome
    cr = counts["outcomes"][0]
    assert cr[2] == [("overlapping cohort", 3), ("inconsistent count", 2), ("not reported", 2)]
    assert cr[3] == [("Blinatumomab", 1), ("CAR-T", 4)]
    # in the order of config's comparison, as the text and the other figures list them
    assert flow_counts(bundled_studies(), ["CAR-T", "Blinatumomab"])["outcomes"][0][3] == [("CAR-T", 4),
                                                                                          ("Blinatumomab", 1)]


def test_reason_categories():
    assert reason_category("overlap") == "overlapping cohort"
    assert reason_category("inconsistent") == "inconsistent count"
    assert reason_category("bound") == "bound rather than a count"
    assert reason_category("n_missing") == "not reported"
    with pytest.raises(UnknownKey, match="unknown reason code 'something new'"):  # never hidden under a wrong one
        reason_category("something new")


def test_every_exclusion_of_the_bundled_table_has_a_code():
    studies = bundled_studies()
    assert (studies["reason_code"] != "").eq(~studies["included"]).all()
    assert {reason_category(c) for c in studies.loc[~studies["included"], "reason_code"]} <= {"overlapping cohort", "inconsistent count", "bound rather than a count", "not reported",
         "value not placed in a column", "unreadable value"}


def _boxes_and_texts(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in fig.patches if isinstance(p, FancyBboxPatch)]
    texts = [t.get_window_extent(renderer) for t in fig.texts]
    return boxes, texts, fig.bbox


def test_flow_diagram_boxes_never_overlap_however_long_the_reasons():
    long_reason = "an exclusion reason nobody foresaw, " * 12 + "withaverylongunbrokenwordthatcannotwrapanywhere" * 3
    studies = pd.DataFrame({
        "study": [f"S{i}" for i in range(9)],
        "modality": ["A modality with a remarkably long name " * 3] * 4 + ["B"] * 5,
        "outcome": "cr", "included": [True, True, False, False, True, False, False, False, True],
        "reason": ["", "", long_reason, "n not reported", "", "shares patients with S0", long_reason + "2",
                   "complete response inconsistent", ""],
        "reason_code": ["", "", "unreadable", "n_missing", "", "overlap", "unplaced", "inconsistent", ""],
        "source_file": ["data/raw/" + "a_very_long_directory_name/" * 5 + "table.tsv"] * 9,
    })
    studies = pd.concat([studies, studies.assign(outcome="scrs")], ignore_index=True)
    counts = flow_counts(studies)
    fig = flow_diagram(counts, Outcomes(BUNDLED_ENTRIES))
    boxes, texts, page = _boxes_and_texts(fig)
    assert len(boxes) == 1 + 3 * 2 and len(texts) == len(boxes)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for text, box in zip(texts, boxes):  # each text drawn in its own box, everything on the page
        assert box.x0 <= text.x0 and text.x1 <= box.x1 and box.y0 <= text.y0 and text.y1 <= box.y1
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    shown = "\n".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "Excluded: 5" in shown and "Pooled: 4" in shown and "not reported: 1" in shown


def test_flow_diagram_of_the_bundled_table(tmp_path):
    fig = flow_diagram(flow_counts(bundled_studies()), Outcomes(BUNDLED_ENTRIES))
    boxes, _, _ = _boxes_and_texts(fig)
    assert len(boxes) == 1 + 4 * 3
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    first = [t.get_text() for t in fig.texts][:4]
    assert first[0].startswith("Cohorts read from the trial tables: 12")
    assert first[1] == "Complete response: 12 cohorts assessed"
    assert first[2] == "Pooled: 5\nBlinatumomab: 1\nCAR-T: 4"
    assert first[3] == "Excluded: 7\noverlapping cohort: 3\ninconsistent count: 2\nnot reported: 2"


def test_cumulative_plot_has_a_row_per_step():
    table = cumulative_table(dataset("cumulative"), "cr", ["logit-reml"])
    fig = cumulative_plot(table, "logit-reml", BUNDLED[0])
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("+ ")]
    assert labels == [f"+ {s}" for s in table["study"]]
    assert len(fig.axes[0].lines) == 2 * len(table)  # a CI line and a marker per step


# ---- the report ----

CONFIG = {"outcomes": [e for e in BUNDLED_ENTRIES if e["id"] in ("cr", "scrs", "scns")], "primary_method": "glmm", "methods": ["glmm", "logit-reml"],
          "level": 0.95, "ci_method": "clopper-pearson", "overlap_rule": "largest", "glmm_nagq": 7}


@pytest.fixture(scope="module")
def bundled():
    from metaprop.analysis.meta_analysis import pool_outcome

    studies = bundled_studies()
    ids = [o["id"] for o in CONFIG["outcomes"]]
    studies = studies[studies["outcome"].isin(ids)]
    results = [pool_outcome(studies, o, CONFIG["methods"]) for o in ids]
    return studies, pd.concat([p for p, _ in results]), pd.concat([t for _, t in results])


def test_summary_of_findings_table(bundled):
    studies, pooled, _ = bundled
    _, head, body = findings_table(studies, pooled, CONFIG)
    assert head == ["Modality", "Complete response (95% CI)", "Trials (k)", "Patients", "I²", "Severe CRS (CI; k)",
                    "Severe neurotoxicity (CI; k)"]
    assert body[0][:5] == ["Blinatumomab", "47.1% (41.1% to 53.2%)", "1", "261", "not defined (k = 1)"]
    assert body[1][:5] == ["CAR-T", "87.6% (77.8% to 93.5%)", "4", "111", "32%"]
    assert "; k = 4" in body[1][5] and "; k = 2" in body[0][6]
    # the safety outcomes of blinatumomab pool other trials than its CR (Kantarjian 2016): named
    assert "Topp 2014" in body[0][6] and "Topp 2015" in body[0][6] and "Kantarjian" not in body[0][6]


def test_summary_paragraph_states_the_comparison_and_caveats(bundled):
    studies, pooled, tests = bundled
    text = findings_paragraph(studies, pooled, tests, CONFIG)
    assert text.startswith("By the primary method (glmm), the pooled complete response rate is Blinatumomab 47.1%")
    for needle in ("p < 0.0001", "single-arm", "Blinatumomab rests on a single cohort",
                   "3 cohorts sharing patients with a pooled cohort were left out",
                   "(Topp 2015, Topp 2014, Davila 2014)", "2 rows of the tables print a rate no count",
                   "(Gore 2014, Turtle 2015)", "2 more could not be used (Schlegel 2014, Maude 2015"):
        assert needle in text, needle


def test_report_leads_with_findings_then_forest_then_contents(bundled, tmp_path):
    studies, pooled, tests = bundled
    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG fake")
    empty = pd.DataFrame(columns=["outcome", "subgroup", "method", "omitted", "k", "estimate", "ci_low", "ci_high",
                                  "tau2", "i2"])
    methods = pd.DataFrame(columns=["method"])
    overlap = pd.DataFrame(columns=["overlap_rule", "subgroup", "k", "estimate", "ci_low", "ci_high", "between_p",
                                    "studies", "note"])
    review = {"cumulative": cumulative_table(studies, "cr", ["glmm"]), "small_study": small_study_table(studies, "cr"),
              "cumulative_figures": [str(figure)] * 3, "funnel_figures": [str(figure)] * 3, "flow": str(figure)}
    blocks = report_blocks(studies, pooled, tests, empty, methods, overlap, CONFIG, [str(figure)] * 3, [], review=review)
    kinds = [b[0] for b in blocks[:6]]
    assert kinds == ["h1", "h2", "table", "p", "figure", "p"] and blocks[1][1] == "Summary of findings"
    assert blocks[6] == ("toc",)
    html = to_html(blocks)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media print" in html and "break-inside:avoid" in html
    assert '<nav aria-label="Contents">' in html
    for anchor in ("selection-of-cohorts", "cumulative-meta-analysis", "small-study-effects", "methods"):
        assert f'<a href="#{anchor}">' in html and f'id="{anchor}"' in html
    md = to_markdown(blocks, {str(figure): "figures/f.png"})
    assert "- [Small-study effects](#small-study-effects)" in md
    assert "Hunter JP" in md and "Sterne JAC" in md and NOT_ASSESSED in md
    assert md.index("## Summary of findings") < md.index("![Forest plot") < md.index("**Contents**")


def test_heading_ids_are_unique_like_github():
    blocks = [("h2", "Complete response"), ("h3", "All methods"), ("h2", "Severe CRS"), ("h3", "All methods"),
              ("h3", "By mrd-only enrolment (a = b)")]
    assert list(heading_ids(blocks).values()) == ["complete-response", "all-methods", "severe-crs", "all-methods-1",
                                                  "by-mrd-only-enrolment-a--b"]


def test_numbers_in_findings_agree_with_pooled(bundled):
    studies, pooled, _ = bundled
    row = pooled[(pooled["outcome"] == "cr") & (pooled["method"] == "glmm") & (pooled["subgroup"] == "CAR-T")].iloc[0]
    assert findings_table(studies, pooled, CONFIG)[2][1][1] == (
        f"{100 * row.estimate:.1f}% ({100 * row.ci_low:.1f}% to {100 * row.ci_high:.1f}%)")
    assert np.isfinite(row.i2)


def test_flow_counts_follow_a_second_table_and_a_changed_row():
    studies = bundled_studies()
    added = pd.DataFrame({"study": ["Smith 2027"] * 2, "modality": "CAR-T", "outcome": ["cr", "scrs"],
                          "events": [30, None], "n": 45, "included": [True, False],
                          "reason": ["", "severe CRS not reported"], "reason_code": ["", "not_reported"],
                          "source_file": "data/raw/added.tsv"})
    counts = flow_counts(pd.concat([studies, added], ignore_index=True))
    assert counts["total"] == 13 and counts["sources"][1] == ("data/raw/added.tsv", 1)
    outcomes = {o: (read, dict(excluded), dict(pooled)) for o, read, excluded, pooled in counts["outcomes"]}
    assert outcomes["cr"][0] == 13 and outcomes["cr"][2] == {"Blinatumomab": 1, "CAR-T": 5}
    assert outcomes["scrs"][1]["not reported"] == 5
    for read, excluded, pooled in outcomes.values():
        assert sum(excluded.values()) + sum(pooled.values()) == read


def test_cumulative_plot_of_many_modalities_stays_one_page():
    from metaprop.figures.forest import PAGE_ROWS

    table = pd.DataFrame([{"subgroup": f"Arm {g}", "step": s, "study": f"S{g}_{s}", "year": str(2010 + s), "k": s,
                           "estimate": 0.5, "ci_low": 0.3, "ci_high": 0.7, "note": ""} for g in range(30)
                          for s in (1, 2, 3)])
    fig = cumulative_plot(table, "glmm", BUNDLED[0])
    texts = [t.get_text() for t in fig.axes[0].texts]
    shown = [t for t in texts if t.startswith("Modality = ")]
    assert len(shown) < 30 and f"... {30 - len(shown)} more modalities: every step is in cumulative.tsv" in texts
    assert sum(t.startswith("+ ") for t in texts) + len(shown) + 2 <= PAGE_ROWS


def test_modalities_in_comparison_order():
    from metaprop.spec import comparison_order, in_comparison_order

    # named ones first as config orders them, the others after in the order given; a name twice counts once
    assert comparison_order(["C", "B", "D", "A"], ["A", "B", "A", "Z"]) == ["A", "B", "C", "D"]
    assert comparison_order(["C", "B"], None) == ["C", "B"]
    rows = pd.DataFrame({"modality": ["C", "B", "D", "A", "B"], "i": range(5)})
    assert in_comparison_order(rows, ["A", "B"])["i"].tolist() == [3, 1, 4, 0, 2]
