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
        across=lambda w: ACROSS[w.by],
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


# Modality fitted together with moderators (config adjusted_comparisons), every outcome.
rule adjusted_comparisons:
    input:
        studies="results/tables/studies.tsv",
        lib=library("adjusted", "pooling", "glmm", "proportions"),
    output:
        "results/tables/adjusted_comparisons.tsv",
    params:
        outcomes=config["outcomes"],
        sets=ADJUSTED,
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/adjusted_comparisons.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/adjusted_comparisons.py"
