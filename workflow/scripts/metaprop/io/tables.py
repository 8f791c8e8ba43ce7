"""Reading and validating trial tables: every problem is reported with file, row, study, column and value."""

import csv
import difflib
import io
import re
import unicodedata
from pathlib import Path

import pandas as pd
import yaml

from metaprop.io.text import FORMULA_START, clean_cell, neutralise, odd_characters, skeleton, unneutralise
from metaprop.spec import NOT_REPORTED, UNKNOWN, count_columns

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "trials.schema.yaml"
# Columns the pipeline writes beside the trial tables' own in studies.tsv and the subgroup tables: a moderator of
# that name would be shadowed by the pipeline's column, so it is refused (inputs.check_inputs).
PIPELINE_COLUMNS = frozenset({
    "outcome", "events", "proportion", "ci_low", "ci_high", "ci_method", "included", "reason", "reason_code",
    "printed", "events_source", "events_low", "events_high", "group", "level", "stratum", "subgroup", "weight",
})


class TrialTableError(ValueError):
    """A trial table that cannot be analysed; the message lists every problem found."""


def load_schema(path=SCHEMA_PATH, outcomes=()):
    """The JSON schema of a trial-table row, with the columns of the configured outcomes (spec.Outcome) added:
    their count and denominator columns whole numbers, their printed-percentage columns text."""
    with open(path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    whole = {"type": "string", "pattern": "^([0-9]+)?$", "message": "must be a whole number >= 0 (or blank)"}
    for outcome in outcomes:
        for column in outcome.count_columns():
            schema["properties"].setdefault(column, {**whole, "description": f"a count of outcome {outcome.id}"})
        if outcome.percent:
            schema["properties"].setdefault(outcome.percent, {"type": "string",
                                                              "description": f"{outcome.label} as printed"})
    return schema


def _short(text, keep=40):
    """A long cell shortened for a message."""
    return text if len(text) <= keep else f"{text[:keep]}..."


def _where(path, line, study, column, value):
    study_part = f" (study '{study}')" if study else ""
    return f"{path}, line {line}{study_part}, column '{column}', value '{value}'"


# Input limits, checked before anything heavy is built (docs/input.md, "Limits").
MAX_TABLE_BYTES = 20_000_000
MAX_ROWS = 100_000
MAX_CELL_CHARS = 10_000
MAX_COUNT = 1_000_000_000
MAX_ID_CHARS = 200  # a study id, the longest label a forest plot row can carry
MAX_LABEL_CHARS = 100  # a modality or moderator value, a subgroup heading


def _decode(path, data, kind):
    """The file's text: UTF-8 (with or without a byte-order mark) or UTF-16 with one (Excel's 'Unicode Text')."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise TrialTableError(f"{path}: UTF-32 text; save it as UTF-8 {kind}.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise TrialTableError(f"{path}: UTF-16 text that does not decode ({err.reason}); save it as UTF-8.") from None
    head = data[:4096]
    if b"\x00" in head:
        halves = (head[0::2], head[1::2])
        if len(head) >= 8 and any(half.count(0) >= 0.8 * len(half) for half in halves):
            raise TrialTableError(f"{path}: UTF-16 text without a byte-order mark; save it as UTF-8 {kind}.")
        raise TrialTableError(f"{path}: a binary file, not a text table (save it as {kind}).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TrialTableError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}, line {line}); "
                              "save it as UTF-8.") from None
    return text.removeprefix("\ufeff")


def _records(path, text, sep, kind):
    """(physical line, cells) of every non-blank record. The csv module, not pandas: pandas renames a repeated
    header and skips blank lines, so neither the user's column names nor the editor's line numbers survive."""
    # a TSV has no quoting: a '"' in a cell is text, not the start of a cell spanning lines
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=True)
    records, start = [], 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if any(cell.strip() for cell in cells):  # a blank line counts as a line, not as a row
                records.append((line, cells))
            if len(records) > MAX_ROWS + 1:
                raise TrialTableError(f"{path}: more than {MAX_ROWS:,} rows; the limit is {MAX_ROWS:,} trials.")
    except csv.Error as err:
        raise TrialTableError(f"{path}, line {reader.line_num}: cannot be read as a {kind} table ({err}).") from None
    return records


def _header(path, line, cells, sep, kind):
    """Column names, or the problem with them (separator, repeated or reserved names)."""
    names = [clean_cell(c) for c in cells]
    if len(names) == 1:
        other = next((name for name, c in (("commas", ","), ("tabs", "\t"), ("semicolons", ";"))
                      if c != sep and c in cells[0]), None)
        if other:
            raise TrialTableError(f"{path}: the header is separated by {other}, but the file is read as {kind}; "
                                  "use tabs in a .tsv file or commas in a .csv file.")
    positions = {}
    for i, name in enumerate(names, 1):
        if name:
            positions.setdefault(name, []).append(str(i))
    problems = [f"{path}, line {line}: column '{name}' appears {len(at)} times in the header (columns "
                f"{', '.join(at[:-1])} and {at[-1]}); keep one." for name, at in positions.items() if len(at) > 1]
    reserved = [c for c in ("source_file", "source_line", "source_study") if c in names]
    if reserved:
        problems.append(f"{path}: column name(s) {', '.join(reserved)} are reserved for the pipeline; rename them.")
    if problems:
        raise TrialTableError("\n".join(problems))
    return names


def read_table(path):
    """One trial table as text cells; .csv is comma-separated, anything else tab-separated.

    A UTF-8 byte-order mark, Windows line endings and UTF-16 with a byte-order mark are accepted. Every cell is
    cleaned by clean_cell (NFC, invisible characters removed, spaces collapsed); `source_line` is the physical
    line of the row in the file, as an editor numbers it.
    """
    sep = "," if str(path).lower().endswith(".csv") else "\t"
    kind = "CSV (comma-separated)" if sep == "," else "TSV (tab-separated)"
    sep_name = "comma" if sep == "," else "tab"
    file = Path(path)
    if file.is_dir():
        raise TrialTableError(f"{path}: a directory, not a trial table (name a .tsv or .csv file).")
    try:
        size = file.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise TrialTableError(f"{path}: {size:,} bytes; a trial table may have at most {MAX_TABLE_BYTES:,}.")
        data = file.read_bytes()
    except FileNotFoundError:
        raise TrialTableError(f"{path}: trial table not found.") from None
    except OSError as err:
        raise TrialTableError(f"{path}: cannot be read ({err.strerror}).") from None
    records = _records(path, _decode(path, data, kind), sep, kind)
    if not records:
        raise TrialTableError(f"{path}: the file is empty (no header, no rows).")
    names = _header(path, *records[0], sep, kind)
    width, study_at = len(names), (names.index("study") if "study" in names else None)
    unnamed = {i: [] for i, name in enumerate(names) if not name}  # column -> lines with a value in it
    rows, problems = [], []
    for line, raw in records[1:]:
        cells = [clean_cell(c) for c in raw]
        study = cells[study_at] if study_at is not None and study_at < len(cells) else ""
        where = f"{path}, line {line}" + (f" (study '{study}')" if study else "")
        if len(cells) < width:
            problems.append(f"{where}: {len(cells)} cells, but the header has {width} columns (no cell for "
                            f"{', '.join(repr(n) for n in names[len(cells):])}); a blank value still needs its "
                            f"{sep_name}.")
        elif len(cells) > width and any(cells[width:]):
            problems.append(f"{where}: {len(cells)} cells, but the header has {width} columns (extra value(s) "
                            f"{', '.join(repr(c) for c in cells[width:] if c)}); a {sep_name} too many, or a "
                            "column name missing in the header?")
        for i, lines in unnamed.items():
            if i < len(cells) and cells[i]:
                lines.append(str(line))
        long = [names[i] if i < width else str(i + 1) for i, c in enumerate(raw) if len(c) > MAX_CELL_CHARS]
        if long:
            problems.append(f"{where}: cell(s) in column(s) {', '.join(long)} longer than {MAX_CELL_CHARS:,} "
                            "characters.")
        raw_study = raw[study_at] if study_at is not None and study_at < len(raw) else ""
        rows.append([line, raw_study, *cells[:width], *[""] * (width - len(cells))])
    problems += [f"{path}: column {i + 1} has no name in the header, but line{'s' if len(at) > 1 else ''} "
                 f"{', '.join(at)} {'have' if len(at) > 1 else 'has'} a value in it; name the column or empty it."
                 for i, at in unnamed.items() if at]
    if problems:
        raise TrialTableError("\n".join(problems))
    # source_study: the id as written, to name invisible or unnormalised characters in a duplicate-id message
    table = pd.DataFrame(rows, columns=["source_line", "source_study", *names], dtype=object)
    table = table.drop(columns=[names[i] for i in unnamed])
    table.insert(0, "source_file", str(path))
    table["source_line"] = table["source_line"].astype(int)
    for column in table.columns[2:]:
        table[column] = table[column].astype(str)
    table.insert(2, "source_study", table.pop("source_study"))
    return table


def _schema_problems(table, schema, outcomes):
    """Columns (missing, or unknown but close to a known one: a typo), then each row against the JSON schema."""
    path = table["source_file"].iloc[0]
    known = list(schema["properties"])
    # a typo leaves the column it misspells missing: only absent known columns are offered as the meaning
    absent = [c for c in known if c not in table.columns]
    typos = {c: difflib.get_close_matches(c, absent, n=1, cutoff=0.8) or _stem_match(c, absent, schema, outcomes)
             for c in table.columns if c not in known and not c.startswith("source_")}
    problems = [f"{path}: column '{c}' is not a known column; did you mean '{m[0]}'?" for c, m in typos.items() if m]
    missing = [c for c in schema["required"] if c not in table.columns]
    if missing:
        found = ", ".join(c for c in table.columns if not c.startswith("source_"))
        problems.append(
            f"{path}: required column(s) {', '.join(repr(c) for c in missing)} missing (columns found: {found})."
        )
    counts = [c for o in outcomes for c in (o.events, o.percent) if c]
    if counts and not any(c in table.columns for c in counts):
        problems.append(f"{path}: no column of a configured outcome (one of "
                        f"{', '.join(repr(c) for c in dict.fromkeys(counts))}).")
    if problems:
        return problems
    import jsonschema  # here: the jobs that only read results tables skip its import (0.04 CPU-s each)

    validator = jsonschema.Draft202012Validator(schema)
    for row in table.to_dict("records"):
        cells = {k: v for k, v in row.items() if not k.startswith("source_")}
        for error in validator.iter_errors(cells):
            column = error.path[0] if error.path else "?"
            message = schema["properties"].get(column, {}).get("message", error.message)
            where = _where(row["source_file"], row["source_line"], row.get("study"), column, cells.get(column))
            problems.append(f"{where}: {message}.")
        for column in count_columns(outcomes):
            value = cells.get(column, "")
            # compared as text first: int() of thousands of digits is refused by Python itself
            if value.isascii() and value.isdigit() and (len(value) > 10 or int(value) > MAX_COUNT):
                shown = value if len(value) <= 20 else f"{value[:12]}... ({len(value)} digits)"
                where = _where(row["source_file"], row["source_line"], row.get("study"), column, shown)
                problems.append(f"{where}: larger than {MAX_COUNT:,} (10^9), the most patients a count may have.")
    return problems


def _stem_match(column, absent, schema, outcomes):
    """[the column the analysis reads that `column` lengthens] ('overlapping_cohorts' for 'overlaps'), or []: too
    far for a typo, yet the intended column would be silently missing."""
    read = [*schema["required"], "overlaps", "year", *count_columns(outcomes),
            *(o.percent for o in outcomes if o.percent)]
    name = column.lower()
    for known in (c for c in read if c in absent):
        stem = known.removesuffix("s")
        if len(stem) >= 4 and name.startswith(stem):
            return [known]
    return []


def unknown_columns(table, schema, named=()):
    """Columns of a table in neither the input contract (the schema with the outcomes' columns) nor `named` (the
    config's moderator columns): read, but used by nothing."""
    known = set(schema["properties"]) | set(named)
    return [c for c in table.columns if c not in known and not c.startswith("source_")]


def fraction_percentages(table, outcomes):
    """Warnings for printed-percentage columns whose every value is at most 1 (rates typed as fractions, read as
    percentages): one per (file, column)."""
    warnings = []
    for column in dict.fromkeys(o.percent for o in outcomes if o.percent):
        if column not in table.columns:
            continue
        for path, part in table.groupby("source_file", sort=False):
            values = [(line, cell) for line, cell in zip(part["source_line"], part[column])
                      if parse_printed_rate(cell)[0] == "value"]
            rates = [parse_printed_rate(cell)[1] for _, cell in values]
            if rates and max(rates) <= 1 and max(rates) > 0:  # all 0% is a plausible count, not a fraction
                shown = ", ".join(f"'{cell}' (line {line})" for line, cell in values[:3])
                warnings.append(f"{path}, column '{column}': every percentage is at most 1 ({shown}"
                                f"{', ...' if len(values) > 3 else ''}); they are read as percentages (0.43 is "
                                "0.43%, not 43%). If they are fractions, write them as percentages (43).")
    return warnings


def _count_problems(table, outcomes):
    """Counts that pass the schema but contradict each other: events above the patients they are counted over, a
    denominator below the column the events were counted over, a percentage outside 0-100."""
    problems = []
    percents = list(dict.fromkeys(o.percent for o in outcomes if o.percent))
    for row in table.to_dict("records"):
        n = row.get("n", "")
        for outcome in outcomes:
            value = row.get(outcome.events, "") if outcome.events else ""
            base = outcome.base
            over = row.get(base, "") if base != "n" else ""
            if value and (over or n) and int(value) > int(over or n):
                where = _where(row["source_file"], row["source_line"], row["study"], outcome.events, value)
                problem = f"{where}: events exceed {base if over else 'n'} ({over or n})."
                if problem not in problems:
                    problems.append(problem)
            counted = row.get(outcome.counted_over, "") if outcome.counted_over else ""
            total = row.get(outcome.denominator, "") if outcome.counted_over else ""
            if total and counted and int(total) < int(counted):
                where = _where(row["source_file"], row["source_line"], row["study"], outcome.denominator, total)
                problem = (f"{where}: fewer patients in {outcome.denominator} than in {outcome.counted_over} "
                           f"({counted}), which the events of {outcome.id} are counted over.")
                if problem not in problems:
                    problems.append(problem)
        for column in percents:
            kind, value, _ = parse_printed_rate(row.get(column, ""))
            where = _where(row["source_file"], row["source_line"], row["study"], column, row.get(column, ""))
            if value is not None and not 0 <= value <= 100:
                problems.append(f"{where}: a percentage must lie between 0 and 100.")
            if kind == "unreadable":
                problems.append(f"{where}: not a percentage (write it as 43, 43%, 45.7, <1 or Not reported, with a "
                                "decimal point, or leave it blank).")
        for column, limit in (("study", MAX_ID_CHARS), ("modality", MAX_LABEL_CHARS)):
            if len(row[column]) > limit:
                where = _where(row["source_file"], row["source_line"], _short(row["study"]), column,
                               _short(row[column]))
                problems.append(f"{where}: {len(row[column])} characters; at most {limit} fit a forest plot's label.")
        if row["study"].startswith("#"):
            where = _where(row["source_file"], row["source_line"], row["study"], "study", _short(row["study"]))
            problems.append(f"{where}: a study id cannot start with '#'; trial tables have no comment lines (every "
                            "non-blank line is a row). Delete the line, or put the remark in a 'note' column.")
        if skeleton(row["modality"]) == "overall":
            where = _where(row["source_file"], row["source_line"], row["study"], "modality", row["modality"])
            problems.append(f"{where}: 'overall' is reserved for the pooled estimate of all subgroups.")
    return problems


def _identity_problems(table):
    """Duplicate or look-alike ids, and overlaps that name unknown studies or are not declared both ways."""
    problems = []
    first_seen, looks = {}, {}
    for row in table.to_dict("records"):
        study, here = row["study"], f"{row['source_file']}, line {row['source_line']}"
        where = _where(row["source_file"], row["source_line"], study, "study", study)
        if study in first_seen:
            hidden = sorted({c for other in (row["source_study"], first_seen[study][1]) for c in other
                             if c not in study and (ord(c) > 127 or not c.isprintable())})
            named = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'control character')}" for c in hidden)
            note = (f"; the ids differ only by invisible or unnormalised characters ({named}), which are "
                    "removed before comparing") if named else ""
            problems.append(f"{where}: duplicate study id (first at {first_seen[study][0]}){note}.")
            continue
        first_seen[study] = (here, row["source_study"])
        other = looks.setdefault(skeleton(study), (study, here))
        if other[0] != study:
            odd = odd_characters(study, other[0])
            problems.append(f"{where}: looks the same as study '{other[0]}' ({other[1]}); the ids differ only by "
                            f"case, spacing, dashes or look-alike characters{f' ({odd})' if odd else ''}. Give the "
                            "cohorts distinct ids, or remove the duplicate row.")
    if "overlaps" not in table.columns:
        return problems
    declared = {row["study"]: set(split_list(row["overlaps"])) for row in table.to_dict("records")}
    for row in table.to_dict("records"):
        for other in split_list(row["overlaps"]):
            where = _where(row["source_file"], row["source_line"], row["study"], "overlaps", row["overlaps"])
            if other == row["study"]:
                problems.append(f"{where}: a study cannot overlap itself.")
            elif other not in declared:
                near = looks.get(skeleton(other))
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                problems.append(f"{where}: names '{other}', which is not a study in the tables{hint}; overlaps "
                                "lists study ids separated by ';'.")
            elif row["study"] not in declared[other]:
                problems.append(f"{where}: '{other}' does not list '{row['study']}' back; overlaps must be mutual "
                                "(study ids separated by ';').")
    return problems


