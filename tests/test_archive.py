"""The archive: relative names only, a true manifest, a valid Workflow Run RO-Crate, and a rerun from the
unpacked archive that reproduces every hash of its manifest (and the archive itself)."""

import hashlib
import json
import re
import shlex
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT
from metaprop.archive.crate import (
    canonical_config,
    input_names,
    manifest,
    rerun_command,
    ro_crate_metadata,
    write_archive,
)
from test_pipeline import copy_project, snakemake

ARCHIVE = "results/archive/meta-analysis.tar.gz"
MINI = ("study\tmodality\tn\tcr_events\nA 2020\tCAR-T\t50\t40\nB 2021\tCAR-T\t30\t20\nC 2019\tCAR-T\t60\t45\n"
        "D 2018\tBlinatumomab\t100\t40\nE 2017\tBlinatumomab\t80\t35\nF 2016\tBlinatumomab\t70\t30\n")


# --- the pieces ---------------------------------------------------------------------------------------------

def test_inputs_are_named_relative_to_the_project_or_under_inputs(tmp_path):
    project, outside = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    outside.mkdir()
    names = input_names(["data/t.tsv", str(project / "other.yaml"), str(outside / "mini.tsv")], project)
    assert names == {"data/t.tsv": "data/t.tsv", str(project / "other.yaml"): "other.yaml",
                     str(outside / "mini.tsv"): "inputs/mini.tsv"}


def test_two_outside_files_with_one_name_are_refused(tmp_path):
    with pytest.raises(ValueError, match="would both be archived as 'inputs/t.tsv'"):
        input_names([str(tmp_path / "a" / "t.tsv"), str(tmp_path / "b" / "t.tsv")], tmp_path / "project")


def test_a_config_naming_outside_tables_is_archived_pointing_at_their_copies():
    text = "# mine\ntrials: [/data/mini.tsv, data/raw/table1.tsv]\nlevel: 0.9\n"
    names = {"/data/mini.tsv": "inputs/mini.tsv", "data/raw/table1.tsv": "data/raw/table1.tsv"}
    archived = canonical_config(text, names)
    assert yaml.safe_load(archived) == {"trials": ["inputs/mini.tsv", "data/raw/table1.tsv"], "level": 0.9}
    assert "/data/" not in archived
    # a config whose tables are in the project is kept byte for byte, and so is the archived copy (idempotent)
    assert canonical_config(archived, {"inputs/mini.tsv": "inputs/mini.tsv"}) == archived
    assert canonical_config("trials: [data/raw/table1.tsv]  # kept\n", names) == "trials: [data/raw/table1.tsv]  # kept\n"


def test_rerun_command_uses_archive_names_and_snakemake_config_syntax():
    names = {"/home/me/other.yaml": "inputs/other.yaml", "/home/me/x y.tsv": "inputs/x y.tsv"}
    command = rerun_command(["/home/me/other.yaml"], {"trials": ["/home/me/x y.tsv"], "level": 0.9}, names)
    assert shlex.split(command) == ["snakemake", "--cores", "4", "--forceall", "--configfile", "inputs/other.yaml",
                                    "--config", "trials=[inputs/x y.tsv]", "level=0.9"]
    assert rerun_command([], {}, {}) == "snakemake --cores 4 --forceall"


def test_archive_bytes_depend_on_the_members_only(tmp_path):
    members = [("b.txt", b"two\n"), ("a/c.tsv", b"one\n")]
    write_archive(members, tmp_path / "1.tar.gz")
    write_archive(list(reversed(members)), tmp_path / "2.tar.gz")
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "1.tar.gz") as tar:
        assert [(m.name, m.mtime, m.uid, m.mode) for m in tar.getmembers()] == [
            ("meta-analysis/a/c.tsv", 0, 0, 0o644), ("meta-analysis/b.txt", 0, 0, 0o644)]
    assert manifest(members) == (f"{hashlib.sha256(b'one' + bytes([10])).hexdigest()}  a/c.tsv\n"
                                 f"{hashlib.sha256(b'two' + bytes([10])).hexdigest()}  b.txt\n")
    for bad in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(ValueError, match="not a relative path"):
            write_archive([(bad, b"")], tmp_path / "bad.tar.gz")


