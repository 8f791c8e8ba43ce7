# The primary analysis under every overlap rule, beside the configured one.
rule overlap_sensitivity:
    input:
        tables=TRIAL_TABLES,
        lib=library("analysis", "extraction", "tables", "pooling", "glmm", "proportions"),
    output:
        "results/tables/overlap_sensitivity.tsv",
    params:
        outcome=config["outcomes"][0],
        method=config["primary_method"],
        rules=["largest", "latest", "earliest", "none"],
        ci_method=config["ci_method"],
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/overlap_sensitivity.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/overlap_sensitivity.py"
