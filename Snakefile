# Meta-analysis of single-arm trials of CD19 CAR T cells and blinatumomab (see README.md).
from snakemake.utils import min_version

min_version("9.0")


# Config files are read strictly (syntax errors with file and line, duplicate keys, aliases) before Snakemake
# merges them; common.smk then validates the merged config and the trial tables.
include: "workflow/rules/precheck.smk"


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/archive.smk"


rule all:
    input:
        TABLE_OUTPUTS,
        FIGURE_OUTPUTS,
        REPORT,
        "results/report.md",
        ARCHIVE,
    default_target: True


# results/ keeps only this configuration's outputs: what an earlier configuration left is moved aside; the marks of
# an earlier failed run go once this run's report and archive are in place.
onsuccess:
    stop_requeue_timers()
    clear_superseded()
    move_stale_results(workflow, rules.all.input)
    # the job log above runs to some 200 lines: the last thing said is where the answer is
    if Path(REPORT).is_file() and Path(ARCHIVE).is_file():
        print(f"Report: {REPORT} (summary first); archive: {ARCHIVE}")


# While jobs run, and after a run killed outright, results/INCOMPLETE.txt says results/ may be a mix.
onstart:
    mark_in_progress()


# A run that stops with an error publishes no report or archive: those in results/ are moved to results/superseded/,
# marked, and results/INCOMPLETE.txt says so (README, "When a run fails").
onerror:
    stop_requeue_timers()
    supersede_published(log=log)
