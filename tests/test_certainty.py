"""GRADE-style certainty of the evidence (metaprop/analysis/certainty.py): the rules, the overrides."""

import numpy as np
import pandas as pd
import pytest
from conftest import BUNDLED
from metaprop.analysis.certainty import certainty_table

CR = BUNDLED[:1]


def tables(i2=0.1, n=(300, 300), k=(5, 5), diff=(0.1, 0.05, 0.15), assessed=False):
    studies = pd.DataFrame({"study": [f"S{i}" for i in range(sum(k))], "outcome": "cr", "included": True,
                            "modality": ["A"] * k[0] + ["B"] * k[1]})
    pooled = pd.DataFrame({"outcome": "cr", "method": "glmm", "subgroup": ["A", "B"], "k": list(k), "n": list(n),
                           "estimate": [0.6, 0.5], "ci_low": [0.55, 0.45], "ci_high": [0.65, 0.55],
                           "pi_low": [0.5, 0.4], "pi_high": [0.7, 0.6], "i2": [i2, i2]})
    tests = pd.DataFrame({"outcome": ["cr"], "method": ["glmm"], "test": ["rate-difference"], "group_1": ["A"],
                          "group_2": ["B"], "diff_median": [diff[0]], "diff_ci_low": [diff[1]],
                          "diff_ci_high": [diff[2]]})
    small = pd.DataFrame({"outcome": "cr", "subgroup": ["A", "B"], "test": "egger", "assessed": assessed,
                          "p": [0.5, 0.01]})
    return studies, pooled, tests, small


def test_single_arm_evidence_starts_low_and_each_serious_domain_lowers_it():
    table = certainty_table(*tables(), CR, "glmm", ["A", "B"]).set_index("subgroup")
    assert table.loc["A", "start"].startswith("low") and table.loc["A", "certainty"] == "low"
    assert table.loc["A", "risk_of_bias"] == "not assessed" and table.loc["A", "publication_bias"] == "not assessable"
    worse = certainty_table(*tables(i2=0.8, n=(100, 100)), CR, "glmm", ["A", "B"]).set_index("subgroup")
    assert worse.loc["A", "inconsistency"] == "serious" and worse.loc["A", "inconsistency_reason"] == "I² = 80%"
    assert worse.loc["A", "imprecision_reason"] == "100 patients, fewer than 200"
    assert worse.loc["A", "certainty"] == "very low"
    # the comparison: an interval that includes no difference is imprecise
    vague = certainty_table(*tables(diff=(0.1, -0.05, 0.15)), CR, "glmm", ["A", "B"]).set_index("subgroup")
    assert vague.loc["A minus B", "imprecision"] == "serious"
    assert "includes no difference" in vague.loc["A minus B", "imprecision_reason"]
    assessed = certainty_table(*tables(assessed=True), CR, "glmm", ["A", "B"]).set_index("subgroup")
    assert assessed.loc["B", "publication_bias"] == "serious" and assessed.loc["A", "publication_bias"] == "not serious"


def test_overrides_carry_their_justification_and_rate_again():
    override = {"outcome": "cr", "subgroup": "A", "domain": "imprecision", "rating": "not serious",
                "justification": "the decision does not change across the interval"}
    table = certainty_table(*tables(n=(100, 300)), CR, "glmm", ["A", "B"], {"overrides": [override]})
    row = table.set_index("subgroup").loc["A"]
    assert row["imprecision"] == "not serious" and row["certainty"] == "low"
    assert row["override"] == "imprecision: the decision does not change across the interval"
    with pytest.raises(ValueError, match="no row for outcome 'cr' and subgroup 'Z'"):
        certainty_table(*tables(), CR, "glmm", ["A", "B"], {"overrides": [{**override, "subgroup": "Z"}]})


def test_risk_of_bias_from_a_judgement_column():
    studies, pooled, tests, small = tables()
    studies["rob"] = ["low", "high", "low", "low", "low"] + ["low"] * 5
    table = certainty_table(studies, pooled, tests, small, CR, "glmm", ["A", "B"], {"risk_of_bias": {"column": "rob"}})
    rows = table.set_index("subgroup")
    assert rows.loc["A", "risk_of_bias"] == "serious" and rows.loc["A", "risk_of_bias_reason"] == "high risk: S1"
    assert rows.loc["B", "risk_of_bias"] == "not serious" and np.isfinite(rows.loc["B", "estimate"])


def test_the_decision_threshold_is_the_benchmark_unless_config_names_one():
    by_benchmark = certainty_table(*tables(), CR, "glmm", ["A", "B"], None, {"cr": {"rate": 0.58, "source": "s"}})
    by_threshold = certainty_table(*tables(), CR, "glmm", ["A", "B"], {"thresholds": {"cr": 0.58}})
    pd.testing.assert_frame_equal(by_benchmark, by_threshold)
    assert "58" in by_benchmark.set_index("subgroup").loc["A", "imprecision_reason"]  # the interval spans it
    named = certainty_table(*tables(), CR, "glmm", ["A", "B"], {"thresholds": {"cr": 0.2}},
                            {"cr": {"rate": 0.58, "source": "s"}})
    pd.testing.assert_frame_equal(named, certainty_table(*tables(), CR, "glmm", ["A", "B"], {"thresholds": {"cr": 0.2}}))
