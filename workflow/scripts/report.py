"""Snakemake entry: results/report.md and the self-contained results/report.html."""

import os
import sys

from metaprop.reporting import report_blocks, to_html, to_markdown
from metaprop.tables import read_results_tsv

sys.stderr = open(snakemake.log[0], "w")
inp, out = snakemake.input, snakemake.output
studies, pooled, tests = (read_results_tsv(path) for path in (inp.studies, inp.pooled, inp.tests))
inputs = sorted(set(inp.tables) | set(inp.configs))
blocks = report_blocks(studies, pooled, tests, snakemake.params.config, list(inp.figures), inputs)
links = {path: os.path.relpath(path, os.path.dirname(out.md)) for path in inp.figures}
with open(out.md, "w", encoding="utf-8", newline="\n") as handle:
    handle.write(to_markdown(blocks, links))
with open(out.html, "w", encoding="utf-8", newline="\n") as handle:
    handle.write(to_html(blocks))
