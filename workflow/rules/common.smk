# Validation before any job runs: a bad config or trial table stops here, leaving earlier results untouched.
# (precheck.smk, included first, has put the library on sys.path and read the config files strictly.)
from snakemake.utils import validate

from metaprop.archive.crate import canonical_config, input_names, rerun_command  # noqa: E402
from metaprop.io.configcheck import (  # noqa: E402
    ConfigError,
    check_bayes_settings,
    check_config_values,
    check_meta_regressions,
    check_outcome_entries,
)
from metaprop.io.inputs import InputError, checked_inputs, script_files  # noqa: E402
from metaprop.io.provenance import sha256_bytes  # noqa: E402
from metaprop.spec import OVERLAP_RULES, column_title, describe_prior, method, settings_of  # noqa: E402
from metaprop.archive.stale import move_stale_results  # noqa: E402, F401 (the Snakefile's onsuccess)
from metaprop.archive.supersede import (  # noqa: E402, F401 (the Snakefile's onstart, onsuccess, onerror)
    clear_superseded,
    mark_in_progress,
    stop_requeue_timers,
    supersede_published,
)

# sizes and finite numbers first: a value expanding to millions, or NaN, must not reach the schema validator;
# outcomes in the form before they were declared in config get the new form to write
try:
    check_config_values(config)
    check_outcome_entries(config)
    check_meta_regressions(config)
except ConfigError as err:
    raise WorkflowError(f"Config problem; nothing was run:\n{err}") from None
validate(config, "../schemas/config.schema.yaml")
try:  # numbers the schema lets through that the analysis cannot use
    check_bayes_settings(config)
except ConfigError as err:
    raise WorkflowError(f"Config problem; nothing was run:\n{err}") from None

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
    if any(not c.isprintable() for c in str(path)):  # MANIFEST.sha256 and the report list one file per line
        raise WorkflowError(f"config: {key} path {path!r} contains a line break or another control character; "
                            "rename the file.")
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
# columns used by nothing, percentages typed as fractions: said before any job, and in the report
INPUT_WARNINGS = CHECKED.get("warnings", [])
for warning in INPUT_WARNINGS:
    print(f"Warning: {warning}", file=sys.stderr)
# The question as the tables can answer it: the outcomes they have columns for (primary first), the modalities in
# the order every contrast reads; the report's configuration shows what was analysed and what was left out.
config["outcomes"] = CHECKED["outcomes"]
OUTCOMES = CHECKED["outcomes"]
OUTCOME_IDS = [o["id"] for o in OUTCOMES]
PRIMARY = OUTCOME_IDS[0]
COMPARISON = CHECKED["comparison"]
QUESTION = {**{key: config.get(key, "") for key in ("title", "question", "source")},
            "keywords": [o["label"] for o in OUTCOMES] + COMPARISON}
ANALYSES, SKIPPED_ANALYSES, ACROSS = CHECKED["analyses"], CHECKED["skipped"], CHECKED["across"]
ADJUSTED = CHECKED["adjusted"]
# Meta-regressions on numeric moderators ([{"moderators": [...], "across": bool}]); a bubble plot per outcome and
# one-moderator entry (bubble_<outcome>_<moderator>, _across for an entry across the modalities), drawing the
# logit-REML fit (with Knapp-Hartung when the primary method is a -hksj one).
METAREGS = CHECKED["metaregs"]
CARRY = CHECKED["carry"]
# the checked rows of the trial tables (inputs.checked_inputs): jobs read them instead of checking the tables again
CHECKED_TRIALS = CHECKED["trials_file"]
# the report embeds PNG: it is written whatever figure_formats says
FORMATS = tuple(dict.fromkeys([*config["figure_formats"], "png"]))
# Method bayes: its posterior figures and prior sensitivity, only when asked for.
BAYES = "bayes" in config["methods"]
PRIOR = settings_of(config["bayes"])
BAYES_PRIOR = describe_prior(PRIOR["mu_sd"], PRIOR["tau_prior"], PRIOR["tau_scale"])