def _locations(rows):
    """'a.tsv, lines 2, 5; b.tsv, line 3' for (file, line) pairs."""
    by_file = {}
    for file, line in rows:
        by_file.setdefault(file, []).append(str(line))
    return "; ".join(f"{file}, line{'s' if len(lines) > 1 else ''} {', '.join(lines)}" for file, lines in by_file.items())


def label_problems(table, columns):
    """Subgroup labels (modality, moderator values) spelt in several ways that differ only by case, spacing,
    dashes or look-alike characters: refused, since each spelling would be pooled as a subgroup of its own."""
    problems = []
    for column in (c for c in columns if c in table.columns):
        spellings = {}
        for row in table.to_dict("records"):
            value = row[column]
            if column != "modality" and len(value) > MAX_LABEL_CHARS:
                where = _where(row["source_file"], row["source_line"], row["study"], column, _short(value))
                problems.append(f"{where}: {len(value)} characters; at most {MAX_LABEL_CHARS} fit a subgroup label.")
            if value and value.lower() not in UNKNOWN:
                spellings.setdefault(skeleton(value), {}).setdefault(value, []).append(
                    (row["source_file"], row["source_line"]))
        for variants in spellings.values():
            if len(variants) > 1:
                listing = "; ".join(f"'{v}' ({_locations(at)})" for v, at in variants.items())
                odd = odd_characters(*variants)
                problems.append(f"column '{column}': the values {listing} differ only by case, spacing, dashes or "
                                f"look-alike characters{f' ({odd})' if odd else ''}; each would be pooled as a "
                                "subgroup of its own. Write them the same way.")
        for value, rows in ((v, at) for variants in spellings.values() for v, at in variants.items()):
            if column != "modality" and skeleton(value) == "overall":  # modality: checked row by row
                problems.append(f"column '{column}', value '{value}' ({_locations(rows)}): 'overall' is reserved for "
                                "the pooled estimate of all subgroups.")
    return problems




