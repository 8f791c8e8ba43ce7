"""Meta-regression on continuous moderators (config meta_regressions) against R's metafor (fixtures from
tests/make_fixtures_metareg.R): the bundled data and four published datasets (metadat's dat.debruin2009,
dat.hasselblad1998, dat.linde2005, dat.obrien2003), publication year on its raw scale.

Tolerances: logit-REML (metafor's REML iterated to 1e-12) to 1e-7 relative (1e-9 absolute); the GLMM's coefficients
and tau^2 to 1e-4 relative (lme4's bobyqa stops within ~3e-6 of our maximum), its SEs, CIs and QM to 2e-3 relative
(lme4's standard errors come from a finite-difference Hessian; test_parity_metafor holds them to 1e-3), and where
they differ our log-likelihood is not below the one at lme4's estimates.
"""

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import FIXTURES, ROOT
from metaprop.analysis.metareg import METAREG_COLUMNS, meta_regressions, numeric_moderator
from metaprop.io.configcheck import ConfigError, check_meta_regressions
from metaprop.io.inputs import InputError, check_inputs
from metaprop.stats.glmm import glmm_regression, log_likelihood
from metaprop.stats.pooling import meta_regression
from metaprop.stats.proportions import logit_effects
from test_pipeline import copy_project, snakemake

REFERENCE = pd.read_csv(FIXTURES / "metafor_metareg.tsv", sep="\t", comment="#", keep_default_na=False,
                        na_values=[""])
DATA = pd.concat([pd.read_csv(FIXTURES / "metareg" / name, sep="\t", keep_default_na=False, na_values=[""])
                  for name in ("commentary.tsv", "datasets.tsv")], ignore_index=True)
ACROSS = ("hasselblad1998", "linde2005")


def studies_of(dataset, outcome):
    """The dataset as studies.tsv rows (moderators as text, as the pipeline reads them)."""
    d = DATA[(DATA["dataset"] == dataset) & (DATA["outcome"] == outcome)].dropna(subset=["events"])
    text = {c: d[c].map(lambda x: "" if pd.isna(x) else f"{x:g}") for c in ("year", "x2")}
    return d.rename(columns={"group": "modality"}).assign(included=True, **text)


def entries(dataset, studies):
    found = [{"moderators": ["year"]}]
    if (studies["x2"] != "").any():
        found += [{"moderators": ["x2"]}, {"moderators": ["x2", "year"]}]
    if dataset in ACROSS:
        found.append({"moderators": ["year"], "across": True})
    return found


@pytest.fixture(scope="module")
def ours():
    tables = []
    for (dataset, outcome), _ in REFERENCE.groupby(["dataset", "outcome"], sort=False):
        studies = studies_of(dataset, outcome)
        table = meta_regressions(studies, outcome, entries(dataset, studies))[0]
        tables.append(table.assign(dataset=dataset))
    return pd.concat(tables, ignore_index=True)


def merged(ours):
    ref = REFERENCE.assign(term=REFERENCE["term"].replace({"intrcpt": "intercept"})
                           .str.replace("^group", "modality=", regex=True))
    return ours.merge(ref, on=["dataset", "outcome", "group", "moderators", "method", "term"], suffixes=("", "_r"))


def test_every_metafor_fit_is_matched(ours):
    both = merged(ours)
    assert len(both) == len(REFERENCE)
    assert len(REFERENCE) >= 160
    # four published datasets with k >= 10 in some group, year on its raw scale
    big = REFERENCE[(REFERENCE["k"] >= 10) & (REFERENCE["dataset"] != "commentary")]
    assert big["dataset"].nunique() == 4 and big.groupby(["dataset", "group"]).ngroups >= 8


LOGIT = {"rel": 1e-7, "abs": 1e-9}


@pytest.mark.parametrize("method", ["logit-reml", "logit-reml-hksj"])
def test_logit_reml_matches_metafor(ours, method):
    both = merged(ours)
    both = both[both["method"] == method]
    for column in ("estimate", "se", "statistic", "p", "ci_low", "ci_high", "qm", "qm_p", "tau2", "i2", "r2", "qe",
                   "qe_p"):
        assert both[column].to_numpy(float) == pytest.approx(both[column + "_r"].to_numpy(float), **LOGIT), column
    assert (both["k"] == both["k_r"]).all() and (both["qm_df"] == both["qm_df_r"]).all()
    if method.endswith("hksj"):
        assert (both["qm_df2"] == both["qm_df2_r"]).all()


def test_glmm_matches_metafor(ours):
    both = merged(ours)
    both = both[both["method"] == "glmm"]
    assert len(both) > 50
    for column, tol in (("estimate", 1e-4), ("tau2", 1e-4), ("se", 2e-3), ("qm", 2e-3)):
        assert both[column].to_numpy(float) == pytest.approx(both[column + "_r"].to_numpy(float), rel=tol,
                                                             abs=1e-6), column
    # CIs and p-values inherit the SEs' tolerance, in units of the SE
    for column in ("ci_low", "ci_high"):
        assert np.all(np.abs(both[column] - both[column + "_r"]) <= 2e-3 * both["se_r"]), column
    assert both["p"].to_numpy(float) == pytest.approx(both["p_r"].to_numpy(float), abs=2e-3)
    assert both["i2"].to_numpy(float) == pytest.approx(both["i2_r"].to_numpy(float), rel=1e-4, abs=1e-6)
    assert both["r2"].to_numpy(float) == pytest.approx(both["r2_r"].to_numpy(float), abs=1e-4)


