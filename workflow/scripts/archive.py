"""Snakemake entry: results/archive/meta-analysis.tar.gz and its MANIFEST.sha256."""

import sys

from metaprop.archiving import manifest, write_archive

sys.stderr = open(snakemake.log[0], "w")
paths = sorted(set(snakemake.input.results) | set(snakemake.input.sources))
text = manifest(paths)
write_archive(paths, text, snakemake.output.archive)
with open(snakemake.output.manifest, "w", encoding="utf-8", newline="\n") as handle:
    handle.write(text)
