"""Many trials: leave-one-out in O(k), forest plots split over pages, cumulative steps, a report that stays small."""

import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from metaprop.spec import milestone_steps
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from conftest import BUNDLED, CR
from metaprop.analysis import meta_analysis as analysis
from metaprop.analysis.cumulative import cumulative_table, glmm_steps
from metaprop.analysis.extraction import studies_table
from metaprop.figures import forest as plotting
from metaprop.figures.review import cumulative_plot
from metaprop.io.tables import read_trials
from metaprop.report.text import (
    REPORT_ROWS,
    REPORT_SHOWN,
    leave_one_out_block,
    name_list,
    studies_blocks,
    to_html,
)
from metaprop.stats.pooling import leave_one_out_inverse_variance, pool_inverse_variance
from metaprop.stats.proportions import freeman_tukey, logit_effects

IV_METHODS = ["logit-dl", "logit-reml", "logit-pm", "logit-dl-hksj", "logit-reml-hksj", "logit-pm-hksj", "ft-dl"]


def synthetic_trials(tmp_path, k, groups=("CAR-T", "Blinatumomab"), seed=7, tau=0.5):
    """A seeded table of k trials (study, modality, n, cr_events) read as the pipeline reads it."""
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 301, size=k)
    group = np.arange(k) % len(groups)
    means = np.linspace(1.0, -1.0, len(groups))
    events = rng.binomial(n, 1 / (1 + np.exp(-(means[group] + tau * rng.standard_normal(k)))))
    lines = ["study\tmodality\tn\tcr_events"] + [f"Trial {i + 1:04d}\t{groups[g]}\t{a}\t{b}"
                                                 for i, (g, a, b) in enumerate(zip(group, n, events))]
    path = tmp_path / "trials.tsv"
    path.write_text("\n".join(lines) + "\n")
    return read_trials([str(path)], BUNDLED)


def synthetic_studies(tmp_path, k, **kw):
    return studies_table(synthetic_trials(tmp_path, k, **kw), CR)


# ---- leave-one-out in O(k) ----


def exact_loo(y, v, method, hksj):
    """Every set without one study, refitted from scratch (the path used below LOO_SERIES_MIN_K)."""
    k = len(y)
    sets_y = np.array([np.delete(y, i) for i in range(k)])
    sets_v = np.array([np.delete(v, i) for i in range(k)])
    return pool_inverse_variance(sets_y, sets_v, method, hksj, tau2_ci=False)


@pytest.mark.parametrize("tau", [0.0, 0.4, 1.5])
@pytest.mark.parametrize("scale", ["logit", "ft"])
@pytest.mark.parametrize("method", ["dl", "reml", "pm"])
def test_series_leave_one_out_equals_refitting_each_set(method, scale, tau):
    rng = np.random.default_rng([3, int(10 * tau)])
    k = 80
    n = rng.integers(10, 301, k).astype(float)
    events = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(0.3 + tau * rng.standard_normal(k))))).astype(float)
    y, v = (logit_effects if scale == "logit" else freeman_tukey)(events, n)
    for hksj in (False, True):
        fast = leave_one_out_inverse_variance(y, v, method, hksj)
        exact = exact_loo(y, v, method, hksj)
        for key, want in exact.items():
            if key.endswith(("_ci_low", "_ci_high")) and key.startswith(("tau2", "i2")):
                assert np.isnan(fast[key]).all()
                continue
            np.testing.assert_allclose(fast[key], want, rtol=1e-10, atol=1e-12, err_msg=f"{key} ({method}, {hksj})")


