"""Trial tables: what is read, and the error each bad input gets (file, line, study, column, value, problem)."""

import pytest
from conftest import BUNDLED, CR
from metaprop.io.tables import TrialTableError, parse_printed_rate, read_trials

HEADER = "study\tmodality\tn\tcr_events\n"


def write(tmp_path, text, name="trials.tsv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def error_of(paths):
    with pytest.raises(TrialTableError) as err:
        read_trials(paths, BUNDLED)
    return str(err.value)


def test_minimal_table_reads(tmp_path):
    trials = read_trials([write(tmp_path, HEADER + "A\tX\t10\t3\nB\tY\t20\t5\n")], BUNDLED)
    assert list(trials["study"]) == ["A", "B"]
    assert list(trials["source_line"]) == [2, 3]


def test_bom_and_windows_line_endings_simply_work(tmp_path):
    path = write(tmp_path, "\ufeff" + (HEADER + "A\tX\t10\t3\n").replace("\n", "\r\n"))
    trials = read_trials([path], BUNDLED)
    assert list(trials.columns[3:]) == ["study", "modality", "n", "cr_events"]
    assert trials.loc[0, "cr_events"] == "3"


def test_csv_by_extension(tmp_path):
    trials = read_trials([write(tmp_path, "study,modality,n,cr_events\nA,X,10,3\n", name="t.csv")], BUNDLED)
    assert trials.loc[0, "n"] == "10"


def test_events_above_n(tmp_path):
    path = write(tmp_path, HEADER + "A\tX\t10\t3\nTopp 2014\tX\t36\t40\n")
    assert error_of([path]) == (
        f"{path}, line 3 (study 'Topp 2014'), column 'cr_events', value '40': events exceed n (36)."
    )


@pytest.mark.parametrize(
    ("cells", "column", "value"),
    [("-5\t3", "n", "-5"), ("10\t2.5", "cr_events", "2.5"), ("10\tthree", "cr_events", "three")],
)
def test_negative_or_non_integer_counts(tmp_path, cells, column, value):
    path = write(tmp_path, HEADER + f"A\tX\t{cells}\n")
    message = error_of([path])
    assert message.startswith(f"{path}, line 2 (study 'A'), column '{column}', value '{value}': ")
    assert "must be a whole number >= 0" in message


def test_missing_required_column(tmp_path):
    path = write(tmp_path, "study\tn\tcr_events\nA\t10\t3\n")
    assert error_of([path]) == (
        f"{path}: required column(s) 'modality' missing (columns found: study, n, cr_events)."
    )


def test_missing_outcome_column(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\nA\tX\t10\n")
    assert error_of([path]) == f"{path}: no column of a configured outcome (one of 'cr_events', 'cr_pct', 'scrs_events', 'scrs_pct', 'scns_events', 'scns_pct')."


def test_duplicate_study_across_files(tmp_path):
    first = write(tmp_path, HEADER + "A\tX\t10\t3\n", name="a.tsv")
    second = write(tmp_path, HEADER + "B\tX\t10\t3\nA\tY\t12\t4\n", name="b.tsv")
    assert error_of([first, second]) == (
        f"{second}, line 3 (study 'A'), column 'study', value 'A': duplicate study id (first at {first}, line 2)."
    )


def test_percentage_over_100(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\tcr_pct\nA\tX\t10\t130%\n")
    assert error_of([path]) == (
        f"{path}, line 2 (study 'A'), column 'cr_pct', value '130%': a percentage must lie between 0 and 100."
    )


def test_overlap_must_name_a_study_and_be_mutual(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\tcr_events\toverlaps\nA\tX\t10\t3\tB; Z\nB\tX\t12\t4\t\n")
    assert error_of([path]).splitlines() == [
        (f"{path}, line 2 (study 'A'), column 'overlaps', value 'B; Z': 'B' does not list 'A' back; "
        "overlaps must be mutual (study ids separated by ';')."),
        (f"{path}, line 2 (study 'A'), column 'overlaps', value 'B; Z': names 'Z', which is not a study in the "
         "tables; overlaps lists study ids separated by ';'."),
    ]


def test_empty_table_and_missing_file(tmp_path):
    path = write(tmp_path, HEADER)
    assert error_of([path]) == f"{path}: the table has no rows."
    assert error_of([str(tmp_path / "nope.tsv")]) == f"{tmp_path / 'nope.tsv'}: trial table not found."


def test_every_problem_is_listed(tmp_path):
    path = write(tmp_path, HEADER + "A\tX\t10\t2.5\nB\tX\t-1\t3\nC\tX\t5\t9\nC\tX\t5\t1\n")
    # schema problems first: counts are compared only once every cell is a number
    assert len(error_of([path]).splitlines()) == 2


@pytest.mark.parametrize(
    ("printed", "parsed"),
    [("43", ("value", 43.0, 0)), ("2%", ("value", 2.0, 0)), ("45.7", ("value", 45.7, 1)),
     ("<1", ("below", 1.0, 0)), (">90%", ("above", 90.0, 0)), ("Not reported", ("not reported", None, 0)),
     ("Unknown", ("not reported", None, 0)), ("", ("blank", None, 0)), ("n.a.x", ("unreadable", None, 0))],
)
def test_parse_printed_rate(printed, parsed):
    assert parse_printed_rate(printed) == parsed


def test_typo_of_a_known_column_is_named(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\tcr_evnts\nA\tX\t10\t3\n")
    assert error_of([path]).splitlines() == [
        f"{path}: column 'cr_evnts' is not a known column; did you mean 'cr_events'?",
        f"{path}: no column of a configured outcome (one of 'cr_events', 'cr_pct', 'scrs_events', 'scrs_pct', 'scns_events', 'scns_pct').",
    ]


def test_other_columns_are_allowed(tmp_path):
    trials = read_trials([write(tmp_path, HEADER[:-1] + "\tregion\tdose_level\n" + "A\tX\t10\t3\tEU\t2\n")], BUNDLED)
    assert trials.loc[0, "region"] == "EU"


def test_wrong_delimiter(tmp_path):
    path = write(tmp_path, "study,modality,n,cr_events\nA,X,10,3\n")
    assert error_of([path]) == (
        f"{path}: the header is separated by commas, but the file is read as TSV (tab-separated); "
        "use tabs in a .tsv file or commas in a .csv file."
    )


def test_binary_and_non_utf8_files(tmp_path):
    binary = tmp_path / "table.tsv"
    binary.write_bytes(b"PK\x03\x04\x00\x00excel")
    assert error_of([str(binary)]) == f"{binary}: a binary file, not a text table (save it as TSV (tab-separated))."
    latin = write(tmp_path, HEADER + "Gökbuget\tX\t10\t3\n", name="latin.tsv", encoding="latin-1")
    assert error_of([latin]).startswith(f"{latin}: not UTF-8 text (invalid")


def test_safety_events_above_their_own_denominator(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\tcr_events\tsafety_n\tscrs_events\nA\tX\t10\t3\t8\t9\n")
    assert error_of([path]) == (
        f"{path}, line 2 (study 'A'), column 'scrs_events', value '9': events exceed safety_n (8)."
    )


def test_subgroup_without_a_usable_trial(tmp_path):
    from metaprop.analysis.extraction import studies_table, unusable_subgroups

    path = write(tmp_path, "study\tmodality\tn\tcr_pct\nA\tX\t10\t30\nB\tY\t31\t31\nC\tY\t\t40\n")
    studies = studies_table(read_trials([path], BUNDLED), CR)
    assert unusable_subgroups(studies, CR[0]) == [
        (f"subgroup 'Y' has no usable trial for complete response: {path}, line 3 (study 'B'): complete response "
        f"inconsistent: no count out of n = 31 gives '31' (9/31 = 29.0%, 10/31 = 32.3%); {path}, line 4 "
        "(study 'C'): n not reported.")
    ]


@pytest.mark.parametrize(
    ("row", "column", "value", "problem"),
    [
        ("A\toverall\t10\t3\t", "modality", "overall", "'overall' is reserved for the pooled estimate of all subgroups."),
        ("A\tX\t10\t\t43,5", "cr_pct", "43,5", ("not a percentage (write it as 43, 43%, 45.7, <1 or Not reported, "
                                               "with a decimal point, or leave it blank).")),
    ],
)
def test_reserved_subgroup_name_and_unreadable_percentage(tmp_path, row, column, value, problem):
    path = write(tmp_path, "study\tmodality\tn\tcr_events\tcr_pct\n" + row + "\n")
    assert error_of([path]) == f"{path}, line 2 (study 'A'), column '{column}', value '{value}': {problem}"


def test_a_study_cannot_overlap_itself(tmp_path):
    path = write(tmp_path, "study\tmodality\tn\tcr_events\toverlaps\nA\tX\t10\t3\tA\n")
    assert error_of([path]) == f"{path}, line 2 (study 'A'), column 'overlaps', value 'A': a study cannot overlap itself."


def test_reserved_column_names(tmp_path):
    path = write(tmp_path, HEADER[:-1] + "\tsource_file\nA\tX\t10\t3\tpaper.pdf\n")
    assert error_of([path]) == f"{path}: column name(s) source_file are reserved for the pipeline; rename them."


def test_a_double_quote_in_a_tsv_cell_is_text(tmp_path):
    path = write(tmp_path, HEADER[:-1] + '\tnote\nA\tX\t10\t3\t"CR per IRC\nB\tX\t12\t4\tends here"\n')
    trials = read_trials([path], BUNDLED)
    assert list(trials["study"]) == ["A", "B"] and trials.loc[0, "note"] == '"CR per IRC'
