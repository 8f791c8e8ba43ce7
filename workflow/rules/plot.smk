# Every figure in one job, drawn from the tables: a job's start (Python, numpy, pandas, matplotlib, the figures'
# font) costs more than drawing a figure, so the figures share one start and are spread over the rule's threads.
rule figures:
    input:
        studies="results/tables/studies.tsv",
        pooled="results/tables/pooled.tsv",
        tests="results/tables/subgroup_tests.tsv",
        weights="results/tables/weights.tsv",
        subgroups=SUBGROUP_OUTPUTS,
        curves=BAYES_CURVES,
        cumulative="results/tables/cumulative.tsv",
        small_study="results/tables/small_study_effects.tsv",
        funnel="results/tables/funnel.tsv",
        influence="results/tables/influence.tsv",
        bubble="results/tables/bubble.tsv",
        metareg="results/tables/meta_regressions.tsv",
        lib=library("figures"),
    output:
        other=other_files(ALL_FIGURES),
        forest_png=report(files_of(FORESTS, "png"), caption="../report/forest.rst", category="Forest plots"),
        posterior_png=report(files_of(POSTERIORS, "png"), caption="../report/posterior.rst", category="Posterior"),
        cumulative_png=report(files_of(CUMULATIVES, "png"), caption="../report/cumulative.rst",
                              category="Cumulative meta-analysis"),
        funnel_png=report(files_of(FUNNELS, "png"), caption="../report/funnel.rst", category="Small-study effects"),
        flow_png=report(files_of(FLOW, "png"), caption="../report/flow.rst", category="Flow diagram"),
        baujat_png=report(files_of(BAUJATS, "png"), caption="../report/baujat.rst", category="Influence"),
        bubble_png=report(files_of(BUBBLES, "png"), caption="../report/bubble.rst", category="Meta-regression"),
    params:
        figures=ALL_FIGURES,
        prior=BAYES_PRIOR,
        outcomes=OUTCOMES,
        comparison=COMPARISON,
        subgroup_tables=SUBGROUP_TABLES,
        method=config["primary_method"],
        overall=config["overall"],
        benchmarks=BENCHMARKS,
        baujat_method=BAUJAT_METHOD,
        bubble_method=BUBBLE_METHOD,
        level=config["level"],
    threads: 2
    log:
        "results/logs/figures.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/figures.py"
