"""Snakemake entry: the cumulative forest plot, the funnel plots, the Baujat plots and the bubble plots of the
one-moderator meta-regressions of every outcome, and the flow diagram, drawn from the tables."""

from metaprop.analysis.flow import flow_counts
from metaprop.entry import run
from metaprop.figures.bubble import bubble_figure
from metaprop.figures.forest import save_figure
from metaprop.figures.review import baujat_plot, cumulative_plot, flow_diagram, funnel_from_table, funnel_plot
from metaprop.io.tables import read_results_tsv
from metaprop.spec import Outcomes, in_comparison_order, method


def main(smk):
    p = smk.params
    outcomes = Outcomes(p.outcomes)
    studies = read_results_tsv(smk.input.studies)
    # every figure lists the modalities in the order the text compares them (config's comparison)
    cumulative = in_comparison_order(read_results_tsv(smk.input.cumulative, text=["year"]), p.comparison, "subgroup")
    tests = read_results_tsv(smk.input.small_study)
    funnel = in_comparison_order(read_results_tsv(smk.input.funnel), p.comparison, "subgroup")
    influence = in_comparison_order(read_results_tsv(smk.input.influence), p.comparison, "subgroup")
    bubble = read_results_tsv(smk.input.bubble, text=["study", "line", "group"])
    metareg = read_results_tsv(smk.input.metareg, text=["group", "term"])
    for figure in p.figures.values():
        outcome = figure.get("outcome")
        if figure["kind"] == "cumulative":
            rows = cumulative[(cumulative["outcome"] == outcome) & (cumulative["method"] == p.method)]
            if not p.overall:  # no pooled rate across the modalities compared unless config asks
                rows = rows[rows["subgroup"] != "overall"]
            drawn = cumulative_plot(rows, p.method, outcomes[outcome], p.level)
        elif figure["kind"] == "funnel":
            drawn = funnel_plot(funnel_from_table(funnel, outcome), tests[tests["outcome"] == outcome], outcomes[outcome],
                                p.level)
        elif figure["kind"] == "baujat":
            rows = influence[(influence["outcome"] == outcome) & (influence["method"] == p.baujat_method)]
            drawn = baujat_plot(rows, outcomes[outcome], method(p.baujat_method).label if p.baujat_method else "")
        elif figure["kind"] == "bubble":
            drawn = bubble_figure(bubble, metareg, figure, outcomes[outcome], p.bubble_method, p.level)
        else:
            drawn = flow_diagram(flow_counts(studies, p.comparison), outcomes)
        save_figure(drawn, figure["files"])


run(main, snakemake)
