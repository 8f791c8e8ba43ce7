# Sensitivity analyses in one job: the primary analysis under every overlap rule beside the configured one, and
# (method bayes) the posteriors of the primary outcome under several priors of the between-trial SD.
rule sensitivity_analyses:
    input:
        checked=CHECKED_TRIALS,
        studies="results/tables/studies.tsv",
        lib=library("analysis", "inputs"),
    output:
        overlap="results/tables/overlap_sensitivity.tsv",
        prior=BAYES_TABLES,
    params:
        outcome=OUTCOMES[0],
        comparison=COMPARISON,
        method=config["primary_method"],
        rules=["largest", "latest", "earliest", "none"],
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
    log:
        "results/logs/sensitivity_analyses.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/sensitivity_analyses.py"
