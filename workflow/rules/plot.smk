# Figures of one kind are drawn in one job: a job's start (Python, numpy, pandas, matplotlib) costs more than
# drawing a figure.
rule forest_plots:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        weights="results/tables/weights.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        lib=library("plot"),
    output:
        other=other_files(FORESTS),
        png=report(files_of(FORESTS, "png"), caption="../report/forest.rst", category="Forest plots"),
    params:
        forests=FORESTS,
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
