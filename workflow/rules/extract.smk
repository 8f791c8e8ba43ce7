rule extract:
    input:
        tables=TRIAL_TABLES,
        checked=CHECKED_TRIALS,
        schema="workflow/schemas/trials.schema.yaml",
        lib=library("extract"),
    output:
        studies="results/tables/studies.tsv",
        # the SHA-256 of the table bytes the rows were read from (sha256sum lines), which the report and archive check
        read=INPUTS_READ,
    params:
        outcomes=OUTCOMES,
        ci_method=config["ci_method"],
        overlap_rule=config["overlap_rule"],
        level=config["level"],
        carry=CARRY,
        # source files by their names in the archive (tables from outside the project under inputs/)
        source_names=lambda w: INPUT_NAMES,
    log:
        "results/logs/extract.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/extract.py"
