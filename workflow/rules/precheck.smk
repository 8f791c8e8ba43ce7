# Config files read strictly before Snakemake merges them: a syntax error names file and line, a duplicate key
# or a YAML alias is refused. (A --configfile Snakemake cannot parse at all is refused by Snakemake itself,
# before this runs; docs/input.md, "Limits".)
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

PROJECT = Path(workflow.basedir).resolve()
sys.path.insert(0, str(PROJECT / "workflow" / "scripts"))

from metaprop import relax_garbage_collection  # noqa: E402

relax_garbage_collection()  # in Snakemake's own process: parsing and scheduling 10-20% faster

from metaprop.io.configcheck import ConfigError, check_config_files  # noqa: E402

# results/ and its folders must be folders: a plain file there would end in Snakemake's traceback
for folder in ("results", "results/tables", "results/figures", "results/archive", "results/logs"):
    if (PROJECT / folder).exists() and not (PROJECT / folder).is_dir():
        raise WorkflowError(f"{folder} is a file, not a folder; the pipeline writes its results in {folder}/. Move or "
                            "rename that file; nothing was run.")

try:
    check_config_files(["config.yaml", *(str(p) for p in workflow.overwrite_configfiles)])
except ConfigError as err:
    raise WorkflowError(f"Config problem; nothing was run:\n{err}") from None
