# Validation before any job runs: a bad config or trial table stops here, leaving earlier results untouched.
# (precheck.smk, included first, has put the library on sys.path and read the config files strictly.)
from snakemake.utils import validate

from metaprop.analysis import column_title  # noqa: E402
from metaprop.configcheck import ConfigError, check_config_values  # noqa: E402
from metaprop.cumulative import cumulative_methods  # noqa: E402
from metaprop.extraction import OUTCOME_LABELS, available_outcomes, studies_table, unusable_subgroups  # noqa: E402
from metaprop.stale import move_stale_results  # noqa: E402, F401 (the Snakefile's onsuccess)
from metaprop.tables import TrialTableError, label_problems, read_trials  # noqa: E402

# sizes and finite numbers first: a value expanding to millions, or NaN, must not reach the schema validator
try:
    check_config_values(config)
except ConfigError as err:
    raise WorkflowError(f"Config problem; nothing was run:\n{err}") from None
validate(config, "../schemas/config.schema.yaml")

if config["primary_method"] not in config["methods"]:
    raise WorkflowError(
        f"config: primary_method '{config['primary_method']}' is not one of methods {config['methods']}."
    )


def project_path(path, key):
    """A path from config: relative ones must stay inside the project; absolute ones are the user's call."""
    try:
        given = Path(path)
        resolved = given if given.is_absolute() else (PROJECT / given).resolve()
        exists, is_dir, is_file = resolved.exists(), resolved.is_dir(), resolved.is_file()
    except (ValueError, OSError) as err:  # a NUL byte, a name too long for the file system
        raise WorkflowError(f"config: {key} path {path!r} cannot be a file name ({err}).") from None
    if not given.is_absolute() and not resolved.is_relative_to(PROJECT):
        raise WorkflowError(f"config: {key} path '{path}' leaves the project directory; give an absolute path.")
    if is_dir:
        raise WorkflowError(f"config: {key} path '{path}' is a directory, not a file (looked at {resolved}).")
    if exists and not is_file:
        raise WorkflowError(f"config: {key} path '{path}' is not a regular file (a device or a pipe: {resolved}).")
    if not is_file:
        raise WorkflowError(f"config: {key} path '{path}' does not exist (looked for {resolved}).")
    return str(given)


TRIAL_TABLES = [project_path(p, "trials") for p in config["trials"]]
try:
    trials = read_trials(TRIAL_TABLES)
except TrialTableError as err:
    raise WorkflowError(f"Trial table problem(s); nothing was run:\n{err}") from None

# Outcomes the tables have no columns for are dropped, so a table with only study, modality, n and
# cr_events runs as it is; the report's configuration shows what was analysed.
config["outcomes"] = available_outcomes(trials, config["outcomes"])
if not config["outcomes"]:
    raise WorkflowError("config: none of the outcomes has its columns in the trial tables.")
# Every subgroup of the primary outcome needs a usable trial, or its comparison means nothing.
try:
    primary_studies = studies_table(trials, config["outcomes"][:1], overlap_rule=config["overlap_rule"])
except ValueError as err:  # an overlap rule that needs a year the tables lack
    raise WorkflowError(f"config: {err}.") from None
empty = unusable_subgroups(primary_studies, config["outcomes"][0])
if empty:
    raise WorkflowError("Trial table problem(s); nothing was run:\n" + "\n".join(empty))

# Moderator analyses whose columns the tables have (a minimal table runs without them; the report lists
# the ones skipped, so a misspelt column does not pass unnoticed).
ANALYSES, SKIPPED_ANALYSES, ACROSS = {}, [], {}
for analysis in config["subgroup_analyses"]:
    columns = [analysis["by"], *analysis.get("where", {})]
    if all(c in trials.columns for c in columns):
        for column, value in analysis.get("where", {}).items():
            if value not in set(trials[column]):
                raise WorkflowError(
                    f"config: subgroup_analyses by '{analysis['by']}': where {column} = '{value}' matches no trial "
                    f"(values in the tables: {', '.join(sorted(set(trials[column])))})."
                )
        ANALYSES[analysis["by"]] = analysis.get("where", {})
        ACROSS[analysis["by"]] = analysis.get("across_modalities", False)
    else:
        SKIPPED_ANALYSES.append(f"{analysis['by']} (no column {', '.join(c for c in columns if c not in trials.columns)})")
# Moderators fitted together with modality (config adjusted_comparisons); a set naming a column the tables
# lack is kept, and its rows say so.
ADJUSTED = [list(mods) for mods in config["adjusted_comparisons"]]
MODERATOR_COLUMNS = sorted(
    ({c for by, where in ANALYSES.items() for c in [by, *where]} | {c for mods in ADJUSTED for c in mods
                                                                    if c in trials.columns}) - {"modality"}
)
# moderator values name subgroups too: spellings that differ only by case, dashes or look-alikes are refused
problems = label_problems(trials, MODERATOR_COLUMNS)
if problems:
    raise WorkflowError("Trial table problem(s); nothing was run:\n" + "\n".join(problems))
# studies.tsv also carries the year, which orders the cumulative meta-analysis
CARRY = MODERATOR_COLUMNS + (["year"] if "year" in trials.columns and "year" not in MODERATOR_COLUMNS else [])
REVIEW_OUTPUTS = [
    "results/tables/cumulative.tsv",
    "results/tables/small_study_effects.tsv",
    *(f"results/figures/{kind}_{o}.{ext}" for kind in ("cumulative", "funnel") for o in config["outcomes"]
      for ext in ("pdf", "svg", "png")),
    *(f"results/figures/flow.{ext}" for ext in ("pdf", "svg", "png")),
]

PRIMARY = config["outcomes"][0]
SUBGROUP_OUTPUTS = [
    *(f"results/tables/subgroups/{by}/{name}.tsv" for by in ANALYSES for name in ("studies", "pooled", "subgroup_tests")),
    *(f"results/figures/forest_{PRIMARY}_by_{by}.{ext}" for by in ANALYSES for ext in ("pdf", "svg", "png")),
]

# Method bayes: its posterior figures and prior sensitivity, only when asked for.
BAYES = "bayes" in config["methods"]
BAYES_FIGURES = [f"results/figures/posterior_{o}.png" for o in config["outcomes"]] if BAYES else []
BAYES_TABLES = ["results/tables/prior_sensitivity.tsv"] if BAYES else []
BAYES_OUTPUTS = BAYES_TABLES + [f"results/figures/posterior_{o}.{ext}" for o in config["outcomes"] for ext in
                                ("pdf", "svg", "png")] if BAYES else []

CONFIG_FILES = ["config.yaml", *(str(p) for p in workflow.overwrite_configfiles)]
ARCHIVE = "results/archive/meta-analysis.tar.gz"


wildcard_constraints:
    outcome="|".join(OUTCOME_LABELS),
    by="[A-Za-z][A-Za-z0-9_]*",


def library(*modules):
    """Library modules a rule imports, as inputs, so that editing one reruns the rule (every rule reads or writes
    tables, and tables imports text)."""
    names = dict.fromkeys(("__init__", "entry", "tables", "text", *modules))
    return [f"workflow/scripts/metaprop/{m}.py" for m in names]