def test_series_leave_one_out_refits_exactly_where_the_series_cannot_reach():
    """An outlier whose omission moves tau^2 far from the full fit's: that row is refitted exactly, and still equal."""
    rng = np.random.default_rng(11)
    k = 40
    y, v = rng.normal(0.0, 0.1, k), np.full(k, 0.05)
    y[0] = 6.0
    for method in ("dl", "reml", "pm"):
        fast = leave_one_out_inverse_variance(y, v, method)
        assert fast["exact"][0]
        exact = exact_loo(y, v, method, False)
        for key in ("estimate", "se", "tau2", "i2", "q", "pi_low"):
            np.testing.assert_allclose(fast[key], exact[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_leave_one_out_table_the_same_by_series_and_by_refits(tmp_path, monkeypatch):
    studies = synthetic_studies(tmp_path, 240)  # 120 trials a modality, 240 overall
    monkeypatch.setattr(analysis, "LOO_SERIES_MIN_K", 100)
    fast = analysis.leave_one_out(studies, "cr", IV_METHODS)
    monkeypatch.setattr(analysis, "LOO_SERIES_MIN_K", 10**9)
    exact = analysis.leave_one_out(studies, "cr", IV_METHODS)
    assert len(fast) == 7 * (120 + 120 + 240)
    assert list(fast.columns) == list(exact.columns) and (fast.dtypes == exact.dtypes).all()
    for column in fast.columns:
        if fast[column].dtype.kind == "f":
            np.testing.assert_allclose(fast[column], exact[column], rtol=1e-10, atol=1e-12, err_msg=column)
        else:
            assert fast[column].tolist() == exact[column].tolist(), column


def test_common_effect_glmm_leave_one_out_holds_one_set_at_a_time(tmp_path):
    # k sets of k - 1 trials built at once were 2 k^2 numbers: 1.6 GB at 10,000 trials (benchmarks/README.md); a
    # fresh process, so that its peak memory is this call's
    import subprocess

    from conftest import SCRIPTS

    code = f"""
import resource, sys
sys.path.insert(0, {str(SCRIPTS)!r})
import numpy as np, pandas as pd
from metaprop.analysis.meta_analysis import leave_one_out
k = 4000
rng = np.random.default_rng(1)
n = rng.integers(20, 60, k)
studies = pd.DataFrame({{"study": [f"t{{i}}" for i in range(k)], "modality": "A", "outcome": "cr", "included": True,
                        "events": rng.binomial(n, 0.4), "n": n}})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
table = leave_one_out(studies, "cr", ["glmm-ee"])
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(len(table), grown)
"""
    rows, grown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(rows) == 2 * 4000  # the modality and overall, each study left out once
    assert float(grown) < 100  # MB; all 4,000 sets at once: 2 x 4000^2 x 8 bytes = 256 MB


# ---- forest plots over pages ----


def forest_inputs(tmp_path, k):
    studies = synthetic_studies(tmp_path, k)
    studies = studies[studies["included"]].copy()
    pooled, tests = analysis.pool_outcome(studies, "cr", ["logit-reml"])
    for group in analysis.subgroups_of(studies):
        rows = studies["modality"] == group
        tau2 = pooled.loc[pooled["subgroup"] == group, "tau2"].iloc[0]
        studies.loc[rows, "weight"] = analysis.study_weights(studies.loc[rows, "events"], studies.loc[rows, "n"],
                                                             "logit-reml", tau2)
    return studies, pooled, tests


def page_count(pdf_path):
    return len(re.findall(rb"/Type /Page\b(?!s)", Path(pdf_path).read_bytes()))


def texts_of(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def test_forest_plot_of_120_trials_is_split_over_pages_and_summarised(tmp_path):
    studies, pooled, tests = forest_inputs(tmp_path, 120)
    fig = plotting.forest_plot(studies, pooled, tests, method="logit-reml", outcome_label="CR",
                               pdf_name="forest_cr.pdf")
    # header, per modality: label, 60 trials, summary, PI, heterogeneity; overall summary and PI
    rows = 1 + 2 * (1 + 60 + 3) + 2
    pages = math.ceil((rows - 1) / (plotting.PAGE_ROWS - 1))
    assert len(fig.pdf_pages) == pages == 3
    paths = {fmt: tmp_path / f"forest.{fmt}" for fmt in ("pdf", "svg", "png")}
    plotting.save_figure(fig, paths)
    assert page_count(paths["pdf"]) == pages
    # every trial is on some page, once
    on_pages = [t for page in fig.pdf_pages for t in texts_of(page) if t.startswith("Trial ")]
    assert sorted(on_pages) == sorted(studies["study"])
    # the summary: 3 first and 3 last trials of each modality and a line counting the other 54, naming the PDF
    shown = texts_of(fig)
    assert sum(t.startswith("Trial ") for t in shown) == 12
    assert shown.count("... 54 more trials (full list: forest_cr.pdf, 3 pages)") == 2
    assert any(t.startswith("Test for subgroup differences") for t in shown)
    width, height = Image.open(paths["png"]).size
    assert height < 8 * plotting.PNG_DPI and width == 10 * plotting.PNG_DPI  # inches: a page-sized summary
    assert "54 more trials" in paths["svg"].read_text()
    # byte-reproducible, pages included
    again = {fmt: tmp_path / f"again.{fmt}" for fmt in paths}
    plotting.save_figure(plotting.forest_plot(studies, pooled, tests, method="logit-reml", outcome_label="CR",
                                              pdf_name="forest_cr.pdf"), again)
    for fmt, path in paths.items():
        assert path.read_bytes() == again[fmt].read_bytes(), fmt


def test_summary_names_the_pdf_it_is_saved_with(tmp_path):
    """figures.py passes the PDF's file name (forest_figure); without one the summary says 'the PDF'."""
    studies, pooled, tests = forest_inputs(tmp_path, 120)
    fig = plotting.forest_plot(studies, pooled, tests, method="logit-reml", outcome_label="CR",
                               pdf_name="forest_cr_itt.pdf")
    plotting.save_figure(fig, {"pdf": tmp_path / "forest_cr_itt.pdf", "png": tmp_path / "forest_cr_itt.png"})
    assert texts_of(fig).count("... 54 more trials (full list: forest_cr_itt.pdf, 3 pages)") == 2
    unnamed = plotting.forest_plot(studies, pooled, tests, method="logit-reml", outcome_label="CR")
    assert texts_of(unnamed).count("... 54 more trials (full list: the PDF, 3 pages)") == 2


def test_forest_plot_that_fits_a_page_is_one_figure(tmp_path):
    studies, pooled, tests = forest_inputs(tmp_path, 40)  # 1 + 2 * 23 + 2 = 49 rows
    fig = plotting.forest_plot(studies, pooled, tests, method="logit-reml", outcome_label="CR")
    assert getattr(fig, "pdf_pages", None) is None
    assert sum(t.startswith("Trial ") for t in texts_of(fig)) == 40
    plotting.save_figure(fig, {"pdf": tmp_path / "f.pdf"})
    assert page_count(tmp_path / "f.pdf") == 1


# ---- cumulative meta-analysis ----


def test_milestone_steps():
    assert milestone_steps(3) == [1, 2, 3]
    assert milestone_steps(1234) == [1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert glmm_steps(150) == list(range(1, 151))
    assert glmm_steps(250) == [1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 250]


def test_cumulative_above_200_trials_every_logit_step_and_glmm_at_milestones(tmp_path):
    studies = synthetic_studies(tmp_path, 250, groups=("CAR-T",))
    table = cumulative_table(studies, "cr", ["glmm", "logit-reml"])
    for method in ("glmm", "logit-reml"):
        for subgroup in ("CAR-T", "overall"):
            part = table[(table["method"] == method) & (table["subgroup"] == subgroup)]
            assert part["step"].tolist() == list(range(1, 251))
            assert part["k"].tolist() == list(range(1, 251))
    glmm = table[(table["method"] == "glmm") & (table["subgroup"] == "CAR-T")].set_index("step")
    fitted = glmm_steps(250)
    assert glmm.loc[fitted, "estimate"].notna().all()
    others = glmm.drop(index=fitted)
    assert others["estimate"].isna().all() and others["ci_low"].isna().all()
    assert others["note"].str.contains("GLMM not fitted at this step").all()
    ordered = studies[studies["included"]].sort_values("study")
    assert glmm.loc[30, "events"] == ordered["events"].iloc[:30].sum()
    # batched logit-REML steps are the prefixes pooled one by one
    reml = table[(table["method"] == "logit-reml") & (table["subgroup"] == "CAR-T")].set_index("step")
    for step in (2, 7, 199, 200, 201, 250):
        one = analysis.pool(ordered["events"].to_numpy(float)[:step], ordered["n"].to_numpy(float)[:step],
                            "logit-reml")
        for key in ("estimate", "ci_low", "ci_high", "tau2", "i2", "se_model"):
            assert reml.loc[step, key] == pytest.approx(one[key], rel=1e-10, abs=1e-13), (step, key)
    # the plot shows the milestones and the last step only, and says so
    fig = cumulative_plot(table[table["method"] == "glmm"], "glmm", BUNDLED[0])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum(t.startswith("+ Trial") for t in texts) == 2 * len(fitted)
    assert any("every step: results/tables/cumulative.tsv" in t for t in texts)


# ---- the report ----


def test_report_tables_of_many_trials_are_summarised(tmp_path):
    studies = synthetic_studies(tmp_path, 300)
    pooled, _ = analysis.pool_outcome(studies, "cr", ["logit-reml"])
    loo = analysis.leave_one_out(studies, "cr", ["logit-reml"])
    blocks = studies_blocks(studies, "cr") + leave_one_out_block(loo, "cr", "logit-reml", pooled)
    assert blocks[0] == ("p", (f"300 rows; shown here: {REPORT_SHOWN} of them, the excluded trials, then the "
                               "largest. Every row is in results/tables/studies.tsv."))
    assert len(blocks[1][2]) == REPORT_SHOWN
    assert [int(row[2].split("/")[1]) for row in blocks[1][2]] == sorted(studies["n"], reverse=True)[:REPORT_SHOWN]
    assert blocks[2][1].startswith("600 rows; shown here: 20 of them, the trials whose omission moves")
    # the most influential first: the largest change of the subgroup's pooled estimate
    full = pooled.set_index("subgroup")["estimate"]
    shift = (loo["estimate"] - loo["subgroup"].map(full)).abs()
    top = loo.loc[shift.sort_values(ascending=False, kind="stable").index[:REPORT_SHOWN], "omitted"].tolist()
    assert [row[1] for row in blocks[3][2]] == top
    assert len(to_html([("h1", "Report"), *blocks]).encode()) < 20_000
    # few rows: the table as it was
    small = studies[studies["study"].isin(studies["study"].iloc[:REPORT_ROWS])]
    assert len(studies_blocks(small, "cr")) == 1 and len(studies_blocks(small, "cr")[0][2]) == REPORT_ROWS


def test_name_list_ends_with_a_count():
    assert name_list(["A", "B"]) == "A, B"
    names = [f"T{i}" for i in range(25)]
    assert name_list(names) == ", ".join(names[:20]) + " and 5 more"
    assert name_list(pd.Series(names), limit=2) == "T0, T1 and 23 more"


def test_funnel_of_many_trials_draws_small_translucent_dots(tmp_path):
    from metaprop.analysis.small_study import funnel_data, small_study_table
    from metaprop.figures.review import FUNNEL_DENSE, funnel_plot

    for k, size, alpha in ((FUNNEL_DENSE, 4, None), (FUNNEL_DENSE + 1, 1.5, 0.3)):
        studies = synthetic_studies(tmp_path, k, groups=("CAR-T",))
        fig = funnel_plot(funnel_data(studies, "cr"), small_study_table(studies, "cr"), BUNDLED[0])
        dots = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
        assert len(dots) == 1 and len(dots[0].get_xdata()) == k
        assert dots[0].get_markersize() == size and dots[0].get_alpha() == alpha
