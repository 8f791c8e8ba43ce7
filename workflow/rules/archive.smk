from metaprop.archiving import canonical_config, input_names, rerun_command, sha256_bytes  # noqa: E402

# Everything a reader needs to check or rerun the analysis: results, inputs, config and code.
WORKFLOW_FILES = sorted(
    str(p.relative_to(PROJECT))
    for pattern in ("workflow/**/*.smk", "workflow/**/*.py", "workflow/**/*.yaml", "workflow/**/*.rst", "envs/*.yaml",
                    "profiles/**/*.yaml")
    for p in PROJECT.glob(pattern)
    if "__pycache__" not in p.parts
) + [p for p in ("Snakefile", "requirements.txt", "README.md") if (PROJECT / p).is_file()]

# Inputs by the relative names they have in the archive (tables and configs from outside the project under
# inputs/), configs as archived (pointing at the archived tables), and the command that reruns the run from
# the unpacked archive. The report names inputs the same way, so that a rerun there gives the same bytes.
try:
    INPUT_NAMES = input_names(TRIAL_TABLES + CONFIG_FILES, PROJECT)
except ValueError as err:
    raise WorkflowError(f"config: {err}.") from None
ARCHIVED_CONFIGS = {
    path: canonical_config(Path(path).read_text(encoding="utf-8"), INPUT_NAMES).encode("utf-8") for path in CONFIG_FILES
}
INPUT_DIGESTS = sorted(
    {(INPUT_NAMES[p], sha256_bytes(ARCHIVED_CONFIGS[p] if p in ARCHIVED_CONFIGS else Path(p).read_bytes()))
     for p in TRIAL_TABLES + CONFIG_FILES}
)
RUN_CONFIG = {**config, "trials": [INPUT_NAMES[t] for t in TRIAL_TABLES]}
RERUN_COMMAND = rerun_command(CONFIG_FILES[1:], dict(workflow.config_settings.config), INPUT_NAMES)


rule archive:
    input:
        results=[
            *TABLE_OUTPUTS,
            *FIGURE_OUTPUTS,
            "results/report.html",
            "results/report.md",
            "results/archive/previous_studies.tsv",
        ],
        tables=TRIAL_TABLES,
        configs=CONFIG_FILES,
        code=WORKFLOW_FILES + ["workflow/scripts/reproduce_with_metafor.R"],
        lib=library("archiving", "reporting"),
    output:
        archive=ARCHIVE,
        manifest="results/archive/MANIFEST.sha256",
    params:
        names=INPUT_NAMES,
        configs={path: text.decode("utf-8") for path, text in ARCHIVED_CONFIGS.items()},
        command=RERUN_COMMAND,
        license=config.get("license"),
    log:
        "results/logs/archive.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/archive.py"
