# Every analysis of the kept trials in one job: the pooled fits with what reuses them (leave-one-out, weights,
# influence, posteriors: each fit computed once), the cumulative and small-study analyses, and the sensitivity
# analyses: the primary outcome under every overlap rule, regrouped by each moderator column (config
# subgroup_analyses), modality fitted together with moderators (config adjusted_comparisons) and the
# meta-regressions on numeric moderators (config meta_regressions). A job's start costs more than most of them; their
# independent parts (per outcome, per moderator) share two threads (one where Snakemake is given one core).
rule pool:
    input:
        studies="results/tables/studies.tsv",
        checked=CHECKED_TRIALS,
        lib=library("pool"),
    output:
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        leave_one_out="results/tables/leave_one_out.tsv",
        methods="results/tables/methods_comparison.tsv",
        weights="results/tables/weights.tsv",
        influence="results/tables/influence.tsv",
        benchmarks="results/tables/benchmarks.tsv",
        posterior=BAYES_CURVES,
        prior=BAYES_TABLES,
        cumulative=report("results/tables/cumulative.tsv", caption="../report/cumulative_table.rst",
                          category="Cumulative meta-analysis"),
        small_study=report("results/tables/small_study_effects.tsv", caption="../report/small_study_table.rst",
                           category="Small-study effects"),
        funnel="results/tables/funnel.tsv",
        overlap="results/tables/overlap_sensitivity.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        adjusted="results/tables/adjusted_comparisons.tsv",
        metareg="results/tables/meta_regressions.tsv",
        bubble="results/tables/bubble.tsv",
    params:
        outcomes=OUTCOME_IDS,
        primary=OUTCOMES[0],
        primary_method=config["primary_method"],
        comparison=COMPARISON,
        methods=config["methods"],
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
        benchmarks=BENCHMARKS,
        rules=list(OVERLAP_RULES),
        tables=SUBGROUP_TABLES,
        where=ANALYSES,
        across=ACROSS,
        sensitivity_methods=[m for m in config["methods"] if m != "bayes"],  # bayes: modalities only (docs/methods.md)
        sets=ADJUSTED,
        metaregs=METAREGS,
        bubble_method=BUBBLE_METHOD,
    threads: 2
    log:
        "results/logs/pool.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool.py"
