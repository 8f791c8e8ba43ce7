"""Snakemake entry: the forest plots of every outcome, and of the primary outcome by each moderator, with the
primary method; with method bayes, the posterior figure of every outcome."""

from pathlib import Path

from metaprop.entry import run
from metaprop.figures.forest import forest_plot, message_figure, save_figure
from metaprop.figures.posterior import curves_from_table, draw_posterior
from metaprop.io.tables import read_results_tsv
from metaprop.spec import Outcomes, in_comparison_order, in_sentence
from metaprop.spec import method as spec_method


def forest_figure(tables, outcome, method, label, level, pdf_name, column, overall=False, benchmark=None,
                  comparison=()):
    """The forest plot of `outcome` (spec.Outcome) from the {"studies"|"pooled"|"tests"|"weights": path} tables of
    one grouping, subgroups the values of `column` (a long one summarised, pointing at its PDF `pdf_name`), the
    modalities in the order of `comparison`."""
    studies, pooled, tests, weights = (read_results_tsv(tables[name]) for name in ("studies", "pooled", "tests",
                                                                                   "weights"))
    studies = in_comparison_order(studies[(studies["outcome"] == outcome.id) & studies["included"]], comparison)
    pooled = pooled[(pooled["outcome"] == outcome.id) & (pooled["method"] == method)]
    tests = tests[(tests["outcome"] == outcome.id) & (tests["method"] == method)]
    if pooled.empty:
        return message_figure(f"No kept trial has a known {in_sentence(label)}: nothing to pool.")
    if not overall:  # no pooled rate across the modalities compared unless config asks (`overall: true`)
        pooled = pooled[pooled["subgroup"] != "overall"]
    if spec_method(method).family != "glmm":  # the GLMM defines no study weights (R meta omits them): none drawn
        weights = weights[(weights["outcome"] == outcome.id) & (weights["method"] == method)]
        studies = studies.merge(weights[["subgroup", "study", "weight"]].rename(columns={"subgroup": column}),
                                on=[column, "study"], how="left", validate="one_to_one")
    return forest_plot(studies, pooled, tests, method=method, outcome_label=outcome.title, subgroup_label=label,
                       level=level, pdf_name=pdf_name, column=column, benchmark=benchmark)


def main(smk):
    p, inp = smk.params, smk.input
    by_modality = {"studies": inp.studies, "pooled": inp.pooled, "tests": inp.tests, "weights": inp.weights}
    outcomes = Outcomes(p.outcomes)
    for forest in p.forests.values():
        tables = p.subgroup_tables[forest["by"]] if forest["by"] else by_modality
        pdf_name = Path(forest["files"]["pdf"]).name if "pdf" in forest["files"] else None
        benchmark = p.benchmarks.get(forest["outcome"], {}).get("rate") if not forest["by"] else None
        figure = forest_figure(tables, outcomes[forest["outcome"]], p.method, forest["label"], p.level, pdf_name,
                               "group" if forest["by"] else "modality", p.overall, benchmark, p.comparison)
        save_figure(figure, forest["files"])
    curves = read_results_tsv(inp.curves[0]) if inp.curves else None
    for posterior in p.posteriors.values():
        outcome = outcomes[posterior["outcome"]]
        save_figure(draw_posterior(curves_from_table(curves, outcome.id, p.level), outcome.label, p.prior),
                    posterior["files"])


run(main, snakemake)
