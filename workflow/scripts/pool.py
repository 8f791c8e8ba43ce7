"""Snakemake entry: studies.tsv -> pooled.tsv and subgroup_tests.tsv."""

import sys

import pandas as pd

from metaprop.analysis import pool_outcome
from metaprop.tables import read_results_tsv, write_tsv

sys.stderr = open(snakemake.log[0], "w")
p = snakemake.params
studies = read_results_tsv(snakemake.input.studies)
results = [pool_outcome(studies, outcome, p.methods, p.level, p.nagq) for outcome in p.outcomes]
write_tsv(pd.concat([pooled for pooled, _ in results], ignore_index=True), snakemake.output.pooled)
write_tsv(pd.concat([tests for _, tests in results], ignore_index=True), snakemake.output.tests)
