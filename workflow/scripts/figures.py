"""Snakemake entry: every figure, drawn from the tables and spread over the rule's threads: the forest plots of every
outcome, and of the primary outcome by each moderator, with the primary method; the cumulative forest plot, the funnel
plot, the Baujat plot, the bubble plots of the one-moderator meta-regressions and (method bayes) the posterior figure
of every outcome; the flow diagram."""

from pathlib import Path

from metaprop.analysis.flow import flow_counts
from metaprop.entry import parallel_map, run
from metaprop.figures.bubble import bubble_figure
from metaprop.figures.forest import forest_plot, message_figure, save_figure
from metaprop.figures.posterior import curves_from_table, draw_posterior
from metaprop.figures.review import baujat_plot, cumulative_plot, flow_diagram, funnel_from_table, funnel_plot
from metaprop.io.tables import read_results_tsv
from metaprop.spec import Outcomes, in_comparison_order, in_sentence, method


def forest_figure(tables, outcome, method_token, label, level, pdf_name, column, overall=False, benchmark=None,
                  comparison=()):
    """The forest plot of `outcome` (spec.Outcome) from the {"studies"|"pooled"|"tests"|"weights": DataFrame} tables
    of one grouping, subgroups the values of `column` (a long one summarised, pointing at its PDF `pdf_name`), the
    modalities in the order of `comparison`."""
    studies, pooled, tests, weights = (tables[name] for name in ("studies", "pooled", "tests", "weights"))
    studies = in_comparison_order(studies[(studies["outcome"] == outcome.id) & studies["included"]], comparison)
    pooled = pooled[(pooled["outcome"] == outcome.id) & (pooled["method"] == method_token)]
    tests = tests[(tests["outcome"] == outcome.id) & (tests["method"] == method_token)]
    if pooled.empty:
        return message_figure(f"No kept trial has a known {in_sentence(label)}: nothing to pool.")
    if not overall:  # no pooled rate across the modalities compared unless config asks (`overall: true`)
        pooled = pooled[pooled["subgroup"] != "overall"]
    if method(method_token).family != "glmm":  # the GLMM defines no study weights (R meta omits them): none drawn
        weights = weights[(weights["outcome"] == outcome.id) & (weights["method"] == method_token)]
        studies = studies.merge(weights[["subgroup", "study", "weight"]].rename(columns={"subgroup": column}),
                                on=[column, "study"], how="left", validate="one_to_one")
    return forest_plot(studies, pooled, tests, method=method_token, outcome_label=outcome.title, subgroup_label=label,
                       level=level, pdf_name=pdf_name, column=column, benchmark=benchmark)


def main(smk):
    p, inp = smk.params, smk.input
    outcomes = Outcomes(p.outcomes)
    # each table read once, before the workers start (they inherit them)
    groupings = {None: {"studies": inp.studies, "pooled": inp.pooled, "tests": inp.tests, "weights": inp.weights},
                 **p.subgroup_tables}
    forest_tables = {by: {name: read_results_tsv(path) for name, path in tables.items()}
                     for by, tables in groupings.items()}
    studies = forest_tables[None]["studies"]
    # every figure lists the modalities in the order the text compares them (config's comparison)
    cumulative = in_comparison_order(read_results_tsv(inp.cumulative, text=["year"]), p.comparison, "subgroup")
    tests = read_results_tsv(inp.small_study)
    funnel = in_comparison_order(read_results_tsv(inp.funnel), p.comparison, "subgroup")
    curves = read_results_tsv(inp.curves[0]) if inp.curves else None
    influence = in_comparison_order(read_results_tsv(inp.influence), p.comparison, "subgroup")
    bubble = read_results_tsv(inp.bubble, text=["study", "line", "group"])
    metareg = read_results_tsv(inp.metareg, text=["group", "term"])

    def draw(figure):
        kind, outcome = figure["kind"], figure.get("outcome")
        if kind == "forest":
            tables = forest_tables[figure["by"]]
            pdf_name = Path(figure["files"]["pdf"]).name if "pdf" in figure["files"] else None
            benchmark = p.benchmarks.get(outcome, {}).get("rate") if not figure["by"] else None
            return forest_figure(tables, outcomes[outcome], p.method, figure["label"], p.level, pdf_name,
                                 "group" if figure["by"] else "modality", p.overall, benchmark, p.comparison)
        if kind == "posterior":
            return draw_posterior(curves_from_table(curves, outcome, p.level), outcomes[outcome].label, p.prior)
        if kind == "cumulative":
            rows = cumulative[(cumulative["outcome"] == outcome) & (cumulative["method"] == p.method)]
            if not p.overall:  # no pooled rate across the modalities compared unless config asks
                rows = rows[rows["subgroup"] != "overall"]
            return cumulative_plot(rows, p.method, outcomes[outcome], p.level)
        if kind == "funnel":
            return funnel_plot(funnel_from_table(funnel, outcome), tests[tests["outcome"] == outcome],
                               outcomes[outcome], p.level)
        if kind == "baujat":
            rows = influence[(influence["outcome"] == outcome) & (influence["method"] == p.baujat_method)]
            return baujat_plot(rows, outcomes[outcome], method(p.baujat_method).label if p.baujat_method else "")
        if kind == "bubble":
            return bubble_figure(bubble, metareg, figure, outcomes[outcome], p.bubble_method, p.level)
        if kind == "flow":
            return flow_diagram(flow_counts(studies, p.comparison), outcomes)
        raise KeyError(f"unknown figure kind {kind!r}")

    parallel_map(lambda figure: save_figure(draw(figure), figure["files"]), p.figures.values(), smk.threads)


run(main, snakemake)
