rule pool:
    input:
        studies="results/tables/studies.tsv",
        lib=library("analysis", "pooling", "glmm", "proportions", "bayes"),
    output:
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        leave_one_out="results/tables/leave_one_out.tsv",
        methods="results/tables/methods_comparison.tsv",
    params:
        outcomes=config["outcomes"],
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
