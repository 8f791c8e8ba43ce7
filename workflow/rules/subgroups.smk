# Moderator analyses of the primary outcome (config subgroup_analyses), one job per grouping column.
rule subgroup_analysis:
    input:
        studies="results/tables/studies.tsv",
        lib=library("analysis", "pooling", "glmm", "proportions", "bayes"),
    output:
        studies="results/tables/subgroups/{by}/studies.tsv",
        pooled="results/tables/subgroups/{by}/pooled.tsv",
        tests="results/tables/subgroups/{by}/subgroup_tests.tsv",
    params:
        where=lambda w: ANALYSES[w.by],
        outcome=config["outcomes"][0],
        methods=[m for m in config["methods"] if m != "bayes"],  # bayes: modalities only (see README)
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/subgroups_{by}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/subgroups.py"
