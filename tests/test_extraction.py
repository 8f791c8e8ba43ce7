"""From printed Table 1 cells to counts: reconstruction from rounded percentages, exclusions, overlaps."""

import pandas as pd
import pytest
from conftest import BUNDLED, CR, ROOT
from metaprop.analysis.extraction import apply_overlap_rule, counts_matching, reconstruct_events, studies_table
from metaprop.io.tables import read_trials


@pytest.mark.parametrize(
    ("printed", "n", "expected"),
    [
        ("43", 189, (81, 81, 82)),  # 81/189 = 42.9%, 82/189 = 43.4%: nearest to 81.27
        ("47", 261, (123, 122, 123)),  # Kantarjian 2016
        ("91", 32, (29, 29, 29)),  # unique
        ("69", 36, (25, 25, 25)),
        ("<1", 36, (0, 0, 0)),  # only 0 of 36 is below 1%
        ("45.7", 700, (320, 320, 320)),  # one decimal printed: 319.9 -> 320 only
        ("12.5", 8, (1, 1, 1)),
    ],
)
def test_reconstruct_usable(printed, n, expected):
    events, low, high, _ = reconstruct_events(printed, n)
    assert (events, low, high) == expected


def test_exact_half_rounds_either_way():
    assert counts_matching("value", 13, 0, 8) == (1, 1)  # 12.5% may have been printed as 13
    assert counts_matching("value", 12, 0, 8) == (1, 1)  # or as 12


def test_bounds_and_huge_n():
    assert counts_matching("below", 1, 0, 189) == (0, 1)
    assert counts_matching("at most", 5, 0, 20) == (0, 1)  # '≤5' of 20: 0 or 1 (5% is allowed)
    assert counts_matching("above", 90, 0, 20) == (19, 20)
    assert counts_matching("at least", 90, 0, 20) == (18, 20)
    assert counts_matching("value", 43, 0, 25_000_000_000) == (10_625_000_000, 10_875_000_000)
    assert reconstruct_events("≤5", 20)[0] is None  # a bound with two counts is not a count


@pytest.mark.parametrize(
    ("printed", "n", "reason"),
    [
        ("31", 31, "inconsistent: no count out of n = 31 gives '31' (9/31 = 29.0%, 10/31 = 32.3%)"),
        ("91", 37, "inconsistent: no count out of n = 37 gives '91' (33/37 = 89.2%, 34/37 = 91.9%)"),
        ("<1", 189, "'<1' is a bound, not a count (0 to 1 events of 189 possible)"),
        ("Not reported", 20, "not reported (printed 'Not reported')"),
        ("", 20, "not reported"),
    ],
)
def test_reconstruct_unusable(printed, n, reason):
    events, _, _, how = reconstruct_events(printed, n)
    assert events is None
    assert how == reason


def table1_studies(**kwargs):
    return studies_table(read_trials([str(ROOT / "data" / "raw" / "table1.tsv")], BUNDLED), CR, **kwargs).set_index("study")


def test_table1_kept_and_excluded_with_reasons():
    studies = table1_studies()
    kept = studies[studies["included"]]
    assert list(kept.index) == ["Kantarjian 2016", "Maude 2014", "Lee 2015", "Turtle 2016", "Park 2015"]
    assert [f"{e}/{n}" for e, n in zip(kept["events"], kept["n"])] == ["123/261", "27/30", "14/20", "27/29", "29/32"]
    assert studies.loc["Gore 2014", "reason"].startswith("complete response inconsistent: no count out of n = 31")
    assert studies.loc["Turtle 2015", "reason"].startswith("complete response inconsistent: no count out of n = 37")
    assert studies.loc["Schlegel 2014", "reason"] == "n not reported"
    assert studies.loc["Maude 2015", "reason"] == "complete response not reported"
    for dropped, kept_one in [("Topp 2015", "Kantarjian 2016"), ("Topp 2014", "Kantarjian 2016"),
                              ("Davila 2014", "Park 2015")]:
        assert studies.loc[dropped, "reason"].startswith(f"shares patients with {kept_one}, which is kept")
    assert studies.loc["Kantarjian 2016", "events_source"].endswith("(nearest to 122.67; 122-123 possible)")
    assert studies.loc["Topp 2015", "events_source"] == "exact count"


def test_table1_quoted_intervals_in_studies_table():
    studies = table1_studies()
    for study, printed in [("Lee 2015", "45.7-88.1"), ("Topp 2014", "52-84"), ("Topp 2015", "36-50")]:
        digits = 1 if "." in printed else 0
        low, high = studies.loc[study, ["ci_low", "ci_high"]]
        assert f"{100 * low:.{digits}f}-{100 * high:.{digits}f}" == printed
    assert set(studies["ci_method"][studies["events"].notna()]) == {"clopper-pearson"}


def test_overlap_rules():
    usable = [
        {"study": "K", "n_used": 261, "year": "2016", "order": 0, "overlaps": "T14; T15"},
        {"study": "T15", "n_used": 189, "year": "2015", "order": 1, "overlaps": "K"},
        {"study": "T14", "n_used": 36, "year": "2014", "order": 2, "overlaps": "K"},
    ]
    assert set(apply_overlap_rule(usable, "largest")) == {"T14", "T15"}
    assert set(apply_overlap_rule(usable, "latest")) == {"T14", "T15"}
    # the earliest first: T14 is kept, T15 shares no patient with T14 and is kept too, K is dropped
    assert set(apply_overlap_rule(usable, "earliest")) == {"K"}
    assert apply_overlap_rule(usable, "none") == {}


def test_overlap_rule_none_keeps_everything_usable():
    studies = table1_studies(rule="none")
    assert studies["included"].sum() == 8


def test_minimal_columns(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("study\tmodality\tn\tcr_events\nA\tX\t10\t0\nB\tX\t10\t10\n")
    studies = studies_table(read_trials([str(path)], BUNDLED), CR)
    assert list(studies["proportion"]) == [0.0, 1.0]
    assert studies["included"].all()
    assert pd.isna(studies["reason"]).all() or (studies["reason"] == "").all()
