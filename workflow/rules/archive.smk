# The archive to attach to a manuscript: results, inputs, config and code, as a Workflow Run RO-Crate.
rule archive:
    input:
        results=[
            *TABLE_OUTPUTS,
            *FIGURE_OUTPUTS,
            "results/report.html",
            "results/report.md",
            PREVIOUS_STUDIES,
            PREVIOUS_POOLED,
            INPUTS_READ,
        ],
        read=INPUTS_READ,
        tables=TRIAL_TABLES,
        configs=CONFIG_FILES,
        code=WORKFLOW_FILES + ["workflow/scripts/reproduce_with_metafor.R"],
        lib=library("archive"),
    output:
        archive=ARCHIVE,
        manifest="results/archive/MANIFEST.sha256",
    params:
        names=INPUT_NAMES,
        configs={path: text.decode("utf-8") for path, text in ARCHIVED_CONFIGS.items()},
        command=RERUN_COMMAND,
        license=config.get("license"),
        question=QUESTION,
    log:
        "results/logs/archive.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/archive.py"
