"""The SHA-256 of the trial tables a run extracted, and the check that the tables are still those bytes when the
report and the archive describe them: a table saved while a run is in flight must not be certified unread."""

import hashlib
from pathlib import Path


class InputChanged(RuntimeError):
    """A trial table whose bytes are not those the run extracted; the message says which and what to do."""


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def digest_lines(digests):
    """{name: SHA-256} as sha256sum lines ('<hex>  <name>'), sorted by name."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def read_digest_lines(text):
    """The {name: SHA-256} of digest_lines' text."""
    return {name: digest for digest, name in (line.split("  ", 1) for line in text.splitlines() if line)}


def changed_inputs(recorded, current):
    """The (name, recorded SHA-256, current SHA-256 or None for a missing file) of every table in `current`
    ({name: SHA-256 or None}) whose bytes are not those `recorded` ({name: SHA-256})."""
    return [(name, recorded.get(name), digest) for name, digest in current.items() if recorded.get(name) != digest]


def table_digests(tables):
    """{archive name: SHA-256 of the file now, or None if it is gone} of `tables` ({path: archive name})."""
    current = {}
    for path, name in tables.items():
        try:
            current[name] = sha256_file(path)
        except FileNotFoundError:
            current[name] = None
    return current


def check_unchanged(recorded, current, tables, record_path, what):
    """Raise InputChanged unless every table has the bytes the extraction read: `recorded` ({name: SHA-256}, read
    from `record_path`), `current` ({name: SHA-256 of the bytes now, or None}), `tables` ({path: name}); `what` is
    the output that is then not written."""
    changed = changed_inputs(recorded, current)
    if changed:
        paths = {name: path for path, name in tables.items()}
        lines = [f"{paths[name]} changed during the run: the trials were extracted from bytes with SHA-256 "
                 f"{before or '(none: not a table the extraction read)'} (recorded in {record_path}); the file now "
                 + ("no longer exists." if after is None else f"has SHA-256 {after}.") for name, before, after in changed]
        raise InputChanged("\n".join(lines) + f"\nThe {what} was not written: the tables and figures of this run "
                           "describe the trials as they were extracted. The table changed during the run: run "
                           "snakemake again, which extracts the table as it is now.")
