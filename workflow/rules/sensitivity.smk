# Sensitivity and moderator analyses in one job: the primary outcome under every overlap rule beside the configured
# one, regrouped by each moderator column (config subgroup_analyses), and modality fitted together with moderators
# for every outcome (config adjusted_comparisons), and the meta-regressions on numeric moderators (config
# meta_regressions) with their bubble plots' data. (The prior sensitivity of method bayes is written by the pool job,
# which has the posteriors.)
rule sensitivity_analyses:
    input:
        checked=CHECKED_TRIALS,
        studies="results/tables/studies.tsv",
        lib=library("sensitivity_analyses"),
    output:
        overlap="results/tables/overlap_sensitivity.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        adjusted="results/tables/adjusted_comparisons.tsv",
        metareg="results/tables/meta_regressions.tsv",
        bubble="results/tables/bubble.tsv",
    params:
        primary=OUTCOMES[0],
        outcomes=OUTCOME_IDS,
        comparison=COMPARISON,
        method=config["primary_method"],
        rules=["largest", "latest", "earliest", "none"],
        tables=SUBGROUP_TABLES,
        where=ANALYSES,
        across=ACROSS,
        methods=[m for m in config["methods"] if m != "bayes"],  # bayes: modalities only (docs/methods.md)
        sets=ADJUSTED,
        metaregs=METAREGS,
        bubble_method=BUBBLE_METHOD,
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
    log:
        "results/logs/sensitivity_analyses.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/sensitivity_analyses.py"
