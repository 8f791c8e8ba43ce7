# Every pooled analysis of the kept trials, in one job: the cumulative steps and leave-one-out fits reuse the
# pooled fits (each fit computed once), and a job's start costs more than most of them. Its outcomes are
# independent: two threads work on them side by side (one where Snakemake is given one core).
rule pool:
    input:
        studies="results/tables/studies.tsv",
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
    params:
        outcomes=OUTCOME_IDS,
        primary_method=config["primary_method"],
        comparison=COMPARISON,
        methods=config["methods"],
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
        benchmarks=BENCHMARKS,
    threads: 2
    log:
        "results/logs/pool.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool.py"
