"""A byte-reproducible, portable tar.gz of a run: results, inputs and code, a SHA-256 manifest and a
Workflow Run RO-Crate (ro-crate-metadata.json).

Hand-written tar because `snakemake --archive` packs only the workflow (not results) and stamps files with
their modification times; here every time, owner and mode is fixed. Every name in the archive is relative:
inputs from outside the project are stored under inputs/, and a config naming them is stored pointing there.
"""

import gzip
import importlib.metadata
import io
import json
import platform
import re
import shlex
import tarfile
import zlib
from pathlib import Path

import yaml

from metaprop.io.provenance import digest_lines, sha256_bytes

ROOT = "meta-analysis"
OUTSIDE = "inputs"
# RO-Crate 1.1, the version the Workflow Run Crate 0.5 profile builds on.
CRATE_VERSION = "1.1"
PROFILES = [
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
]
# RO-Crate requires a licence; without config `license` the crate says in words that none is chosen.
NO_LICENSE = ("Not chosen yet: the authors of this analysis have not attached a licence; set one (config `license`: "
              "the URL of a Creative Commons or open-source licence) before depositing.")
MEDIA_TYPES = {
    ".tsv": "text/tab-separated-values", ".csv": "text/csv", ".pdf": "application/pdf", ".svg": "image/svg+xml",
    ".png": "image/png", ".html": "text/html", ".md": "text/markdown", ".yaml": "application/yaml",
    ".yml": "application/yaml", ".py": "text/x-python", ".smk": "text/x-snakemake", ".rst": "text/x-rst",
    ".txt": "text/plain", ".sha256": "text/plain", ".json": "application/ld+json",
}


def archive_name(path, project):
    """Name of an input inside the archive: its path relative to the project, or inputs/<file name> when outside."""
    given = Path(path)
    resolved = (given if given.is_absolute() else Path(project) / given).resolve()
    project = Path(project).resolve()
    if resolved.is_relative_to(project):
        return resolved.relative_to(project).as_posix()
    return f"{OUTSIDE}/{resolved.name}"


def input_names(paths, project):
    """{path: archive name} for the run's inputs; two different files outside the project may not share a name."""
    names, owner = {}, {}
    for path in paths:
        name = archive_name(path, project)
        resolved = (Path(project) / path).resolve()
        if owner.setdefault(name, resolved) != resolved:
            raise ValueError(f"'{owner[name]}' and '{resolved}' would both be archived as '{name}'; rename one of them")
        names[path] = name
    return names


def canonical_config(text, names):
    """A config file's text as archived: unchanged, unless it names trial tables that are archived under other
    names (tables outside the project), then rewritten to point at them (comments are not kept)."""
    loaded = yaml.safe_load(text)
    trials = loaded.get("trials") if isinstance(loaded, dict) else None
    if not isinstance(trials, list) or all(names.get(t, t) == t for t in trials):
        return text
    loaded["trials"] = [names.get(t, t) for t in trials]
    return ("# Archived copy: trial tables from outside the project point at their copies in this archive.\n"
            + yaml.safe_dump(loaded, sort_keys=False, allow_unicode=True))


def rerun_command(configfiles, overrides, names):
    """The command that reruns the analysis from the unpacked archive: config files and --config values by
    their archive names (the values parsed as Snakemake parses --config)."""
    words = ["snakemake", "--cores", "4", "--forceall"]
    for path in configfiles:
        words += ["--configfile", names[path]]
    if overrides:
        words.append("--config")
        for key, value in overrides.items():
            if key == "trials" and isinstance(value, list):
                value = [names.get(t, t) for t in value]
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
            words.append(f"{key}={text.removesuffix(chr(10) + '...')}")
    return shlex.join(words)


def manifest(members):
    """'<sha256>  <name>' lines of (name, bytes) members, as `sha256sum -c` reads them."""
    return digest_lines({name: sha256_bytes(data) for name, data in members})


def pinned_versions(requirements_text):
    """[(package, installed version)] for Python and each package pinned in a requirements file."""
    names = [re.split(r"[=<>!~\[; ]", line.strip(), maxsplit=1)[0]
             for line in requirements_text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "-"))]
    return [("Python", platform.python_version())] + [(n, importlib.metadata.version(n)) for n in names]


def _software_entity(crate, name, version):
    from rocrate.model.contextentity import ContextEntity

    url = ("https://www.python.org/" if name == "Python" else f"https://pypi.org/project/{name}/")
    ident = ("https://www.python.org/downloads/release/python-" + version.replace(".", "") + "/" if name == "Python"
             else f"https://pypi.org/project/{name}/{version}/")
    return crate.add(ContextEntity(crate, ident, properties={
        "@type": "SoftwareApplication", "name": name, "softwareVersion": version, "url": url}))


