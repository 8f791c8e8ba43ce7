"""The README's two commands are the ones CI and a newcomer run."""

import re
import shutil
import subprocess

from conftest import ROOT


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_readme_has_the_two_commands():
    install_run, install_test = readme_commands()[:2]
    assert install_run.endswith("pip install -r requirements.txt && snakemake --cores 4")
    assert install_test.endswith("pip install -r requirements-dev.txt && pytest")


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_conda_env_has_the_same_pins_as_requirements():
    pins = {line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    env = {line.strip().removeprefix("- ") for line in (ROOT / "envs" / "pipeline.yaml").read_text().splitlines()}
    assert pins <= env


def test_what_snakemake_report_needs_is_pinned():
    # `snakemake --report report.zip` (shown in the README) stops with "Python package pygments must be installed"
    pins = (ROOT / "requirements.txt").read_text().lower()
    assert "snakemake --report report.zip" in (ROOT / "README.md").read_text()
    assert "\npygments==" in pins


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_first_screen_says_what_to_run_and_where_the_answer_is():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "results/report.html" in first_screen and "summary of findings" in first_screen
    assert "CAR T" in first_screen and "blinatumomab" in first_screen and "12 single-arm trials" in first_screen
    assert readme_commands()[0] in first_screen


def test_every_link_between_readme_and_docs_resolves():
    linked = set()
    for page in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} links to {target}, which does not exist"
            linked.add(path)
    # every page of docs/ is reached from the README
    assert {p.resolve() for p in DOCS[1:]} <= linked


def test_every_project_path_the_docs_name_exists():
    examples = {"data/raw/added.tsv"}  # the README's example of a table to add
    for page in DOCS:
        for path in re.findall(r"`((?:data|docs|workflow|envs|profiles|tests|benchmarks|\.ci)/[^`\s]+)`",
                               page.read_text()):
            if path in examples or any(c in path for c in "<>{}*"):
                continue
            assert (ROOT / path).exists(), f"{page.name} names {path}"


def test_the_declared_question_example_is_the_shipped_config():
    # the README's yaml block is docs/examples/drugs.yaml without its comment lines, so its command runs as shown
    readme = (ROOT / "README.md").read_text()
    shipped = (ROOT / "docs/examples/drugs.yaml").read_text()
    block = re.search(r"```yaml\n(trials: \[docs/examples/drugs.tsv\].*?)\n```", readme, flags=re.DOTALL).group(1)
    assert block.splitlines() == [line for line in shipped.splitlines() if not line.startswith("#")]
    assert "snakemake --cores 4 --configfile docs/examples/drugs.yaml" in readme


def test_the_declared_question_example_passes_the_checks(tmp_path):
    from test_pipeline import copy_project, snakemake

    project = copy_project(tmp_path / "project")
    shutil.copytree(ROOT / "docs", project / "docs")
    run = snakemake(project, "-n", "--configfile", "docs/examples/drugs.yaml")
    assert run.returncode == 0, run.stderr
    assert "results/figures/forest_response.png" in run.stdout + run.stderr


def test_generated_files_are_git_ignored():
    # `snakemake --report report.zip` and a run leave nothing untracked in a clone
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"report.zip", "results/", ".snakemake/", "*.pyc", ".venv/"} <= set(ignored)
    if shutil.which("git") and (ROOT / ".git").exists():
        names = ["report.zip", "results/report.html", ".snakemake/log/x.log", ".venv/bin/python", "a/b.pyc"]
        check = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True, check=True)
        assert check.stdout.split() == names
