"""Reading and validating trial tables: every problem is reported with file, row, study, column and value."""

import csv
import difflib
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "trials.schema.yaml"
OUTCOMES = ("cr", "scrs", "scns")  # outcomes with their own columns (cr_itt reuses cr)


class TrialTableError(ValueError):
    """A trial table that cannot be analysed; the message lists every problem found."""


def load_schema(path=SCHEMA_PATH):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _where(path, line, study, column, value):
    study_part = f" (study '{study}')" if study else ""
    return f"{path}, line {line}{study_part}, column '{column}', value '{value}'"


def read_table(path):
    """One trial table as text cells; .csv is comma-separated, anything else tab-separated.

    A UTF-8 byte-order mark and Windows line endings are accepted as they are.
    """
    sep = "," if str(path).lower().endswith(".csv") else "\t"
    kind = "CSV (comma-separated)" if sep == "," else "TSV (tab-separated)"
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise TrialTableError(f"{path}: trial table not found.") from None
    if b"\x00" in head:
        raise TrialTableError(f"{path}: a binary file, not a text table (save it as {kind}).")
    try:
        # a TSV has no quoting: a '"' in a cell is text, not the start of a cell spanning lines
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig", quoting=quoting)
    except UnicodeDecodeError as err:
        raise TrialTableError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise TrialTableError(f"{path}: cannot be read as a {kind} table ({err}).") from None
    if len(table.columns) == 1:
        other = next((name for name, c in (("commas", ","), ("tabs", "\t"), ("semicolons", ";"))
                      if c != sep and c in table.columns[0]), None)
        if other:
            raise TrialTableError(f"{path}: the header is separated by {other}, but the file is read as {kind}; "
                                  "use tabs in a .tsv file or commas in a .csv file.")
    table.columns = [str(c).strip() for c in table.columns]
    reserved = [c for c in ("source_file", "source_line") if c in table.columns]
    if reserved:
        raise TrialTableError(f"{path}: column name(s) {', '.join(reserved)} are reserved for the pipeline; rename them.")
    # tabs and line breaks inside a quoted CSV cell become spaces, so every output stays one line per row
    table = table.apply(lambda col: col.str.replace(r"[\t\r\n]+", " ", regex=True).str.strip())
    table.insert(0, "source_file", str(path))
    table.insert(1, "source_line", range(2, len(table) + 2))  # line 1 is the header
    return table


def _schema_problems(table, schema):
    """Columns (missing, or unknown but close to a known one: a typo), then each row against the JSON schema."""
    path = table["source_file"].iloc[0]
    known = list(schema["properties"])
    typos = {c: difflib.get_close_matches(c, known, n=1, cutoff=0.8) for c in table.columns
             if c not in known and not c.startswith("source_")}
    problems = [f"{path}: column '{c}' is not a known column; did you mean '{m[0]}'?" for c, m in typos.items() if m]
    missing = [c for c in schema["required"] if c not in table.columns]
    if missing:
        found = ", ".join(c for c in table.columns if not c.startswith("source_"))
        problems.append(
            f"{path}: required column(s) {', '.join(repr(c) for c in missing)} missing (columns found: {found})."
        )
    if "cr_events" not in table.columns and "cr_pct" not in table.columns:
        problems.append(f"{path}: required column 'cr_events' (or 'cr_pct') missing.")
    if problems:
        return problems
    validator = jsonschema.Draft202012Validator(schema)
    for row in table.to_dict("records"):
        cells = {k: v for k, v in row.items() if not k.startswith("source_")}
        for error in validator.iter_errors(cells):
            column = error.path[0] if error.path else "?"
            message = schema["properties"].get(column, {}).get("message", error.message)
            where = _where(row["source_file"], row["source_line"], row.get("study"), column, cells.get(column))
            problems.append(f"{where}: {message}.")
    return problems


def _count_problems(table):
    """Counts that pass the schema but contradict each other."""
    problems = []
    for row in table.to_dict("records"):
        n = row.get("n", "")
        for column in [f"{o}_events" for o in OUTCOMES] + ["n_enrolled"]:
            value = row.get(column, "")
            over = row.get("safety_n", "") if column in ("scrs_events", "scns_events") else ""
            if value and (over or n) and column != "n_enrolled" and int(value) > int(over or n):
                where = _where(row["source_file"], row["source_line"], row["study"], column, value)
                problems.append(f"{where}: events exceed {'safety_n' if over else 'n'} ({over or n}).")
            if value and n and column == "n_enrolled" and int(value) < int(n):
                where = _where(row["source_file"], row["source_line"], row["study"], column, value)
                problems.append(f"{where}: fewer patients enrolled than n ({n}) counted.")
        for column in [f"{o}_pct" for o in OUTCOMES]:
            kind, value, _ = parse_printed_rate(row.get(column, ""))
            where = _where(row["source_file"], row["source_line"], row["study"], column, row.get(column, ""))
            if value is not None and not 0 <= value <= 100:
                problems.append(f"{where}: a percentage must lie between 0 and 100.")
            if kind == "unreadable":
                problems.append(f"{where}: not a percentage (write it as 43, 43%, 45.7, <1 or Not reported, with a "
                                "decimal point, or leave it blank).")
        if row["modality"].lower() == "overall":
            where = _where(row["source_file"], row["source_line"], row["study"], "modality", row["modality"])
            problems.append(f"{where}: 'overall' is reserved for the pooled estimate of all subgroups.")
    return problems


