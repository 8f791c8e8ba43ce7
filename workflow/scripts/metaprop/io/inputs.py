"""The checks of the trial tables against the config that run while Snakemake parses the workflow, before any job.

Their verdict depends only on the tables' bytes, the config and the checking code, so it is kept under
.snakemake/: an unchanged rerun reads it back instead of importing pandas to check again.
"""

import hashlib
import json
import os
import re
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1]


def module_files(*modules):
    """The source files of library modules ('stats.glmm') and of every library module they import, in turn (sorted
    paths), with the packages' __init__ files."""
    found, todo = {}, ["__init__", *modules]
    while todo:
        name = todo.pop()
        if name not in found:
            found[name] = LIBRARY / (name.replace(".", "/") + ".py")
            source = found[name].read_text(encoding="utf-8")
            for module in re.findall(r"^ *from metaprop\.([\w.]+) import", source, re.MULTILINE):
                package = (LIBRARY / module.replace(".", "/")).is_dir()  # 'from metaprop.stats import bayes as b'
                todo.append(f"{module}.__init__" if package else module)
            # 'from metaprop.stats import bayes as bayesian' imports a module; 'from metaprop.spec import X as Y' a name
            todo += [f"{package}.{module}" for package, module in
                     re.findall(r"^ *from metaprop\.(\w+) import (\w+) as", source, re.MULTILINE)
                     if (LIBRARY / package / f"{module}.py").is_file()]
            if "." in name:
                todo.append(name.rsplit(".", 1)[0] + ".__init__")
    return sorted(found.values())


def script_files(script):
    """The library files an entry script (workflow/scripts/<script>.py) imports, directly or not."""
    source = (LIBRARY.parent / f"{script}.py").read_text(encoding="utf-8")
    return module_files(*re.findall(r"^ *from metaprop\.([\w.]+) import", source, re.MULTILINE))


# The code a verdict depends on: a change to any of these checks the tables again.
_CODE = [*module_files("io.inputs", "analysis.extraction", "io.tables", "spec"),
         LIBRARY.parents[1] / "schemas" / "trials.schema.yaml"]


class InputError(ValueError):
    """A trial table or config value the analysis cannot run with; the message says which and why."""


