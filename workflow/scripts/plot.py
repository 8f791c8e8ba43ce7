"""Snakemake entry: the forest plot of one outcome with the primary method."""

from metaprop.analysis import study_weights, subgroups_of
from metaprop.entry import run
from metaprop.extraction import outcome_title
from metaprop.plotting import forest_plot, message_figure, save_figure
from metaprop.tables import read_results_tsv


def main(smk):
    outcome, method = smk.params.outcome, smk.params.method
    studies, pooled, tests = (read_results_tsv(path) for path in (smk.input.studies, smk.input.pooled, smk.input.tests))
    studies = studies[(studies["outcome"] == outcome) & studies["included"]].copy()
    pooled = pooled[(pooled["outcome"] == outcome) & (pooled["method"] == method)]
    tests = tests[(tests["outcome"] == outcome) & (tests["method"] == method)]
    paths = {"pdf": smk.output.pdf, "svg": smk.output.svg, "png": smk.output.png}
    if pooled.empty:
        label = smk.params.subgroup_label
        save_figure(message_figure(f"No kept trial has a known {label[0].lower() + label[1:]}: nothing to pool."), paths)
        return
    for group in subgroups_of(studies):
        rows = studies["modality"] == group
        tau2 = pooled.loc[pooled["subgroup"] == group, "tau2"].iloc[0]
        studies.loc[rows, "weight"] = study_weights(studies.loc[rows, "events"], studies.loc[rows, "n"], method, tau2)
    figure = forest_plot(studies, pooled, tests, method=method, outcome_label=outcome_title(outcome),
                         subgroup_label=smk.params.subgroup_label, level=smk.params.level)
    save_figure(figure, paths)


run(main, snakemake)