def test_crate_metadata_is_deterministic():
    args = ([("data/t.tsv", b"x")], [("results/report.html", b"<p>")], [("Snakefile", b"rule"), ("workflow/a.smk", b"")],
            "snakemake --cores 4 --forceall", [("Python", "3.11.7"), ("numpy", "2.4.6")])
    text = ro_crate_metadata(*args)
    assert text == ro_crate_metadata(*args)
    graph = {e["@id"]: e for e in json.loads(text)["@graph"]}
    assert graph["./"]["mainEntity"] == {"@id": "Snakefile"} and graph["./"]["datePublished"].startswith("1970-01-01")
    assert graph["#run"]["instrument"] == {"@id": "Snakefile"} and "snakemake --cores 4" in graph["#run"]["description"]
    assert graph["https://pypi.org/project/numpy/2.4.6/"]["softwareVersion"] == "2.4.6"
    assert graph["./"]["license"].startswith("Not chosen yet")


def test_crate_carries_the_configured_licence():
    args = ([("data/t.tsv", b"x")], [("results/report.html", b"<p>")], [("Snakefile", b"rule")], "snakemake", [])
    url = "https://creativecommons.org/licenses/by/4.0/"
    graph = {e["@id"]: e for e in json.loads(ro_crate_metadata(*args, license=url))["@graph"]}
    assert graph["./"]["license"] == {"@id": url} and graph[url]["@type"] == "CreativeWork"
    graph = {e["@id"]: e for e in json.loads(ro_crate_metadata(*args, license="CC-BY-4.0"))["@graph"]}
    assert graph["./"]["license"] == "CC-BY-4.0"


# --- whole runs ---------------------------------------------------------------------------------------------

def unpack(archive, dest):
    dest.mkdir()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(dest, filter="data")
    return dest / "meta-analysis", names


def documented_command(unpacked):
    """The rerun command of REPRODUCE.md (its bash block that runs snakemake; the one before installs)."""
    text = (unpacked / "REPRODUCE.md").read_text()
    command = next(b for b in re.findall(r"```bash\n(.*?)\n```", text, flags=re.DOTALL) if b.startswith("snakemake"))
    words = shlex.split(command)
    assert words[:3] == ["snakemake", "--cores", "4"]
    return words[3:]