def split_list(cell):
    """Items of a ';'-separated cell."""
    return [item.strip() for item in str(cell).split(";") if item.strip()]


def read_trials(paths, outcomes, schema=None, label_columns=("modality",)):
    """All trial tables as one DataFrame of text cells, or a TrialTableError listing every problem.

    `outcomes`: the configured outcomes (spec.Outcome), whose columns are checked as counts and percentages.
    `label_columns` are the columns whose values name subgroups (modality, moderators of the analyses): their
    spellings must agree (label_problems).
    """
    schema = schema or load_schema(outcomes=outcomes)
    seen = {}
    for path in paths:
        key = str(Path(path).resolve())
        if key in seen:
            raise TrialTableError(f"{path}: listed twice under trials (also as '{seen[key]}'); list each table once.")
        seen[key] = path
    tables, problems = [], []
    for path in paths:
        try:
            tables.append(read_table(path))
        except TrialTableError as err:
            problems.append(str(err))
    if problems:
        raise TrialTableError("\n".join(problems))
    for path, table in zip(paths, tables):
        if table.empty:
            problems.append(f"{path}: the table has no rows.")
        else:
            problems += _schema_problems(table, schema, outcomes)
    if problems:
        raise TrialTableError("\n".join(problems))
    trials = pd.concat(tables, ignore_index=True).fillna("")
    problems = _count_problems(trials, outcomes) + _identity_problems(trials) + label_problems(trials, label_columns)
    if problems:
        raise TrialTableError("\n".join(problems))
    return trials


