"""Snakemake entry: results/archive/meta-analysis.tar.gz (a Workflow Run RO-Crate) and its MANIFEST.sha256."""

from pathlib import Path

from metaprop.archive.crate import manifest, pinned_versions, reproduce_text, ro_crate_metadata, write_archive
from metaprop.entry import run
from metaprop.io.provenance import verified_tables

PREVIOUS = {"previous_run/studies.tsv": "results/archive/previous_studies.tsv",
            "previous_run/pooled.tsv": "results/archive/previous_pooled.tsv"}


def main(smk):
    names, configs = smk.params.names, smk.params.configs
    # the tables archived are the bytes the trials were extracted from, or nothing is written
    tables = verified_tables(smk.input.read, {path: names[path] for path in smk.input.tables}, "archive")
    outputs = [(path, Path(path).read_bytes()) for path in sorted(set(smk.input.results))]
    inputs = sorted({(names[path], configs[path].encode("utf-8") if path in configs else tables[path])
                     for path in [*smk.input.tables, *smk.input.configs]})
    code = [(path, Path(path).read_bytes()) for path in smk.input.code if path not in names]
    code.sort(key=lambda member: (member[0] != "Snakefile", member[0]))
    # the tables the report compared with go where a rerun from the unpacked archive reads them
    extra = [(name, Path(path).read_bytes()) for name, path in PREVIOUS.items() if Path(path).read_bytes()]
    members = outputs + inputs + code + extra
    text = manifest(members)
    versions = pinned_versions(Path("requirements.txt").read_text(encoding="utf-8"))
    documents = [
        ("MANIFEST.sha256", text.encode("utf-8"), "SHA-256 of every result, input and code file (sha256sum -c)."),
        ("REPRODUCE.md", reproduce_text(smk.params.command).encode("utf-8"), "How to rerun this run and check it."),
    ]
    crate = ro_crate_metadata(inputs + extra, outputs, code, smk.params.command, versions, documents,
                              license=smk.params.license, question=smk.params.question)
    metadata = [(name, data) for name, data, _ in documents] + [("ro-crate-metadata.json", crate.encode("utf-8"))]
    write_archive(members + metadata, smk.output.archive)
    with open(smk.output.manifest, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


run(main, snakemake)
