"""The summary on a second dataset with a tau^2 far from zero (issue 16): two invented modalities, Drug X with
heterogeneous trials (I^2 about 90%) and Drug Y with rare responses, and a prior of mu (N(0, 0.5^2)) the rare
responses fight. Runs the pipeline once (module-scoped) and reads the rendered report, not only the tables."""

import re

import pandas as pd
import pytest
import yaml
from test_pipeline import copy_project, snakemake

TRIALS = [("Ash 2015", "Drug X", 40, 10), ("Birch 2016", "Drug X", 50, 25), ("Cedar 2017", "Drug X", 60, 5),
          ("Dogwood 2018", "Drug X", 45, 30), ("Elm 2019", "Drug X", 80, 12), ("Fir 2016", "Drug Y", 150, 2),
          ("Gum 2017", "Drug Y", 120, 1), ("Hazel 2018", "Drug Y", 200, 3), ("Ivy 2020", "Drug Y", 90, 0)]
CONFIG = {"trials": ["data/raw/het.tsv"], "title": "Drug X vs Drug Y: response",
          "question": "Is response more frequent with Drug X than with Drug Y?",
          "source": "Invented trials for a test of the summary.", "comparison": ["Drug X", "Drug Y"],
          "outcomes": [{"id": "resp", "label": "response", "events": "events", "role": "efficacy",
                        "higher_is_better": True, "definition": "response at 3 months"}],
          "methods": ["glmm", "logit-reml", "logit-reml-hksj", "bayes"], "primary_method": "glmm",
          "subgroup_analyses": [], "adjusted_comparisons": [], "bayes": {"mu_sd": 0.5}}


@pytest.fixture(scope="module")
def het(tmp_path_factory):
    workdir = copy_project(tmp_path_factory.mktemp("het") / "project")
    lines = ["study\tmodality\tn\tevents\tyear", *(f"{s}\t{m}\t{n}\t{e}\t{s[-4:]}" for s, m, n, e in TRIALS)]
    (workdir / "data/raw/het.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (workdir / "het.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    done = snakemake(workdir, "--configfile", "het.yaml")
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir


def summary(workdir):
    """The report's first section (Markdown), up to the table of contents."""
    text = (workdir / "results/report.md").read_text(encoding="utf-8")
    return text[text.index("## Summary of findings"):text.index("**Contents**")]


def table(workdir, name):
    return pd.read_csv(workdir / f"results/tables/{name}.tsv", sep="\t")


def points(x):
    return f"{100 * x:+.1f}"


def test_the_dataset_has_a_tau2_far_from_zero(het):
    pooled = table(het, "pooled")
    x = pooled[(pooled["subgroup"] == "Drug X") & (pooled["method"] == "glmm")].iloc[0]
    assert x["tau2"] > 0.5 and x["i2"] > 0.85


def test_the_comparison_sentence_gives_points_with_intervals_by_every_headline_method(het):
    tests, text = table(het, "subgroup_tests"), summary(het)
    for method in ("glmm", "logit-reml-hksj"):
        row = tests[(tests["method"] == method) & (tests["test"] == "rate-difference")].iloc[0]
        assert row["contrast"] == "Drug X minus Drug Y"
        said = (f"by {method} {points(row['diff_median'])} points (95% CI {points(row['diff_ci_low'])} to "
                f"{points(row['diff_ci_high'])} points)")
        assert said in text
    bayes = tests[(tests["method"] == "bayes") & (tests["test"] == "bayes-difference")].iloc[0]
    assert (f"by the Bayesian model {points(bayes['diff_median'])} points (95% CrI {points(bayes['diff_ci_low'])} "
            f"to {points(bayes['diff_ci_high'])} points)") in text
    # the Bayesian interval includes no difference where the others exclude it: said in words
    assert bayes["diff_ci_low"] < 0 < tests[(tests["method"] == "glmm") & (tests["test"] == "rate-difference")].iloc[0][
        "diff_ci_low"]
    assert ("The methods disagree on whether the interval excludes no difference: it does by glmm, logit-reml-hksj, "
            "not by bayes; read the comparison as uncertain.") in text


def test_a_rate_that_depends_on_the_method_is_said(het):
    pooled = table(het, "pooled")
    rates = {m: pooled[(pooled["subgroup"] == "Drug Y") & (pooled["method"] == m)].iloc[0]["estimate"]
             for m in ("glmm", "logit-reml-hksj", "bayes")}
    assert max(rates.values()) - min(rates.values()) > 0.10
    said = "; ".join(f"{m} {100 * r:.1f}%" for m, r in rates.items())
    assert f"Drug Y's pooled response rate depends on the method ({said})" in summary(het)


def test_the_prior_data_conflict_fires_in_the_summary_with_what_to_change(het):
    text = summary(het)
    found = re.search(r"Prior-data conflict \(response, Drug Y\): the data's pooled logit lies ([0-9.]+) "
                      r"prior-predictive SDs from the prior of mu \(N\(0, 0\.5\^2\), p = [0-9.e-]+\), so the prior "
                      r"pulls the estimate \(to let the data speak, widen bayes: mu_sd in config\.yaml\)\.", text)
    assert found and float(found[1]) > 3
    assert "Prior-data conflict (response, Drug X)" not in text  # Drug X's rates sit inside the prior


def test_every_contrast_of_the_report_reads_first_minus_second(het):
    text = (het / "results/report.md").read_text(encoding="utf-8")
    assert "Drug Y minus Drug X" not in text and "Drug Y vs Drug X" not in text
    assert "Drug X minus Drug Y" in text


def test_the_first_lines_answer_which_modality_by_how_much_and_how_sure(het):
    certainty = table(het, "certainty").set_index("subgroup")
    first = summary(het).split("\n\n")[1]  # the paragraph under the heading, above the summary table
    d = certainty.loc["Drug X minus Drug Y"]
    assert first.startswith("In short: the pooled response rate is Drug X ")
    assert (f"Drug X minus Drug Y: {points(d['estimate'])} points ({points(d['ci_low'])} to {points(d['ci_high'])} "
            f"points; {d['certainty']} certainty), by the primary method (glmm); the methods disagree on whether the "
            "interval excludes no difference (below).") in first
    for group in ("Drug X", "Drug Y"):
        assert f"; {certainty.loc[group, 'certainty']} certainty)" in first
