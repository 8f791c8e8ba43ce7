"""Adjusted comparisons (modality + moderators in one meta-regression) against metafor, the designs that cannot
separate modality from the moderators, and moderator analyses within modality."""

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES
from metaprop.analysis.adjusted import adjusted_comparison, adjusted_comparisons
from metaprop.analysis.meta_analysis import regroup, within_modality_tests

REFERENCE = pd.read_csv(FIXTURES / "metafor_adjusted.tsv", sep="\t")


def studies_of(name):
    table = pd.read_csv(FIXTURES / "adjusted" / f"{name}.tsv", sep="\t", dtype={"age_group": str})
    return table.assign(outcome="cr", included=True, reason="")


@pytest.mark.parametrize("row", REFERENCE.to_dict("records"), ids=lambda r: f"{r['dataset']}-{r['method']}")
def test_matches_metafor(row):
    # metafor's coefficient is the second modality against the first (the reference): comparison in that order
    second_first = list(dict.fromkeys(studies_of(row["dataset"])["modality"]))[::-1]
    ours = {r["method"]: r for r in adjusted_comparison(studies_of(row["dataset"]), "cr", ["age_group"],
                                                        comparison=second_first)}[row["method"]]
    # logit-REML to metafor's tight convergence; the GLMM to lme4's (about 1e-5 relative, SEs 1e-4)
    tol = 1e-7 if row["method"] == "logit-reml" else 1e-4
    assert ours["statistic"] == pytest.approx(row["qm"], rel=tol)
    assert ours["df"] == row["df"]
    assert ours["p"] == pytest.approx(row["p"], rel=10 * tol)
    assert ours["tau2"] == pytest.approx(row["tau2"], abs=1e-6)
    if ours["df"] == 1:
        assert ours["lor"] == pytest.approx(row["lor"], rel=tol)
        assert ours["lor_se"] == pytest.approx(row["lor_se"], rel=tol)


def test_levels_in_one_modality_are_said():
    row = adjusted_comparison(studies_of("commentary_age"), "cr", ["age_group"])[0]
    assert "age_group = mixed only in CAR-T" in row["note"] and "pediatric only in CAR-T" in row["note"]


def test_unknown_moderator_leaving_one_modality_gives_no_number():
    studies = studies_of("commentary_age").assign(mrd_only=["Not reported", "Yes", "Yes", "Yes", "Yes"])
    rows = adjusted_comparison(studies, "cr", ["mrd_only"])
    for row in rows:
        assert "statistic" not in row
        assert "only CAR-T remains" in row["note"] and "Kantarjian 2016 (mrd_only unknown)" in row["note"]


def test_too_few_studies_gives_no_number():
    studies = studies_of("commentary_age").iloc[:4]  # 4 studies, 4 coefficients
    for row in adjusted_comparison(studies, "cr", ["age_group"]):
        assert "statistic" not in row and "4 studies are not more than the 4 coefficients" in row["note"]


def test_confounded_design_gives_no_number():
    studies = studies_of("three_modalities")
    studies["age_group"] = np.where(studies["modality"] == "A", "p", "q")  # age_group is modality A vs the rest
    for row in adjusted_comparison(studies, "cr", ["age_group"]):
        assert "statistic" not in row and "confounded" in row["note"]


def test_missing_column_is_said():
    table = adjusted_comparisons(studies_of("commentary_age"), "cr", [["age_group"], ["mrd_only"]])
    assert len(table) == 4
    assert table["note"].iloc[2] == "no column mrd_only in the trial tables"
    assert table["statistic"].iloc[2:].isna().all()


def test_moderator_groups_are_within_modality_by_default():
    studies = studies_of("commentary_age")
    within = regroup(studies, "cr", "age_group", within_modality=True)
    assert list(within["group"]) == ["Blinatumomab: adult", "CAR-T: mixed", "CAR-T: pediatric", "CAR-T: adult",
                                     "CAR-T: adult"]
    # modality keeps its meaning; the moderator value is the level
    assert list(within["modality"]) == list(studies["modality"])
    assert list(within["level"]) == ["adult", "mixed", "pediatric", "adult", "adult"]
    across = regroup(studies, "cr", "age_group")
    assert list(across["group"]) == ["adult", "mixed", "pediatric", "adult", "adult"]
    tests = within_modality_tests(within, "cr", ["logit-reml"])
    # Blinatumomab has one level: only CAR-T's three levels are compared, df = 2, and each pair of levels
    assert set(tests["test"]) == {"between-within", "metareg-within", "metareg-pair-within", "rate-difference-within"}
    omnibus = tests[tests["test"].isin(["between-within", "metareg-within"])]
    assert (omnibus["df"] == 2).all() and tests["note"].str.startswith("within CAR-T").all()
    pairs = tests[tests["test"] == "metareg-pair-within"]
    assert list(pairs["contrast"]) == ["CAR-T: mixed vs CAR-T: pediatric", "CAR-T: mixed vs CAR-T: adult",
                                       "CAR-T: pediatric vs CAR-T: adult"]
