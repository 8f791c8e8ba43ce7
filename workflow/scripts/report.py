"""Snakemake entry: results/report.md and the self-contained results/report.html."""

import io
import os

from metaprop.archiving import read_member
from metaprop.bayes_report import adjusted_blocks, bayes_blocks
from metaprop.entry import run
from metaprop.reporting import report_blocks, to_html, to_markdown
from metaprop.tables import read_results_tsv


def main(smk):
    inp, out = smk.input, smk.output
    tables = (read_results_tsv(path) for path in (inp.studies, inp.pooled, inp.tests, inp.leave_one_out, inp.methods, inp.overlap))
    primary = smk.params.config["outcomes"][0]
    analyses = [
        (by, where,
         [read_results_tsv(f"results/tables/subgroups/{by}/{name}.tsv") for name in ("studies", "pooled", "subgroup_tests")],
         f"results/figures/forest_{primary}_by_{by}.png")
        for by, where in smk.params.analyses.items()
    ]
    # the archive still holds the last run's results: this job runs before the new archive is written; in an
    # unpacked archive, the table that run's report compared with is in previous_run/
    last = read_member(smk.params.previous_archive, "results/tables/studies.tsv")
    if last is None and os.path.isfile("previous_run/studies.tsv"):
        with open("previous_run/studies.tsv", encoding="utf-8") as handle:
            last = handle.read()
    with open(out.previous, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(last or "")
    previous = None if last is None else read_results_tsv(io.StringIO(last))
    review = {"cumulative": read_results_tsv(inp.cumulative, text=["year"]), "small_study": read_results_tsv(inp.small_study),
              "cumulative_figures": list(inp.cumulative_figures), "funnel_figures": list(inp.funnel_figures),
              "flow": inp.flow}
    tables = list(tables)
    posterior_figures = dict(zip(smk.params.config["outcomes"], inp.posterior_figures))
    lead = []
    if "bayes" in smk.params.config["methods"]:
        lead = bayes_blocks(tables[1], tables[2], read_results_tsv(inp.prior_sensitivity[0]), smk.params.config,
                            posterior_figures)
    lead += adjusted_blocks(read_results_tsv(inp.adjusted), smk.params.config)
    blocks = report_blocks(*tables, smk.params.config, list(inp.figures), smk.params.inputs, analyses, previous,
                           smk.params.skipped_analyses, review, lead)
    figures = [*inp.figures, *inp.cumulative_figures, *inp.funnel_figures, inp.flow, *(f for *_, f in analyses),
               *inp.posterior_figures]
    links = {path: os.path.relpath(path, os.path.dirname(out.md)) for path in figures}
    with open(out.md, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(to_markdown(blocks, links))
    with open(out.html, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(to_html(blocks))


run(main, snakemake)
