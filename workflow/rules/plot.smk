# The figures of the pooled estimates (forest plots and, method bayes, posterior figures) in one job: a job's start
# (Python, numpy, pandas, matplotlib) costs more than drawing a figure; review_plots draws the others alongside, and
# the posteriors are here so that the two jobs take about as long.
rule forest_plots:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        weights="results/tables/weights.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        curves=BAYES_CURVES,
        lib=library("plot"),
    output:
        other=other_files({**FORESTS, **POSTERIORS}),
        png=report(files_of(FORESTS, "png"), caption="../report/forest.rst", category="Forest plots"),
        posterior_png=report(files_of(POSTERIORS, "png"), caption="../report/posterior.rst", category="Posterior"),
    params:
        forests=FORESTS,
        posteriors=POSTERIORS,
        prior=BAYES_PRIOR,
        outcomes=OUTCOMES,
        comparison=COMPARISON,
        subgroup_tables=SUBGROUP_TABLES,
        method=config["primary_method"],
        overall=config["overall"],
        benchmarks=BENCHMARKS,
        level=config["level"],
    log:
        "results/logs/forest_plots.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot.py"