def test_glmm_is_at_least_as_high_as_lme4(ours):
    """Where the GLMM's estimates differ from lme4's, ours has the higher likelihood (evaluated by the same quadrature
    at both): lme4's optimiser stops short, ours is at the maximum."""
    for (dataset, outcome, group, moderators), ref in REFERENCE[REFERENCE["method"] == "glmm"].groupby(
            ["dataset", "outcome", "group", "moderators"], sort=False):
        studies = studies_of(dataset, outcome)
        if group != "all":
            studies = studies[studies["modality"] == group]
        names = moderators.split(" + ")
        studies = studies[(studies[names] != "").all(axis=1)]
        cols = [np.ones(len(studies))]
        if group == "all":
            cols += [(studies["modality"] == m).to_numpy(float) for m in list(dict.fromkeys(studies["modality"]))[1:]]
        X = np.column_stack(cols + [studies[c].astype(float).to_numpy() for c in names])
        events, n = studies["events"].to_numpy(float), studies["n"].to_numpy(float)
        fit = glmm_regression(events, n, X)
        theirs = log_likelihood(X @ ref["estimate"].to_numpy(float), np.sqrt(ref["tau2"].iloc[0]), events, n)
        assert not fit["diverged"]
        assert fit["loglik_marginal"] >= theirs - 1e-9 * (1 + abs(theirs)), (dataset, group, moderators)


def test_raw_year_fits_converge_on_every_group(ours):
    """Publication year as printed (2013..2021): every group with more trials than coefficients has numbers from
    every method (before, REML stopped with 'tau^2 did not converge' and the GLMM marked fits diverged)."""
    fitted = ours[ours["k"] > ours["coefficients"]]
    assert fitted["estimate"].notna().all()
    assert not fitted["note"].fillna("").str.contains("no finite|did not converge").any()
    intercepts = fitted[(fitted["term"] == "intercept") & fitted["moderators"].str.contains("year")]
    assert intercepts["estimate"].abs().max() > 100  # the raw-year intercepts are the large ones the old check refused


def test_fits_do_not_depend_on_the_moderators_units():
    """The same regression on year, year - 2000 and year in days: the slope scales, tau^2, QM and the fitted values do
    not move (the fits standardise the moderators internally)."""
    d = studies_of("obrien2003", "p")
    d = d[d["modality"] == "bmi1"]
    y, v = logit_effects(d["events"].to_numpy(float), d["n"].to_numpy(float))
    year = d["year"].astype(float).to_numpy()
    fits = [(meta_regression(y, v, np.column_stack([np.ones(len(y)), x]), "reml", True),
             glmm_regression(d["events"], d["n"], np.column_stack([np.ones(len(y)), x])), scale)
            for x, scale in ((year, 1.0), (year - 2000, 1.0), (year * 365.25, 365.25))]
    (reml0, glmm0, _), *rest = fits
    for reml, glmm, scale in rest:
        for a, b in ((reml, reml0), (glmm, glmm0)):
            assert a["beta"][1] * scale == pytest.approx(b["beta"][1], rel=1e-7)
            assert a["tau2"] == pytest.approx(b["tau2"], rel=1e-7, abs=1e-12)
            assert a["statistic"] == pytest.approx(b["statistic"], rel=1e-6)


def _studies(rows):
    return pd.DataFrame(rows, columns=["study", "modality", "events", "n", "year"]).assign(outcome="cr", included=True)


def test_design_limits_are_said_in_words():
    studies = _studies([("a", "A", 3, 10, "2015"), ("b", "A", 5, 12, "2015"), ("c", "A", 4, 9, "2015"),
                        ("d", "B", 7, 10, "2012"), ("e", "B", 2, 11, "Unknown"), ("f", "B", 6, 14, "2013"),
                        ("g", "C", 3, 8, "2011")])
    table = meta_regressions(studies, "cr", [{"moderators": ["year"]}], ["A", "B", "C"])[0]
    assert list(table.columns) == METAREG_COLUMNS
    notes = table.groupby("group")["note"].first()
    assert "the same (2015) in every trial" in notes["A"]
    assert "not more than the 2 coefficients" in notes["B"] and "left out (year unknown): e" in notes["B"]
    assert "not more than the 2 coefficients" in notes["C"]
    assert table["estimate"].isna().all() and len(table) == 9  # one row per method, no number
    # across the modalities: year is a function of modality (A always 2015, B always 2012)
    confounded = _studies([("a", "A", 3, 10, "2015"), ("b", "A", 5, 12, "2015"), ("c", "A", 4, 9, "2015"),
                           ("d", "B", 7, 10, "2012"), ("f", "B", 6, 14, "2012"), ("g", "B", 3, 8, "2012")])
    across = meta_regressions(confounded, "cr", [{"moderators": ["year"], "across": True}], ["A", "B"])[0]
    assert across["group"].eq("all").all()
    assert across["note"].str.contains("confounded with modality").all() and across["estimate"].isna().all()


