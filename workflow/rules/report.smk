# The report reads every table and figure it shows, each named here (figures by name, not by position).
rule report:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        leave_one_out="results/tables/leave_one_out.tsv",
        methods="results/tables/methods_comparison.tsv",
        overlap="results/tables/overlap_sensitivity.tsv",
        cumulative="results/tables/cumulative.tsv",
        small_study="results/tables/small_study_effects.tsv",
        prior_sensitivity=BAYES_TABLES,
        adjusted="results/tables/adjusted_comparisons.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        figures=files_of(ALL_FIGURES, "png"),
        metareg="results/tables/meta_regressions.tsv",
        influence="results/tables/influence.tsv",
        benchmarks="results/tables/benchmarks.tsv",
        tables=TRIAL_TABLES,
        read=INPUTS_READ,
        configs=CONFIG_FILES,
        lib=library("report"),
    output:
        html="results/report.html",
        md="results/report.md",
        previous=PREVIOUS_STUDIES,
        previous_pooled=PREVIOUS_POOLED,
        certainty="results/tables/certainty.tsv",
    params:
        # inputs and trial paths by their names in the archive, so that a rerun from it writes the same report
        config=lambda w: RUN_CONFIG,
        inputs=lambda w: INPUT_DIGESTS,
        comparison=COMPARISON,
        comparison_configured=CHECKED["comparison_configured"],
        skipped_outcomes=CHECKED["skipped_outcomes"],
        input_warnings=INPUT_WARNINGS,
        analyses=ANALYSES,
        subgroup_tables=SUBGROUP_TABLES,
        skipped_analyses=SKIPPED_ANALYSES,
        figures={name: figure["files"]["png"] for name, figure in ALL_FIGURES.items()},
        previous_archive=ARCHIVE,
        baujat_method=BAUJAT_METHOD,
        bubbles={name: {key: b[key] for key in ("outcome", "moderator", "across")} for name, b in BUBBLES.items()},
    log:
        "results/logs/report.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/report.py"