def mismatches(unpacked):
    """Lines of MANIFEST.sha256 that fail, as `sha256sum -c` would report them."""
    bad = []
    for line in (unpacked / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        path = unpacked / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(name)
    return bad


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A project run twice: on the bundled data, then with a config and a table from outside the project
    (given by absolute path, with a --config override); the archive of each is kept."""
    base = tmp_path_factory.mktemp("archive")
    project = copy_project(base / "project")
    first = snakemake(project)
    assert first.returncode == 0, first.stderr
    (base / "first.tar.gz").write_bytes((project / ARCHIVE).read_bytes())
    outside = base / "elsewhere"
    outside.mkdir()
    (outside / "mini.tsv").write_text(MINI)
    (outside / "other.yaml").write_text(f"# another dataset\ntrials: [{outside / 'mini.tsv'}]\nlevel: 0.9\n")
    second = snakemake(project, "--configfile", str(outside / "other.yaml"), "--config", "ci_method=wilson")
    assert second.returncode == 0, second.stderr
    (base / "second.tar.gz").write_bytes((project / ARCHIVE).read_bytes())
    return base


def test_archive_of_outside_inputs_holds_no_absolute_path(runs):
    unpacked, names = unpack(runs / "second.tar.gz", runs / "check-paths")
    assert all(n.startswith("meta-analysis/") and ".." not in n.split("/") for n in names)
    assert {"meta-analysis/inputs/mini.tsv", "meta-analysis/inputs/other.yaml",
            "meta-analysis/previous_run/studies.tsv"} <= set(names)
    for path in unpacked.rglob("*"):
        if path.is_file():
            assert str(runs).encode() not in path.read_bytes(), path
    lines = (unpacked / "MANIFEST.sha256").read_text().splitlines()
    assert all(re.fullmatch(r"[0-9a-f]{64}  [^/].*", line) for line in lines)
    assert yaml.safe_load((unpacked / "inputs/other.yaml").read_text()) == {"trials": ["inputs/mini.tsv"], "level": 0.9}
    assert (unpacked / "inputs/mini.tsv").read_text() == MINI
    assert documented_command(unpacked) == ["--forceall", "--configfile", "inputs/other.yaml", "--config", "ci_method=wilson"]
    assert mismatches(unpacked) == []


def test_reproduce_md_works_as_printed_on_a_system_python(runs):
    # Debian's python3 refuses a bare `pip install` (externally-managed-environment): install into a venv first
    unpacked, names = unpack(runs / "second.tar.gz", runs / "reproduce-doc")
    text = (unpacked / "REPRODUCE.md").read_text()
    install, rerun, check = re.findall(r"```bash\n(.*?)\n```", text, flags=re.DOTALL)
    assert install == "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt"
    assert rerun.startswith("snakemake --cores 4 --forceall") and check == "sha256sum -c MANIFEST.sha256"
    # every file the instructions name is in the archive, the pins the same as the project's
    for name in ("Snakefile", "requirements.txt", "MANIFEST.sha256", "ro-crate-metadata.json",
                 "inputs/other.yaml", "inputs/mini.tsv"):
        assert f"meta-analysis/{name}" in names, name
    assert (unpacked / "requirements.txt").read_bytes() == (ROOT / "requirements.txt").read_bytes()
    words = shlex.split(rerun)
    assert words[words.index("--configfile") + 1] == "inputs/other.yaml"


@pytest.mark.parametrize("which", ["first", "second"])
def test_rerun_from_the_unpacked_archive_reproduces_every_hash(runs, which):
    unpacked, _ = unpack(runs / f"{which}.tar.gz", runs / f"rerun-{which}")
    for result in (unpacked / "results").rglob("*"):
        if result.is_file():
            result.unlink()
    run = snakemake(unpacked, *documented_command(unpacked))
    assert run.returncode == 0, run.stderr
    assert len((unpacked / "MANIFEST.sha256").read_text().splitlines()) > 40
    assert mismatches(unpacked) == []
    # the archive the rerun writes is the same bytes as the one it was unpacked from
    assert (unpacked / ARCHIVE).read_bytes() == (runs / f"{which}.tar.gz").read_bytes()


def serve_rocrate_1_1_context(monkeypatch):
    """The validator fetches the RO-Crate 1.1 JSON-LD context over the network; the test must not need one. It is
    served from the 1.3 context shipped with the rocrate package, with the four terms whose IRIs changed after 1.1
    set back to their 1.1 IRIs (RO-Crate 1.2 changelog): ComputationalWorkflow, FormalParameter, input, output."""
    import rocrate
    from rocrate_validator.utils import http

    url = "https://w3id.org/ro/crate/1.1/context"
    context = json.loads((Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_text())["@context"]
    context.update({"ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
                    "FormalParameter": "https://bioschemas.org/FormalParameter",
                    "input": "https://bioschemas.org/ComputationalWorkflow#input",
                    "output": "https://bioschemas.org/ComputationalWorkflow#output"})
    body = {"@context": context}

    response = SimpleNamespace(status_code=200, headers={"Content-Type": "application/ld+json"}, text=json.dumps(body),
                               json=lambda: body)

    def get(self, address, *args, **kwargs):
        return response if address.rstrip("/") == url else self.__getattr__("get")(address, *args, **kwargs)

    monkeypatch.setattr(http.HttpRequester, "get", get, raising=False)


@pytest.mark.parametrize("which", ["first", "second"])
def test_archive_is_a_valid_workflow_run_crate(runs, which, monkeypatch):
    from rocrate_validator import models, services

    serve_rocrate_1_1_context(monkeypatch)
    unpacked, _ = unpack(runs / f"{which}.tar.gz", runs / f"crate-{which}")
    settings = services.ValidationSettings(rocrate_uri=str(unpacked), profile_identifier="workflow-run-crate-0.5",
                                           requirement_severity=models.Severity.REQUIRED, offline=True)
    result = services.validate(settings)
    assert [issue.message for issue in result.get_issues()] == []
    graph = {e["@id"]: e for e in json.loads((unpacked / "ro-crate-metadata.json").read_text())["@graph"]}
    run = graph["#run"]
    objects = {o["@id"] for o in run["object"]}
    results = {r["@id"] for r in run["result"]}
    assert {"config.yaml", "results/report.html", "results/tables/pooled.tsv"} <= objects | results
    assert "results/tables/pooled.tsv" in results and "config.yaml" in objects
    assert {"https://w3id.org/ro/wfrun/workflow/0.5", "https://w3id.org/ro/wfrun/process/0.5"} <= {
        c["@id"] for c in graph["./"]["conformsTo"]}
    versions = {graph[s["@id"]]["name"]: graph[s["@id"]]["softwareVersion"] for s in graph["Snakefile"]["softwareRequirements"]}
    assert {"Python", "snakemake", "numpy", "scipy", "pandas", "statsmodels", "matplotlib", "rocrate"} <= set(versions)
    assert documented_command(unpacked)[0] == "--forceall" and "--forceall" in run["description"]