def check_inputs(config, table_paths):
    """Read and check the trial tables; returns what the rules are built from and the checked rows.

    ({"outcomes": the configured outcome entries the tables have columns for, "skipped_outcomes": the others and
    why, "comparison": the modalities in the configured order (or in the order the tables first name them),
    "analyses": {by: where} of the moderator analyses the tables can run, "across": {by: across_modalities},
    "skipped": the analyses they cannot run, "adjusted": the adjusted comparisons they can run, "carry": the
    columns studies.tsv carries, the moderator columns and the year}, the checked trials as a DataFrame).
    Raises InputError."""
    # imported here: a rerun with a kept verdict never needs pandas
    from metaprop.analysis.extraction import available_outcomes, studies_table, unusable_subgroups
    from metaprop.io.tables import (
        PIPELINE_COLUMNS,
        TrialTableError,
        fraction_percentages,
        label_problems,
        load_schema,
        read_trials,
        unknown_columns,
    )
    from metaprop.spec import UnknownKey, outcomes_of

    try:
        declared = outcomes_of(config)
    except UnknownKey as err:
        raise InputError(f"config: {err}.") from None
    try:
        trials = read_trials(table_paths, list(declared))
    except TrialTableError as err:
        raise InputError(f"Trial table problem(s); nothing was run:\n{err}") from None
    # Outcomes the tables have no columns for are left out, so a table with only study, modality, n and an events
    # column runs as it is; the report lists the ones left out.
    outcomes = available_outcomes(set(trials.columns), declared)
    skipped_outcomes = [f"{o.id} ({o.label}): no column {' or '.join(c for c in (o.events, o.percent) if c)}"
                        if not (o.events in trials.columns or o.percent in trials.columns) else
                        f"{o.id} ({o.label}): no column {o.denominator}" for o in declared if o not in outcomes]
    if not outcomes:
        raise InputError("config: none of the outcomes has its columns in the trial tables ("
                         + "; ".join(skipped_outcomes) + ").")
    primary = next((o for o in outcomes if o.role == "efficacy"), outcomes[0])
    outcomes = [primary] + [o for o in outcomes if o is not primary]
    comparison = _comparison(config, trials)
    # Every subgroup of the primary outcome needs a usable trial, or its comparison means nothing.
    try:
        primary_studies = studies_table(trials, [primary], None, rule=config["overlap_rule"])
    except ValueError as err:  # an overlap rule that needs a year the tables lack
        raise InputError(f"config: {err}.") from None
    empty = unusable_subgroups(primary_studies, primary)
    if empty:
        raise InputError("Trial table problem(s); nothing was run:\n" + "\n".join(empty))

    # Moderator analyses whose columns the tables have (a minimal table runs without them; the report lists
    # the ones skipped, so a misspelt column does not pass unnoticed).
    analyses, skipped, across = {}, [], {}
    named = [c for a in config["subgroup_analyses"] for c in [a["by"], *a.get("where", {})]]
    named += [c for mods in config["adjusted_comparisons"] for c in mods]
    metaregs = [_metareg_entry(entry) for entry in config.get("meta_regressions", [])]
    named += [c for entry in metaregs for c in entry["moderators"]]
    shadowed = sorted({c for c in named if c in PIPELINE_COLUMNS})
    if shadowed:
        raise InputError(
            f"config: moderator column(s) {', '.join(repr(c) for c in shadowed)} have the name of a column the "
            "pipeline writes itself in studies.tsv; rename the column in the trial tables and in config.yaml "
            "(e.g. 'trial_" + shadowed[0] + "').")
    for analysis in config["subgroup_analyses"]:
        columns = [analysis["by"], *analysis.get("where", {})]
        if all(c in trials.columns for c in columns):
            for column, value in analysis.get("where", {}).items():
                if value not in set(trials[column]):
                    raise InputError(
                        f"config: subgroup_analyses by '{analysis['by']}': where {column} = '{value}' matches no "
                        f"trial (values in the tables: {', '.join(sorted(set(trials[column])))})."
                    )
            analyses[analysis["by"]] = analysis.get("where", {})
            across[analysis["by"]] = analysis.get("across_modalities", False)
        else:
            missing = ", ".join(c for c in columns if c not in trials.columns)
            skipped.append(f"{analysis['by']} (no column {missing})")
    # Moderators fitted together with modality (config adjusted_comparisons): a set naming a column the tables lack
    # is left out and listed with the skipped analyses.
    adjusted = []
    for mods in config["adjusted_comparisons"]:
        missing = [c for c in mods if c not in trials.columns]
        if missing:
            skipped.append(f"adjusted for {' + '.join(mods)} (no column {', '.join(missing)})")
        else:
            adjusted.append(list(mods))
    # Meta-regressions on numeric columns (config meta_regressions): a set naming a column the tables lack is left out
    # and listed with the skipped analyses; a cell that is neither a number nor unknown is refused.
    regressions = []
    for entry in metaregs:
        missing = [c for c in entry["moderators"] if c not in trials.columns]
        if missing:
            skipped.append(f"meta-regression on {' + '.join(entry['moderators'])} (no column {', '.join(missing)})")
            continue
        problems = [_not_numeric(row, column) for column in entry["moderators"] for row in trials.to_dict("records")]
        problems = [p for p in problems if p]
        if problems:
            raise InputError("Trial table problem(s); nothing was run:\n" + "\n".join(dict.fromkeys(problems)))
        regressions.append(entry)
    moderators = sorted(({c for by, where in analyses.items() for c in [by, *where]}
                         | {c for mods in adjusted for c in mods}) - {"modality"})
    # moderator values name subgroups too: spellings that differ only by case, dashes or look-alikes are refused
    problems = label_problems(trials, moderators)
    if problems:
        raise InputError("Trial table problem(s); nothing was run:\n" + "\n".join(problems))
    # studies.tsv also carries the year, which orders the cumulative meta-analysis
    numeric = [c for entry in regressions for c in entry["moderators"] if c not in moderators]
    carry = moderators + list(dict.fromkeys(numeric))
    carry += [c for c in ("year", "citation") if c in trials.columns and c not in carry]
    # warnings, not refusals: printed at parse time and in the report
    warnings = fraction_percentages(trials, outcomes)
    unknown = unknown_columns(trials, load_schema(outcomes=list(declared)), named)
    if unknown:
        files = ", ".join(dict.fromkeys(p for p in trials["source_file"]))
        warnings.append(f"{files}: column(s) {', '.join(repr(c) for c in unknown)} are in neither the input contract "
                        "(workflow/schemas/trials.schema.yaml and the config's outcome columns) nor a moderator "
                        "analysis of the config; they are read but not used.")
    entries = {entry["id"]: entry for entry in config["outcomes"]}
    verdict = {"warnings": warnings, "outcomes": [entries[o.id] for o in outcomes], "skipped_outcomes": skipped_outcomes,
               "comparison": comparison, "comparison_configured": comparison == config.get("comparison"),
               "analyses": analyses, "across": across, "skipped": skipped,
               "adjusted": adjusted, "metaregs": regressions, "carry": carry}
    return verdict, trials


