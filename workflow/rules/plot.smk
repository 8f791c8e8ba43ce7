rule forest_plot:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        lib=library("plotting", "analysis", "proportions"),
    output:
        pdf="results/figures/forest_{outcome}.pdf",
        svg="results/figures/forest_{outcome}.svg",
        png=report("results/figures/forest_{outcome}.png", caption="../report/forest.rst", category="Forest plots"),
    params:
        method=config["primary_method"],
    log:
        "results/logs/forest_{outcome}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot.py"
