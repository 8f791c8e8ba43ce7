# The primary analysis under every overlap rule, beside the configured one.
rule overlap_sensitivity:
    input:
        tables=TRIAL_TABLES,
        lib=library("analysis", "extraction", "tables", "pooling", "glmm", "proportions", "bayes"),
    output:
        "results/tables/overlap_sensitivity.tsv",
    params:
        outcome=config["outcomes"][0],
        method=config["primary_method"],
        rules=["largest", "latest", "earliest", "none"],
        ci_method=config["ci_method"],
        level=config["level"],
        nagq=config["glmm_nagq"],
        bayes=config["bayes"],
    log:
        "results/logs/overlap_sensitivity.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/overlap_sensitivity.py"


# The Bayesian posteriors of the primary outcome under several priors of the between-trial SD.
rule prior_sensitivity:
    input:
        studies="results/tables/studies.tsv",
        lib=library("analysis", "pooling", "glmm", "proportions", "bayes"),
    output:
        "results/tables/prior_sensitivity.tsv",
    params:
        outcome=config["outcomes"][0],
        bayes=config["bayes"],
        level=config["level"],
    log:
        "results/logs/prior_sensitivity.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/prior_sensitivity.py"