def _file_properties(name, data, description=None):
    props = {"name": Path(name).name, "contentSize": str(len(data)),
             "encodingFormat": MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")}
    if description:
        props["description"] = description
    return props


def ro_crate_metadata(inputs, outputs, code, command, versions, documents=(), date="1970-01-01T00:00:00+00:00",
                      license=None, question=None):
    """ro-crate-metadata.json text of a Workflow Run Crate.

    `inputs`, `outputs`, `code`: (name, bytes) members (trial tables and configs; results; the workflow, with
    Snakefile first); `command`: the command that reruns the run; `versions`: [(software, version)];
    `documents`: (name, bytes, description) of files about the archive (manifest, instructions).
    `license`: the results' licence, a URL (linked as a CreativeWork) or a name; None says that none is chosen.
    `question`: config's title, question and source (the crate's name, and its description and citation).
    Deterministic: no time stamp except `date` (datePublished, fixed unless given).
    """
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate(gen_preview=False, version=CRATE_VERSION)
    root = crate.root_dataset
    question = question or {}
    title = question.get("title") or "Meta-analysis of single-arm trials"
    root["name"] = f"{title} (a run)"
    root["description"] = " ".join(part for part in (
        question.get("question", ""),
        ("Results of one run of the Snakemake meta-analysis pipeline with its trial tables, configuration and code. "
        f"Rerun from the unpacked archive with `{command}`, then check with `sha256sum -c MANIFEST.sha256` "
        "(REPRODUCE.md).")) if part)
    if question.get("source"):
        root["citation"] = question["source"]
    if question.get("keywords"):  # the outcomes and modalities compared
        root["keywords"] = list(question["keywords"])
    root["datePublished"] = date
    if license and license.startswith(("https://", "http://")):
        root["license"] = crate.add(ContextEntity(crate, license, properties={"@type": "CreativeWork", "name": license}))
    else:
        root["license"] = license or NO_LICENSE
    software = [_software_entity(crate, name, version) for name, version in versions]
    (snakefile_name, snakefile), *other_code = code
    workflow = crate.add_workflow(None, dest_path=snakefile_name, main=True, lang="snakemake", properties={
        **_file_properties(snakefile_name, snakefile, "Entry point of the workflow; rules in workflow/rules/."),
        "name": f"{title} (Snakemake workflow)"})
    workflow["softwareRequirements"] = software
    files = {name: crate.add_file(None, dest_path=name, properties=_file_properties(name, data))
             for name, data in other_code}
    workflow["hasPart"] = list(files.values())
    objects = [crate.add_file(None, dest_path=name, properties=_file_properties(name, data)) for name, data in inputs]
    results = [crate.add_file(None, dest_path=name, properties=_file_properties(name, data)) for name, data in outputs]
    action = crate.add_action(workflow, identifier="#run", object=objects, result=results, properties={
        "@type": "CreateAction", "name": "Run of the meta-analysis workflow",
        "description": f"Command that reruns it from the unpacked archive: {command}"})
    root["mentions"] = action
    for name, data, description in documents:
        crate.add_file(None, dest_path=name, properties=_file_properties(name, data, description))
    for ident, name, version in PROFILES:
        if ident not in crate:
            crate.add(ContextEntity(crate, ident, properties={"@type": "CreativeWork", "name": name, "version": version}))
    root["conformsTo"] = [crate.get(ident) for ident, _, _ in PROFILES]
    return json.dumps(crate.metadata.generate(), indent=2, ensure_ascii=False) + "\n"


def reproduce_text(command):
    """REPRODUCE.md of the archive: the rerun command and how to check it."""
    return f"""# Reproducing this run

From this folder (the unpacked archive), with Python 3.11, install the pinned packages into a virtual
environment (Debian's and Ubuntu's own Python refuse `pip install` outside one: "externally-managed-environment"):

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
```

then, in the same shell (or after `. .venv/bin/activate` in a new one), rerun every job:

```bash
{command}
```

then check that every result, table and input is the same, byte for byte:

```bash
sha256sum -c MANIFEST.sha256
```

`ro-crate-metadata.json` describes the run as a Workflow Run RO-Crate (inputs, configuration, outputs,
software versions and this command).
"""


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_archive(members, out_path, root=ROOT):
    """(name, bytes) members under `root/`, in name order; identical members give identical bytes."""
    with (
        open(out_path, "wb") as raw,
        # most bytes are PNG and PDF, compressed already: level 1 is within 1% of level 9's size at 40% of its time
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data in sorted(members):
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(f"archive member name '{name}' is not a relative path inside the archive")
            _add(tar, f"{root}/{name}", data)


class UnreadableArchive(ValueError):
    """An archive that exists but cannot be read (truncated, damaged, not an archive)."""


def read_members(archive_path, paths, root=ROOT):
    """{path: its text, or None if the archive has no such file} of `paths` inside an archive written by
    write_archive; all None if there is no such archive; UnreadableArchive if it is truncated or damaged. One pass
    forwards over every member: a gzip stream is read from its start, whatever member is wanted."""
    wanted = {f"{root}/{path}": path for path in paths}
    texts = dict.fromkeys(paths)
    try:
        # random-access mode read forwards, not stream mode: only gzip's own reader finds every truncation
        with tarfile.open(archive_path) as tar:
            for member in tar:  # to the last header, so that an archive cut after the members wanted is found out
                if member.name in wanted and member.isfile():
                    texts[wanted[member.name]] = tar.extractfile(member).read().decode("utf-8")
    except FileNotFoundError:
        return dict.fromkeys(paths)
    except (EOFError, OSError, tarfile.TarError, zlib.error, UnicodeDecodeError) as err:
        reason = "it ends early (truncated)" if isinstance(err, EOFError) else str(err) or type(err).__name__
        raise UnreadableArchive(f"the previous run's archive {archive_path} cannot be read ({reason}); the report "
                                "cannot say what changed since that run, and this run's archive replaces it.") from None
    return texts


def read_member(archive_path, path, root=ROOT):
    """read_members of one path."""
    return read_members(archive_path, [path], root)[path]