def figure_files(name):
    """A figure's files by format: {"pdf": "results/figures/<name>.pdf", ...}."""
    return {ext: f"results/figures/{name}.{ext}" for ext in FORMATS}


def files_of(figures, ext):
    """The files of one format of figures {name: {"files": figure_files(name), ...}}."""
    return [figure["files"][ext] for figure in figures.values()]


def other_files(figures):
    """The files of figures in every format but PNG (named apart: the PNGs go to Snakemake's --report)."""
    return [path for ext in FORMATS if ext != "png" for path in files_of(figures, ext)]


def by_outcome(kind):
    """A figure of `kind` per outcome: {"<kind>_<outcome>": {"kind": kind, "outcome": outcome, "files": ...}}."""
    return {f"{kind}_{o}": {"kind": kind, "outcome": o, "files": figure_files(f"{kind}_{o}")} for o in OUTCOME_IDS}


# The moderator analyses' tables by grouping column: {by: {"studies"|"pooled"|"tests": path}}.
SUBGROUP_TABLES = {
    by: {key: f"results/tables/subgroups/{by}/{name}.tsv" for key, name in
         (("studies", "studies"), ("pooled", "pooled"), ("tests", "subgroup_tests"), ("weights", "weights"))}
    for by in ANALYSES
}
# Forest plots: every outcome by modality, and the primary outcome by each moderator.
FORESTS = {
    **{name: {**figure, "by": None, "label": "Modality"} for name, figure in by_outcome("forest").items()},
    **{f"forest_{PRIMARY}_by_{by}": {"kind": "forest", "outcome": PRIMARY, "by": by, "label": column_title(by),
                                     "files": figure_files(f"forest_{PRIMARY}_by_{by}")} for by in ANALYSES},
}
POSTERIORS = by_outcome("posterior") if BAYES else {}
CUMULATIVES, FUNNELS, FLOW = by_outcome("cumulative"), by_outcome("funnel"), {"flow": {"kind": "flow", "files": figure_files("flow")}}
REVIEW_FIGURES = {**CUMULATIVES, **FUNNELS, **FLOW}
# Influence diagnostics (influence.tsv) of the logit inverse-variance random-effects methods and the GLMM; the Baujat
# plots draw logit-REML's, or the first such method of `methods` (none: the figure says so).
LOGIT_RANDOM = [m for m in config["methods"] if method(m).logit_random_effects]
BAUJAT_METHOD = "logit-reml" if "logit-reml" in LOGIT_RANDOM else (LOGIT_RANDOM[0] if LOGIT_RANDOM else "")
BAUJATS = by_outcome("baujat")
# Benchmark rates of the outcomes analysed ({outcome: {rate, source}}): benchmarks.tsv and the forest plots' line.
# A benchmark of an outcome not analysed is left out, as the outcome is (a --configfile declaring other outcomes
# inherits config.yaml's benchmarks).
BENCHMARKS = {o: b for o, b in config.get("benchmarks", {}).items() if o in OUTCOME_IDS}
config["benchmarks"] = BENCHMARKS
# A bubble plot per outcome and one-moderator entry of METAREGS.
BUBBLES = {
    name: {"kind": "bubble", "outcome": o, "moderator": e["moderators"][0], "across": e["across"],
           "files": figure_files(name)}
    for o in OUTCOME_IDS for e in METAREGS if len(e["moderators"]) == 1
    for name in [f"bubble_{o}_{e['moderators'][0]}{'_across' if e['across'] else ''}"]
}
BUBBLE_METHOD = "logit-reml-hksj" if config["primary_method"].endswith("-hksj") else "logit-reml"

