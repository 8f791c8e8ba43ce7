rule forest_plot:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        lib=library("plotting", "analysis", "proportions", "bayes", "pooling", "glmm"),
    output:
        pdf="results/figures/forest_{outcome}.pdf",
        svg="results/figures/forest_{outcome}.svg",
        png=report("results/figures/forest_{outcome}.png", caption="../report/forest.rst", category="Forest plots"),
    params:
        method=config["primary_method"],
        level=config["level"],
        outcome=lambda w: w.outcome,
        subgroup_label="Modality",
    log:
        "results/logs/forest_{outcome}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot.py"


rule forest_plot_by:
    input:
        studies="results/tables/subgroups/{by}/studies.tsv",
        pooled="results/tables/subgroups/{by}/pooled.tsv",
        tests="results/tables/subgroups/{by}/subgroup_tests.tsv",
        lib=library("plotting", "analysis", "proportions", "bayes", "pooling", "glmm"),
    output:
        pdf="results/figures/forest_{outcome}_by_{by}.pdf",
        svg="results/figures/forest_{outcome}_by_{by}.svg",
        png=report("results/figures/forest_{outcome}_by_{by}.png", caption="../report/forest.rst", category="Forest plots"),
    params:
        method=config["primary_method"],
        level=config["level"],
        outcome=lambda w: w.outcome,
        subgroup_label=lambda w: column_title(w.by),
    log:
        "results/logs/forest_{outcome}_by_{by}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot.py"


# Posterior densities of method bayes: each modality's pooled rate and their difference.
rule posterior_plot:
    input:
        studies="results/tables/studies.tsv",
        lib=library("plotting", "posterior_plot", "analysis", "bayes", "pooling", "glmm", "proportions", "extraction"),
    output:
        pdf="results/figures/posterior_{outcome}.pdf",
        svg="results/figures/posterior_{outcome}.svg",
        png=report("results/figures/posterior_{outcome}.png", caption="../report/posterior.rst", category="Posterior"),
    params:
        outcome=lambda w: w.outcome,
        bayes=config["bayes"],
        level=config["level"],
    log:
        "results/logs/posterior_{outcome}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/posterior_plot.py"
