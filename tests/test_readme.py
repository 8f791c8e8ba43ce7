"""The README's two commands are the ones CI and a newcomer run."""

import re

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