def _identity_problems(table):
    """Duplicate ids, and overlaps that name unknown studies or are not declared both ways."""
    problems = []
    first_seen = {}
    for row in table.to_dict("records"):
        study = row["study"]
        if study in first_seen:
            where = _where(row["source_file"], row["source_line"], study, "study", study)
            problems.append(f"{where}: duplicate study id (first at {first_seen[study]}).")
        else:
            first_seen[study] = f"{row['source_file']}, line {row['source_line']}"
    if "overlaps" not in table.columns:
        return problems
    declared = {row["study"]: set(split_list(row["overlaps"])) for row in table.to_dict("records")}
    for row in table.to_dict("records"):
        for other in split_list(row["overlaps"]):
            where = _where(row["source_file"], row["source_line"], row["study"], "overlaps", row["overlaps"])
            if other == row["study"]:
                problems.append(f"{where}: a study cannot overlap itself.")
            elif other not in declared:
                problems.append(f"{where}: names '{other}', which is not a study in the tables.")
            elif row["study"] not in declared[other]:
                problems.append(f"{where}: '{other}' does not list '{row['study']}' back; overlaps must be mutual.")
    return problems


def split_list(cell):
    """Items of a ';'-separated cell."""
    return [item.strip() for item in str(cell).split(";") if item.strip()]


def read_trials(paths, schema=None):
    """All trial tables as one DataFrame of text cells, or a TrialTableError listing every problem."""
    schema = schema or load_schema()
    tables = [read_table(path) for path in paths]
    problems = []
    for path, table in zip(paths, tables):
        if table.empty:
            problems.append(f"{path}: the table has no rows.")
        else:
            problems += _schema_problems(table, schema)
    if problems:
        raise TrialTableError("\n".join(problems))
    trials = pd.concat(tables, ignore_index=True).fillna("")
    problems = _count_problems(trials) + _identity_problems(trials)
    if problems:
        raise TrialTableError("\n".join(problems))
    return trials


NOT_REPORTED = {"not reported", "unknown", "nr", "na", "n/a", "-", "—"}


def parse_printed_rate(text):
    """A printed percentage: (kind, value, decimals) with kind one of 'blank', 'not reported', 'value',
    'below', 'at most', 'above', 'at least' or 'unreadable'. '43', '43%' and '43.0' are values;
    '<1', '≤5', '>90' and '≥90' are bounds."""
    cell = str(text).strip()
    if cell == "":
        return "blank", None, 0
    if cell.lower() in NOT_REPORTED:
        return "not reported", None, 0
    kind = {"<": "below", "≤": "at most", ">": "above", "≥": "at least"}.get(cell[0], "value")
    number = cell.lstrip("<>≤≥= ").rstrip("% ").strip()
    try:
        value = float(number)
    except ValueError:
        return "unreadable", None, 0
    decimals = len(number.split(".")[1]) if "." in number else 0
    return kind, value, decimals


def write_tsv(table, path):
    """Results tables: tab-separated, empty cell for not defined, full float precision, '\\n' line ends."""
    table.to_csv(path, sep="\t", index=False, na_rep="", lineterminator="\n")


def read_results_tsv(path, text=()):
    """A results table written by write_tsv, with `included` as booleans; `text` names more columns to keep
    as text (moderators such as a year or a reference number are labels, not numbers)."""
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    if hasattr(path, "seek"):
        path.seek(0)
    text = {c: str for c in header if c in TEXT_COLUMNS or c in text}
    table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype=text)
    table[list(text)] = table[list(text)].fillna("")
    if "included" in table.columns:
        table["included"] = table["included"].astype(str).eq("True")
    return table


# Columns of the results tables that hold text, even when every cell is empty.
TEXT_COLUMNS = {
    "study", "modality", "outcome", "ci_method", "reason", "printed", "events_source", "overlaps", "source_file",
    "subgroup", "method", "scale", "note", "test", "contrast", "omitted", "description", "warning",
}