def _metareg_entry(entry):
    """A meta_regressions entry as {"moderators": [...], "across": bool} (a list of columns is within modality)."""
    if isinstance(entry, dict):
        return {"moderators": list(entry["moderators"]), "across": bool(entry.get("across_modalities", False))}
    return {"moderators": list(entry), "across": False}


def _not_numeric(row, column):
    """The problem with a meta-regression moderator's cell ('' when it is a finite number or unknown)."""
    from metaprop.spec import moderator_number

    if moderator_number(row.get(column)) is not None:
        return ""
    value = str(row.get(column) or "").strip()
    return (f"{row['source_file']}, line {row['source_line']} (study '{row['study']}'), column '{column}', value "
            f"'{value}': a meta-regression moderator (config meta_regressions) must be a number, or blank/'Unknown' "
            "when not known.")


def _comparison(config, trials):
    """The modalities in the configured order; every modality of the tables must be listed, and nothing else. A
    comparison that names none of them (this config run on another dataset) gives way to the tables' order."""
    present = list(dict.fromkeys(trials["modality"]))
    order = config.get("comparison")
    if not order or not set(order) & set(present):
        return present
    unlisted = [m for m in present if m not in order]
    if unlisted:
        rows = trials[trials["modality"] == unlisted[0]].iloc[0]
        raise InputError(
            f"{rows['source_file']}, line {rows['source_line']} (study '{rows['study']}'), column 'modality', value "
            f"'{unlisted[0]}': not one of the modalities of config 'comparison' ({', '.join(order)}); add "
            f"{', '.join(repr(m) for m in unlisted)} to comparison, in the order the contrasts should read.")
    absent = [m for m in order if m not in present]
    if absent:
        raise InputError(f"config: comparison names {', '.join(repr(m) for m in absent)}, which no trial table row "
                         f"has as its modality (modalities in the tables: {', '.join(present)}).")
    return list(order)


def checked_inputs(config, table_paths, store=".snakemake/metaprop"):
    """check_inputs, or its kept verdict when the tables, config and checking code are unchanged."""
    # the bytes of each table are read once here: their SHA-256 names the verdict and goes with the checked rows
    read = {path: Path(path).read_bytes() for path in [*table_paths, *_CODE]}
    digest = hashlib.sha256(json.dumps([config, list(table_paths)], default=str).encode())
    for data in read.values():
        digest.update(data)
    kept = Path(store) / f"inputs-{digest.hexdigest()}.json"
    # the checked rows depend on the tables, the outcomes' columns and the code only: another method or level in
    # config keeps their file, so the jobs that read it do not run again
    rows_digest = hashlib.sha256(json.dumps([config.get("outcomes"), list(table_paths)], default=str).encode())
    for data in read.values():
        rows_digest.update(data)
    rows = Path(store) / f"trials-{rows_digest.hexdigest()}.json"
    try:
        if rows.is_file():
            return json.loads(kept.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none kept yet, or unreadable: check again
        pass
    found, trials = check_inputs(config, table_paths)
    # check_inputs read the tables again: the rows kept must be those of the bytes hashed above
    for path in table_paths:
        if Path(path).read_bytes() != read[path]:
            raise InputError(f"{path} changed while it was being checked; nothing was run. Run snakemake again "
                             "when the table is saved.")
    sources = {path: hashlib.sha256(read[path]).hexdigest() for path in table_paths}
    # the checked rows, which the jobs read instead of checking the tables again, with the SHA-256 of the bytes
    # they come from (the extract job records them; the report and archive jobs compare them with the tables)
    found["trials_file"], found["sources"] = str(rows), sources
    kept.parent.mkdir(parents=True, exist_ok=True)
    for old in [*kept.parent.glob("inputs-*.json"), *kept.parent.glob("trials-*.json")]:
        old.unlink()
    split = {**trials.to_dict("split"), "sources": sources}
    for path, text in ((rows, json.dumps(split, ensure_ascii=False)), (kept, json.dumps(found))):
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    return found


def read_checked_trials(path):
    """The checked rows of the trial tables that checked_inputs kept (text cells, source_line a number)."""
    import pandas as pd

    split = json.loads(Path(path).read_text(encoding="utf-8"))
    return pd.DataFrame(split["data"], columns=split["columns"])


def read_checked_sources(path):
    """{table path: SHA-256} of the bytes the checked rows that checked_inputs kept were read from."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["sources"]
