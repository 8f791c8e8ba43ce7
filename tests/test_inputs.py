"""The parse-time checks of the trial tables, and the verdict kept between runs (metaprop/inputs.py)."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from metaprop.io import inputs
from metaprop.io.inputs import InputError, check_inputs, checked_inputs


@pytest.fixture
def config():
    """config.yaml with the schema's defaults the checks read."""
    loaded = yaml.safe_load((ROOT / "config.yaml").read_text())
    return {"overlap_rule": "largest", "adjusted_comparisons": [], **loaded}


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "table1.tsv"
    shutil.copy(ROOT / "data/raw/table1.tsv", path)
    return str(path)


def test_verdict_of_the_bundled_tables(config, table):
    found, trials = check_inputs(config, [table])
    assert [o["id"] for o in found["outcomes"]] == ["cr", "cr_itt", "scrs", "scns"]
    assert found["comparison"] == ["CAR-T", "Blinatumomab"] and len(trials) == 12
    # in the order of config.yaml, which the report follows
    assert list(found["analyses"]) == ["costimulatory_domain", "age_group", "mrd_only", "source_type"]
    assert found["analyses"]["costimulatory_domain"] == {"modality": "CAR-T"}
    assert found["skipped"] == [] and found["carry"][-2:] == ["year", "citation"]


def test_kept_verdict_is_read_back_unchanged_without_checking_again(config, table, tmp_path, monkeypatch):
    store = tmp_path / "store"
    first = checked_inputs(config, [table], store)
    assert {k: v for k, v in first.items() if k not in ("trials_file", "sources")} == check_inputs(config, [table])[0]
    assert len(list(store.glob("inputs-*.json"))) == 1 and len(list(store.glob("trials-*.json"))) == 1
    assert inputs.read_checked_trials(first["trials_file"]).equals(check_inputs(config, [table])[1])
    # the SHA-256 of the bytes the rows were read from, kept with them (the extract job records it)
    digest = hashlib.sha256(Path(table).read_bytes()).hexdigest()
    assert first["sources"] == inputs.read_checked_sources(first["trials_file"]) == {table: digest}

    def fail(*_):
        raise AssertionError("checked again")

    monkeypatch.setattr(inputs, "check_inputs", fail)
    again = checked_inputs(config, [table], store)
    assert again == first and list(again["analyses"]) == list(first["analyses"])


def test_a_table_saved_while_it_is_checked_is_refused(config, table, tmp_path, monkeypatch):
    real = inputs.check_inputs

    def check_then_save(*args):  # the table is saved between the hashing and the check's own reading
        found = real(*args)
        Path(table).write_text(Path(table).read_text() + "\n")
        return found

    monkeypatch.setattr(inputs, "check_inputs", check_then_save)
    with pytest.raises(inputs.InputError, match=r"t.*\.tsv changed while it was being checked; nothing was run"):
        checked_inputs(config, [table], tmp_path / "store")


@pytest.mark.parametrize("change", ["table", "config"])
def test_a_changed_table_or_config_is_checked_again(config, table, tmp_path, monkeypatch, change):
    store = tmp_path / "store"
    checked_inputs(config, [table], store)
    calls = []
    real = inputs.check_inputs
    monkeypatch.setattr(inputs, "check_inputs", lambda *a: calls.append(1) or real(*a))
    if change == "table":
        with open(table, "a", encoding="utf-8") as handle:
            handle.write("New 2026\tCAR-T\t\t\t\t40\t\t30" + "\t" * 15 + "\n")
    else:
        config = {**config, "outcomes": config["outcomes"][:1]}
    found = checked_inputs(config, [table], store)
    assert calls == [1] and len(list(store.glob("inputs-*.json"))) == 1
    ids = [o["id"] for o in found["outcomes"]]
    assert ids == (["cr"] if change == "config" else ["cr", "cr_itt", "scrs", "scns"])


def test_a_refused_table_leaves_no_verdict(config, table, tmp_path):
    store = tmp_path / "store"
    with open(table, "a", encoding="utf-8") as handle:
        handle.write("Broken\tCAR-T\n")
    with pytest.raises(InputError, match="table1.tsv"):
        checked_inputs(config, [table], store)
    assert not list(store.glob("inputs-*.json")) if store.exists() else True


def test_unreadable_verdict_is_checked_again(config, table, tmp_path):
    store = tmp_path / "store"
    first = checked_inputs(config, [table], store)
    kept = next(store.glob("inputs-*.json"))
    kept.write_text("{not json")
    assert checked_inputs(config, [table], store) == first
    assert json.loads(kept.read_text()) == first


def test_workflow_parse_with_a_kept_verdict_does_not_read_the_tables(tmp_path):
    """What makes a no-op rerun fast: once the verdict is kept, the Snakefile's parse imports none of the modules
    that read tables (nor, through them, pandas; checked in a subprocess listing the modules loaded)."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("workflow", "data"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("import sys\nfrom snakemake.cli import main\nsys.argv = ['snakemake', '--list-target-rules']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('LOADED', 'metaprop.io.tables' in sys.modules, 'metaprop.analysis.extraction' in sys.modules)\n")
    runs = [subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=False)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    assert "LOADED True True" in runs[0].stdout  # the first parse checks the tables
    assert "LOADED False False" in runs[1].stdout
