# Validation before any job runs: a bad config or trial table stops here, leaving earlier results untouched.
# (precheck.smk, included first, has put the library on sys.path and read the config files strictly.)
from snakemake.utils import validate

from metaprop.configcheck import ConfigError, check_config_values  # noqa: E402
from metaprop.inputs import InputError, checked_inputs, module_files  # noqa: E402
from metaprop.names import column_title  # noqa: E402
from metaprop.stale import move_stale_results  # noqa: E402, F401 (the Snakefile's onsuccess)

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
    CHECKED = checked_inputs(config, TRIAL_TABLES)
except InputError as err:
    raise WorkflowError(str(err)) from None
# the outcomes the tables have columns for; the report's configuration shows what was analysed
config["outcomes"] = CHECKED["outcomes"]
ANALYSES, SKIPPED_ANALYSES, ACROSS = CHECKED["analyses"], CHECKED["skipped"], CHECKED["across"]
ADJUSTED = [list(mods) for mods in config["adjusted_comparisons"]]
CARRY = CHECKED["carry"]
FORMATS = ("pdf", "svg", "png")
PRIMARY = config["outcomes"][0]
# Method bayes: its posterior figures and prior sensitivity, only when asked for.
BAYES = "bayes" in config["methods"]


def figure_files(name):
    """A figure's files by format: {"pdf": "results/figures/<name>.pdf", ...}."""
    return {ext: f"results/figures/{name}.{ext}" for ext in FORMATS}


def files_of(figures, ext):
    """The files of one format of figures {name: {"files": figure_files(name), ...}}."""
    return [figure["files"][ext] for figure in figures.values()]


def by_outcome(kind):
    """A figure of `kind` per outcome: {"<kind>_<outcome>": {"kind": kind, "outcome": outcome, "files": ...}}."""
    return {f"{kind}_{o}": {"kind": kind, "outcome": o, "files": figure_files(f"{kind}_{o}")} for o in config["outcomes"]}


# The moderator analyses' tables by grouping column: {by: {"studies"|"pooled"|"tests": path}}.
SUBGROUP_TABLES = {
    by: {key: f"results/tables/subgroups/{by}/{name}.tsv" for key, name in
         (("studies", "studies"), ("pooled", "pooled"), ("tests", "subgroup_tests"))}
    for by in ANALYSES
}
# Forest plots: every outcome by modality, and the primary outcome by each moderator.
FORESTS = {
    **{name: {**figure, "by": None, "label": "Modality"} for name, figure in by_outcome("forest").items()},
    **{f"forest_{PRIMARY}_by_{by}": {"outcome": PRIMARY, "by": by, "label": column_title(by),
                                     "files": figure_files(f"forest_{PRIMARY}_by_{by}")} for by in ANALYSES},
}
POSTERIORS = by_outcome("posterior") if BAYES else {}
CUMULATIVES, FUNNELS, FLOW = by_outcome("cumulative"), by_outcome("funnel"), {"flow": {"kind": "flow", "files": figure_files("flow")}}
REVIEW_FIGURES = {**CUMULATIVES, **FUNNELS, **FLOW}

SUBGROUP_OUTPUTS = [path for tables in SUBGROUP_TABLES.values() for path in tables.values()]
BAYES_TABLES = ["results/tables/prior_sensitivity.tsv"] if BAYES else []
FIGURE_OUTPUTS = [path for figures in (FORESTS, POSTERIORS, REVIEW_FIGURES) for figure in figures.values()
                  for path in figure["files"].values()]
TABLE_OUTPUTS = [
    f"results/tables/{name}.tsv" for name in ("studies", "pooled", "subgroup_tests", "leave_one_out",
                                              "methods_comparison", "overlap_sensitivity", "adjusted_comparisons",
                                              "cumulative", "small_study_effects")
] + BAYES_TABLES + SUBGROUP_OUTPUTS

CONFIG_FILES = ["config.yaml", *(str(p) for p in workflow.overwrite_configfiles)]
ARCHIVE = "results/archive/meta-analysis.tar.gz"


def library(*modules):
    """Library modules a job imports, with the modules they import in turn, as inputs (so editing one reruns the
    jobs that use it; every job reads or writes tables, which imports text)."""
    return [str(path.relative_to(PROJECT)) for path in module_files("entry", "tables", *modules)]
