# The primary analysis under every overlap rule beside the configured one (the prior sensitivity of method bayes is
# written by the pool job, which has the posteriors).
rule sensitivity_analyses:
    input:
        checked=CHECKED_TRIALS,
        studies="results/tables/studies.tsv",
        lib=library("sensitivity_analyses"),
    output:
        overlap="results/tables/overlap_sensitivity.tsv",
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
