"""The checks of the trial tables against the config that run while Snakemake parses the workflow, before any job.

Their verdict depends only on the tables' bytes, the config and the checking code, so it is kept under
.snakemake/: an unchanged rerun reads it back instead of importing pandas to check again.
"""

import hashlib
import json
import os
import re
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent


def module_files(*modules):
    """The source files of library modules and of every library module they import, in turn (sorted paths)."""
    found, todo = {}, ["__init__", *modules]
    while todo:
        name = todo.pop()
        if name not in found:
            found[name] = LIBRARY / f"{name}.py"
            source = found[name].read_text(encoding="utf-8")
            todo += re.findall(r"^ *from \.(\w+) import", source, re.MULTILINE)
            todo += re.findall(r"^ *from \. import (\w+)", source, re.MULTILINE)
    return sorted(found.values())


# The code a verdict depends on: a change to any of these checks the tables again.
_CODE = [*module_files("inputs", "extraction", "tables"), LIBRARY.parents[1] / "schemas" / "trials.schema.yaml"]


class InputError(ValueError):
    """A trial table or config value the analysis cannot run with; the message says which and why."""


def check_inputs(config, table_paths):
    """Read and check the trial tables; returns what the rules are built from.

    {"outcomes": the configured outcomes the tables have columns for, "analyses": {by: where} of the moderator
    analyses the tables can run, "across": {by: across_modalities}, "skipped": the analyses they cannot run,
    "carry": the columns studies.tsv carries, the moderator columns and the year}. Raises InputError."""
    # imported here: a rerun with a kept verdict never needs pandas
    from .extraction import available_outcomes, studies_table, unusable_subgroups
    from .tables import TrialTableError, label_problems, read_trials

    try:
        trials = read_trials(table_paths)
    except TrialTableError as err:
        raise InputError(f"Trial table problem(s); nothing was run:\n{err}") from None
    # Outcomes the tables have no columns for are dropped, so a table with only study, modality, n and
    # cr_events runs as it is; the report's configuration shows what was analysed.
    outcomes = available_outcomes(trials, config["outcomes"])
    if not outcomes:
        raise InputError("config: none of the outcomes has its columns in the trial tables.")
    # Every subgroup of the primary outcome needs a usable trial, or its comparison means nothing.
    try:
        primary_studies = studies_table(trials, outcomes[:1], None, overlap_rule=config["overlap_rule"])
    except ValueError as err:  # an overlap rule that needs a year the tables lack
        raise InputError(f"config: {err}.") from None
    empty = unusable_subgroups(primary_studies, outcomes[0])
    if empty:
        raise InputError("Trial table problem(s); nothing was run:\n" + "\n".join(empty))

    # Moderator analyses whose columns the tables have (a minimal table runs without them; the report lists
    # the ones skipped, so a misspelt column does not pass unnoticed).
    analyses, skipped, across = {}, [], {}
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
    # Moderators fitted together with modality (config adjusted_comparisons); a set naming a column the tables
    # lack is kept, and its rows say so.
    moderators = sorted(
        ({c for by, where in analyses.items() for c in [by, *where]}
         | {c for mods in config["adjusted_comparisons"] for c in mods if c in trials.columns}) - {"modality"}
    )
    # moderator values name subgroups too: spellings that differ only by case, dashes or look-alikes are refused
    problems = label_problems(trials, moderators)
    if problems:
        raise InputError("Trial table problem(s); nothing was run:\n" + "\n".join(problems))
    # studies.tsv also carries the year, which orders the cumulative meta-analysis
    carry = moderators + (["year"] if "year" in trials.columns and "year" not in moderators else [])
    return {"outcomes": outcomes, "analyses": analyses, "across": across, "skipped": skipped, "carry": carry}


def checked_inputs(config, table_paths, store=".snakemake/metaprop"):
    """check_inputs, or its kept verdict when the tables, config and checking code are unchanged."""
    digest = hashlib.sha256(json.dumps([config, list(table_paths)], default=str).encode())
    for path in [*table_paths, *_CODE]:
        digest.update(Path(path).read_bytes())
    kept = Path(store) / f"inputs-{digest.hexdigest()}.json"
    try:
        return json.loads(kept.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none kept yet, or unreadable: check again
        pass
    found = check_inputs(config, table_paths)
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        for old in kept.parent.glob("inputs-*.json"):
            old.unlink()
        partial = kept.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(found), encoding="utf-8")
        os.replace(partial, kept)
    except OSError:  # a read-only project still runs, it only checks again next time
        pass
    return found
