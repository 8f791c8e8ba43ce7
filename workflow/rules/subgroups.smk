# Moderator analyses in one job: the primary outcome regrouped by each moderator column (config
# subgroup_analyses), and modality fitted together with moderators for every outcome (config adjusted_comparisons).
rule moderator_analyses:
    input:
        studies="results/tables/studies.tsv",
        lib=library("moderator_analyses"),
    output:
        subgroups=SUBGROUP_OUTPUTS,
        adjusted="results/tables/adjusted_comparisons.tsv",
    params:
        tables=SUBGROUP_TABLES,
        where=ANALYSES,
        across=ACROSS,
        outcome=PRIMARY,
        outcomes=OUTCOME_IDS,
        comparison=COMPARISON,
        methods=[m for m in config["methods"] if m != "bayes"],  # bayes: modalities only (see README)
        sets=ADJUSTED,
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/moderator_analyses.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/moderator_analyses.py"