def test_moderator_cells_must_be_numbers():
    assert np.isnan(numeric_moderator(["", "Unknown", "NR"])).all()
    assert numeric_moderator(["2015", " 2016 ", "\u22121.5"]).tolist() == [2015.0, 2016.0, -1.5]
    with pytest.raises(ValueError, match="'2015a' is not a number"):
        numeric_moderator(["2015a"])
    for refused in ("1_000", "inf", "nan"):  # as the input checks refuse them (spec.moderator_number, one parser)
        with pytest.raises(ValueError, match=f"'{refused}' is not a number"):
            numeric_moderator([refused])


def test_input_check_names_the_cell(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("study\tmodality\tn\tcr_events\tyear\nA 1\tX\t10\t3\t2015\nA 2\tX\t12\t5\tlate 2016\n",
                     encoding="utf-8")
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    config.update(subgroup_analyses=[], adjusted_comparisons=[], comparison=None,
                  meta_regressions=[["year"], {"moderators": ["median_age"], "across_modalities": True}])
    with pytest.raises(InputError, match=r"line 3 \(study 'A 2'\), column 'year', value 'late 2016'"):
        check_inputs(config, [str(table)])
    table.write_text("study\tmodality\tn\tcr_events\tyear\nA 1\tX\t10\t3\t2015\nA 2\tX\t12\t5\t\n", encoding="utf-8")
    verdict, _ = check_inputs(config, [str(table)])
    assert verdict["metaregs"] == [{"moderators": ["year"], "across": False}]
    assert any("median_age" in s for s in verdict["skipped"])
    assert "year" in verdict["carry"]


def test_a_bare_column_name_gets_the_form_to_write():
    with pytest.raises(ConfigError, match=r"\[\[year\]\] for one regression on each"):
        check_meta_regressions({"meta_regressions": ["year"]})
    check_meta_regressions({"meta_regressions": [["year"], {"moderators": ["year"], "across_modalities": True}]})


# ---- the whole pipeline ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = copy_project(tmp_path_factory.mktemp("metareg") / "project")
    config = workdir / "config.yaml"
    text = config.read_text(encoding="utf-8")
    # the bundled entry, and year across the modalities
    config.write_text(text.replace("meta_regressions:\n  - [year]\n",
                                   "meta_regressions:\n  - [year]\n  - {moderators: [year], across_modalities: true}\n"),
                      encoding="utf-8")
    run = snakemake(workdir, "--config", "figure_formats=[pdf, svg]")
    assert run.returncode == 0, run.stderr
    return workdir


def test_pipeline_table_matches_metafor(finished):
    table = pd.read_csv(finished / "results" / "tables" / "meta_regressions.tsv", sep="\t", keep_default_na=False,
                        na_values=[""])
    assert list(table.columns) == METAREG_COLUMNS
    within = table[table["group"] != "all"].assign(dataset="commentary")
    ref = REFERENCE[REFERENCE["dataset"] == "commentary"]
    both = merged(within)
    assert len(both) == len(ref) == 24  # CAR-T, four outcomes, two coefficients, three methods
    reml = both[both["method"] != "glmm"]
    for column in ("estimate", "se", "ci_low", "ci_high", "qm", "tau2", "i2", "r2"):
        assert reml[column].to_numpy(float) == pytest.approx(reml[column + "_r"].to_numpy(float), **LOGIT), column
    glmm = both[both["method"] == "glmm"]
    assert glmm["estimate"].to_numpy(float) == pytest.approx(glmm["estimate_r"].to_numpy(float), rel=1e-4)
    # Blinatumomab: 1 or 2 trials per outcome, not more than the coefficients: said in words
    blin = table[table["group"] == "Blinatumomab"]
    assert blin["estimate"].isna().all() and blin["note"].str.contains("not more than the 2 coefficients").all()
    across = table[table["group"] == "all"]
    assert set(across["term"].dropna()) == {"intercept", "modality=Blinatumomab", "year"}


def test_pipeline_bubble_plots_and_report(finished):
    figures = finished / "results" / "figures"
    for outcome in ("cr", "cr_itt", "scrs", "scns"):
        for name in (f"bubble_{outcome}_year", f"bubble_{outcome}_year_across"):
            for ext in ("pdf", "svg", "png"):
                assert (figures / f"{name}.{ext}").stat().st_size > 0
    report = (finished / "results" / "report.md").read_text(encoding="utf-8")
    assert "## Meta-regression on continuous moderators" in report
    assert "Moderators: publication year (year)" in report
    assert "figures/bubble_cr_year.png" in report and "figures/bubble_cr_year_across.png" in report
    assert "not more than the 2 coefficients (intercept, year)" in report
