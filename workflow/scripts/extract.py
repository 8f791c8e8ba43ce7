"""Snakemake entry: trial tables -> results/tables/studies.tsv."""

import sys

from metaprop.extraction import studies_table
from metaprop.tables import read_trials, write_tsv

sys.stderr = open(snakemake.log[0], "w")
p = snakemake.params
trials = read_trials(list(snakemake.input.tables))
studies = studies_table(trials, p.outcomes, p.ci_method, p.overlap_rule, p.level)
write_tsv(studies, snakemake.output[0])
