# Cumulative forest plots, funnel plots, Baujat plots and the bubble plots of the one-moderator meta-regressions of
# every outcome, and the flow diagram, in one job: a job's start (Python, pandas, matplotlib, the figures' font) costs
# more than drawing a figure.
rule review_plots:
    input:
        studies="results/tables/studies.tsv",
        cumulative="results/tables/cumulative.tsv",
        small_study="results/tables/small_study_effects.tsv",
        funnel="results/tables/funnel.tsv",
        influence="results/tables/influence.tsv",
        bubble="results/tables/bubble.tsv",
        metareg="results/tables/meta_regressions.tsv",
        lib=library("review_plots"),
    output:
        other=other_files({**REVIEW_FIGURES, **BAUJATS, **BUBBLES}),
        cumulative_png=report(files_of(CUMULATIVES, "png"), caption="../report/cumulative.rst",
                              category="Cumulative meta-analysis"),
        funnel_png=report(files_of(FUNNELS, "png"), caption="../report/funnel.rst", category="Small-study effects"),
        flow_png=report(files_of(FLOW, "png"), caption="../report/flow.rst", category="Flow diagram"),
        baujat_png=report(files_of(BAUJATS, "png"), caption="../report/baujat.rst", category="Influence"),
        bubble_png=report(files_of(BUBBLES, "png"), caption="../report/bubble.rst", category="Meta-regression"),
    params:
        figures={**REVIEW_FIGURES, **BAUJATS, **BUBBLES},
        overall=config["overall"],
        baujat_method=BAUJAT_METHOD,
        bubble_method=BUBBLE_METHOD,
        outcomes=OUTCOMES,
        comparison=COMPARISON,
        method=config["primary_method"],
        level=config["level"],
    log:
        "results/logs/review_plots.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/review_plots.py"
