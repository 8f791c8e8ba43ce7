# Everything a reader needs to check or rerun the analysis: results, inputs, config and code.
WORKFLOW_FILES = sorted(
    str(p.relative_to(PROJECT))
    for pattern in ("workflow/**/*.smk", "workflow/**/*.py", "workflow/**/*.yaml", "workflow/**/*.rst", "envs/*.yaml")
    for p in PROJECT.glob(pattern)
    if "__pycache__" not in p.parts
) + [p for p in ("Snakefile", "requirements.txt", "README.md") if (PROJECT / p).is_file()]


rule archive:
    input:
        results=[
            "results/tables/studies.tsv",
            "results/tables/pooled.tsv",
            "results/tables/subgroup_tests.tsv",
            "results/tables/leave_one_out.tsv",
            "results/tables/methods_comparison.tsv",
            "results/tables/overlap_sensitivity.tsv",
            "results/tables/adjusted_comparisons.tsv",
            *expand("results/figures/forest_{outcome}.{ext}", outcome=config["outcomes"], ext=["pdf", "svg", "png"]),
            *SUBGROUP_OUTPUTS,
            *BAYES_OUTPUTS,
            *REVIEW_OUTPUTS,
            "results/report.html",
            "results/report.md",
        ],
        sources=sorted(set(TRIAL_TABLES + CONFIG_FILES + WORKFLOW_FILES + ["workflow/scripts/reproduce_with_metafor.R"])),
        lib=library("archiving", "reporting"),
    output:
        archive=ARCHIVE,
        manifest="results/archive/MANIFEST.sha256",
    log:
        "results/logs/archive.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/archive.py"
