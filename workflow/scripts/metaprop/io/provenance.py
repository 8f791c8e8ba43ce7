"""The SHA-256 of the trial tables a run extracted, and the check that the tables are still those bytes when the
report and the archive describe them: a table saved while a run is in flight must not be certified unread."""

import hashlib
from pathlib import Path


class InputChanged(RuntimeError):
    """A trial table whose bytes are not those the run extracted; the message says which and what to do."""


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def digest_lines(digests):
    """{name: SHA-256} as sha256sum lines ('<hex>  <name>'), sorted by name."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def read_digest_lines(text):
    """The {name: SHA-256} of digest_lines' text."""
    return {name: digest for digest, name in (line.split("  ", 1) for line in text.splitlines() if line)}


def verified_tables(record_path, tables, what):
    """{path: bytes} of the trial tables `tables` ({path: archive name}), each read once; InputChanged, naming every
    table whose bytes are not those the extraction recorded in `record_path` (digest_lines), unless all are; `what`
    is the output that is then not written."""
    recorded = read_digest_lines(Path(record_path).read_text(encoding="utf-8"))
    data, lines = {}, []
    for path, name in tables.items():
        try:
            data[path] = Path(path).read_bytes()
            now = sha256_bytes(data[path])
        except FileNotFoundError:
            now = None
        if recorded.get(name) != now:
            lines.append(f"{path} changed during the run: the trials were extracted from bytes with SHA-256 "
                         f"{recorded.get(name) or '(none: not a table the extraction read)'} (recorded in "
                         f"{record_path}); the file now " + ("no longer exists." if now is None else f"has SHA-256 {now}."))
    if lines:
        raise InputChanged("\n".join(lines) + f"\nThe {what} was not written: the tables and figures of this run "
                           "describe the trials as they were extracted. The table changed during the run: run "
                           "snakemake again, which extracts the table as it is now.")
    return data
