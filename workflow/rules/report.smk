rule report:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        leave_one_out="results/tables/leave_one_out.tsv",
        methods="results/tables/methods_comparison.tsv",
        overlap="results/tables/overlap_sensitivity.tsv",
        figures=expand("results/figures/forest_{outcome}.png", outcome=config["outcomes"]),
        cumulative="results/tables/cumulative.tsv",
        small_study="results/tables/small_study_effects.tsv",
        cumulative_figures=expand("results/figures/cumulative_{outcome}.png", outcome=config["outcomes"]),
        funnel_figures=expand("results/figures/funnel_{outcome}.png", outcome=config["outcomes"]),
        flow="results/figures/flow.png",
        posterior_figures=files_of(POSTERIORS, "png"),
        prior_sensitivity=BAYES_TABLES,
        adjusted="results/tables/adjusted_comparisons.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        tables=TRIAL_TABLES,
        configs=CONFIG_FILES,
        lib=library("reporting", "bayes_report", "archiving"),
    output:
        html="results/report.html",
        md="results/report.md",
        previous="results/archive/previous_studies.tsv",
    params:
        # inputs and trial paths by their names in the archive, so that a rerun from it writes the same report
        config=lambda w: RUN_CONFIG,
        inputs=lambda w: INPUT_DIGESTS,
        analyses=ANALYSES,
        skipped_analyses=SKIPPED_ANALYSES,
        previous_archive=ARCHIVE,
    log:
        "results/logs/report.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/report.py"
