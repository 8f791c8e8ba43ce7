import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
FIXTURES = ROOT / "tests" / "fixtures"
SCRIPTS = ROOT / "workflow" / "scripts"

import yaml
from metaprop.spec import Outcomes

# The outcomes the bundled config.yaml declares (cr, cr_itt, scrs, scns), as spec.Outcome entries.
BUNDLED_ENTRIES = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))["outcomes"]
BUNDLED = list(Outcomes(BUNDLED_ENTRIES))
CR = BUNDLED[:1]

from hypothesis import settings

# The property tests draw the same examples on every run and machine: a failure they find is reproducible, and CI
# does not pass or fail by the luck of the draw (new examples are explored by raising max_examples locally).
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")