SUBGROUP_OUTPUTS = [path for tables in SUBGROUP_TABLES.values() for path in tables.values()]
BAYES_TABLES = ["results/tables/prior_sensitivity.tsv"] if BAYES else []
BAYES_CURVES = ["results/tables/posterior_curves.tsv"] if BAYES else []
# every figure by name, in the order the figures job draws them (the longest first, for its threads)
ALL_FIGURES = {**FORESTS, **POSTERIORS, **REVIEW_FIGURES, **BAUJATS, **BUBBLES}
FIGURE_OUTPUTS = [path for figure in ALL_FIGURES.values() for path in figure["files"].values()]
TABLE_OUTPUTS = [
    f"results/tables/{name}.tsv" for name in ("studies", "pooled", "subgroup_tests", "leave_one_out",
                                              "methods_comparison", "overlap_sensitivity", "adjusted_comparisons",
                                              "cumulative", "small_study_effects", "weights", "funnel", "certainty",
                                              "influence", "benchmarks", "meta_regressions", "bubble")
] + BAYES_TABLES + BAYES_CURVES + SUBGROUP_OUTPUTS

# what the extraction read: the SHA-256 of each trial table, by its name in the archive
INPUTS_READ = "results/tables/inputs.sha256"
CONFIG_FILES = ["config.yaml", *(str(p) for p in workflow.overwrite_configfiles)]
REPORT = "results/report.html"
ARCHIVE = "results/archive/meta-analysis.tar.gz"
PREVIOUS_STUDIES = "results/archive/previous_studies.tsv"
PREVIOUS_POOLED = "results/archive/previous_pooled.tsv"

# Everything a reader needs to check or rerun the analysis: results, inputs, config and code.
WORKFLOW_FILES = sorted(
    str(p.relative_to(PROJECT))
    for pattern in ("workflow/**/*.smk", "workflow/**/*.py", "workflow/**/*.yaml", "workflow/**/*.rst", "envs/*.yaml",
                    "profiles/**/*.yaml", "docs/*.md")
    for p in PROJECT.glob(pattern)
    if "__pycache__" not in p.parts
) + [p for p in ("Snakefile", "requirements.txt", "README.md", "LICENSE") if (PROJECT / p).is_file()]
# Inputs by the relative names they have in the archive (tables and configs from outside the project under
# inputs/), configs as archived (pointing at the archived tables), and the command that reruns the run from
# the unpacked archive. The report names inputs the same way, so that a rerun there gives the same bytes.
try:
    INPUT_NAMES = input_names(TRIAL_TABLES + CONFIG_FILES, PROJECT)
except ValueError as err:
    raise WorkflowError(f"config: {err}.") from None
ARCHIVED_CONFIGS = {
    path: canonical_config(Path(path).read_text(encoding="utf-8"), INPUT_NAMES).encode("utf-8") for path in CONFIG_FILES
}
# (the tables' SHA-256 are those of the bytes the checks read, which the extract job records)
INPUT_DIGESTS = sorted(
    {(INPUT_NAMES[p], sha256_bytes(ARCHIVED_CONFIGS[p]) if p in ARCHIVED_CONFIGS else CHECKED["sources"][p])
     for p in TRIAL_TABLES + CONFIG_FILES}
)
# per-outcome certainty settings of outcomes this run does not analyse (a config merged with another) are not used
config["certainty"] = {key: ({o: v for o, v in value.items() if o in OUTCOME_IDS} if key in ("thresholds", "indirectness")
                             else value) for key, value in config["certainty"].items()}
RUN_CONFIG = {**config, "trials": [INPUT_NAMES[t] for t in TRIAL_TABLES]}
RERUN_COMMAND = rerun_command(CONFIG_FILES[1:], dict(workflow.config_settings.config), INPUT_NAMES)


def library(script):
    """The library modules the entry script workflow/scripts/<script>.py imports, directly or not, as inputs (so
    editing one reruns exactly the jobs that use it)."""
    return [str(path.relative_to(PROJECT)) for path in script_files(script)]
