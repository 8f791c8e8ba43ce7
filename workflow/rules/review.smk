# What a reviewer asks for: cumulative meta-analysis by year, small-study effects, the flow diagram.
rule review_tables:
    input:
        studies="results/tables/studies.tsv",
        lib=library("review_tables"),
    output:
        cumulative=report("results/tables/cumulative.tsv", caption="../report/cumulative_table.rst",
                          category="Cumulative meta-analysis"),
        small_study=report("results/tables/small_study_effects.tsv", caption="../report/small_study_table.rst",
                           category="Small-study effects"),
        funnel="results/tables/funnel.tsv",
    params:
        outcomes=OUTCOME_IDS,
        primary_method=config["primary_method"],
        level=config["level"],
        nagq=config["glmm_nagq"],
    log:
        "results/logs/review_tables.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/review_tables.py"


# Cumulative forest plots and funnel plots of every outcome, and the flow diagram, in one job.
rule review_plots:
    input:
        studies="results/tables/studies.tsv",
        cumulative="results/tables/cumulative.tsv",
        small_study="results/tables/small_study_effects.tsv",
        funnel="results/tables/funnel.tsv",
        lib=library("review_plots"),
    output:
        other=other_files(REVIEW_FIGURES),
        cumulative_png=report(files_of(CUMULATIVES, "png"), caption="../report/cumulative.rst",
                              category="Cumulative meta-analysis"),
        funnel_png=report(files_of(FUNNELS, "png"), caption="../report/funnel.rst", category="Small-study effects"),
        flow_png=report(files_of(FLOW, "png"), caption="../report/flow.rst", category="Flow diagram"),
    params:
        figures=REVIEW_FIGURES,
        outcomes=OUTCOMES,
        method=config["primary_method"],
        level=config["level"],
    log:
        "results/logs/review_plots.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/review_plots.py"