# A printed rate: an optional bound sign, a number with ASCII digits and a decimal point, an optional '%'.
_RATE_RE = re.compile(r"^(<=|>=|<|>|≤|≥)?\s*([0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})\s*%?$")
_BOUNDS = {"<": "below", "<=": "at most", "≤": "at most", ">": "above", ">=": "at least", "≥": "at least"}


def parse_printed_rate(text):
    """A printed percentage: (kind, value, decimals) with kind one of 'blank', 'not reported', 'value',
    'below', 'at most', 'above', 'at least' or 'unreadable'. '43', '43%' and '43.0' are values;
    '<1', '≤5' (or '<=5'), '>90' and '≥90' are bounds. Only ASCII digits with a decimal point are read
    ('4_3', Arabic-Indic digits, '43,5' and '<>=30' are unreadable, not guessed)."""
    cell = str(text).strip()
    if cell == "":
        return "blank", None, 0
    if cell.lower() in NOT_REPORTED:
        return "not reported", None, 0
    match = _RATE_RE.match(cell)
    if not match:
        return "unreadable", None, 0
    sign, number = match.groups()
    decimals = len(number.split(".")[1]) if "." in number else 0
    return _BOUNDS.get(sign, "value"), float(number), decimals


def write_tsv(table, path):
    """Results tables: tab-separated, empty cell for not defined, full float precision, '\\n' line ends.

    Text from data never starts a cell with a spreadsheet formula trigger (= + - @): such a cell, and such a
    column name, gets a leading ' (OWASP's advice for CSV injection); numbers, negative ones too, stay numbers.
    read_results_tsv takes the ' off again.
    """
    table = table.rename(columns=neutralise)
    text = [c for c in table.columns if table[c].dtype == object or pd.api.types.is_string_dtype(table[c])]
    _map_cells(table, text, neutralise, FORMULA_START + ("'",))
    table.to_csv(path, sep="\t", index=False, na_rep="", lineterminator="\n")


