rule pool:
    input:
        studies="results/tables/studies.tsv",
        lib=library("analysis", "posterior_plot"),
    output:
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        leave_one_out="results/tables/leave_one_out.tsv",
        methods="results/tables/methods_comparison.tsv",
        weights="results/tables/weights.tsv",
        posterior=BAYES_CURVES,
        prior=BAYES_TABLES,
    params:
        outcomes=OUTCOME_IDS,
        comparison=COMPARISON,
        methods=config["methods"],
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
    log:
        "results/logs/pool.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool.py"
