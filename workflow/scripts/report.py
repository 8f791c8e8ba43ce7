"""Snakemake entry: results/report.md and the self-contained results/report.html."""

import io
import os
import sys

from metaprop.analysis.certainty import certainty_table
from metaprop.archive.supersede import previous_run
from metaprop.entry import run
from metaprop.io.provenance import verified_tables
from metaprop.io.tables import read_results_tsv, write_tsv
from metaprop.report.bayes import adjusted_blocks, bayes_blocks
from metaprop.report.text import report_blocks, to_html, to_markdown
from metaprop.spec import Outcomes


def main(smk):
    inp, out, p = smk.input, smk.output, smk.params
    # the report certifies the tables' SHA-256: they must still be the bytes the trials were extracted from
    verified_tables(inp.read, dict(zip(inp.tables, p.config["trials"])), "report")
    tables = [read_results_tsv(path) for path in (inp.studies, inp.pooled, inp.tests, inp.leave_one_out, inp.methods,
                                                  inp.overlap)]
    config = {**p.config, "comparison": p.comparison, "comparison_configured": p.comparison_configured,
              "skipped_outcomes": p.skipped_outcomes}
    if p.input_warnings:  # only then: a report without warnings keeps its bytes
        config["input_warnings"] = list(p.input_warnings)
    primary = config["outcomes"][0]["id"]
    figures = p.figures
    analyses = [
        (by, where, [read_results_tsv(p.subgroup_tables[by][name]) for name in ("studies", "pooled", "tests")],
         figures[f"forest_{primary}_by_{by}"])
        for by, where in p.analyses.items()
    ]
    # the archive still holds the last run's results: this job runs before the new archive is written (after a
    # failed run, in results/superseded/); in an unpacked archive, the table that run's report compared with is in
    # previous_run/
    last, last_pooled, unreadable = previous_run(p.previous_archive)
    if unreadable:  # a truncated or damaged archive is set aside: the new one replaces it
        for stream in (sys.stderr, sys.__stderr__):  # the job's log, and the console
            print(f"Warning: {unreadable}", file=stream, flush=True)
        config["previous_unreadable"] = unreadable
    for path, text in ((out.previous, last), (out.previous_pooled, last_pooled)):
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text or "")
    previous = None if last is None else read_results_tsv(io.StringIO(last))
    ids = [o["id"] for o in config["outcomes"]]
    review = {"cumulative": read_results_tsv(inp.cumulative, text=["year"]), "small_study": read_results_tsv(inp.small_study),
              "cumulative_figures": [figures[f"cumulative_{o}"] for o in ids],
              "funnel_figures": [figures[f"funnel_{o}"] for o in ids], "flow": figures["flow"],
              "previous_pooled": None if last_pooled is None else read_results_tsv(io.StringIO(last_pooled)),
              "influence": read_results_tsv(inp.influence), "baujat_figures": [figures[f"baujat_{o}"] for o in ids],
              "baujat_method": p.baujat_method, "benchmarks": read_results_tsv(inp.benchmarks),
              "metareg": read_results_tsv(inp.metareg, text=["group", "term"]),
              "bubble_figures": {(b["outcome"], b["moderator"], b["across"]): figures[name]
                                 for name, b in p.bubbles.items()}}
    lead = []
    if "bayes" in config["methods"]:
        posterior_figures = {o: figures[f"posterior_{o}"] for o in ids}
        lead = bayes_blocks(tables[1], tables[2], read_results_tsv(inp.prior_sensitivity[0]), config,
                            posterior_figures)
    lead += adjusted_blocks(read_results_tsv(inp.adjusted), config)
    # certainty of the evidence: a rating of the tables, not a statistic; the report job reads all it needs
    outcomes = Outcomes(config["outcomes"])
    certainty = certainty_table(tables[0], tables[1], tables[2], review["small_study"], list(outcomes),
                                config["primary_method"], p.comparison, config.get("certainty"), config.get("benchmarks"))
    write_tsv(certainty, out.certainty)
    blocks = report_blocks(*tables, config, [figures[f"forest_{o}"] for o in ids], p.inputs, analyses, previous,
                           p.skipped_analyses, review, lead, certainty)
    links = {path: os.path.relpath(path, os.path.dirname(out.md)) for path in figures.values()}
    with open(out.md, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(to_markdown(blocks, links))
    with open(out.html, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(to_html(blocks))


run(main, snakemake)