def _map_cells(table, columns, function, starts):
    """`function` applied to every cell of those `columns` that have a text cell starting with one of `starts` (the
    only cells it changes); the others are left alone, which saves most tables the element-wise pass."""
    changed = [c for c in columns if any(isinstance(x, str) and x.startswith(starts) for x in table[c].to_numpy())]
    if changed:
        table[changed] = table[changed].map(function)


def read_results_tsv(path, text=()):
    """A results table written by write_tsv, with `included` as booleans; `text` names more columns to keep
    as text (moderators such as a year or a reference number are labels, not numbers)."""
    names = TEXT_COLUMNS | set(text)
    # each name as written, and with the ' unneutralise takes off; pandas skips the names a file lacks
    dtype = {written: str for name in names for written in {name, "'" + name} if unneutralise(written) == name}
    table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype=dtype)
    text = [c for c in table.columns if unneutralise(c) in names]
    table[text] = table[text].fillna("")
    strings = [c for c in table.columns if table[c].dtype == object or pd.api.types.is_string_dtype(table[c])]
    _map_cells(table, strings, unneutralise, "'")
    table.columns = [unneutralise(c) for c in table.columns]
    if "included" in table.columns:
        table["included"] = table["included"].astype(str).eq("True")
    return table


# Columns of the results tables that hold text, even when every cell is empty.
TEXT_COLUMNS = {
    "study", "modality", "outcome", "ci_method", "reason", "printed", "events_source", "overlaps", "source_file",
    "subgroup", "method", "scale", "note", "test", "contrast", "omitted", "description", "warning", "reason_code",
    "group", "level", "group_1", "group_2", "citation",
}
