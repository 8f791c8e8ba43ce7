# What a reviewer asks for: cumulative meta-analysis by year, small-study effects, the flow diagram.
rule cumulative:
    input:
        studies="results/tables/studies.tsv",
        lib=library("cumulative", "analysis", "pooling", "glmm", "proportions"),
    output:
        report("results/tables/cumulative.tsv", caption="../report/cumulative_table.rst", category="Cumulative meta-analysis"),
    params:
        outcomes=config["outcomes"],
        methods=cumulative_methods(config["primary_method"]),
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/cumulative.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/cumulative.py"


rule cumulative_plot:
    input:
        cumulative="results/tables/cumulative.tsv",
        lib=library("review_plots", "plotting", "small_study", "extraction"),
    output:
        pdf="results/figures/cumulative_{outcome}.pdf",
        svg="results/figures/cumulative_{outcome}.svg",
        png=report("results/figures/cumulative_{outcome}.png", caption="../report/cumulative.rst", category="Cumulative meta-analysis"),
    params:
        method=config["primary_method"],
        level=config["level"],
        outcome=lambda w: w.outcome,
    log:
        "results/logs/cumulative_{outcome}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot_cumulative.py"


rule small_study_effects:
    input:
        studies="results/tables/studies.tsv",
        lib=library("small_study", "analysis", "pooling", "proportions"),
    output:
        report("results/tables/small_study_effects.tsv", caption="../report/small_study_table.rst", category="Small-study effects"),
    params:
        outcomes=config["outcomes"],
    log:
        "results/logs/small_study_effects.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/small_study_effects.py"


rule funnel_plot:
    input:
        studies="results/tables/studies.tsv",
        tests="results/tables/small_study_effects.tsv",
        lib=library("review_plots", "plotting", "small_study", "extraction"),
    output:
        pdf="results/figures/funnel_{outcome}.pdf",
        svg="results/figures/funnel_{outcome}.svg",
        png=report("results/figures/funnel_{outcome}.png", caption="../report/funnel.rst", category="Small-study effects"),
    params:
        level=config["level"],
        outcome=lambda w: w.outcome,
    log:
        "results/logs/funnel_{outcome}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot_funnel.py"


rule flow_diagram:
    input:
        studies="results/tables/studies.tsv",
        lib=library("flow", "review_plots", "plotting", "small_study", "extraction"),
    output:
        pdf="results/figures/flow.pdf",
        svg="results/figures/flow.svg",
        png=report("results/figures/flow.png", caption="../report/flow.rst", category="Flow diagram"),
    log:
        "results/logs/flow.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/plot_flow.py"
